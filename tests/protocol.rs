//! Wire-level tests against the real server over real sockets, with the raw jute client from
//! `ringkeeper-tools`: error codes, reply and notification order, zxids, sessions, bad input.

mod common;

use bytes::Bytes;
use common::{four_letter, run_with_config, run_with_files, Server};
use ringkeeper_engine::proto::{
    encode_acls, event, opcode as op, Acl, ConnectRequest, ConnectResponse, Stat,
};
use ringkeeper_engine::tree::acl::digest_id;
use ringkeeper_tools::client::{RawClient, RawReply};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const NONODE: i32 = -101;
const NOAUTH: i32 = -102;
const BADVERSION: i32 = -103;
const NODEEXISTS: i32 = -110;
const NOWATCHER: i32 = -121;
const UNIMPLEMENTED: i32 = -6;
const MARSHALLING: i32 = -5;

fn create_with(
    c: &mut RawClient,
    path: &str,
    data: &[u8],
    flags: i32,
    acl: &[Acl],
    ev: &mut Vec<RawReply>,
) -> RawReply {
    c.call(
        op::CREATE,
        |w| {
            w.ustring(path).buffer(data);
            encode_acls(w, acl);
            w.int(flags);
        },
        ev,
    )
    .unwrap()
}

/// Any of the create opcodes with an open ACL; `ttl` is sent only for createTTL.
fn create_op(c: &mut RawClient, opcode: i32, path: &str, flags: i32, ttl: i64) -> RawReply {
    c.call(
        opcode,
        |w| {
            w.ustring(path).buffer(b"");
            encode_acls(w, &Acl::open_unsafe());
            w.int(flags);
            if opcode == op::CREATE_TTL {
                w.long(ttl);
            }
        },
        &mut Vec::new(),
    )
    .unwrap()
}

fn create(c: &mut RawClient, path: &str, data: &[u8], flags: i32) -> RawReply {
    let mut ev = Vec::new();
    let r = create_with(c, path, data, flags, &Acl::open_unsafe(), &mut ev);
    assert!(ev.is_empty(), "unexpected events {ev:?}");
    r
}

fn get_data(c: &mut RawClient, path: &str, watch: bool, ev: &mut Vec<RawReply>) -> RawReply {
    c.call(
        op::GET_DATA,
        |w| {
            w.ustring(path).boolean(watch);
        },
        ev,
    )
    .unwrap()
}

fn exists(c: &mut RawClient, path: &str, watch: bool, ev: &mut Vec<RawReply>) -> RawReply {
    c.call(
        op::EXISTS,
        |w| {
            w.ustring(path).boolean(watch);
        },
        ev,
    )
    .unwrap()
}

fn event_of(r: &RawReply) -> (i32, i32, String) {
    let mut rd = r.reader();
    (
        rd.int("type").unwrap(),
        rd.int("state").unwrap(),
        rd.ustring("path").unwrap(),
    )
}

fn is_closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 64];
    loop {
        match stream.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn connect_answers_in_the_form_it_was_asked() {
    let srv = Server::start("");
    for read_only in [None, Some(false)] {
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 3000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only,
        }
        .encode(&mut body);
        s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).unwrap();
        let expect_len = if read_only.is_some() { 37 } else { 36 };
        assert_eq!(
            resp.len(),
            expect_len,
            "readOnly byte mirrored for {read_only:?}"
        );
        let r = ConnectResponse::decode(&resp).unwrap();
        assert_eq!(r.timeout_ms, 3000);
        assert_eq!(
            r.session_id >> 56,
            1,
            "standalone session ids carry server id 1 in the high byte"
        );
        assert_eq!(r.read_only, read_only.map(|_| false));
    }
}

#[test]
fn session_timeout_is_negotiated_within_bounds() {
    let srv = Server::start("minSessionTimeout=1000\nmaxSessionTimeout=5000");
    assert_eq!(
        RawClient::connect(&srv.addr(), 10).unwrap().timeout_ms,
        1000
    );
    assert_eq!(
        RawClient::connect(&srv.addr(), 60000).unwrap().timeout_ms,
        5000
    );
    assert_eq!(
        RawClient::connect(&srv.addr(), 2500).unwrap().timeout_ms,
        2500
    );
    let conf = four_letter(&srv.addr(), "conf").unwrap();
    assert!(
        conf.contains("minSessionTimeout=1000\n") && conf.contains("maxSessionTimeout=5000\n"),
        "{conf}"
    );
}

#[test]
fn watch_event_precedes_the_reply_and_carries_the_zxid() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let r = exists(&mut c, "/w", true, &mut ev);
    assert_eq!(r.err, NONODE);
    let reply = create_with(&mut c, "/w", b"x", 0, &Acl::open_unsafe(), &mut ev);
    assert!(reply.is_ok());
    assert_eq!(ev.len(), 1, "NodeCreated arrives before the create reply");
    assert_eq!(ev[0].xid, -1);
    assert_eq!(event_of(&ev[0]), (event::NODE_CREATED, 3, "/w".into()));
    assert_eq!(
        ev[0].zxid, reply.zxid,
        "the event carries the zxid of the change"
    );
}

#[test]
fn pipelined_reads_see_the_sessions_own_earlier_write() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    for i in 0..50 {
        let path = format!("/p{i}");
        let x1 = c
            .send(op::CREATE, |w| {
                w.ustring(&path).buffer(b"v");
                encode_acls(w, &Acl::open_unsafe());
                w.int(0);
            })
            .unwrap();
        let x2 = c
            .send(op::GET_DATA, |w| {
                w.ustring(&path).boolean(false);
            })
            .unwrap();
        let r1 = c.read_reply().unwrap();
        let r2 = c.read_reply().unwrap();
        assert_eq!((r1.xid, r2.xid), (x1, x2), "replies in request order");
        assert!(
            r1.is_ok() && r2.is_ok(),
            "read after own write must see it: {r2:?}"
        );
        assert!(r2.zxid >= r1.zxid);
    }
}

#[test]
fn failed_writes_use_a_zxid_and_reads_report_the_last_one() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let a = create(&mut c, "/z", b"", 0);
    let b = create(&mut c, "/z", b"", 0);
    assert_eq!(b.err, NODEEXISTS);
    assert_eq!(b.zxid, a.zxid + 1, "an error txn consumes a zxid");
    let mut ev = Vec::new();
    let r = exists(&mut c, "/z", false, &mut ev);
    assert_eq!(r.zxid, b.zxid);
}

#[test]
fn multi_failure_reports_ok_error_and_runtime_inconsistency() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    create(&mut c, "/m", b"", 0);
    let mut ev = Vec::new();
    let r = c
        .call(
            op::MULTI,
            |w| {
                w.int(op::CREATE)
                    .boolean(false)
                    .int(-1)
                    .ustring("/m/a")
                    .buffer(b"");
                encode_acls(w, &Acl::open_unsafe());
                w.int(0);
                w.int(op::CHECK).boolean(false).int(-1).ustring("/m").int(7);
                w.int(op::DELETE)
                    .boolean(false)
                    .int(-1)
                    .ustring("/m")
                    .int(-1);
                w.int(-1).boolean(true).int(-1);
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(r.err, 0, "a failed multi has err 0 in its header");
    let mut rd = r.reader();
    let mut results = Vec::new();
    loop {
        let (t, done, err) = (
            rd.int("t").unwrap(),
            rd.boolean("d").unwrap(),
            rd.int("e").unwrap(),
        );
        if done {
            break;
        }
        assert_eq!(t, -1);
        assert_eq!(rd.int("err").unwrap(), err);
        results.push(err);
    }
    assert_eq!(results, vec![0, BADVERSION, -2]);
    assert_eq!(
        get_data(&mut c, "/m/a", false, &mut ev).err,
        NONODE,
        "nothing applied"
    );
}

#[test]
fn unknown_opcode_is_unimplemented_and_the_session_lives_on() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    create(&mut c, "/keep", b"", 1);
    let mut ev = Vec::new();
    let r = c.call(9999, |_| {}, &mut ev).unwrap();
    assert_eq!((r.err, r.zxid), (UNIMPLEMENTED, -1));
    assert!(
        c.read_reply().is_err(),
        "ZooKeeper closes the connection after UNIMPLEMENTED"
    );
    let mut again = RawClient::resume(&srv.addr(), 4000, c.session_id, c.passwd.clone()).unwrap();
    assert_eq!(again.session_id, c.session_id);
    assert!(
        get_data(&mut again, "/keep", false, &mut ev).is_ok(),
        "ephemeral of the live session is still there"
    );
}

#[test]
fn malformed_body_gets_marshalling_error_and_the_connection_stays() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let r = c
        .call(
            op::GET_DATA,
            |w| {
                w.int(1000);
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(r.err, MARSHALLING);
    assert!(exists(&mut c, "/", false, &mut ev).is_ok());
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let srv = Server::start("jute.maxbuffer=4096");
    let mut good = RawClient::connect(&srv.addr(), 4000).unwrap();

    let mut negative = RawClient::connect(&srv.addr(), 4000).unwrap();
    negative.send_raw(&(-5i32).to_be_bytes()).unwrap();
    assert!(negative.read_reply().is_err());

    let mut big = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let _ = big.send(op::SET_DATA, |w| {
        w.ustring("/").buffer(&vec![7u8; 8192]).int(-1);
    });
    assert!(
        big.read_reply().is_err(),
        "a request over jute.maxbuffer closes the connection"
    );

    let mut http = TcpStream::connect(srv.addr()).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        is_closed(&mut http),
        "an HTTP request on the client port is refused"
    );

    let mut half = TcpStream::connect(srv.addr()).unwrap();
    half.write_all(&[0, 0, 0, 40, 0, 0]).unwrap(); // a connect frame that never completes

    assert!(
        exists(&mut good, "/", false, &mut ev).is_ok(),
        "others are still served"
    );
    assert!(srv.log().contains("bad frame"), "the bad frame is logged");
}

#[test]
fn resuming_with_a_bad_password_is_refused_with_zeros() {
    let srv = Server::start("");
    let c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let err = RawClient::resume(
        &srv.addr(),
        4000,
        c.session_id,
        Bytes::from_static(&[1; 16]),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let ok = RawClient::resume(&srv.addr(), 4000, c.session_id, c.passwd.clone()).unwrap();
    assert_eq!(ok.session_id, c.session_id);
}

#[test]
fn expiry_deletes_ephemerals_fires_watches_and_kills_the_session() {
    let srv = Server::start("minSessionTimeout=400");
    let mut owner = RawClient::connect(&srv.addr(), 400).unwrap();
    assert_eq!(owner.timeout_ms, 400);
    create(&mut owner, "/eph", b"", 1);
    let mut watcher = RawClient::connect(&srv.addr(), 10000).unwrap();
    let mut ev = Vec::new();
    assert!(exists(&mut watcher, "/eph", true, &mut ev).is_ok());
    // The owner goes silent (no pings): its session must expire within a few timeouts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let note = loop {
        let r = watcher.read_reply().expect("NodeDeleted notification");
        if r.xid == -1 {
            break r;
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(event_of(&note), (event::NODE_DELETED, 3, "/eph".into()));
    assert!(
        owner.read_reply().is_err(),
        "the expired session's connection is closed"
    );
    assert!(
        RawClient::resume(&srv.addr(), 400, owner.session_id, owner.passwd.clone()).is_err(),
        "expired for good"
    );
}

#[test]
fn pings_keep_a_session_alive() {
    let srv = Server::start("minSessionTimeout=400");
    let mut c = RawClient::connect(&srv.addr(), 400).unwrap();
    create(&mut c, "/alive", b"", 1);
    let mut ev = Vec::new();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(100));
        let r = c.call(op::PING, |_| {}, &mut ev).unwrap();
        assert_eq!(r.xid, -2);
    }
    assert!(exists(&mut c, "/alive", false, &mut ev).is_ok());
}

#[test]
fn acls_digest_auth_super_and_who_am_i() {
    let srv = Server::start(&format!(
        "DigestAuthenticationProvider.superDigest=super:{}",
        digest_id("super:secret").split_once(':').unwrap().1
    ));
    let mut alice = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let r = alice
        .call(
            op::AUTH,
            |w| {
                w.int(0).ustring("digest").buffer(b"alice:pw");
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!((r.err, r.zxid, r.xid), (0, 0, -4));
    let acl = [Acl::new(31, "auth", "")];
    assert!(create_with(&mut alice, "/private", b"s", 0, &acl, &mut ev).is_ok());
    let invalid = create_with(
        &mut RawClient::connect(&srv.addr(), 4000).unwrap(),
        "/x",
        b"",
        0,
        &acl,
        &mut ev,
    );
    assert_eq!(
        invalid.err, -114,
        "auth scheme without an authenticated id is InvalidACL"
    );

    let mut bob = RawClient::connect(&srv.addr(), 4000).unwrap();
    assert_eq!(get_data(&mut bob, "/private", false, &mut ev).err, NOAUTH);
    let acl_reply = bob
        .call(
            op::GET_ACL,
            |w| {
                w.ustring("/private");
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(acl_reply.err, NOAUTH, "getACL needs READ or ADMIN");
    assert!(get_data(&mut alice, "/private", false, &mut ev).is_ok());

    let mut root = RawClient::connect(&srv.addr(), 4000).unwrap();
    root.call(
        op::AUTH,
        |w| {
            w.int(0).ustring("digest").buffer(b"super:secret");
        },
        &mut ev,
    )
    .unwrap();
    assert!(
        get_data(&mut root, "/private", false, &mut ev).is_ok(),
        "superDigest passes every ACL"
    );

    let who = alice.call(op::WHO_AM_I, |_| {}, &mut ev).unwrap();
    let mut rd = who.reader();
    let ids = rd
        .vector("ids", 8, |r| Ok((r.ustring("s")?, r.ustring("u")?)))
        .unwrap();
    assert!(
        ids.contains(&("ip".to_string(), "127.0.0.1".to_string())),
        "{ids:?}"
    );
    assert!(
        ids.contains(&("digest".to_string(), "alice".to_string())),
        "{ids:?}"
    );

    let mut eve = RawClient::connect(&srv.addr(), 4000).unwrap();
    let bad = eve
        .call(
            op::AUTH,
            |w| {
                w.int(0).ustring("kerberos").buffer(b"x");
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(bad.err, -115);
    assert!(
        eve.read_reply().is_err(),
        "AUTHFAILED closes the connection"
    );
}

#[test]
fn watches_hidden_from_sessions_without_read() {
    let srv = Server::start("");
    let mut owner = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    owner
        .call(
            op::AUTH,
            |w| {
                w.int(0).ustring("digest").buffer(b"o:pw");
            },
            &mut ev,
        )
        .unwrap();
    create(&mut owner, "/open", b"", 0);
    let mut other = RawClient::connect(&srv.addr(), 4000).unwrap();
    assert!(exists(&mut other, "/open", true, &mut ev).is_ok());
    owner
        .call(
            op::SET_ACL,
            |w| {
                w.ustring("/open");
                encode_acls(w, &[Acl::new(31, "auth", "")]);
                w.int(-1);
            },
            &mut ev,
        )
        .unwrap();
    owner
        .call(
            op::SET_DATA,
            |w| {
                w.ustring("/open").buffer(b"2").int(-1);
            },
            &mut ev,
        )
        .unwrap();
    // The event is dropped for `other`, which lacks READ; its next reply comes without it.
    let r = exists(&mut other, "/", false, &mut ev);
    assert!(r.is_ok());
    assert!(ev.is_empty(), "no event for a watcher without READ: {ev:?}");
}

#[test]
fn persistent_recursive_watch_and_watch_removal() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let r = c
        .call(
            op::ADD_WATCH,
            |w| {
                w.ustring("/tree").int(1);
            },
            &mut ev,
        )
        .unwrap();
    assert!(r.is_ok());
    assert_eq!(
        r.body,
        vec![0, 0, 0, 0],
        "addWatch answers ErrorResponse(0)"
    );
    create_with(&mut c, "/tree", b"", 0, &Acl::open_unsafe(), &mut ev);
    create_with(&mut c, "/tree/a", b"", 0, &Acl::open_unsafe(), &mut ev);
    let kinds: Vec<(i32, String)> = ev
        .iter()
        .map(|e| {
            let (t, _, p) = event_of(e);
            (t, p)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (event::NODE_CREATED, "/tree".into()),
            (event::NODE_CREATED, "/tree/a".into())
        ],
        "no NodeChildrenChanged for recursive watches"
    );
    ev.clear();
    let check = c
        .call(
            op::CHECK_WATCHES,
            |w| {
                w.ustring("/tree").int(5);
            },
            &mut ev,
        )
        .unwrap();
    assert!(check.is_ok());
    let none = c
        .call(
            op::REMOVE_WATCHES,
            |w| {
                w.ustring("/nowhere").int(3);
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(none.err, NOWATCHER);
    let removed = c
        .call(
            op::REMOVE_WATCHES,
            |w| {
                w.ustring("/tree").int(3);
            },
            &mut ev,
        )
        .unwrap();
    assert!(removed.is_ok());
    create_with(&mut c, "/tree/b", b"", 0, &Acl::open_unsafe(), &mut ev);
    assert!(ev.is_empty(), "removed watch does not fire");
}

#[test]
fn set_watches_catches_up_on_missed_changes() {
    let srv = Server::start("");
    let mut a = RawClient::connect(&srv.addr(), 4000).unwrap();
    let first = create(&mut a, "/sw", b"1", 0);
    a.call(
        op::SET_DATA,
        |w| {
            w.ustring("/sw").buffer(b"2").int(-1);
        },
        &mut Vec::new(),
    )
    .unwrap();
    let mut b = RawClient::connect(&srv.addr(), 4000).unwrap();
    // b "last saw" the create: its data watch on /sw missed the setData, its exist watch on
    // /sw2 is still pending, and its child watch on /gone names a deleted node.
    b.send(op::SET_WATCHES, |w| {
        w.long(first.zxid);
        w.vector(&["/sw"], |w, p| {
            w.ustring(p);
        });
        w.vector(&["/sw2"], |w, p| {
            w.ustring(p);
        });
        w.vector(&["/gone"], |w, p| {
            w.ustring(p);
        });
    })
    .unwrap();
    let mut got = Vec::new();
    loop {
        let r = b.read_reply().unwrap();
        if r.xid == -8 {
            assert!(r.is_ok());
            break;
        }
        assert_eq!(r.zxid, -1, "catch-up events carry no zxid");
        got.push(event_of(&r));
    }
    assert_eq!(
        got,
        vec![
            (event::NODE_DATA_CHANGED, 3, "/sw".into()),
            (event::NODE_DELETED, 3, "/gone".into())
        ]
    );
    let mut ev = Vec::new();
    create_with(&mut a, "/sw2", b"", 0, &Acl::open_unsafe(), &mut ev);
    let note = b.read_reply().unwrap();
    assert_eq!(
        event_of(&note),
        (event::NODE_CREATED, 3, "/sw2".into()),
        "re-registered exist watch fires"
    );
}

#[test]
fn ephemerals_and_descendant_counts() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    create(&mut c, "/e", b"", 0);
    create(&mut c, "/e/1", b"", 1);
    create(&mut c, "/e2", b"", 1);
    let mut ev = Vec::new();
    let r = c
        .call(
            op::GET_EPHEMERALS,
            |w| {
                w.ustring("/e/");
            },
            &mut ev,
        )
        .unwrap();
    let list = r.reader().vector("e", 4, |r| r.ustring("p")).unwrap();
    assert_eq!(list, vec!["/e/1".to_string()]);
    let r = c
        .call(
            op::GET_ALL_CHILDREN_NUMBER,
            |w| {
                w.ustring("/");
            },
            &mut ev,
        )
        .unwrap();
    assert_eq!(
        r.reader().int("n").unwrap(),
        6,
        "/zookeeper, quota, config, /e, /e/1, /e2"
    );
    let r = create_op(&mut c, op::CREATE, "/e2/child", 0, -1);
    assert_eq!(r.err, -108, "ephemerals cannot have children");
}

#[test]
fn containers_and_ttl_nodes_are_reaped() {
    let srv = Server::start("extendedTypesEnabled=true\nznode.container.checkIntervalMs=100");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    let r = create_op(&mut c, op::CREATE_CONTAINER, "/box", 4, -1);
    assert!(r.is_ok());
    let mut rd = r.reader();
    rd.ustring("path").unwrap();
    assert_eq!(
        Stat::decode(&mut rd).unwrap().ephemeral_owner,
        0,
        "containers show owner 0"
    );
    create(&mut c, "/box/item", b"", 0);
    c.call(
        op::DELETE,
        |w| {
            w.ustring("/box/item").int(-1);
        },
        &mut ev,
    )
    .unwrap();
    let ttl = create_op(&mut c, op::CREATE_TTL, "/ttl", 5, 200);
    assert!(ttl.is_ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let box_gone = exists(&mut c, "/box", false, &mut ev).err == NONODE;
        let ttl_gone = exists(&mut c, "/ttl", false, &mut ev).err == NONODE;
        if box_gone && ttl_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "container and TTL node not reaped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ttl_without_extended_types_is_unimplemented() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let r = create_op(&mut c, op::CREATE_TTL, "/ttl", 5, 200);
    assert_eq!(r.err, UNIMPLEMENTED);
}

#[test]
fn four_letter_words_follow_the_whitelist() {
    let srv = Server::start("4lw.commands.whitelist=ruok, mntr");
    assert_eq!(four_letter(&srv.addr(), "ruok").unwrap(), "imok");
    assert_eq!(
        four_letter(&srv.addr(), "srvr").unwrap(),
        "srvr is not executed because it is not in the whitelist.\n"
    );
    let mntr = four_letter(&srv.addr(), "mntr").unwrap();
    assert!(mntr.starts_with("zk_version\t"), "{mntr}");
    assert!(mntr.contains("zk_server_state\tstandalone\n"));
    assert!(
        mntr.contains("zk_znode_count\t5\n"),
        "a fresh server has ZooKeeper's 5: {mntr}"
    );
}

#[test]
fn four_letter_words_report_connections_and_watches() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    create(&mut c, "/wx", b"", 0);
    get_data(&mut c, "/wx", true, &mut ev);
    let wchs = four_letter(&srv.addr(), "wchs").unwrap();
    assert_eq!(wchs, "1 connections watching 1 paths\nTotal watches:1\n");
    let wchc = four_letter(&srv.addr(), "wchc").unwrap();
    assert_eq!(wchc, format!("0x{:x}\n\t/wx\n\n", c.session_id));
    let cons = four_letter(&srv.addr(), "cons").unwrap();
    assert!(
        cons.contains(&format!("sid=0x{:x}", c.session_id)),
        "{cons}"
    );
    let srvr = four_letter(&srv.addr(), "srvr").unwrap();
    assert!(
        srvr.contains("Mode: standalone\n") && srvr.contains("Node count: 6\n"),
        "{srvr}"
    );
    let dump = four_letter(&srv.addr(), "dump").unwrap();
    assert!(
        dump.contains(&format!("\t0x{:x}\n", c.session_id)),
        "{dump}"
    );
}

#[test]
fn max_client_cnxns_is_enforced_per_address() {
    let srv = Server::start("maxClientCnxns=2");
    let _a = RawClient::connect(&srv.addr(), 4000).unwrap();
    let _b = RawClient::connect(&srv.addr(), 4000).unwrap();
    assert!(
        RawClient::connect(&srv.addr(), 4000).is_err(),
        "third connection from 127.0.0.1 refused"
    );
}

#[test]
fn bad_config_names_the_key_and_exits_1() {
    let (code, err) = run_with_config("clientPort=notaport\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("clientPort"), "{err}");
    let (code, err) =
        run_with_config("tickTime=2000\nminSessionTimeout=50000\nmaxSessionTimeout=100\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("minSessionTimeout"), "{err}");
}

#[test]
fn bad_ensemble_config_names_the_key_and_exits_1() {
    let lines = "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={dir}/data\nclientPort=2181\n\
                 server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890\n";
    for (extra, myid, key, says) in [
        ("", None, "myid", "is missing"),
        ("", Some("7\n"), "myid", "not in the server list (1, 2, 3)"),
        ("", Some("x\n"), "myid", "not a number"),
        (
            "server.01=127.0.0.2:2888:3888\n",
            Some("1\n"),
            "server.01",
            "already used by server.1",
        ),
        (
            "server.4=127.0.0.1:2891:3888\n",
            Some("1\n"),
            "server.4",
            "server.1's election port",
        ),
        (
            "server.4=127.0.0.1:2892:2892\n",
            Some("1\n"),
            "server.4",
            "must be different",
        ),
        (
            "server.4=127.0.0.1:2893\n",
            Some("1\n"),
            "server.4",
            "expected host",
        ),
    ] {
        let files: Vec<(&str, &str)> = myid.iter().map(|m| ("data/myid", *m)).collect();
        let (code, err) = run_with_files(&format!("{lines}{extra}"), &files);
        assert_eq!(code, Some(1), "{extra} {myid:?}: {err}");
        assert!(err.contains(&format!("'{key}'")), "{extra} {myid:?}: {err}");
        assert!(err.contains(says), "{extra} {myid:?}: {err}");
    }
    let (code, err) = run_with_files(&lines.replace("initLimit=5\n", ""), &[("data/myid", "1\n")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("'initLimit'"), "{err}");
}

#[test]
fn reader_that_never_reads_does_not_stall_others() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 60000).unwrap();
    create(&mut c, "/big", &vec![1u8; 512 * 1024], 0);
    let mut hog = RawClient::connect(&srv.addr(), 60000).unwrap();
    for _ in 0..200 {
        // 100 MB of replies requested, none read.
        if hog
            .send(op::GET_DATA, |w| {
                w.ustring("/big").boolean(false);
            })
            .is_err()
        {
            break;
        }
    }
    let mut ev = Vec::new();
    let start = Instant::now();
    assert!(get_data(&mut c, "/big", false, &mut ev).is_ok());
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn create_ttl_validates_mode_and_ttl() {
    let srv = Server::start("extendedTypesEnabled=true");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut attempt =
        |flags: i32, ttl: i64| create_op(&mut c, op::CREATE_TTL, "/t", flags, ttl).err;
    assert_eq!(
        attempt(0, 100),
        -8,
        "a TTL on a non-TTL mode is BadArguments"
    );
    assert_eq!(attempt(5, 0), -8, "a TTL must be positive");
    assert_eq!(attempt(5, 1 << 40), -8, "a TTL must fit in 40 bits");
    assert_eq!(attempt(5, 1000), 0);
}

#[test]
fn one_core_runs_both_roles_on_one_executor() {
    let srv = Server::start_with_args("", &["--cores", "1"]);
    assert!(srv.log().contains("shared_core=true"), "{}", srv.log());
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut ev = Vec::new();
    assert!(exists(&mut c, "/x", true, &mut ev).err == NONODE);
    let r = create_with(&mut c, "/x", b"1", 0, &Acl::open_unsafe(), &mut ev);
    assert!(r.is_ok());
    assert_eq!(ev.len(), 1, "watch fires on the single-core layout too");
}

#[test]
fn resuming_a_session_closes_its_older_connection() {
    let srv = Server::start("");
    let mut first = RawClient::connect(&srv.addr(), 4000).unwrap();
    let mut second =
        RawClient::resume(&srv.addr(), 4000, first.session_id, first.passwd.clone()).unwrap();
    assert!(
        first.read_reply().is_err(),
        "the older connection of a resumed session is closed"
    );
    let mut ev = Vec::new();
    assert!(exists(&mut second, "/", false, &mut ev).is_ok());
}

#[test]
fn interleaved_pipelined_writes_and_reads_keep_session_order() {
    let srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    create(&mut c, "/seq", b"0", 0);
    // Many writes and reads in flight at once, so one committed batch holds several writes of
    // this session with reads queued between them.
    let mut xids = Vec::new();
    for i in 1..=300 {
        let data = i.to_string();
        xids.push(
            c.send(op::SET_DATA, |w| {
                w.ustring("/seq").buffer(data.as_bytes()).int(-1);
            })
            .unwrap(),
        );
        xids.push(
            c.send(op::GET_DATA, |w| {
                w.ustring("/seq").boolean(false);
            })
            .unwrap(),
        );
    }
    for (n, xid) in xids.iter().enumerate() {
        let r = c.read_reply().unwrap();
        assert_eq!(r.xid, *xid, "replies in request order");
        assert!(r.is_ok(), "{r:?}");
        if n % 2 == 1 {
            let data = r.reader().buffer("data").unwrap();
            assert_eq!(
                &data[..],
                (n / 2 + 1).to_string().as_bytes(),
                "a read sees the write before it and not the one after"
            );
        }
    }
}

#[test]
fn addauth_applies_to_writes_sent_after_it_while_earlier_ones_are_in_flight() {
    let srv = Server::start("");
    let mut owner = RawClient::connect(&srv.addr(), 4000).unwrap();
    let only_u = [Acl::new(31, "digest", &digest_id("u:pw"))];
    let mut ev = Vec::new();
    assert!(create_with(&mut owner, "/p", b"", 0, &only_u, &mut ev).is_ok());
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    // Sent back to back: the auth arrives while the create is still in flight.
    let sent = [
        c.send(op::CREATE, |w| {
            w.ustring("/x").buffer(b"");
            encode_acls(w, &Acl::open_unsafe());
            w.int(0);
        })
        .unwrap(),
        c.send(op::AUTH, |w| {
            w.int(0).ustring("digest").buffer(b"u:pw");
        })
        .unwrap(),
        c.send(op::SET_DATA, |w| {
            w.ustring("/p").buffer(b"v").int(-1);
        })
        .unwrap(),
    ];
    for xid in sent {
        let r = c.read_reply().unwrap();
        assert_eq!(r.xid, xid, "replies in request order");
        assert!(r.is_ok(), "xid {xid}: {r:?}");
    }
}

#[test]
fn a_second_server_on_a_taken_port_refuses_to_start() {
    let srv = Server::start("");
    let (code, err) = run_with_config(&format!(
        "clientPort={}\nclientPortAddress=127.0.0.1\n",
        srv.port
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("another server is listening"), "{err}");
}

#[test]
fn acknowledged_writes_and_live_sessions_survive_kill_9() {
    let mut srv = Server::start("maxSessionTimeout=30000");
    let mut c = RawClient::connect(&srv.addr(), 30000).unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        let path = format!("/d{i}");
        assert!(create(&mut c, &path, i.to_string().as_bytes(), 0).is_ok());
        acked.push(path);
    }
    create(&mut c, "/mine", b"", 1);
    let mut ev = Vec::new();
    let before = get_data(&mut c, "/d7", false, &mut ev);
    srv.kill_and_restart();
    let mut again = RawClient::resume(&srv.addr(), 30000, c.session_id, c.passwd.clone())
        .expect("the session survives the restart");
    for (i, path) in acked.iter().enumerate() {
        let r = get_data(&mut again, path, false, &mut ev);
        assert!(r.is_ok(), "{path} was acknowledged and must survive");
        assert_eq!(r.reader().buffer("data").unwrap(), i.to_string().as_bytes());
    }
    assert!(
        get_data(&mut again, "/mine", false, &mut ev).is_ok(),
        "the live session's ephemeral is back"
    );
    let after = get_data(&mut again, "/d7", false, &mut ev);
    assert_eq!(&after.body, &before.body, "same data and stat after replay");
    assert!(srv.log().contains("transaction log read"), "{}", srv.log());
    let next = create(&mut again, "/after", b"", 0);
    assert!(next.zxid > before.zxid, "zxids continue after the restart");
}

#[test]
fn a_corrupt_log_refuses_to_start_naming_file_and_offset() {
    let mut srv = Server::start("");
    let mut c = RawClient::connect(&srv.addr(), 4000).unwrap();
    for i in 0..20 {
        create(&mut c, &format!("/c{i}"), b"x", 0);
    }
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    let log_dir = srv.dir.join("rk-log");
    let seg = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[4096 + 40] ^= 0x55; // inside the first record, with good records after it
    std::fs::write(&seg, &bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["serve", "--config"])
        .arg(srv.dir.join("zoo.cfg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&seg.display().to_string()) && err.contains("corrupt record at offset 4096"),
        "{err}"
    );
    srv.child = std::process::Command::new("true").spawn().unwrap(); // nothing left to stop
}
