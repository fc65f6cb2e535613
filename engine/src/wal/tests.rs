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
        data: Some(Bytes::from_static(b"hello")),
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
            data: Some(Bytes::from(vec![7u8; 300])),
            version: 4,
        },
        TxnOp::SetAcl {
            path: "/a".into(),
            acl,
            aversion: 1,
        },
        TxnOp::SetData {
            path: "/a".into(),
            data: None,
            version: 5,
        },
        TxnOp::SetData {
            path: "/a".into(),
            data: Some(Bytes::new()),
            version: 6,
        },
        TxnOp::Check {
            path: "/c".into(),
            version: 4,
        },
        TxnOp::Error(ErrorCode::NodeExists),
        TxnOp::Multi(vec![
            TxnOp::Create {
                path: "/a/null".into(),
                data: None,
                acl: Arc::new(Acl::open_unsafe()),
                ephemeral_owner: 0,
                parent_cversion: 3,
                opcode: op::CREATE,
            },
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
        encode_record(&mut seg, t, t.zxid);
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
    encode_record(&mut tail_write, &txn(51, TxnOp::CloseSession), 51);
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
            encode_record(&mut s, t, t.zxid);
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
        encode_record(&mut s, t, t.zxid);
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

/// Writes `batches` as the log writer does, one `encode_batch` each; returns the segment and the
/// start offset of each batch.
fn batched_segment(batches: &[Vec<Txn>], size: usize) -> (Vec<u8>, Vec<usize>) {
    let mut seg = header(batches[0][0].zxid);
    let mut starts = Vec::new();
    for b in batches {
        starts.push(seg.len());
        encode_batch(&mut seg, b);
    }
    seg.resize(size, 0);
    (seg, starts)
}

fn batches_of(sizes: &[usize]) -> Vec<Vec<Txn>> {
    let ops = sample_ops();
    let mut zxid = 0;
    sizes
        .iter()
        .map(|n| {
            (0..*n)
                .map(|_| {
                    zxid += 1;
                    txn(zxid, ops[zxid as usize % ops.len()].clone())
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_hole_inside_the_last_batch_is_a_torn_tail_even_with_its_records_after_it() {
    let batches = batches_of(&[3, 4, 6]);
    let (mut seg, starts) = batched_segment(&batches, 64 << 10);
    // The disk kept the last batch's first and last records but not the middle (blocks persisted
    // out of order before a crash).
    let hole = starts[2] + 300;
    seg[hole..hole + 400].fill(0);
    let s = scan(&seg).unwrap();
    assert!(matches!(s.tail, Tail::Torn { .. }), "{:?}", s.tail);
    let kept = s.txns.len();
    assert!((7..13).contains(&kept), "{kept}");
    let all: Vec<Txn> = batches.concat();
    assert_eq!(
        s.txns,
        all[..kept].to_vec(),
        "a prefix, nothing after the hole"
    );
}

#[test]
fn a_hole_followed_by_a_later_batch_is_corruption() {
    let batches = batches_of(&[3, 4, 6]);
    let (mut seg, starts) = batched_segment(&batches, 64 << 10);
    // Bytes of the second batch are gone, yet the third batch was written after the second's
    // fdatasync: synced data was lost.
    seg[starts[1] + 10..starts[2] - 5].fill(0);
    assert!(
        matches!(scan(&seg), Err(WalError::Corrupt { offset, .. }) if offset == starts[1]),
        "{:?}",
        scan(&seg).map(|s| s.tail)
    );
    // The end of one batch lost together with the start of the next: the next batch's remaining
    // records do not fit after the last good one.
    let (mut seg, starts) = batched_segment(&batches, 64 << 10);
    seg[starts[2] - 40..starts[2] + 40].fill(0);
    assert!(matches!(scan(&seg), Err(WalError::Corrupt { .. })));
}

/// A disk that keeps only fdatasync'd bytes. The batch being written when the process crashed,
/// or whose fdatasync failed (the writer stops at the first failed sync, so nothing comes after
/// it), reaches the disk as any subset of its 512-byte sectors, one of which may hold garbage.
/// After any of these, recovery yields every acknowledged txn, in order, plus at most a prefix
/// of the unacknowledged batch: never a half txn, never an error.
#[test]
fn simulated_crashes_and_failed_syncs_lose_only_unacknowledged_txns() {
    const SECTOR: usize = 512;
    let seed: u64 = std::env::var("WAL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let ops = sample_ops();
    for round in 0..500 {
        let size = 256 << 10;
        let mut durable = header(1);
        durable.resize(size, 0);
        let mut end = HEADER_BYTES;
        let mut acked: Vec<Txn> = Vec::new();
        let mut pending: Vec<Txn> = Vec::new();
        let mut zxid = 0;
        let batches = rng.gen_range(1..12);
        let failed_sync = rng.gen_range(0..batches + 3); // may be past the end: no failure
        for b in 0..batches {
            let batch: Vec<Txn> = (0..rng.gen_range(1..8))
                .map(|_| {
                    zxid += 1;
                    txn(zxid, ops[rng.gen_range(0..ops.len())].clone())
                })
                .collect();
            let mut records = Vec::new();
            encode_batch(&mut records, &batch);
            let len = records.len();
            if end + len > size {
                break;
            }
            if b == failed_sync || (b == batches - 1 && rng.gen_bool(0.6)) {
                // Any subset of the batch's sectors made it, in any order.
                let mut sector = end / SECTOR * SECTOR;
                while sector < end + len {
                    let (from, to) = (sector.max(end), (sector + SECTOR).min(end + len));
                    if rng.gen_bool(0.5) {
                        durable[from..to].copy_from_slice(&records[from - end..to - end]);
                    }
                    sector += SECTOR;
                }
                if rng.gen_bool(0.3) {
                    // A torn sector: garbage where part of the write was going.
                    let at = rng.gen_range(end..end + len);
                    for byte in &mut durable[at..(at + 16).min(end + len)] {
                        *byte = rng.gen();
                    }
                }
                pending = batch;
                break;
            }
            // fdatasync succeeded: the batch is durable and acknowledged.
            durable[end..end + len].copy_from_slice(&records);
            end += len;
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

#[test]
fn a_check_written_before_its_version_was_kept_still_reads() {
    // Tag 7 (a check with its path only), as format 2 logs wrote it before tag 10.
    let mut payload = Vec::new();
    payload.extend_from_slice(&5i64.to_be_bytes()); // time
    payload.extend_from_slice(&9i64.to_be_bytes()); // session
    payload.extend_from_slice(&1i32.to_be_bytes()); // cxid
    payload.push(9); // multi
    payload.extend_from_slice(&1i32.to_be_bytes());
    payload.push(7);
    payload.extend_from_slice(&2i32.to_be_bytes());
    payload.extend_from_slice(b"/c");
    let t = codec::decode_txn(3, &payload).expect("old check");
    assert_eq!(
        t.op,
        TxnOp::Multi(vec![TxnOp::Check {
            path: "/c".into(),
            version: -1
        }])
    );
}
