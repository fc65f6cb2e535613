// Writes golden bytes for Ringkeeper's quorum codec tests, produced by Java ZooKeeper's own
// classes (QuorumPacket and LearnerInfo through jute's BinaryOutputArchive, the election
// notification through FastLeaderElection.buildMsg, the election connection's opening as
// QuorumCnxManager.startConnection writes it). Run by gen.sh; prints `name hex` lines.
// It is in ZooKeeper's quorum package only to reach the package-private buildMsg.
package org.apache.zookeeper.server.quorum;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.jute.BinaryOutputArchive;
import org.apache.jute.Record;
import org.apache.zookeeper.ZooDefs.OpCode;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.SyncRequest;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.txn.CheckVersionTxn;
import org.apache.zookeeper.txn.CloseSessionTxn;
import org.apache.zookeeper.txn.CreateContainerTxn;
import org.apache.zookeeper.txn.CreateSessionTxn;
import org.apache.zookeeper.txn.CreateTTLTxn;
import org.apache.zookeeper.txn.CreateTxn;
import org.apache.zookeeper.txn.DeleteTxn;
import org.apache.zookeeper.txn.ErrorTxn;
import org.apache.zookeeper.txn.MultiTxn;
import org.apache.zookeeper.txn.SetACLTxn;
import org.apache.zookeeper.txn.SetDataTxn;
import org.apache.zookeeper.txn.Txn;
import org.apache.zookeeper.txn.TxnDigest;
import org.apache.zookeeper.txn.TxnHeader;

public class GenGolden {
    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }

    private static byte[] record(Record r, String tag) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryOutputArchive.getArchive(out).writeRecord(r, tag);
        return out.toByteArray();
    }

    private static byte[] forwarded(long session, int cxid, int type, byte[] request) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(out);
        d.writeLong(session);
        d.writeInt(cxid);
        d.writeInt(type);
        d.write(request);
        d.close();
        return out.toByteArray();
    }

    private static void emit(String name, byte[] bytes) {
        System.out.println(name + " " + hex(bytes));
    }

    public static void main(String[] args) throws Exception {
        byte[] learnerInfo = record(new LearnerInfo(3L, 0x10000, 0x100000007L), "LearnerInfo");
        emit("learner_info", learnerInfo);

        List<Id> none = new ArrayList<>();
        List<Id> auth = Arrays.asList(new Id("digest", "u:hash="), new Id("ip", "127.0.0.1"));
        emit("packet_followerinfo", record(new QuorumPacket(Leader.FOLLOWERINFO, 0x200000000L, learnerInfo, none), "packet"));
        ByteBuffer version = ByteBuffer.allocate(4).putInt(0x10000);
        emit("packet_leaderinfo", record(new QuorumPacket(Leader.LEADERINFO, 0x300000000L, version.array(), null), "packet"));
        ByteBuffer epoch = ByteBuffer.allocate(4).putInt(2);
        emit("packet_ackepoch", record(new QuorumPacket(Leader.ACKEPOCH, 0x200000005L, epoch.array(), null), "packet"));
        emit("packet_proposal", record(new QuorumPacket(Leader.PROPOSAL, 0x300000001L, "txn bytes".getBytes(StandardCharsets.UTF_8), null), "packet"));
        emit("packet_ack", record(new QuorumPacket(Leader.ACK, 0x300000001L, null, null), "packet"));
        emit("packet_commit", record(new QuorumPacket(Leader.COMMIT, 0x300000001L, null, null), "packet"));
        emit("packet_inform", record(new QuorumPacket(Leader.INFORM, 0x300000002L, new byte[] {1, 2, 3}, null), "packet"));
        emit("packet_request", record(new QuorumPacket(Leader.REQUEST, -1L, new byte[] {0, 0, 0, 7, 0, 0, 0, 1}, auth), "packet"));
        // Learner.request's layout: session id, cxid, type, then the request record's bytes.
        emit("packet_request_create", record(new QuorumPacket(Leader.REQUEST, -1L,
            forwarded(0x0200000000000011L, 7, OpCode.create,
                record(new CreateRequest("/app/lock-", "v".getBytes(StandardCharsets.UTF_8), Ids.OPEN_ACL_UNSAFE, 3), "request")),
            auth), "packet"));
        ByteBuffer timeout = ByteBuffer.allocate(4).putInt(30000);
        emit("packet_request_create_session", record(new QuorumPacket(Leader.REQUEST, -1L,
            forwarded(0x0200000000000012L, 0, OpCode.createSession, timeout.array()), none), "packet"));
        emit("packet_request_sync", record(new QuorumPacket(Leader.REQUEST, -1L,
            forwarded(0x0200000000000011L, 8, OpCode.sync, record(new SyncRequest("/app"), "request")), none), "packet"));
        emit("packet_ping", record(new QuorumPacket(Leader.PING, 0x300000009L, new byte[0], none), "packet"));
        // A learner's ping answer, as Learner.ping() fills it: its touch table as
        // DataOutputStream longs (session id) and ints (timeout).
        ByteArrayOutputStream touches = new ByteArrayOutputStream();
        DataOutputStream touchOut = new DataOutputStream(touches);
        touchOut.writeLong(0x0100000000000001L);
        touchOut.writeInt(30000);
        touchOut.writeLong(0x0300017700000002L);
        touchOut.writeInt(4000);
        touchOut.flush();
        emit("packet_ping_touches", record(new QuorumPacket(Leader.PING, 0x300000009L, touches.toByteArray(), none), "packet"));
        // Learner.validateSession: the session id and the timeout the reconnect negotiated; the
        // leader's answer (Leader.revalidateSession) is the same packet with the session id and
        // whether it is valid.
        ByteArrayOutputStream reval = new ByteArrayOutputStream();
        DataOutputStream revalOut = new DataOutputStream(reval);
        revalOut.writeLong(0x0200000000000011L);
        revalOut.writeInt(30000);
        revalOut.flush();
        emit("packet_revalidate", record(new QuorumPacket(Leader.REVALIDATE, -1L, reval.toByteArray(), null), "packet"));
        ByteArrayOutputStream valid = new ByteArrayOutputStream();
        DataOutputStream validOut = new DataOutputStream(valid);
        validOut.writeLong(0x0200000000000011L);
        validOut.writeBoolean(true);
        validOut.flush();
        emit("packet_revalidate_answer", record(new QuorumPacket(Leader.REVALIDATE, -1L, valid.toByteArray(), null), "packet"));
        emit("packet_diff", record(new QuorumPacket(Leader.DIFF, 0x200000005L, null, null), "packet"));
        emit("packet_trunc", record(new QuorumPacket(Leader.TRUNC, 0x200000003L, null, null), "packet"));
        emit("packet_snap", record(new QuorumPacket(Leader.SNAP, 0x200000005L, null, null), "packet"));
        emit("packet_newleader", record(new QuorumPacket(Leader.NEWLEADER, 0x300000000L, "server.1=a:2888:3888:participant;0.0.0.0:2181\nversion=0".getBytes(StandardCharsets.UTF_8), null), "packet"));
        emit("packet_uptodate", record(new QuorumPacket(Leader.UPTODATE, -1L, null, null), "packet"));

        byte[] config = "server.1=127.0.0.1:2888:3888:participant\nversion=100000000".getBytes(StandardCharsets.UTF_8);
        ByteBuffer note = FastLeaderElection.buildMsg(QuorumPeer.ServerState.LOOKING.ordinal(), 2L, 0x100000005L, 7L, 1L, config);
        emit("notification_v2", note.array());
        ByteBuffer old = FastLeaderElection.buildMsg(QuorumPeer.ServerState.FOLLOWING.ordinal(), 3L, 0x200000001L, 9L, 2L);
        emit("notification_v1", old.array());

        ByteArrayOutputStream opening = new ByteArrayOutputStream();
        DataOutputStream dout = new DataOutputStream(opening);
        byte[] addr = "127.0.0.1:3888|127.0.0.2:3889".getBytes(StandardCharsets.UTF_8);
        dout.writeLong(QuorumCnxManager.PROTOCOL_VERSION_V2);
        dout.writeLong(2L);
        dout.writeInt(addr.length);
        dout.write(addr);
        dout.flush();
        emit("election_opening_v2", opening.toByteArray());

        txns();
    }

    // A txn as a PROPOSAL carries it and a log entry holds it (Request.serializeTxn): header,
    // record, optional digest.
    private static byte[] txn(long session, int cxid, long zxid, int type, Record body, Record digest) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryOutputArchive a = BinaryOutputArchive.getArchive(out);
        new TxnHeader(session, cxid, zxid, 1700000000123L, type).serialize(a, "hdr");
        if (body != null) {
            body.serialize(a, "txn");
        }
        if (digest != null) {
            digest.serialize(a, "digest");
        }
        return out.toByteArray();
    }

    private static byte[] body(Record r) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        r.serialize(BinaryOutputArchive.getArchive(out), "txn");
        return out.toByteArray();
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void txns() throws Exception {
        long s = 0x100000abcL;
        long z = 0x300000007L;
        List<ACL> open = Arrays.asList(new ACL(31, new Id("world", "anyone")));
        List<ACL> digest = Arrays.asList(new ACL(1, new Id("digest", "u:hash=")), new ACL(31, new Id("ip", "10.0.0.1")));
        emit("txn_create_session", txn(s, 0, z, OpCode.createSession, new CreateSessionTxn(30000), null));
        emit("txn_close_session", txn(s, 9, z, OpCode.closeSession, new CloseSessionTxn(new ArrayList<>()), null));
        emit("txn_close_session_paths", txn(s, 9, z, OpCode.closeSession, new CloseSessionTxn(Arrays.asList("/e1", "/e2")), null));
        emit("txn_close_session_pre36", txn(s, 9, z, OpCode.closeSession, null, null));
        emit("txn_create_ephemeral", txn(s, 1, z, OpCode.create, new CreateTxn("/e", utf8("hi"), open, true, 3), null));
        emit("txn_create2_null_data", txn(s, 2, z, OpCode.create2, new CreateTxn("/p", null, digest, false, 1), null));
        emit("txn_create_container", txn(s, 3, z, OpCode.createContainer, new CreateContainerTxn("/c", new byte[0], open, 2), null));
        emit("txn_create_ttl", txn(s, 4, z, OpCode.createTTL, new CreateTTLTxn("/t", utf8("x"), open, 4, 5000L), null));
        emit("txn_delete", txn(s, 5, z, OpCode.delete, new DeleteTxn("/p"), null));
        emit("txn_delete_container", txn(0, 0, z, OpCode.deleteContainer, new DeleteTxn("/c"), null));
        emit("txn_set_data", txn(s, 6, z, OpCode.setData, new SetDataTxn("/p", utf8("v2"), 3), null));
        emit("txn_set_acl", txn(s, 7, z, OpCode.setACL, new SetACLTxn("/p", digest, 2), null));
        emit("txn_error", txn(s, 8, z, OpCode.error, new ErrorTxn(-101), null));
        List<Txn> ops = Arrays.asList(
            new Txn(OpCode.create, body(new CreateTxn("/m", utf8("a"), open, true, 1))),
            new Txn(OpCode.check, body(new CheckVersionTxn("/p", 4))),
            new Txn(OpCode.setData, body(new SetDataTxn("/p", utf8("b"), 4))),
            new Txn(OpCode.delete, body(new DeleteTxn("/m"))));
        emit("txn_multi", txn(s, 10, z, OpCode.multi, new MultiTxn(ops), null));
        List<Txn> failed = Arrays.asList(
            new Txn(OpCode.error, body(new ErrorTxn(0))),
            new Txn(OpCode.error, body(new ErrorTxn(-101))),
            new Txn(OpCode.error, body(new ErrorTxn(-2))));
        emit("txn_multi_failed", txn(s, 11, z, OpCode.multi, new MultiTxn(failed), null));
        emit("txn_set_data_digest", txn(s, 6, z, OpCode.setData, new SetDataTxn("/p", utf8("v2"), 3), new TxnDigest(2, 0x1234L)));
    }
}
