//! Entry points shared by the fuzz targets (`engine/fuzz`) and the seeded decoder test below, so
//! CI exercises the same path on every run without a fuzzer.

use crate::proto::{frame, ConnectRequest, Reader, Request};

/// Decodes a byte stream as a client connection would. Returns how many frames decoded cleanly.
pub fn decode_stream(mut data: &[u8], frame_bytes_max: usize) -> usize {
    let mut first = true;
    let mut ok = 0;
    loop {
        let (start, end) = match frame::next_frame(data, frame_bytes_max) {
            Ok(Some(range)) => range,
            Ok(None) | Err(_) => return ok,
        };
        let payload = &data[start..end];
        if first {
            first = false;
            if ConnectRequest::decode(payload).is_ok() {
                ok += 1;
            }
        } else {
            let mut r = Reader::new(payload);
            if let (Ok(_xid), Ok(opcode)) = (r.int("xid"), r.int("type")) {
                if let Ok(req) = Request::decode(opcode, &payload[r.position()..]) {
                    let _ = req.is_write();
                    ok += 1;
                }
            }
        }
        data = &data[end..];
    }
}

/// Loads a snapshot whose node frame is `data` after a 4-byte node count (checksums made valid,
/// so the fuzzer reaches archive validation and tree rebuilding). Must never panic; a tree it
/// accepts must hold up its invariants.
pub fn load_snapshot(data: &[u8]) -> bool {
    let Some((count, payload)) = data.split_first_chunk::<4>() else {
        return false;
    };
    let file = crate::snap::file_with_node_payload(u32::from_le_bytes(*count) as u64, payload);
    match crate::snap::load(&bytes::Bytes::from(file)) {
        Ok(loaded) => {
            loaded.tree.check_invariants();
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{encode_acls, opcode as op, Acl, Writer};
    use rand::{Rng, SeedableRng};

    fn frame(out: &mut Vec<u8>, payload: &[u8]) {
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// A valid stream, then random mutations of it: the decoder must never panic.
    #[test]
    fn mutated_streams_never_panic() {
        let mut valid = Vec::new();
        let mut connect = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30000,
            session_id: 0,
            passwd: bytes::Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        }
        .encode(&mut connect);
        frame(&mut valid, &connect);
        let mut create = Vec::new();
        let mut w = Writer::new(&mut create);
        w.int(1)
            .int(op::MULTI)
            .int(op::CREATE)
            .boolean(false)
            .int(-1)
            .ustring("/a")
            .buffer(b"d");
        encode_acls(&mut w, &Acl::open_unsafe());
        w.int(0).int(-1).boolean(true).int(-1);
        frame(&mut valid, &create);
        assert_eq!(decode_stream(&valid, 1 << 16), 2);
        let seed: u64 = std::env::var("DECODE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        for _ in 0..20_000 {
            let mut m = valid.clone();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..m.len());
                m[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                m.truncate(rng.gen_range(0..m.len()));
            }
            decode_stream(&m, 1 << 16);
        }
    }

    /// Random mutations of a valid node frame, checksummed again: the snapshot loader must
    /// return an error or a well-formed tree, never panic.
    #[test]
    fn mutated_snapshot_archives_never_panic() {
        let mut tree = crate::tree::DataTree::new();
        let open = std::sync::Arc::new(Acl::open_unsafe());
        for (i, path) in ["/a", "/a/b", "/c"].iter().enumerate() {
            let txn = crate::txn::Txn {
                zxid: i as i64 + 1,
                time_ms: 1,
                session_id: 0x77,
                cxid: 1,
                op: crate::txn::TxnOp::Create {
                    path: path.to_string(),
                    data: Some(bytes::Bytes::from_static(b"data")),
                    acl: open.clone(),
                    ephemeral_owner: if *path == "/c" { 0x77 } else { 0 },
                    parent_cversion: 1,
                    opcode: op::CREATE,
                },
            };
            tree.apply(&txn, &mut Vec::new());
        }
        let payload = crate::snap::first_node_payload(&tree);
        let mut valid = (tree.node_count() as u32).to_le_bytes().to_vec();
        valid.extend_from_slice(&payload);
        assert!(load_snapshot(&valid), "the unmutated snapshot loads");
        let seed: u64 = std::env::var("SNAP_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut m = valid.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..m.len());
                m[i] = rng.gen();
            }
            if load_snapshot(&m) {
                accepted += 1;
            }
        }
        assert!(
            accepted < 20_000,
            "seed {seed}: mutations must be caught sometimes"
        );
    }
}
