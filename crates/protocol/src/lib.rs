//! The protocol between the linker (controller) and an executor (the target process): a
//! versioned handshake, then request/response messages in length-prefixed frames, over a Unix
//! socket pair or TCP.
//!
//! Every frame is `[u32 length][u64 id][message]`, little-endian, with `length` counting the id
//! and the message and capped at `MAX_FRAME`. A response carries its request's id. Anything
//! malformed, oversized or out of order is an error, and the connection is closed: neither side
//! ever trusts the other's bytes.

#![deny(missing_docs)]

pub mod auth;
mod codec;
mod connection;
mod fd_passing;
mod message;

pub use auth::{Token, TokenError};
pub use codec::DecodeError;
pub use connection::{split_frame, Connection, FrameWriter, ProtocolError, RawFrame, Transport};
pub use fd_passing::{receive_fd, send_fd};
pub use message::{
    Copy, DebugObjectHeader, JitDumpFunction, PerfMapLine, Request, Response, RunProgram,
    SymbolKindCode, STDERR, STDOUT,
};

/// The protocol version this build speaks. Both sides must speak the same.
///
/// 3: mutual authentication by HMAC proofs instead of a token sent in the hello; the
/// linker's nonce in shared reservations; the program's standard streams over TCP.
/// 4: crash reports (`Response::Crashed`, `RunProgram::crash_report`), the perf map and the
/// jitdump (`Request::PerfMap`, `Request::JitDump`); debug objects registered with the
/// executor's JIT interface for debuggers (and unregistered) by handle.
/// 5: `Request::WriteRuns`, a whole image's bytes in one request (the copy mapper).
/// 6: `Request::PrepareWrites`, the pages of such a write made ready without the bytes, which
/// a linker writes into the memory of the executor it started itself.
pub const PROTOCOL_VERSION: u32 = 6;

/// Marks the first frame so that a stray client is recognized at once.
pub const MAGIC: [u8; 4] = *b"RJLK";

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 << 20;

/// The largest frame either side accepts before the other has proved who it is: the
/// handshake's messages are far smaller, and nothing bigger is allocated for a stranger.
pub const MAX_HANDSHAKE_FRAME: usize = 512;

/// How many bytes of a program's standard input the linker may send ahead of what the
/// program has read (the executor gives them back with `Response::InputConsumed`): the
/// executor never buffers more, however fast the input and however slow the program.
pub const STDIN_WINDOW: u64 = 256 << 10;

/// The executor can map memory shared with the linker (the shared-memory mapper).
pub const CAPABILITY_SHARED_MEMORY: u64 = 1;
