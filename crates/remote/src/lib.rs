//! The linker's side of a remote executor: [`Remote`] implements the `Executor` trait of
//! `rjitlink-target` by requests over a socket to `rjitlink executor` (spawned by the linker,
//! or listening on TCP), and linked memory reaches it through one of two mappers — shared
//! pages ([`SharedMemoryMapper`]) or bytes sent at finalize ([`RemoteCopyMapper`]).
//!
//! Modules, lowest first: `connection` (the connection both the executor and its mapper use,
//! and the handshakes), one module per mapper, `stdio` (a program's standard streams over
//! TCP), `signal_relay` (signals for the program, while a spawned executor runs it),
//! `spawned` (a spawned executor's process, started off the caller's thread), then `remote`.

#![deny(missing_docs)]

mod connection;
mod copy_mapper;
mod remote;
mod shared_mapper;
mod signal_relay;
mod spawned;
mod stdio;

pub use copy_mapper::RemoteCopyMapper;
pub use remote::{MemoryMode, Remote};
pub use rjitlink_protocol::{Token, TokenError};
pub use shared_mapper::SharedMemoryMapper;
