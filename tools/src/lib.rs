//! Client-side tools: [`cli`] is `ringkeeper cli` (zkCli), on a [`session::Session`].
//! [`client::RawClient`] speaks the jute protocol over a blocking socket, one
//! request at a time, and exposes the raw reply header and body: tests use it to check wire
//! details that high-level clients hide (error codes, notifications, malformed frames).

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod session;
