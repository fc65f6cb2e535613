//! The independent Rust client (`zookeeper-client` crate) against the real server: CRUD, errors,
//! watches (one-shot and persistent), multi, ephemerals, auth, sync.

mod common;

use common::Server;
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
    tokio::time::timeout(std::time::Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[test]
fn crud_errors_and_stats() {
    let srv = Server::start("");
    rt().block_on(async {
        let client = zk::Client::connector()
            .with_session_timeout(std::time::Duration::from_secs(4))
            .connect(&srv.addr())
            .await
            .unwrap();
        let (stat, _) = client.create("/c", b"one", &persistent()).await.unwrap();
        assert_eq!(
            (stat.version, stat.data_length, stat.czxid),
            (0, 3, stat.mzxid)
        );
        assert!(matches!(
            client.create("/c", b"", &persistent()).await,
            Err(zk::Error::NodeExists)
        ));
        assert!(matches!(
            client.create("/none/c", b"", &persistent()).await,
            Err(zk::Error::NoNode)
        ));
        let stat = client.set_data("/c", b"two", Some(0)).await.unwrap();
        assert_eq!(stat.version, 1);
        assert!(matches!(
            client.set_data("/c", b"x", Some(0)).await,
            Err(zk::Error::BadVersion)
        ));
        let (data, stat) = client.get_data("/c").await.unwrap();
        assert_eq!((data.as_slice(), stat.version), (&b"two"[..], 1));
        client.create("/c/k", b"", &persistent()).await.unwrap();
        assert!(matches!(
            client.delete("/c", None).await,
            Err(zk::Error::NotEmpty)
        ));
        let (children, stat) = client.get_children("/c").await.unwrap();
        assert_eq!(
            (children, stat.num_children, stat.cversion),
            (vec!["k".to_string()], 1, 1)
        );
        assert_eq!(client.count_descendants_number("/c").await.unwrap(), 1);
        client.delete("/c/k", Some(0)).await.unwrap();
        client.delete("/c", None).await.unwrap();
        assert!(client.check_stat("/c").await.unwrap().is_none());
        client.sync("/").await.unwrap();
    });
}

#[test]
fn sequential_and_ephemeral_nodes() {
    let srv = Server::start("");
    rt().block_on(async {
        let a = zk::Client::connect(&srv.addr()).await.unwrap();
        a.create("/q", b"", &persistent()).await.unwrap();
        let seq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, s1) = a.create("/q/n-", b"", &seq).await.unwrap();
        let (_, s2) = a.create("/q/n-", b"", &seq).await.unwrap();
        assert_eq!((s1.into_i64(), s2.into_i64()), (0, 1));
        let mut ephemerals = a.list_ephemerals("/").await.unwrap();
        ephemerals.sort();
        assert_eq!(
            ephemerals,
            vec!["/q/n-0000000000".to_string(), "/q/n-0000000001".to_string()]
        );
        let b = zk::Client::connect(&srv.addr()).await.unwrap();
        let watcher = b.get_and_watch_children("/q").await.unwrap().2;
        drop(a); // closes the session
        let event = within(watcher.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeChildrenChanged);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !b.list_children("/q").await.unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ephemerals outlived their session"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn one_shot_and_persistent_watches() {
    let srv = Server::start("");
    rt().block_on(async {
        let client = zk::Client::connect(&srv.addr()).await.unwrap();
        let (_, exists_watcher) = client.check_and_watch_stat("/w").await.unwrap();
        let mut recursive = client
            .watch("/w", zk::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        client.create("/w", b"", &persistent()).await.unwrap();
        assert_eq!(
            within(exists_watcher.changed()).await.event_type,
            zk::EventType::NodeCreated
        );
        assert_eq!(
            within(recursive.changed()).await.event_type,
            zk::EventType::NodeCreated
        );
        client.create("/w/x", b"", &persistent()).await.unwrap();
        let e = within(recursive.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (zk::EventType::NodeCreated, "/w/x")
        );
        let (_, _, data_watcher) = client.get_and_watch_data("/w/x").await.unwrap();
        client.set_data("/w/x", b"v", None).await.unwrap();
        assert_eq!(
            within(data_watcher.changed()).await.event_type,
            zk::EventType::NodeDataChanged
        );
        let e = within(recursive.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (zk::EventType::NodeDataChanged, "/w/x")
        );
    });
}

#[test]
fn multi_is_all_or_nothing() {
    let srv = Server::start("");
    rt().block_on(async {
        let client = zk::Client::connect(&srv.addr()).await.unwrap();
        let mut w = client.new_multi_writer();
        w.add_create("/m1", b"", &persistent()).unwrap();
        w.add_check_version("/m1", 3).unwrap();
        let err = w.commit().await.unwrap_err();
        assert!(
            matches!(
                err,
                zk::MultiWriteError::OperationFailed {
                    index: 1,
                    source: zk::Error::BadVersion
                }
            ),
            "{err:?}"
        );
        assert!(client.check_stat("/m1").await.unwrap().is_none());
        let mut w = client.new_multi_writer();
        w.add_create("/m1", b"", &persistent()).unwrap();
        w.add_set_data("/m1", b"d", Some(0)).unwrap();
        let results = w.commit().await.unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(client.get_data("/m1").await.unwrap().0, b"d".to_vec());
    });
}

#[test]
fn digest_auth_guards_nodes() {
    let srv = Server::start("");
    rt().block_on(async {
        let owner = zk::Client::connector()
            .with_auth("digest", b"u:p")
            .connect(&srv.addr())
            .await
            .unwrap();
        owner
            .create(
                "/secret",
                b"s",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
            )
            .await
            .unwrap();
        let stranger = zk::Client::connect(&srv.addr()).await.unwrap();
        assert!(matches!(
            stranger.get_data("/secret").await,
            Err(zk::Error::NoAuth)
        ));
        assert_eq!(owner.get_data("/secret").await.unwrap().0, b"s".to_vec());
        let users = owner.list_auth_users().await.unwrap();
        assert!(
            users
                .iter()
                .any(|u| u.scheme() == "digest" && u.user() == "u"),
            "{users:?}"
        );
    });
}
