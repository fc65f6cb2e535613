use super::*;
use crate::proto::opcode as op;
use crate::txn::{NodeKind, Txn, TxnOp, CONTAINER_OWNER};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Applies txns to a tree, one zxid each.
struct Builder {
    tree: DataTree,
    zxid: i64,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            tree: DataTree::new(),
            zxid: 0,
        }
    }

    fn apply(&mut self, op: TxnOp) {
        self.zxid += 1;
        let txn = Txn {
            zxid: self.zxid,
            time_ms: 1_000 + self.zxid,
            session_id: 0x55,
            cxid: self.zxid as i32,
            op,
        };
        self.tree.apply(&txn, &mut Vec::new());
    }

    fn create(&mut self, path: &str, data: &[u8], acl: &Arc<Vec<Acl>>, owner: i64) {
        let parent = self.tree.get(path::parent(path)).expect("parent").cversion;
        self.apply(TxnOp::Create {
            path: path.to_string(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: acl.clone(),
            ephemeral_owner: owner,
            parent_cversion: parent + 1,
            opcode: op::CREATE,
        });
    }
}

fn assert_same(a: &DataTree, b: &DataTree) {
    assert_eq!(a.last_zxid(), b.last_zxid());
    assert_eq!(a.node_count(), b.node_count());
    for (p, n) in a.nodes() {
        let m = b.get(p).unwrap_or_else(|| panic!("{p} missing after load"));
        assert_eq!(n.data, m.data, "{p} data");
        assert_eq!(n.acl, m.acl, "{p} acl");
        assert_eq!(n.stat(), m.stat(), "{p} stat");
        assert_eq!(n.cversion, m.cversion, "{p} stored cversion");
        assert_eq!(n.ephemeral_owner, m.ephemeral_owner, "{p} owner");
        assert_eq!(n.children, m.children, "{p} children");
    }
    assert_eq!(a.ephemeral_counts(), b.ephemeral_counts());
    assert_eq!(
        a.containers().collect::<Vec<_>>(),
        b.containers().collect::<Vec<_>>()
    );
    assert_eq!(
        a.ttl_nodes().collect::<Vec<_>>(),
        b.ttl_nodes().collect::<Vec<_>>()
    );
}

/// What format version 1's golden file (`testdata/sample-v1.snap`, written by the version 1
/// encoder) holds.
fn sample_tree_v1() -> (DataTree, Vec<SnapSession>) {
    let open = Arc::new(Acl::open_unsafe());
    let digest = Arc::new(vec![Acl {
        perms: 31,
        id: Id::new("digest", "u:hash="),
    }]);
    let mut b = Builder::new();
    b.create("/app", b"root data", &open, 0);
    b.create("/app/locks", b"", &open, CONTAINER_OWNER);
    b.create("/app/locks/l-0000000000", b"me", &open, 0x77);
    b.create("/app/ttl", b"t", &open, NodeKind::ttl_owner(5_000));
    b.create("/secret", &[0u8, 1, 2, 255], &digest, 0);
    for i in 0..40 {
        b.create(
            &format!("/app/n{i:03}"),
            format!("v{i}").as_bytes(),
            &open,
            0,
        );
    }
    b.apply(TxnOp::SetData {
        path: "/app/n007".into(),
        data: Some(Bytes::from_static(b"changed")),
        version: 1,
    });
    b.apply(TxnOp::SetAcl {
        path: "/app/n008".into(),
        acl: digest.clone(),
        aversion: 1,
    });
    b.apply(TxnOp::Delete {
        path: "/app/n009".into(),
    });
    let sessions = vec![
        SnapSession {
            id: 0x77,
            timeout_ms: 30_000,
        },
        SnapSession {
            id: 0x78,
            timeout_ms: 4_000,
        },
    ];
    b.tree.check_invariants();
    (b.tree, sessions)
}

/// The sample tree plus null data: a node created with null data, and one set to null.
fn sample_tree() -> (DataTree, Vec<SnapSession>) {
    let (tree, sessions) = sample_tree_v1();
    let mut b = Builder {
        zxid: tree.last_zxid(),
        tree,
    };
    let open = Arc::new(Acl::open_unsafe());
    let parent = b.tree.get("/app").expect("/app").cversion;
    b.apply(TxnOp::Create {
        path: "/app/null".into(),
        data: None,
        acl: open,
        ephemeral_owner: 0,
        parent_cversion: parent + 1,
        opcode: op::CREATE,
    });
    b.apply(TxnOp::SetData {
        path: "/app/n010".into(),
        data: None,
        version: 1,
    });
    b.tree.check_invariants();
    (b.tree, sessions)
}

#[test]
fn a_snapshot_round_trips_every_node_field_index_and_session() {
    let (tree, sessions) = sample_tree();
    let bytes = Bytes::from(encode_to_vec(&tree, &sessions));
    let loaded = load(&bytes).expect("valid snapshot");
    assert_same(&tree, &loaded.tree);
    assert_eq!(loaded.sessions, sessions);
    assert_eq!(loaded.last_zxid, tree.last_zxid());
    loaded.tree.check_invariants();
}

#[test]
fn null_data_survives_a_snapshot_apart_from_empty_data() {
    let (tree, sessions) = sample_tree();
    let loaded = load(&Bytes::from(encode_to_vec(&tree, &sessions))).unwrap();
    let data = |p: &str| loaded.tree.get(p).unwrap().data.clone();
    assert_eq!(data("/app/null"), None);
    assert_eq!(data("/app/n010"), None);
    assert_eq!(data("/app/locks").as_deref(), Some(&b""[..]));
    assert_eq!(loaded.tree.get("/app/null").unwrap().stat().data_length, 0);
    assert_eq!(
        loaded.tree.approximate_data_size(),
        tree.approximate_data_size()
    );
}

#[test]
fn a_version_1_file_written_by_the_version_1_encoder_still_loads() {
    // Copied: archives are read in place and need the alignment a heap buffer gives.
    let golden = Bytes::from(include_bytes!("testdata/sample-v1.snap").to_vec());
    assert_eq!(&golden[..8], MAGIC_V1);
    let (tree, sessions) = sample_tree_v1();
    let loaded = load(&golden).unwrap();
    assert_same(&tree, &loaded.tree);
    assert_eq!(loaded.sessions, sessions);
    assert!(loaded.tree.nodes().all(|(_, n)| n.data.is_some()));
}

#[test]
fn node_data_borrows_the_file_instead_of_copying_it() {
    let (tree, sessions) = sample_tree();
    let bytes = Bytes::from(encode_to_vec(&tree, &sessions));
    let loaded = load(&bytes).unwrap();
    let data = loaded.tree.get("/app/n007").unwrap().data.as_ref().unwrap();
    assert_eq!(&data[..], b"changed");
    let file = bytes.as_ptr_range();
    assert!(
        file.contains(&data.as_ptr()),
        "node data points into the snapshot's bytes"
    );
}

#[test]
fn a_tree_bigger_than_one_chunk_round_trips_and_acls_are_shared() {
    let open = Arc::new(Acl::open_unsafe());
    let mut b = Builder::new();
    // Wide and deep: 3 levels, 3 * 30 * 100 leaves, several chunks.
    for i in 0..3 {
        b.create(&format!("/w{i}"), b"", &open, 0);
        for j in 0..30 {
            b.create(&format!("/w{i}/m{j}"), b"x", &open, 0);
            for k in 0..100 {
                // Each create carries its own Arc, as decoded requests do.
                let acl = Arc::new(Acl::open_unsafe());
                b.create(&format!("/w{i}/m{j}/leaf{k}"), &[k as u8; 100], &acl, 0);
            }
        }
    }
    let bytes = Bytes::from(encode_to_vec(&b.tree, &[]));
    let header = Header::decode(&bytes).unwrap();
    assert!(header.chunk_count >= 2, "{header:?}");
    let loaded = load(&bytes).unwrap();
    assert_same(&b.tree, &loaded.tree);
    let a = &loaded.tree.get("/w1/m2/leaf3").unwrap().acl;
    let c = &loaded.tree.get("/w2/m9/leaf99").unwrap().acl;
    assert!(Arc::ptr_eq(a, c), "equal ACLs load as one shared list");
}

#[test]
fn large_nodes_close_a_chunk_by_bytes_long_before_its_node_count() {
    let open = Arc::new(Acl::open_unsafe());
    let mut b = Builder::new();
    // 200 nodes of 1 MiB: 200 MiB, which one 8192-node chunk would hold whole.
    let big = vec![7u8; 1 << 20];
    for i in 0..200 {
        b.create(&format!("/big{i}"), &big, &open, 0);
    }
    let bytes = Bytes::from(encode_to_vec(&b.tree, &[]));
    let header = Header::decode(&bytes).unwrap();
    assert!(header.chunk_count >= 3, "{header:?}");
    let loaded = load(&bytes).unwrap();
    assert_same(&b.tree, &loaded.tree);
}

#[test]
fn the_empty_tree_round_trips() {
    let tree = DataTree::new();
    let loaded = load(&Bytes::from(encode_to_vec(&tree, &[]))).unwrap();
    assert_same(&tree, &loaded.tree);
}

/// Bytes of the file that no checksum covers: frame padding. Changing them changes nothing loaded.
fn padding_ranges(file: &[u8]) -> Vec<std::ops::Range<usize>> {
    let header = Header::decode(file).unwrap();
    let mut out = Vec::new();
    let mut offset = HEADER_BYTES;
    while offset < header.file_bytes as usize {
        let len = u64::from_le_bytes(file[offset..offset + 8].try_into().unwrap()) as usize;
        let start = offset + FRAME_HEADER_BYTES + len;
        offset += FRAME_HEADER_BYTES + padded(len);
        out.push(start..offset);
    }
    out.push(28..32);
    out.push(48..60);
    out
}

#[test]
fn any_flipped_or_missing_byte_is_an_error_naming_an_offset_never_a_different_tree() {
    let (tree, sessions) = sample_tree();
    let good = encode_to_vec(&tree, &sessions);
    let padding = padding_ranges(&good);
    let seed: u64 = std::env::var("SNAP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut checked = 0;
    for pos in 0..good.len() {
        let mut bad = good.clone();
        bad[pos] ^= 1 << rng.gen_range(0..8);
        match load(&Bytes::from(bad)) {
            Err(e) => {
                assert!(e.offset <= good.len() as u64, "seed {seed}: {e}");
                checked += 1;
            }
            Ok(loaded) => {
                assert!(
                    padding.iter().any(|r| r.contains(&pos)),
                    "seed {seed}: flipped byte {pos} outside padding was accepted"
                );
                assert_same(&tree, &loaded.tree);
            }
        }
    }
    assert!(checked > good.len() / 2);
    for len in (0..good.len()).step_by(7) {
        let cut = Bytes::copy_from_slice(&good[..len]);
        assert!(load(&cut).is_err(), "a file cut at {len} loads");
    }
}
