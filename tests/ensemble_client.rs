//! The independent Rust client (`zookeeper-client` crate) against a 3-member ensemble on its
//! whole connect string: writes and watches through any member, and a SIGKILL of the leader
//! that the client's session survives, with every acknowledged write on every member after.

mod common;

use common::Ensemble;
use std::time::Duration;
use zookeeper_client as zk;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

/// Retries a request through connection loss (the client reconnects to another member).
async fn retried<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, zk::Error>>,
{
    for _ in 0..200 {
        match f().await {
            Ok(v) => return v,
            // The crate reports a reset connection as a custom IO error.
            Err(zk::Error::ConnectionLoss | zk::Error::Timeout | zk::Error::Custom(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
    panic!("{what}: no member answered");
}

#[test]
fn a_session_on_the_connect_string_outlives_the_leader_and_sees_every_write_everywhere() {
    let mut ens = Ensemble::start(3);
    rt().block_on(async {
        let client = within(
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .connect(&ens.hosts()),
        )
        .await
        .unwrap();
        client.create("/app", b"v0", &persistent()).await.unwrap();
        let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        client.create("/app/eph", b"", &eph).await.unwrap();
        // A watch set before the failover.
        let (_, _, watcher) = client.get_and_watch_data("/app").await.unwrap();

        // Writes through each member by its own client.
        for id in 1..=3 {
            let c = within(zk::Client::connect(&ens.addr(id))).await.unwrap();
            c.create(&format!("/app/from-{id}"), b"", &persistent())
                .await
                .unwrap();
        }

        let leader = ens.leader().expect("a leader");
        ens.kill9(leader);
        // Acknowledged writes keep coming once a new leader is up.
        let mut acked = Vec::new();
        for n in 0..20 {
            let path = format!("/app/after-{n}");
            let p = path.clone();
            retried("create after failover", || {
                let client = &client;
                let p = p.clone();
                async move {
                    match client.create(&p, b"", &persistent()).await {
                        Err(zk::Error::NodeExists) => Ok(()), // a retried create that landed
                        other => other.map(|_| ()),
                    }
                }
            })
            .await;
            acked.push(path);
        }
        assert_eq!(
            client.state(),
            zk::SessionState::SyncConnected,
            "the session survived"
        );
        let event = within(async {
            retried("set", || client.set_data("/app", b"v1", None)).await;
            watcher.changed().await
        })
        .await;
        // The data watch fires once: on the set, or (if the client's connection to the leader
        // was cut) ZooKeeper's re-registration after reconnect delivers it then.
        assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
        assert!(
            client.check_stat("/app/eph").await.unwrap().is_some(),
            "ephemeral kept"
        );

        ens.start_member(leader);
        ens.wait_serving();
        for id in 1..=3 {
            let c = within(zk::Client::connect(&ens.addr(id))).await.unwrap();
            within(c.sync("/app")).await.unwrap();
            let (mut children, _) = c.get_children("/app").await.unwrap();
            children.sort();
            let mut want: Vec<String> = acked
                .iter()
                .map(|p| p.trim_start_matches("/app/").to_string())
                .chain((1..=3).map(|i| format!("from-{i}")))
                .chain(["eph".to_string()])
                .collect();
            want.sort();
            assert_eq!(children, want, "member {id}");
            assert_eq!(c.get_data("/app").await.unwrap().0, b"v1", "member {id}");
        }
    });
}
