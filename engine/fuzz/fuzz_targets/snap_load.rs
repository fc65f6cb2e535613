//! Arbitrary node-frame archives, checksummed so they reach rkyv's validation and the tree
//! rebuilding: the snapshot loader must return an error or a well-formed tree, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringkeeper_engine::fuzzing::load_snapshot(data);
});
