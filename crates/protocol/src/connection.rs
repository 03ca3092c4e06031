//! Framing over a byte stream: `[u32 length][u64 id][message]`, with counters for
//! `--show-stats`, a frame limit (small until the other side is authenticated) and an overall
//! deadline for the handshake.

use crate::codec::{DecodeError, Encoder};
use crate::message::{Request, Response};
use crate::MAX_FRAME;
use rjitlink_target::TransportStats;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A byte stream to the other side: a Unix socket (which can also pass file descriptors) or
/// a TCP connection.
pub trait Transport: Read + Write + Send + AsRawFd {
    /// Wait at most `timeout` for a read (`None`: forever).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Another handle on the same stream, for a second thread to write frames on.
    fn try_clone_transport(&self) -> io::Result<Box<dyn Transport>>;
    /// The Unix socket underneath, for passing file descriptors.
    fn unix_socket(&self) -> Option<&UnixStream> {
        None
    }
    /// The TCP connection underneath.
    fn tcp_stream(&self) -> Option<&TcpStream> {
        None
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn try_clone_transport(&self) -> io::Result<Box<dyn Transport>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn unix_socket(&self) -> Option<&UnixStream> {
        Some(self)
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn try_clone_transport(&self) -> io::Result<Box<dyn Transport>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn tcp_stream(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

#[derive(Debug)]
/// A failure of the connection or of what came over it.
pub enum ProtocolError {
    /// The other side closed the connection (or died).
    Closed,
    /// Reading or writing failed.
    Io(io::Error),
    /// A frame of this many bytes, over the limit in force (the second number).
    TooLarge(usize, usize),
    /// The handshake's deadline passed.
    Deadline,
    /// A frame that does not decode.
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
            ProtocolError::TooLarge(n, limit) => {
                write!(f, "frame of {n} bytes exceeds the {limit}-byte limit")
            }
            ProtocolError::Deadline => {
                f.write_str("the other side did not complete the handshake in time")
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

/// `[u32 length][u64 id][message]` for `id` and the message `encode` writes; Err if over
/// `limit`.
fn encode_frame(
    id: u64,
    limit: usize,
    encode: impl FnOnce(&mut Encoder),
) -> Result<Vec<u8>, ProtocolError> {
    let mut e = Encoder::default();
    e.u32(0).u64(id);
    encode(&mut e);
    let length = e.bytes.len() - 4;
    if length > limit {
        return Err(ProtocolError::TooLarge(length, limit));
    }
    e.bytes[..4].copy_from_slice(&(length as u32).to_le_bytes());
    Ok(e.bytes)
}

/// The length a frame header announces, checked against `limit` and the id's 8 bytes.
fn frame_length(header: [u8; 4], limit: usize) -> Result<usize, ProtocolError> {
    let length = u32::from_le_bytes(header) as usize;
    if length > limit {
        return Err(ProtocolError::TooLarge(length, limit));
    }
    if length < 8 {
        return Err(ProtocolError::Malformed(DecodeError(format!(
            "frame of {length} bytes is too short"
        ))));
    }
    Ok(length)
}

/// A whole frame found at the start of a buffer by `split_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// Its length on the wire, header included: where the next frame starts.
    pub length: usize,
    /// The request's id (a response carries its request's).
    pub id: u64,
    /// The message's bytes.
    pub message: &'a [u8],
}

/// The whole frame at the start of `buffer`, if one is there yet (`Ok(None)` if not); Err if
/// its header announces more than `limit` bytes, or fewer than an id. For a reader that
/// collects bytes as they come, without blocking.
pub fn split_frame(buffer: &[u8], limit: usize) -> Result<Option<RawFrame<'_>>, ProtocolError> {
    let Some(header) = buffer.first_chunk::<4>() else {
        return Ok(None);
    };
    let length = frame_length(*header, limit)?;
    let Some(frame) = buffer[4..].get(..length) else {
        return Ok(None);
    };
    Ok(Some(RawFrame {
        length: 4 + length,
        id: u64::from_le_bytes(frame[..8].try_into().expect("8 bytes")),
        message: &frame[8..],
    }))
}

/// Writes whole request frames on a second handle of a connection's stream: the linker's
/// thread that forwards its standard input while the main thread reads the program's output.
pub struct FrameWriter {
    stream: Box<dyn Transport>,
}

impl FrameWriter {
    /// Send `request` with id 0 (no response is expected).
    pub fn send(&mut self, request: &Request<'_>) -> Result<(), ProtocolError> {
        let frame = encode_frame(0, MAX_FRAME, |e| request.encode(e))?;
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        Ok(())
    }
}

/// One end of a connection.
pub struct Connection {
    stream: Box<dyn Transport>,
    next_id: u64,
    /// The last frame received; decoded messages borrow from it.
    frame: Vec<u8>,
    stats: TransportStats,
    /// The largest frame accepted or sent: small until the other side is authenticated, so
    /// that an unknown peer cannot make this side allocate much.
    max_frame: usize,
    /// When the handshake must be over: reads fail after it, however the bytes trickle in.
    deadline: Option<Instant>,
}

impl Connection {
    /// A connection over `stream`, nothing sent yet.
    pub fn new(stream: Box<dyn Transport>) -> Connection {
        Connection {
            stream,
            next_id: 1,
            frame: Vec::new(),
            stats: TransportStats::default(),
            max_frame: MAX_FRAME,
            deadline: None,
        }
    }

    /// Accept and send frames of at most `limit` bytes (at most `MAX_FRAME`).
    pub fn set_max_frame(&mut self, limit: usize) {
        self.max_frame = limit.min(MAX_FRAME);
    }

    /// Fail reads that would end after `deadline`; `None` waits as long as it takes.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<(), ProtocolError> {
        self.deadline = deadline;
        if deadline.is_none() {
            self.stream.set_read_timeout(None)?;
        }
        Ok(())
    }

    /// A second handle that writes frames on this connection's stream.
    pub fn writer(&self) -> Result<FrameWriter, ProtocolError> {
        Ok(FrameWriter {
            stream: self.stream.try_clone_transport()?,
        })
    }

    /// What crossed it so far.
    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// The stream underneath.
    pub fn transport(&self) -> &dyn Transport {
        &*self.stream
    }

    fn write_frame(
        &mut self,
        id: u64,
        encode: impl FnOnce(&mut Encoder),
    ) -> Result<(), ProtocolError> {
        let frame = encode_frame(id, self.max_frame, encode)?;
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        self.stats.bytes_sent += frame.len() as u64;
        Ok(())
    }

    /// `read_exact`, within the deadline if one is set.
    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<(), ProtocolError> {
        let Some(deadline) = self.deadline else {
            self.stream.read_exact(buffer)?;
            return Ok(());
        };
        let mut filled = 0;
        while filled < buffer.len() {
            // The time left, not a fixed timeout per read: a peer dripping a byte now and
            // then must not hold the connection longer than the deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ProtocolError::Deadline);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buffer[filled..]) {
                Ok(0) => return Err(ProtocolError::Closed),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(ProtocolError::Deadline)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Read one frame; returns its id. The message is left in `self.frame[8..]`.
    fn read_frame(&mut self) -> Result<u64, ProtocolError> {
        let mut header = [0u8; 4];
        self.read_exact(&mut header)?;
        // Checked before anything is allocated for it.
        let length = frame_length(header, self.max_frame)?;
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        frame.resize(length, 0);
        let read = self.read_exact(&mut frame);
        self.frame = frame;
        read?;
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
        self.call_with_payloads(request, &[payload])
    }

    /// Like `call`, with `payloads` sent raw, back to back, right after the request's frame.
    /// If the other side stops reading them (it refused the request and closed the
    /// connection), its answer is returned where it sent one first.
    pub fn call_with_payloads(
        &mut self,
        request: &Request<'_>,
        payloads: &[&[u8]],
    ) -> Result<Response<'_>, ProtocolError> {
        let id = self.send_request(request)?;
        let mut sent = 0u64;
        let written = payloads
            .iter()
            .try_for_each(|payload| {
                self.stream.write_all(payload)?;
                sent += payload.len() as u64;
                Ok(())
            })
            .and_then(|()| self.stream.flush());
        self.stats.bytes_sent += sent;
        match written {
            Ok(()) => self.receive_response(id),
            Err(error) => self
                .receive_response(id)
                .map_err(|_| ProtocolError::from(error)),
        }
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
        self.read_exact(destination)?;
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

    /// Send the response to request `id`.
    pub fn respond(&mut self, id: u64, response: &Response<'_>) -> Result<(), ProtocolError> {
        self.write_frame(id, |e| response.encode(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_HANDSHAKE_FRAME;

    #[test]
    fn a_large_frame_is_refused_before_it_is_read() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut connection = Connection::new(Box::new(ours));
        connection.set_max_frame(MAX_HANDSHAKE_FRAME);
        // 64 MiB announced, and nothing after it: the answer comes at once.
        theirs.write_all(&(64u32 << 20).to_le_bytes()).unwrap();
        match connection.next_request() {
            Err(ProtocolError::TooLarge(n, MAX_HANDSHAKE_FRAME)) => assert_eq!(n, 64 << 20),
            other => panic!("{other:?}"),
        }
        assert!(connection.frame.capacity() < MAX_HANDSHAKE_FRAME);
    }

    #[test]
    fn the_deadline_holds_however_the_bytes_trickle_in() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut connection = Connection::new(Box::new(ours));
        let start = Instant::now();
        connection
            .set_deadline(Some(start + Duration::from_millis(300)))
            .unwrap();
        // A byte every 50 ms of a frame that never ends: each read would be in time.
        let dripper = std::thread::spawn(move || {
            for byte in [40u8, 0, 0, 0]
                .into_iter()
                .chain(std::iter::repeat(0))
                .take(40)
            {
                if theirs.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        assert!(matches!(
            connection.next_request(),
            Err(ProtocolError::Deadline)
        ));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        drop(connection);
        dripper.join().unwrap();
    }

    #[test]
    fn split_frame_waits_for_whole_frames() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&9u32.to_le_bytes());
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.push(17);
        for end in 0..bytes.len() {
            assert_eq!(split_frame(&bytes[..end], 64).unwrap(), None);
        }
        let frame = split_frame(&bytes, 64).unwrap().unwrap();
        assert_eq!(
            (frame.length, frame.id, frame.message),
            (13, 5, &[17u8][..])
        );
        assert!(split_frame(&bytes, 8).is_err());
        assert!(split_frame(&[7, 0, 0, 0], 64).is_err());
    }
}
