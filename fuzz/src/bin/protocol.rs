//! Fuzz target: the linker–executor protocol. The first byte chooses what reads the rest:
//! 0 `Request::decode`, 1 `Response::decode` (one message), 2 the executor's side of a
//! connection (frames of requests until the stream ends or is refused), 3 the linker's side
//! (frames of responses to requests 1, 2, 3, ...).

use rjitlink_protocol::{Connection, Request, Response, Transport};
use std::io::{self, Cursor, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A stream that reads the fuzzer's bytes and swallows what is written.
struct Replay(Cursor<Vec<u8>>);

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Replay {
    /// No descriptor: nothing is passed over this stream.
    fn as_raw_fd(&self) -> RawFd {
        -1
    }
}

impl Transport for Replay {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn try_clone_transport(&self) -> io::Result<Box<dyn Transport>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&selector, rest)) = data.split_first() else {
            return;
        };
        match selector % 4 {
            0 => {
                let _ = Request::decode(rest);
            }
            1 => {
                let _ = Response::decode(rest);
            }
            2 => {
                let mut connection = Connection::new(Box::new(Replay(Cursor::new(rest.to_vec()))));
                while let Ok(Some(_)) = connection.next_request() {}
            }
            _ => {
                let mut connection = Connection::new(Box::new(Replay(Cursor::new(rest.to_vec()))));
                for id in 1.. {
                    if connection.receive_response(id).is_err() {
                        break;
                    }
                }
            }
        }
    });
}
