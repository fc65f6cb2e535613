//! Ringkeeper's engine: everything a ZooKeeper server decides, with no IO, no async, no clock and
//! no randomness. The runtime (`src/`) feeds it requests and time and carries out what it returns.

#![forbid(unsafe_code)]

pub mod javafiles;
pub mod node;
pub mod order;
pub mod pipeline;
pub mod prep;
pub mod proto;
pub mod quorum;
pub mod read;
pub mod reply;
pub mod session;
pub mod snap;
pub mod tree;
pub mod txn;
pub mod wal;
pub mod watch;
pub mod zab;

#[doc(hidden)]
pub mod fuzzing;
