//! A minimal blocking ZooKeeper client over `std::net::TcpStream`.

use bytes::Bytes;
use ringkeeper_engine::proto::{
    opcode as op, ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Reader, Writer,
};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A reply or notification as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.body)
    }

    pub fn is_ok(&self) -> bool {
        self.err == ErrorCode::Ok.code()
    }
}

pub struct RawClient {
    stream: TcpStream,
    pub session_id: i64,
    pub passwd: Bytes,
    pub timeout_ms: i32,
    next_xid: i32,
}

fn bad(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl RawClient {
    /// Connects and opens a new session.
    pub fn connect(addr: &str, timeout_ms: i32) -> io::Result<RawClient> {
        Self::resume(addr, timeout_ms, 0, Bytes::from_static(&[0; 16]))
    }

    /// Connects and resumes `session_id` (0 opens a new one).
    pub fn resume(
        addr: &str,
        timeout_ms: i32,
        session_id: i64,
        passwd: Bytes,
    ) -> io::Result<RawClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut c = RawClient {
            stream,
            session_id: 0,
            passwd: Bytes::new(),
            timeout_ms: 0,
            next_xid: 1,
        };
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        }
        .encode(&mut body);
        c.send_frame(&body)?;
        let frame = c.read_frame()?;
        let resp = ConnectResponse::decode(&frame).map_err(bad)?;
        if resp.session_id == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "session expired or invalid",
            ));
        }
        c.session_id = resp.session_id;
        c.passwd = resp.passwd;
        c.timeout_ms = resp.timeout_ms;
        Ok(c)
    }

    /// Writes one frame (length prefix added).
    pub fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out)
    }

    /// Writes raw bytes, framing nothing (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if len < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "negative frame length",
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads the next reply or notification.
    pub fn read_reply(&mut self) -> io::Result<RawReply> {
        let frame = self.read_frame()?;
        let mut r = Reader::new(&frame);
        let xid = r.int("xid").map_err(bad)?;
        let zxid = r.long("zxid").map_err(bad)?;
        let err = r.int("err").map_err(bad)?;
        let body = frame[r.position()..].to_vec();
        Ok(RawReply {
            xid,
            zxid,
            err,
            body,
        })
    }

    /// Sends a request with the next xid; `body` writes the record after the header.
    pub fn send(
        &mut self,
        opcode: i32,
        body: impl FnOnce(&mut Writer<Vec<u8>>),
    ) -> io::Result<i32> {
        let xid = match opcode {
            op::PING => op::XID_PING,
            op::AUTH => op::XID_AUTH,
            op::SET_WATCHES | op::SET_WATCHES2 => op::XID_SET_WATCHES,
            _ => {
                self.next_xid += 1;
                self.next_xid
            }
        };
        let mut payload = Vec::new();
        {
            let mut w = Writer::new(&mut payload);
            w.int(xid).int(opcode);
            body(&mut w);
        }
        self.send_frame(&payload)?;
        Ok(xid)
    }

    /// Sends a request and returns its reply; notifications that arrive first are collected.
    pub fn call(
        &mut self,
        opcode: i32,
        body: impl FnOnce(&mut Writer<Vec<u8>>),
        events: &mut Vec<RawReply>,
    ) -> io::Result<RawReply> {
        let xid = self.send(opcode, body)?;
        loop {
            let reply = self.read_reply()?;
            if reply.xid == op::XID_NOTIFICATION {
                events.push(reply);
                continue;
            }
            if reply.xid != xid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("xid {} != {}", reply.xid, xid),
                ));
            }
            return Ok(reply);
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Sends a four-letter word and returns everything the server wrote before closing.
pub fn four_letter(addr: &str, word: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
