//! Writes the protocol target's seeds into the directory given: each request and response of
//! the protocol's own unit tests, encoded, alone (selectors 0 and 1) and as a stream of
//! frames (selectors 2 and 3). Not a fuzz target.

use rjitlink_memory::{
    Placement, Protection, SegmentProtection, TargetAddr, TargetCall, TargetRange,
};
use rjitlink_protocol::{
    Connection, Copy, Request, Response, RunProgram, Transport, PROTOCOL_VERSION,
};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A stream that keeps what is written.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Read for Capture {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Capture {
    /// No descriptor: nothing is passed over this stream.
    fn as_raw_fd(&self) -> RawFd {
        -1
    }
}

impl Transport for Capture {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn try_clone_transport(&self) -> io::Result<Box<dyn Transport>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

fn take(capture: &Capture) -> Vec<u8> {
    std::mem::take(&mut *capture.0.lock().unwrap())
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: protocol-seeds DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let range = TargetRange {
        start: TargetAddr(0x1000),
        len: 4096,
    };
    let call = TargetCall {
        function: TargetAddr(5),
        args: [6, 7],
    };
    let requests = vec![
        Request::Hello {
            version: PROTOCOL_VERSION,
            nonce: b"0123456789abcdef",
        },
        Request::Authenticate { proof: &[7; 32] },
        Request::Reserve {
            size: 1 << 30,
            placement: Placement::At(TargetAddr(0x4000_0000)),
            shared: true,
            nonce: b"0123456789abcdef",
        },
        Request::Reserve {
            size: 1 << 30,
            placement: Placement::Below2GiB,
            shared: false,
            nonce: b"",
        },
        Request::Write {
            address: TargetAddr(0x1000),
            length: 3,
        },
        Request::WriteRuns {
            writable: vec![range],
            runs: vec![
                TargetRange {
                    start: TargetAddr(0x1000),
                    len: 3,
                },
                TargetRange {
                    start: TargetAddr(0x1800),
                    len: 2,
                },
            ],
        },
        Request::PrepareWrites {
            writable: vec![range],
            runs: vec![TargetRange {
                start: TargetAddr(0x1000),
                len: 3,
            }],
        },
        Request::Initialize {
            segments: vec![SegmentProtection {
                range,
                protection: Protection::ReadExecute,
            }],
            actions: vec![call],
        },
        Request::Deinitialize {
            ranges: vec![range],
            actions: vec![call],
        },
        Request::Release { range },
        Request::LoadLibrary {
            path: b"/lib/x86_64-linux-gnu/libm.so.6",
        },
        Request::LoadLibraryImage {
            name: b"exports",
            image: b"\x7fELF",
        },
        Request::LoadModule {
            name: b"tls module",
            image: b"\x7fELF...",
            table_offset: 0x40,
            table_count: 3,
        },
        Request::UnloadModule {
            handle: 0x7f12_3456_7000,
        },
        Request::Lookup {
            names: vec![b"printf", b"puts"],
        },
        Request::SymbolInfo {
            addresses: vec![TargetAddr(0x1000), TargetAddr(0x2000)],
        },
        Request::Interpose {
            copies: vec![Copy {
                name: b"stdout",
                original: TargetAddr(0x7000),
                copy: TargetAddr(0x1000),
                size: 8,
            }],
        },
        Request::Run(RunProgram {
            entry: TargetAddr(0x1234),
            init: vec![TargetAddr(1)],
            fini: vec![],
            args: vec![b"prog", b"-x"],
            crash_report: true,
        }),
        Request::Shutdown,
        Request::Input { data: b"stdin" },
        Request::InputClosed,
        Request::UnregisterDebugObjects {
            handles: vec![1, 2],
        },
    ];
    let responses = vec![
        Response::Hello {
            version: PROTOCOL_VERSION,
            page_size: 4096,
            pid: 42,
            capabilities: 1,
            proof: b"",
        },
        Response::Challenge {
            nonce: b"fedcba9876543210",
        },
        Response::Done,
        Response::Failed(b"cannot load x: no"),
        Response::Reserved(range),
        Response::ReservedShared { range, fd: 3 },
        Response::Addresses(vec![Some(TargetAddr(0x1000)), None]),
        Response::SymbolInfos(vec![Some((1, 8)), None]),
        Response::Module {
            handle: 0x5555_0000_1000,
            words: vec![1, u64::MAX, 0xffff_ffff_ffff_f000],
        },
        Response::Exited(3),
        Response::Terminated(11),
    ];

    let capture = Capture::default();
    let mut connection = Connection::new(Box::new(capture.clone()));
    let mut stream = vec![2u8];
    for (i, request) in requests.iter().enumerate() {
        connection.send_request(request).unwrap();
        let frame = take(&capture);
        // [u32 length][u64 id][message]
        let mut alone = vec![0u8];
        alone.extend_from_slice(&frame[12..]);
        std::fs::write(dir.join(format!("request-{i}")), alone).unwrap();
        stream.extend_from_slice(&frame);
    }
    std::fs::write(dir.join("requests"), stream).unwrap();

    let mut stream = vec![3u8];
    for (i, response) in responses.iter().enumerate() {
        connection.respond(i as u64 + 1, response).unwrap();
        let frame = take(&capture);
        let mut alone = vec![1u8];
        alone.extend_from_slice(&frame[12..]);
        std::fs::write(dir.join(format!("response-{i}")), alone).unwrap();
        stream.extend_from_slice(&frame);
    }
    std::fs::write(dir.join("responses"), stream).unwrap();
}
