//! The protocol between the linker (controller) and an executor (the target process): a
//! versioned handshake, then request/response messages in length-prefixed frames, over a Unix
//! socket pair or TCP.
//!
//! Every frame is `[u32 length][u64 id][message]`, little-endian, with `length` counting the id
//! and the message and capped at `MAX_FRAME`. A response carries its request's id. Anything
//! malformed, oversized or out of order is an error, and the connection is closed: neither side
//! ever trusts the other's bytes.

mod codec;
mod connection;
mod fd_passing;
mod message;

pub use codec::DecodeError;
pub use connection::{Connection, ProtocolError, Transport};
pub use fd_passing::{receive_fd, send_fd};
pub use message::{Copy, Request, Response, RunProgram, SymbolKindCode};

/// The protocol version this build speaks. Both sides must speak the same.
pub const PROTOCOL_VERSION: u32 = 2;

/// Marks the first frame so that a stray client is recognized at once.
pub const MAGIC: [u8; 4] = *b"RJLK";

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 << 20;

/// The executor can map memory shared with the linker (the shared-memory mapper).
pub const CAPABILITY_SHARED_MEMORY: u64 = 1;
