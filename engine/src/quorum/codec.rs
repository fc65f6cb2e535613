//! Encoders and decoders for the quorum and election ports (layouts in `FORMAT.md`).
//!
//! Decoders never trust a length: each is checked against what remains and against a maximum
//! before anything is allocated, and bad bytes are a [`DecodeError`], never a panic.

use crate::proto::{DecodeError, Id, Reader, Writer};
use bytes::Bytes;

/// The quorum packet types (ZooKeeper's `Leader` constants).
pub mod packet {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const REVALIDATE: i32 = 6;
    pub const SYNC: i32 = 7;
    pub const INFORM: i32 = 8;
    pub const COMMITANDACTIVATE: i32 = 9;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const OBSERVERINFO: i32 = 16;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    pub const INFORMANDACTIVATE: i32 = 19;
    /// Ringkeeper's own (ZooKeeper's types run 1-19), sent only to a learner that asked for it
    /// (`zab::wire::LEADER_SYNCED_MARK`): the leader's log is durable through the zxid.
    pub const RK_LEADER_SYNCED: i32 = 0x524B_0001;
}

/// The protocol version a leader sends in LEADERINFO and a learner in its LearnerInfo
/// (ZooKeeper's `0x10000`: learners that send it take part in the new-epoch handshake).
pub const LEARNER_PROTOCOL_VERSION: i32 = 0x10000;

/// One record on the quorum port: `type`, `zxid`, `data` (null or bytes), `authinfo` (null or a
/// vector of ids). Java writes null for `data` and `authinfo` where it has none, and reads null
/// and empty alike; they are kept apart here so that bytes round-trip exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub kind: i32,
    pub zxid: i64,
    pub data: Option<Bytes>,
    pub authinfo: Option<Vec<Id>>,
}

/// Bytes of the fixed fields before `data`'s bytes: type, zxid, data's length.
const PACKET_HEAD_BYTES: usize = 4 + 8 + 4;

impl QuorumPacket {
    pub fn new(kind: i32, zxid: i64, data: Option<Bytes>) -> QuorumPacket {
        QuorumPacket {
            kind,
            zxid,
            data,
            authinfo: None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.int(self.kind)
            .long(self.zxid)
            .buffer_opt(self.data.as_deref());
        match &self.authinfo {
            None => {
                w.null();
            }
            Some(ids) => {
                w.vector(ids, |w, id| {
                    w.ustring(&id.scheme).ustring(&id.id);
                });
            }
        }
    }

    /// Decodes one whole packet, exactly `bytes` (find its end with [`packet_len`]).
    pub fn decode(bytes: &[u8]) -> Result<QuorumPacket, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.int("type")?;
        let zxid = r.long("zxid")?;
        let data = r.buffer_opt("data")?;
        let count = r.int("authinfo")?;
        let authinfo = match count {
            -1 => None,
            n if n < 0 || (n as usize).saturating_mul(8) > r.remaining() => {
                return Err(DecodeError::BadLength {
                    field: "authinfo",
                    len: n,
                })
            }
            n => {
                let mut ids = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let scheme = r.ustring("scheme")?;
                    let id = r.ustring("id")?;
                    ids.push(Id { scheme, id });
                }
                Some(ids)
            }
        };
        r.expect_end("packet")?;
        Ok(QuorumPacket {
            kind,
            zxid,
            data,
            authinfo,
        })
    }
}

/// Reads a big-endian i32 at `at`, if `buf` holds it.
fn int_at(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes(b.try_into().expect("4 bytes")))
}

/// Where the first packet in `buf` ends: `Ok(Some(n))` when its `n` bytes are all there,
/// `Ok(None)` when more bytes are needed, an error for a length no packet of at most
/// `packet_bytes_max` bytes can have. Nothing is allocated and no length is trusted.
pub fn packet_len(buf: &[u8], packet_bytes_max: usize) -> Result<Option<usize>, DecodeError> {
    let mut at = PACKET_HEAD_BYTES;
    let Some(data_len) = int_at(buf, at - 4) else {
        return Ok(None);
    };
    at += checked_len("data", data_len, at, packet_bytes_max)?;
    let Some(count) = int_at(buf, at) else {
        return Ok(None);
    };
    at += 4;
    if count < -1 || count as i64 * 8 > packet_bytes_max as i64 {
        return Err(DecodeError::BadLength {
            field: "authinfo",
            len: count,
        });
    }
    for _ in 0..count.max(0) {
        for field in ["scheme", "id"] {
            let Some(len) = int_at(buf, at) else {
                return Ok(None);
            };
            at += 4;
            at += checked_len(field, len, at, packet_bytes_max)?;
        }
    }
    Ok((buf.len() >= at).then_some(at))
}

/// The bytes a length-prefixed field takes after its prefix (null is 0), if the packet stays
/// within `packet_bytes_max`.
fn checked_len(
    field: &'static str,
    len: i32,
    at: usize,
    packet_bytes_max: usize,
) -> Result<usize, DecodeError> {
    match len {
        -1 => Ok(0),
        n if n >= 0 && at + n as usize <= packet_bytes_max => Ok(n as usize),
        n => Err(DecodeError::BadLength { field, len: n }),
    }
}

/// What a learner tells the leader first (in FOLLOWERINFO or OBSERVERINFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub server_id: i64,
    pub protocol_version: i32,
    pub config_version: i64,
}

impl LearnerInfo {
    pub fn encode(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .long(self.server_id)
            .int(self.protocol_version)
            .long(self.config_version);
    }

    pub fn decode(bytes: &[u8]) -> Result<LearnerInfo, DecodeError> {
        let mut r = Reader::new(bytes);
        Ok(LearnerInfo {
            server_id: r.long("serverid")?,
            protocol_version: r.int("protocolVersion")?,
            config_version: r.long("configVersion")?,
        })
    }
}

/// A server's state as election notifications number it (`QuorumPeer.ServerState` ordinals).
pub mod state {
    pub const LOOKING: i32 = 0;
    pub const FOLLOWING: i32 = 1;
    pub const LEADING: i32 = 2;
    pub const OBSERVING: i32 = 3;
}

/// The notification version current ZooKeeper sends: it carries the sender's configuration.
pub const NOTIFICATION_VERSION: i32 = 2;

/// An election vote, as `FastLeaderElection` sends it on the election port (the message body,
/// after the connection's 4-byte length prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: i32,
    /// The proposed leader's server id.
    pub leader: i64,
    /// The proposed leader's last zxid.
    pub zxid: i64,
    pub election_epoch: i64,
    /// The proposed leader's epoch.
    pub peer_epoch: i64,
    /// 0 for the two old forms (28 and 40 bytes), else the version the sender wrote.
    pub version: i32,
    /// The sender's configuration (`server.N=...` lines and `version=`), from version 2 on.
    pub config: Option<Bytes>,
}

impl Notification {
    /// The current form (44 bytes plus the configuration) when there is a configuration, else
    /// the 40-byte form older servers read (ending in version 1, which they skip).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44 + self.config.as_ref().map_or(0, |c| c.len()));
        let mut w = Writer::new(&mut out);
        w.int(self.state)
            .long(self.leader)
            .long(self.zxid)
            .long(self.election_epoch)
            .long(self.peer_epoch);
        match &self.config {
            Some(config) => {
                w.int(self.version).buffer(config);
            }
            None => {
                w.int(1);
            }
        }
        out
    }

    /// Decodes a message body, in any of the forms ZooKeeper reads: 28 bytes (no peer epoch: it
    /// is the zxid's epoch), 40 bytes (no version), or 40 and more (a version, and from version
    /// 2 on a configuration).
    pub fn decode(msg: &[u8]) -> Result<Notification, DecodeError> {
        if msg.len() < 28 {
            return Err(DecodeError::Truncated {
                field: "notification",
            });
        }
        let mut r = Reader::new(msg);
        let state = r.int("state")?;
        let leader = r.long("leader")?;
        let zxid = r.long("zxid")?;
        let election_epoch = r.long("electionEpoch")?;
        let (peer_epoch, version) = match msg.len() {
            28 => (zxid >> 32, 0),
            40 => (r.long("peerEpoch")?, 0),
            _ => (r.long("peerEpoch")?, r.int("version")?),
        };
        let config = if version > 1 {
            // ZooKeeper refuses a negative length here, null included.
            let config = r.buffer_opt("config")?.ok_or(DecodeError::BadLength {
                field: "config",
                len: -1,
            })?;
            Some(config)
        } else {
            None
        };
        Ok(Notification {
            state,
            leader,
            zxid,
            election_epoch,
            peer_epoch,
            version,
            config,
        })
    }
}

/// Protocol versions of the election port's opening (`QuorumCnxManager`): V1 sends one
/// `host:port`, V2 several joined by `|`.
pub const ELECTION_PROTOCOL_V1: i64 = -65536;
pub const ELECTION_PROTOCOL_V2: i64 = -65535;

/// How a server opens a connection to another's election port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionOpening {
    /// Servers before 3.5 send their id alone.
    Old { sid: i64 },
    /// `addresses`: the sender's election addresses, `host:port` joined by `|`.
    Current {
        protocol_version: i64,
        sid: i64,
        addresses: String,
    },
}

impl ElectionOpening {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            ElectionOpening::Old { sid } => {
                w.long(*sid);
            }
            ElectionOpening::Current {
                protocol_version,
                sid,
                addresses,
            } => {
                w.long(*protocol_version)
                    .long(*sid)
                    .buffer(addresses.as_bytes());
            }
        }
    }

    /// The opening at the start of `buf` and its length; `Ok(None)` when more bytes are needed.
    /// An unknown protocol version, or an address list empty or over `addresses_bytes_max`, is
    /// an error (ZooKeeper drops such a connection).
    pub fn decode(
        buf: &[u8],
        addresses_bytes_max: usize,
    ) -> Result<Option<(ElectionOpening, usize)>, DecodeError> {
        let Some(first) = buf.get(..8) else {
            return Ok(None);
        };
        let version = i64::from_be_bytes(first.try_into().expect("8 bytes"));
        if version >= 0 {
            return Ok(Some((ElectionOpening::Old { sid: version }, 8)));
        }
        if version != ELECTION_PROTOCOL_V1 && version != ELECTION_PROTOCOL_V2 {
            return Err(DecodeError::BadValue {
                field: "protocolVersion",
                value: version,
            });
        }
        let Some(len) = int_at(buf, 16) else {
            return Ok(None);
        };
        if len <= 0 || len as usize > addresses_bytes_max {
            return Err(DecodeError::BadLength {
                field: "addresses",
                len,
            });
        }
        let end = 20 + len as usize;
        let Some(addresses) = buf.get(20..end) else {
            return Ok(None);
        };
        let sid = i64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
        let opening = ElectionOpening::Current {
            protocol_version: version,
            sid,
            addresses: String::from_utf8_lossy(addresses).into_owned(),
        };
        Ok(Some((opening, end)))
    }
}

#[cfg(test)]
mod tests;
