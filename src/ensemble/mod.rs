//! Running as a member of an ensemble (`server.N` lines): the member core that drives the
//! engine's `Member` (`core.rs`), its sockets on the election and quorum ports (`net.rs`), and
//! what it keeps on disk besides the log and snapshots (`disk.rs`). The fronts are the
//! standalone server's, unchanged: they talk to the member core as they talk to the pipeline
//! core.

pub mod core;
pub mod disk;
pub mod net;
