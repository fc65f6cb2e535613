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
}
