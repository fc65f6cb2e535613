//! Peer messages ([`Msg`]) on ZooKeeper's quorum wire format ([`QuorumPacket`]), filled as Java
//! ZooKeeper's `Leader`, `LearnerHandler` and `Learner` fill them:
//!
//! | message | type | zxid | data |
//! |---|---|---|---|
//! | LearnerInfo | FOLLOWERINFO or OBSERVERINFO | accepted epoch, counter 0 | `LearnerInfo` record, then [`OWN_SNAP_MARK`] and [`LEADER_SYNCED_MARK`] |
//! | LeaderInfo | LEADERINFO | new epoch, counter 0 | protocol version, 4 bytes, then [`OWN_SNAP_MARK`] |
//! | AckEpoch | ACKEPOCH | last zxid | current epoch (or -1), 4 bytes |
//! | Diff, Trunc, Commit, Ack | DIFF, TRUNC, COMMIT, ACK | the zxid | none |
//! | Snap | SNAP | the snapshot's zxid | none: the snapshot follows on the stream |
//! | Proposal, Inform | PROPOSAL, INFORM | the txn's zxid | the txn (`quorum::txn`) |
//! | NewLeader | NEWLEADER | new epoch, counter 0 | the configuration text |
//! | UpToDate | UPTODATE | -1 | none |
//! | Ping | PING | 0 | a learner's: its touches, each session id (8 bytes) and timeout (4); the leader's: empty |
//! | Sync | SYNC | 0 | none |
//! | Request, SyncRequest | REQUEST | -1 | session id (8 bytes), cxid (4), type (4), then the request's record as the client sent it (createSession: the timeout, 4 bytes); the session's auth ids in `authinfo` |
//! | Revalidate | REVALIDATE | -1 | session id (8 bytes), timeout (4) |
//! | Revalidated | REVALIDATE | -1 | session id (8 bytes), valid (1 byte boolean) |
//! | LeaderSynced | `RK_LEADER_SYNCED` (Ringkeeper's own) | the zxid | none |
//!
//! The snapshot that follows SNAP is not a packet; the connection carries it
//! (`src/ensemble/net.rs`), and [`decode`] refuses SNAP.
//!
//! [`OWN_SNAP_MARK`] is how two Ringkeeper servers find each other: Java's leader reads the
//! first 20 bytes of LearnerInfo and Java's learner the first 4 of LEADERINFO, and neither
//! looks further, so the 8 bytes after them pass unnoticed by Java servers. When both ends of a
//! connection carry it, SNAP is followed by Ringkeeper's own snapshot format; otherwise by
//! ZooKeeper's. A learner that also sends [`LEADER_SYNCED_MARK`] right after it takes
//! LeaderSynced (a Ringkeeper server older than that mark would refuse the packet); a Java
//! learner is never sent one, and no Java leader sends one.

use crate::proto::{opcode, DecodeError, Request, Writer};
use crate::quorum::{packet, txn as zktxn, LearnerInfo, QuorumPacket, LEARNER_PROTOCOL_VERSION};
use crate::zab::peer::Forward;
use crate::zab::peer::Msg;
use crate::zab::{epoch_of, make_zxid};
use bytes::Bytes;

/// Appended to LearnerInfo and LEADERINFO by a Ringkeeper server: it reads and sends
/// Ringkeeper's own snapshot format after SNAP.
pub const OWN_SNAP_MARK: &[u8; 8] = b"RK-SNAP1";

/// Appended to LearnerInfo after [`OWN_SNAP_MARK`]: the learner takes
/// [`Msg::LeaderSynced`].
pub const LEADER_SYNCED_MARK: &[u8; 8] = b"RK-LSYN1";

/// What follows a record's first `fields` bytes in `data`: [`OWN_SNAP_MARK`] alone, or with
/// [`LEADER_SYNCED_MARK`] after it (anything else marks nothing). Gives (own snapshot format,
/// takes LeaderSynced).
fn marks(data: &[u8], fields: usize) -> (bool, bool) {
    let rest = data.get(fields..).unwrap_or_default();
    match rest.strip_prefix(&OWN_SNAP_MARK[..]) {
        Some([]) => (true, false),
        Some(more) if more == LEADER_SYNCED_MARK => (true, true),
        _ => (false, false),
    }
}

/// Who is sending, for the fields only the wire carries.
#[derive(Debug, Clone)]
pub struct Sender {
    pub my_id: i64,
    /// The configuration's version (LearnerInfo) and text (NEWLEADER).
    pub config_version: i64,
    pub config: Bytes,
}

/// A message this mapping does not carry yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

pub fn encode(msg: &Msg, from: &Sender) -> Result<QuorumPacket, Unsupported> {
    let four = |v: i32| Some(Bytes::copy_from_slice(&v.to_be_bytes()));
    let txn_bytes = |t: &crate::txn::Txn| {
        let mut out = Vec::new();
        zktxn::encode(&mut out, t);
        Some(Bytes::from(out))
    };
    Ok(match msg {
        Msg::LearnerInfo {
            accepted_epoch,
            observer,
            leader_synced,
        } => {
            let mut data = Vec::new();
            LearnerInfo {
                server_id: from.my_id,
                protocol_version: LEARNER_PROTOCOL_VERSION,
                config_version: from.config_version,
            }
            .encode(&mut data);
            data.extend_from_slice(OWN_SNAP_MARK);
            if *leader_synced {
                data.extend_from_slice(LEADER_SYNCED_MARK);
            }
            let kind = if *observer {
                packet::OBSERVERINFO
            } else {
                packet::FOLLOWERINFO
            };
            QuorumPacket::new(kind, make_zxid(*accepted_epoch, 0), Some(data.into()))
        }
        Msg::LeaderInfo { new_epoch } => {
            let mut data = LEARNER_PROTOCOL_VERSION.to_be_bytes().to_vec();
            data.extend_from_slice(OWN_SNAP_MARK);
            QuorumPacket::new(
                packet::LEADERINFO,
                make_zxid(*new_epoch, 0),
                Some(Bytes::from(data)),
            )
        }
        Msg::AckEpoch {
            current_epoch,
            last_zxid,
        } => QuorumPacket::new(packet::ACKEPOCH, *last_zxid, four(*current_epoch as i32)),
        Msg::Diff { zxid } => QuorumPacket::new(packet::DIFF, *zxid, None),
        Msg::Trunc { zxid } => QuorumPacket::new(packet::TRUNC, *zxid, None),
        Msg::Snap { zxid, .. } => QuorumPacket::new(packet::SNAP, *zxid, None),
        Msg::Proposal(t) => QuorumPacket::new(packet::PROPOSAL, t.zxid, txn_bytes(t)),
        Msg::Commit { zxid } => QuorumPacket::new(packet::COMMIT, *zxid, None),
        Msg::FromLog { .. } => {
            return Err(Unsupported(
                "txns from the log go as the PROPOSALs and COMMITs read",
            ))
        }
        Msg::Inform(t) => QuorumPacket::new(packet::INFORM, t.zxid, txn_bytes(t)),
        Msg::NewLeader { zxid } => {
            QuorumPacket::new(packet::NEWLEADER, *zxid, Some(from.config.clone()))
        }
        Msg::Ack { zxid } => QuorumPacket::new(packet::ACK, *zxid, None),
        Msg::UpToDate => QuorumPacket::new(packet::UPTODATE, -1, None),
        Msg::Ping { touches } => {
            let mut data = Vec::with_capacity(touches.len() * 12);
            for (session, timeout_ms) in touches {
                data.extend_from_slice(&session.to_be_bytes());
                data.extend_from_slice(&timeout_ms.to_be_bytes());
            }
            QuorumPacket::new(packet::PING, 0, Some(Bytes::from(data)))
        }
        Msg::Sync => QuorumPacket::new(packet::SYNC, 0, None),
        Msg::Revalidate {
            session_id,
            timeout_ms,
        } => {
            let mut data = session_id.to_be_bytes().to_vec();
            data.extend_from_slice(&timeout_ms.to_be_bytes());
            QuorumPacket::new(packet::REVALIDATE, -1, Some(Bytes::from(data)))
        }
        Msg::Revalidated { session_id, valid } => {
            let mut data = session_id.to_be_bytes().to_vec();
            data.push(u8::from(*valid));
            QuorumPacket::new(packet::REVALIDATE, -1, Some(Bytes::from(data)))
        }
        Msg::LeaderSynced { zxid } => QuorumPacket::new(packet::RK_LEADER_SYNCED, *zxid, None),
        Msg::Request(fwd) | Msg::SyncRequest(fwd) => {
            // Learner.request: a DataOutputStream of the header, then the record's bytes.
            let mut data = Vec::new();
            data.extend_from_slice(&fwd.session_id.to_be_bytes());
            data.extend_from_slice(&fwd.cxid.to_be_bytes());
            data.extend_from_slice(&fwd.req.opcode().to_be_bytes());
            fwd.req.encode(&mut Writer::new(&mut data));
            let mut p = QuorumPacket::new(packet::REQUEST, -1, Some(Bytes::from(data)));
            p.authinfo = Some(fwd.auth.clone());
            p
        }
    })
}

/// A decoded packet: the message, and for FOLLOWERINFO/OBSERVERINFO the learner's id.
#[derive(Debug)]
pub struct Decoded {
    pub msg: Msg,
    pub learner_id: Option<i64>,
    /// LearnerInfo or LEADERINFO from a Ringkeeper server ([`OWN_SNAP_MARK`]).
    pub own_snap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Decode(DecodeError),
    Unsupported(&'static str),
    /// A packet whose data a field needs is missing it or has the wrong length.
    BadData {
        kind: i32,
    },
}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        WireError::Decode(e)
    }
}

pub fn decode(p: &QuorumPacket) -> Result<Decoded, WireError> {
    let bad = || WireError::BadData { kind: p.kind };
    let int4 = || -> Result<i32, WireError> {
        let d = p.data.as_deref().ok_or_else(bad)?;
        let b: [u8; 4] = d.try_into().map_err(|_| bad())?;
        Ok(i32::from_be_bytes(b))
    };
    let txn = || -> Result<crate::txn::Txn, WireError> {
        let t = zktxn::decode(p.data.as_deref().ok_or_else(bad)?)?;
        if t.zxid != p.zxid {
            return Err(bad());
        }
        Ok(t)
    };
    let mut learner_id = None;
    let mut own_snap = false;
    let msg = match p.kind {
        packet::FOLLOWERINFO | packet::OBSERVERINFO => {
            let data = p.data.as_deref().ok_or_else(bad)?;
            let info = LearnerInfo::decode(data)?;
            learner_id = Some(info.server_id);
            let leader_synced;
            (own_snap, leader_synced) = marks(data, 20);
            Msg::LearnerInfo {
                accepted_epoch: epoch_of(p.zxid),
                observer: p.kind == packet::OBSERVERINFO,
                leader_synced,
            }
        }
        packet::LEADERINFO => {
            // Java's learner reads the first 4 bytes; so does this one.
            let data = p.data.as_deref().ok_or_else(bad)?;
            if data.len() < 4 {
                return Err(bad());
            }
            own_snap = marks(data, 4).0;
            Msg::LeaderInfo {
                new_epoch: epoch_of(p.zxid),
            }
        }
        packet::ACKEPOCH => Msg::AckEpoch {
            current_epoch: i64::from(int4()?),
            last_zxid: p.zxid,
        },
        packet::DIFF => Msg::Diff { zxid: p.zxid },
        packet::TRUNC => Msg::Trunc { zxid: p.zxid },
        packet::PROPOSAL => Msg::Proposal(txn()?),
        packet::COMMIT => Msg::Commit { zxid: p.zxid },
        packet::INFORM => Msg::Inform(txn()?),
        packet::NEWLEADER => Msg::NewLeader { zxid: p.zxid },
        packet::ACK => Msg::Ack { zxid: p.zxid },
        packet::UPTODATE => Msg::UpToDate,
        packet::PING => {
            // Java's leader sends no data at all; a learner, its touch table.
            let d = p.data.as_deref().unwrap_or_default();
            if !d.len().is_multiple_of(12) {
                return Err(bad());
            }
            let touches = d
                .chunks_exact(12)
                .map(|c| {
                    let id = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
                    let timeout = i32::from_be_bytes(c[8..].try_into().expect("4 bytes"));
                    (id, timeout)
                })
                .collect();
            Msg::Ping { touches }
        }
        packet::SYNC => Msg::Sync,
        packet::RK_LEADER_SYNCED => Msg::LeaderSynced { zxid: p.zxid },
        packet::REVALIDATE => {
            // The learner's question has 12 bytes, the leader's answer 9.
            let d = p.data.as_deref().ok_or_else(bad)?;
            let session_id = i64::from_be_bytes(d.get(..8).ok_or_else(bad)?.try_into().expect("8"));
            match &d[8..] {
                [a, b, c, e] => Msg::Revalidate {
                    session_id,
                    timeout_ms: i32::from_be_bytes([*a, *b, *c, *e]),
                },
                [v] => Msg::Revalidated {
                    session_id,
                    valid: *v != 0,
                },
                _ => return Err(bad()),
            }
        }
        packet::SNAP => return Err(WireError::Unsupported("SNAP's snapshot stream")),
        packet::REQUEST => request(p)?,
        _ => return Err(bad()),
    };
    Ok(Decoded {
        msg,
        learner_id,
        own_snap,
    })
}

/// A learner's REQUEST: a forwarded write, createSession, closeSession or sync.
fn request(p: &QuorumPacket) -> Result<Msg, WireError> {
    let bad = || WireError::BadData { kind: p.kind };
    let d = p.data.as_deref().ok_or_else(bad)?;
    if d.len() < 16 {
        return Err(bad());
    }
    let session_id = i64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    let cxid = i32::from_be_bytes(d[8..12].try_into().expect("4 bytes"));
    let kind = i32::from_be_bytes(d[12..16].try_into().expect("4 bytes"));
    let body = &d[16..];
    let req = match kind {
        opcode::CREATE_SESSION => {
            let t: [u8; 4] = body.try_into().map_err(|_| bad())?;
            Request::CreateSession {
                timeout_ms: i32::from_be_bytes(t),
            }
        }
        _ => Request::decode(kind, body)?,
    };
    if !(req.is_write() || matches!(req, Request::Sync { .. })) {
        // Only writes and syncs are forwarded.
        return Err(bad());
    }
    let fwd = Forward {
        session_id,
        cxid,
        auth: p.authinfo.clone().unwrap_or_default(),
        req,
    };
    Ok(match fwd.req {
        Request::Sync { .. } => Msg::SyncRequest(fwd),
        _ => Msg::Request(fwd),
    })
}

#[cfg(test)]
mod tests;
