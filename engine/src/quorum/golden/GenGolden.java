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
import org.apache.zookeeper.data.Id;

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
        emit("packet_ping", record(new QuorumPacket(Leader.PING, 0x300000009L, new byte[0], none), "packet"));
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
    }
}
