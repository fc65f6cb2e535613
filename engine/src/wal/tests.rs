use super::*;
use crate::proto::{opcode as op, Acl, ErrorCode};
use crate::txn::TxnOp;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn sample_ops() -> Vec<TxnOp> {
    let acl = Arc::new(vec![
        Acl::new(31, "digest", "u:hash"),
        Acl::new(1, "world", "anyone"),
    ]);
    let create = TxnOp::Create {
        path: "/a/n-0000000001".into(),
        data: Bytes::from_static(b"hello"),
        acl: acl.clone(),
        ephemeral_owner: 0x1000_0000_0000_0001,
        parent_cversion: 2,
        opcode: op::CREATE2,
    };
    vec![
        TxnOp::CreateSession { timeout_ms: 30_000 },
        TxnOp::CloseSession,
        create.clone(),
        TxnOp::Delete { path: "/a".into() },
        TxnOp::SetData {
            path: "/a".into(),
            data: Bytes::from(vec![7u8; 300]),
            version: 4,
        },
        TxnOp::SetAcl {
            path: "/a".into(),
            acl,
            aversion: 1,
        },
        TxnOp::Check { path: "/c".into() },
        TxnOp::Error(ErrorCode::NodeExists),
        TxnOp::Multi(vec![
            create,
            TxnOp::Error(ErrorCode::Ok),
            TxnOp::Error(ErrorCode::RuntimeInconsistency),
        ]),
    ]
}

fn txn(zxid: i64, op: TxnOp) -> Txn {
    Txn {
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        session_id: 0x1000_0000_0000_0001,
        cxid: zxid as i32,
        op,
    }
}

fn segment(txns: &[Txn], size: usize) -> Vec<u8> {
    let mut seg = header(txns.first().map_or(1, |t| t.zxid));
    for t in txns {
        encode_record(&mut seg, t);
    }
    assert!(seg.len() <= size);
    seg.resize(size, 0); // preallocated, zero-filled
    seg
}

fn many(n: i64) -> Vec<Txn> {
    let ops = sample_ops();
    (1..=n)
        .map(|z| txn(z, ops[(z as usize) % ops.len()].clone()))
        .collect()
}

#[test]
fn every_op_round_trips() {
    for (i, op) in sample_ops().into_iter().enumerate() {
        let t = txn(i as i64 + 1, op);
        let mut payload = Vec::new();
        codec::encode_txn(&mut payload, &t);
        assert_eq!(codec::decode_txn(t.zxid, &payload).unwrap(), t);
    }
}

#[test]
fn scan_after_skips_what_a_snapshot_holds_but_still_checks_it() {
    let txns = many(50);
    let mut seg = segment(&txns, 64 << 10);
    let whole = scan(&seg).unwrap();
    let s = scan_after(&seg, 30).unwrap();
    assert_eq!(s.txns, txns[30..].to_vec());
    assert_eq!((s.valid_end, s.tail), (whole.valid_end, Tail::Clean));
    seg[HEADER_BYTES + 20] ^= 1; // inside record 1, which the snapshot covers
    assert!(
        matches!(scan_after(&seg, 30), Err(WalError::Corrupt { offset, .. }) if offset == HEADER_BYTES),
        "a corrupt record is refused even where it would be skipped"
    );
}

#[test]
fn clean_segment_scans_whole() {
    let txns = many(50);
    let seg = segment(&txns, 64 << 10);
    let s = scan(&seg).unwrap();
    assert_eq!(
        (s.first_zxid, s.txns.clone(), s.tail),
        (1, txns, Tail::Clean)
    );
    let mut tail_write = seg[..s.valid_end].to_vec();
    encode_record(&mut tail_write, &txn(51, TxnOp::CloseSession));
    assert_eq!(
        scan(&tail_write).unwrap().txns.len(),
        51,
        "appends continue at valid_end"
    );
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let txns = many(20);
    let full = segment(&txns, 64 << 10);
    let end = scan(&full).unwrap().valid_end;
    let last_start = {
        let mut s = header(1);
        for t in &txns[..19] {
            encode_record(&mut s, t);
        }
        s.len()
    };
    // The last record's write got only halfway to disk.
    let mut torn = full.clone();
    let cut = last_start + (end - last_start) / 2;
    torn[cut..end].fill(0);
    let s = scan(&torn).unwrap();
    assert_eq!(s.txns, txns[..19].to_vec());
    assert_eq!(s.valid_end, last_start);
    // Dropped: the torn bytes up to the last nonzero one.
    let Tail::Torn { dropped } = s.tail else {
        panic!("{:?}", s.tail)
    };
    assert!(dropped > 0 && dropped <= cut - last_start, "{dropped}");
}

#[test]
fn corruption_before_the_tail_refuses_with_the_offset() {
    let txns = many(20);
    let mut seg = segment(&txns, 64 << 10);
    let mut offsets = vec![];
    let mut s = header(1);
    for t in &txns {
        offsets.push(s.len());
        encode_record(&mut s, t);
    }
    seg[offsets[7] + 20] ^= 0x40; // a bit flip inside record 8's payload
    assert_eq!(
        scan(&seg),
        Err(WalError::Corrupt {
            offset: offsets[7],
            reason: "length or CRC invalid"
        })
    );
    let mut seg2 = segment(&txns, 64 << 10);
    seg2[offsets[3]..offsets[3] + 4].copy_from_slice(&[0xff; 4]); // a broken length field
    assert_eq!(
        scan(&seg2),
        Err(WalError::Corrupt {
            offset: offsets[3],
            reason: "length or CRC invalid"
        })
    );
}

#[test]
fn bad_headers_are_refused() {
    let seg = segment(&many(3), 16 << 10);
    let mut bad = seg.clone();
    bad[0] = b'Z';
    assert_eq!(
        scan(&bad),
        Err(WalError::BadHeader {
            reason: "wrong magic"
        })
    );
    let mut bad = seg.clone();
    bad[17] ^= 1;
    assert_eq!(
        scan(&bad),
        Err(WalError::BadHeader {
            reason: "header CRC mismatch"
        })
    );
    assert!(scan(&seg[..100]).is_err());
}

/// A disk that keeps only fdatasync'd bytes across a crash, and may tear the last unsynced
/// write: after any crash, recovery yields every acknowledged (synced) txn, in order, plus at most
/// a prefix of the unacknowledged ones, never a half txn and never an error.
#[test]
fn simulated_crashes_lose_only_unacknowledged_txns() {
    let seed: u64 = std::env::var("WAL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let ops = sample_ops();
    for round in 0..300 {
        let size = 256 << 10;
        let mut durable = header(1);
        durable.resize(size, 0);
        let mut end = HEADER_BYTES;
        let mut acked: Vec<Txn> = Vec::new();
        let mut pending: Vec<Txn> = Vec::new();
        let mut zxid = 0;
        let batches = rng.gen_range(1..12);
        for b in 0..batches {
            let mut batch = Vec::new();
            let mut records = Vec::new();
            for _ in 0..rng.gen_range(1..6) {
                zxid += 1;
                let t = txn(zxid, ops[rng.gen_range(0..ops.len())].clone());
                encode_record(&mut records, &t);
                batch.push(t);
            }
            if end + records.len() > size {
                break;
            }
            let last = b == batches - 1;
            if last && rng.gen_bool(0.6) {
                // Crash during this batch's write: only part of it may reach the disk.
                let kept = rng.gen_range(0..records.len());
                durable[end..end + kept].copy_from_slice(&records[..kept]);
                if rng.gen_bool(0.3) && kept < records.len() {
                    // A torn sector: garbage where the rest of the write was going.
                    for byte in &mut durable[end + kept..(end + kept + 8).min(end + records.len())]
                    {
                        *byte = rng.gen();
                    }
                }
                pending = batch;
                break;
            }
            // fdatasync succeeded: the batch is durable and acknowledged.
            durable[end..end + records.len()].copy_from_slice(&records);
            end += records.len();
            acked.extend(batch);
        }
        let s = scan(&durable).unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
        assert!(
            s.txns.len() >= acked.len(),
            "seed {seed} round {round}: lost an acknowledged txn"
        );
        assert_eq!(
            s.txns[..acked.len()],
            acked[..],
            "seed {seed} round {round}"
        );
        let extra = &s.txns[acked.len()..];
        assert!(
            extra.len() <= pending.len() && extra == &pending[..extra.len()],
            "seed {seed} round {round}"
        );
    }
}
