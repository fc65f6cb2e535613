//! ZooKeeper's server-to-server wire formats, so that Ringkeeper and Java ZooKeeper servers can
//! share an ensemble (DESIGN.md section 4b). Byte layouts are in `FORMAT.md` beside this file; the
//! tests hold each against golden bytes Java ZooKeeper's own classes wrote (`golden/`).
//!
//! - The quorum port (leader and learners) carries [`QuorumPacket`] jute records back to back,
//!   with no length prefix; [`packet_len`] finds where one ends in a stream without trusting any
//!   length it has not checked. FOLLOWERINFO and OBSERVERINFO carry a [`LearnerInfo`].
//! - The election port opens with an [`ElectionOpening`] (protocol version, server id, election
//!   addresses), then carries length-prefixed [`Notification`]s.

mod codec;
pub mod txn;

pub use codec::*;
