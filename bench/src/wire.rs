//! The two frames every generator session writes: its connect request and its requests.

use ringkeeper_engine::proto::{ConnectRequest, Request, Writer};

/// A connect request frame for a new session of `timeout_ms`.
pub fn connect_request(timeout_ms: i32) -> Vec<u8> {
    let mut body = Vec::new();
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id: 0,
        passwd: bytes::Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    }
    .encode(&mut body);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Appends `req` as one request frame with `xid`.
pub fn encode_request(out: &mut Vec<u8>, xid: i32, req: &Request) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    {
        let mut w = Writer::new(out);
        w.int(xid).int(req.opcode());
        req.encode(&mut w);
    }
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}
