//! Arbitrary bytes after a valid segment header: the recovery scan must return a scan or a typed
//! error, never panic, and a successful scan's txns must re-encode to the bytes it accepted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkeeper_engine::wal;

fuzz_target!(|data: &[u8]| {
    let mut seg = wal::header(1);
    seg.extend_from_slice(data);
    if let Ok(scan) = wal::scan(&seg) {
        let mut again = wal::header(1);
        for (txn, batch) in scan.txns.iter().zip(&scan.batches) {
            wal::encode_record(&mut again, txn, *batch);
        }
        assert_eq!(&again[..], &seg[..scan.valid_end]);
    }
});
