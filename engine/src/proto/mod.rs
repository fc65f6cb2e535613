//! The ZooKeeper client wire protocol (jute): frames, records, opcodes and error codes.

mod error;
pub mod frame;
pub mod jute;
pub mod opcode;
pub mod records;

pub use error::ErrorCode;
pub use jute::{DecodeError, Reader, Writer};
pub use records::*;
