//! Feeds arbitrary bytes to the client-facing decoders as a connection would: frames cut from
//! a stream, the first decoded as a connect request, the rest as request header + body. Nothing
//! may panic; every failure must be a typed error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkeeper_engine::fuzzing::decode_stream;

fuzz_target!(|data: &[u8]| {
    decode_stream(data, 1 << 16);
});
