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

/// The golden bytes `golden/GenGolden.java` wrote under `name` (tests only).
#[cfg(test)]
pub(crate) fn golden(name: &str) -> Vec<u8> {
    let text = include_str!("golden/golden.txt");
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no golden {name}"));
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

pub use codec::*;
