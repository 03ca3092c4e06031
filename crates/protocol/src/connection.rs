//! Framing over a byte stream: `[u32 length][u64 id][message]`, with counters for
//! `--show-stats`.

use crate::codec::{DecodeError, Encoder};
use crate::message::{Request, Response};
use crate::MAX_FRAME;
use rjitlink_target::TransportStats;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A byte stream to the other side: a Unix socket (which can also pass file descriptors) or
/// a TCP connection.
pub trait Transport: Read + Write + Send {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// The Unix socket underneath, for passing file descriptors.
    fn unix_socket(&self) -> Option<&UnixStream> {
        None
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn unix_socket(&self) -> Option<&UnixStream> {
        Some(self)
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

#[derive(Debug)]
pub enum ProtocolError {
    /// The other side closed the connection (or died).
    Closed,
    Io(io::Error),
    TooLarge(usize),
    Malformed(DecodeError),
    /// A well-formed frame that is not what the protocol allows at this point.
    Unexpected(String),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Closed => f.write_str("connection closed by the other side"),
            ProtocolError::Io(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                f.write_str("timed out waiting for the other side")
            }
            ProtocolError::Io(e) => write!(f, "{e}"),
            ProtocolError::TooLarge(n) => {
                write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte limit")
            }
            ProtocolError::Malformed(e) => write!(f, "{e}"),
            ProtocolError::Unexpected(what) => write!(f, "protocol violation: {what}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Each variant prints its inner error's message as its own.
        match self {
            ProtocolError::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::BrokenPipe
            || e.kind() == io::ErrorKind::ConnectionReset
        {
            ProtocolError::Closed
        } else {
            ProtocolError::Io(e)
        }
    }
}

impl From<DecodeError> for ProtocolError {
    fn from(e: DecodeError) -> Self {
        ProtocolError::Malformed(e)
    }
}

/// One end of a connection.
pub struct Connection {
    stream: Box<dyn Transport>,
    next_id: u64,
    /// The last frame received; decoded messages borrow from it.
    frame: Vec<u8>,
    stats: TransportStats,
}

impl Connection {
    pub fn new(stream: Box<dyn Transport>) -> Connection {
        Connection {
            stream,
            next_id: 1,
            frame: Vec::new(),
            stats: TransportStats::default(),
        }
    }

    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    pub fn transport(&self) -> &dyn Transport {
        &*self.stream
    }

    fn write_frame(
        &mut self,
        id: u64,
        encode: impl FnOnce(&mut Encoder),
    ) -> Result<(), ProtocolError> {
        let mut e = Encoder::default();
        e.u32(0).u64(id);
        encode(&mut e);
        let length = e.bytes.len() - 4;
        if length > MAX_FRAME {
            return Err(ProtocolError::TooLarge(length));
        }
        e.bytes[..4].copy_from_slice(&(length as u32).to_le_bytes());
        self.stream.write_all(&e.bytes)?;
        self.stream.flush()?;
        self.stats.bytes_sent += e.bytes.len() as u64;
        Ok(())
    }

    /// Read one frame; returns its id. The message is left in `self.frame[8..]`.
    fn read_frame(&mut self) -> Result<u64, ProtocolError> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = u32::from_le_bytes(length) as usize;
        if length > MAX_FRAME {
            return Err(ProtocolError::TooLarge(length));
        }
        if length < 8 {
            return Err(ProtocolError::Malformed(DecodeError(format!(
                "frame of {length} bytes is too short"
            ))));
        }
        self.frame.clear();
        self.frame.resize(length, 0);
        self.stream.read_exact(&mut self.frame)?;
        self.stats.bytes_received += 4 + length as u64;
        Ok(u64::from_le_bytes(self.frame[..8].try_into().unwrap()))
    }

    /// Send `request` and wait for its response. A response with another id is a protocol
    /// violation; `Terminated` may answer any request (the executor died).
    pub fn call(&mut self, request: &Request<'_>) -> Result<Response<'_>, ProtocolError> {
        let id = self.send_request(request)?;
        self.receive_response(id)
    }

    /// Like `call`, with `payload` sent raw right after the request's frame (a `Write`).
    pub fn call_with_payload(
        &mut self,
        request: &Request<'_>,
        payload: &[u8],
    ) -> Result<Response<'_>, ProtocolError> {
        let id = self.send_request(request)?;
        self.stream.write_all(payload)?;
        self.stream.flush()?;
        self.stats.bytes_sent += payload.len() as u64;
        self.receive_response(id)
    }

    /// Send `request` without waiting; `receive_response` collects the answer later.
    pub fn send_request(&mut self, request: &Request<'_>) -> Result<u64, ProtocolError> {
        let id = self.next_id;
        self.next_id += 1;
        self.write_frame(id, |e| request.encode(e))?;
        Ok(id)
    }

    /// Read raw payload bytes that follow a request (see `call_with_payload`) straight into
    /// `destination`.
    pub fn read_payload(&mut self, destination: &mut [u8]) -> Result<(), ProtocolError> {
        self.stream.read_exact(destination)?;
        self.stats.bytes_received += destination.len() as u64;
        Ok(())
    }

    /// The response to the request `id`, which must be the next frame.
    pub fn receive_response(&mut self, id: u64) -> Result<Response<'_>, ProtocolError> {
        let received = self.read_frame()?;
        self.stats.round_trips += 1;
        let response = Response::decode(&self.frame[8..])?;
        if received != id && !matches!(response, Response::Terminated(_)) {
            return Err(ProtocolError::Unexpected(format!(
                "response {received} to request {id}"
            )));
        }
        Ok(response)
    }

    /// The next request, or `None` if the other side closed the connection between requests.
    pub fn next_request(&mut self) -> Result<Option<(u64, Request<'_>)>, ProtocolError> {
        let id = match self.read_frame() {
            Ok(id) => id,
            Err(ProtocolError::Closed) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some((id, Request::decode(&self.frame[8..])?)))
    }

    pub fn respond(&mut self, id: u64, response: &Response<'_>) -> Result<(), ProtocolError> {
        self.write_frame(id, |e| response.encode(e))
    }
}
