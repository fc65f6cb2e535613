//! ZooKeeper Atomic Broadcast, as state machines with no IO (DESIGN.md section 4b): fast leader
//! election ([`election`]); one member's election, discovery, sync and broadcast ([`peer`]); a
//! member with its tree, sessions and clients ([`member`]); and the peer's messages on
//! ZooKeeper's quorum wire format ([`wire`]).

pub mod election;
pub mod member;
pub mod peer;
pub mod wire;

/// The epoch part of a zxid (its high 32 bits).
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// A zxid from an epoch and a counter (ZooKeeper's `ZxidUtils.makeZxid`).
pub fn make_zxid(epoch: i64, counter: i64) -> i64 {
    (epoch << 32) | (counter & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_are_epoch_and_counter() {
        let z = make_zxid(3, 7);
        assert_eq!(z, 0x3_0000_0007);
        assert_eq!(epoch_of(z), 3);
        assert_eq!(
            make_zxid(1, 0xffff_ffff + 5),
            0x1_0000_0004,
            "the counter wraps"
        );
    }
}
