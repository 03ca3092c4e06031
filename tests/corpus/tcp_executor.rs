//! TCP executor trials: mutual authentication (an impostor executor gets no token and no
//! request, an impostor linker nothing but the challenge), clients that drip, failed
//! handshakes slowed down, the minimum token length, `--max-clients`, wild addresses refused,
//! the program's endings and standard streams compared with a native run, a killed linker
//! ending its program, and a listener that ends with its test.

use crate::executor::{
    cli_case, kill, spawn_reading_line, wait_until_gone, wait_with_timeout, SIGKILL,
};
use crate::harness::case::{Build, Case};
use crate::harness::process::{expect_error, run_with_stdout, run_with_timeout, RUN_TIMEOUT};
use crate::harness::random::xorshift;
use crate::harness::rjitlink;
use crate::harness::tcp::{self, TcpExecutor, TEST_TOKEN};
use libtest_mimic::{Failed, Trial};
use rjitlink_memory::{
    Placement, Protection, SegmentProtection, TargetAddr, TargetCall, TargetRange,
};
use rjitlink_protocol::auth::{ExecutorInfo, Nonces};
use rjitlink_protocol::{
    split_frame, Connection, Copy, Request, Response, RunProgram, Token, MAX_FRAME,
    PROTOCOL_VERSION,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "executor::tcp::impostor_executor_gets_no_token_and_no_request",
            impostor_executor,
        ),
        Trial::test(
            "executor::tcp::impostor_linker_gets_only_the_challenge",
            impostor_linker,
        ),
        Trial::test(
            "executor::tcp::dripping_client_does_not_delay_a_linker",
            dripping_client,
        ),
        Trial::test(
            "executor::tcp::one_address_cannot_take_every_handshake_place",
            flood_from_one_address,
        ),
        Trial::test(
            "executor::tcp::failed_handshakes_are_slowed_down",
            failed_handshakes,
        ),
        Trial::test("executor::tcp::token_minimum_length", token_minimum_length),
        Trial::test("executor::tcp::max_clients", max_clients),
        Trial::test("executor::tcp::wild_addresses_are_refused", wild_addresses),
        Trial::test(
            "executor::tcp::program_endings_and_streams_match_native",
            program_matrix,
        ),
        Trial::test(
            "executor::tcp::killing_the_linker_ends_the_program",
            killing_the_linker,
        ),
        Trial::test(
            "executor::tcp::listener_ends_with_its_stdin",
            listener_ends_with_stdin,
        ),
    ]
}

/// How an impostor executor (one that does not know the token) answers a linker.
#[derive(Clone, Copy, Debug)]
enum Impostor {
    /// Hello at once, no challenge, as if no proof were needed (and as an old executor did).
    NoChallenge,
    /// A challenge, then a hello whose proof is random bytes.
    RandomProof,
    /// A challenge, then a hello proved with another token.
    OtherToken,
    /// A challenge, then the linker's own proof sent back as the executor's.
    ReflectedProof,
    /// A challenge, then a refusal whose message would paint the terminal red.
    ForgedRefusal,
}

/// The frames of `bytes` (all whole), as decoded requests' kinds.
fn request_kinds(bytes: &[u8]) -> Result<Vec<String>, Failed> {
    let mut kinds = Vec::new();
    let mut rest = bytes;
    while let Some(frame) = split_frame(rest, MAX_FRAME).map_err(|e| e.to_string())? {
        let request = Request::decode(frame.message).map_err(|e| e.to_string())?;
        let kind = format!("{request:?}");
        kinds.push(kind.split([' ', '(', '{']).next().unwrap_or("").to_owned());
        rest = &rest[frame.length..];
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes of a partial frame", rest.len()).into());
    }
    Ok(kinds)
}

/// `request` as a frame with id `id`, as `Connection` writes it.
fn frame(id: u64, request: &Request<'_>) -> Vec<u8> {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut connection = Connection::new(Box::new(ours));
    connection.send_request(request).unwrap();
    drop(connection);
    let mut bytes = Vec::new();
    theirs.read_to_end(&mut bytes).unwrap();
    bytes[4..12].copy_from_slice(&id.to_le_bytes());
    bytes
}

/// `response` as a frame answering `id`.
fn response_frame(id: u64, response: &Response<'_>) -> Vec<u8> {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut connection = Connection::new(Box::new(ours));
    connection.respond(id, response).unwrap();
    drop(connection);
    let mut bytes = Vec::new();
    theirs.read_to_end(&mut bytes).unwrap();
    bytes
}

/// The next frame the linker sends, its bytes also appended to `received`; `None` once it
/// closes the connection.
fn read_raw_frame(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
) -> Result<Option<(u64, Vec<u8>)>, Failed> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("reading the linker: {e}").into()),
    }
    let length = u32::from_le_bytes(header) as usize;
    if !(8..=1 << 20).contains(&length) {
        return Err(format!("the linker announced a frame of {length} bytes").into());
    }
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("reading the linker: {e}"))?;
    received.extend_from_slice(&header);
    received.extend_from_slice(&body);
    let id = u64::from_le_bytes(body[..8].try_into().unwrap());
    Ok(Some((id, body[8..].to_vec())))
}

/// Serve one linker as `impostor` on `listener`; returns every byte the linker sent.
fn impostor_executor_side(listener: TcpListener, impostor: Impostor) -> Result<Vec<u8>, Failed> {
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut received = Vec::new();
    let Some((id, hello)) = read_raw_frame(&mut stream, &mut received)? else {
        return Ok(received);
    };
    let linker_nonce = match Request::decode(&hello) {
        Ok(Request::Hello { nonce, .. }) => nonce.to_vec(),
        other => return Err(format!("the linker began with {other:?}").into()),
    };
    let info = ExecutorInfo {
        version: PROTOCOL_VERSION,
        page_size: 4096,
        pid: std::process::id(),
        capabilities: rjitlink_protocol::CAPABILITY_SHARED_MEMORY,
    };
    let hello_with = |id: u64, proof: &[u8]| {
        response_frame(
            id,
            &Response::Hello {
                version: info.version,
                page_size: info.page_size,
                pid: info.pid,
                capabilities: info.capabilities,
                proof,
            },
        )
    };
    if let Impostor::NoChallenge = impostor {
        let _ = stream.write_all(&hello_with(id, b""));
    } else {
        let executor_nonce = [7u8; 32];
        let challenge = Response::Challenge {
            nonce: &executor_nonce,
        };
        let _ = stream.write_all(&response_frame(id, &challenge));
        if let Some((id, message)) = read_raw_frame(&mut stream, &mut received)? {
            let linker_proof = match Request::decode(&message) {
                Ok(Request::Authenticate { proof }) => proof.to_vec(),
                other => return Err(format!("the linker answered with {other:?}").into()),
            };
            let nonces = Nonces {
                linker: &linker_nonce,
                executor: &executor_nonce,
            };
            let other = Token::new(b"another-token-of-enough-length").unwrap();
            let answer = match impostor {
                Impostor::RandomProof => hello_with(id, &[0x5a; 32]),
                Impostor::OtherToken => hello_with(id, &other.executor_proof(nonces, &info)),
                Impostor::ReflectedProof => hello_with(id, &linker_proof),
                _ => response_frame(
                    id,
                    &Response::Refused {
                        reason: b"\x1b[31mnot you\x1b[0m",
                        proof: &[0x5a; 32],
                    },
                ),
            };
            let _ = stream.write_all(&answer);
        }
    }
    // Anything more the linker sends is recorded too, until it closes.
    while read_raw_frame(&mut stream, &mut received)?.is_some() {}
    Ok(received)
}

/// A linker with the right token, facing executors that do not know it: it sends neither the
/// token nor any request but its hello and proof, and accepts nothing they say.
fn impostor_executor() -> Result<(), Failed> {
    let case = cli_case("cat.c")?;
    for impostor in [
        Impostor::NoChallenge,
        Impostor::RandomProof,
        Impostor::OtherToken,
        Impostor::ReflectedProof,
        Impostor::ForgedRefusal,
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let fake = std::thread::spawn(move || impostor_executor_side(listener, impostor));
        let mut command = case.rjitlink_command(&[&format!("--executor=tcp:{address}")]);
        command.env("RJITLINK_TOKEN", TEST_TOKEN);
        let output = run_with_timeout(&mut command)?;
        let received = fake.join().map_err(|_| "the impostor panicked")??;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = "did not prove that it knows RJITLINK_TOKEN";
        if output.status.code() != Some(125)
            || stderr.lines().count() != 1
            || !stderr.contains(expected)
            || stderr.contains('\x1b')
        {
            return Err(format!("{impostor:?}: expected `{expected}`: {output:?}").into());
        }
        if received
            .windows(TEST_TOKEN.len())
            .any(|w| w == TEST_TOKEN.as_bytes())
        {
            return Err(format!("{impostor:?}: the linker sent the token").into());
        }
        let kinds = request_kinds(&received)?;
        let allowed: &[&str] = match impostor {
            Impostor::NoChallenge => &["Hello"],
            _ => &["Hello", "Authenticate"],
        };
        if kinds != allowed {
            return Err(format!("{impostor:?}: the linker sent {kinds:?}").into());
        }
    }
    Ok(())
}

/// Read what the executor sends until it closes: Ok(bytes), or Err if it stays open.
fn read_until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, Failed> {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(bytes),
            Err(e) => return Err(format!("the executor kept the connection open: {e}").into()),
        }
    }
}

/// Clients that do not know the token get the challenge, and nothing else.
fn impostor_linker() -> Result<(), Failed> {
    let executor = TcpExecutor::start()?;
    let nonce = [3u8; 32];
    let hello = frame(
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            nonce: &nonce,
        },
    );
    let lookup = frame(
        2,
        &Request::Lookup {
            names: vec![b"system"],
        },
    );
    let wrong = Token::new(b"another-token-of-enough-length").unwrap();
    for attempt in [
        "wrong proof",
        "a request instead of a proof",
        "no hello",
        "huge frame",
    ] {
        let mut stream = TcpStream::connect(&executor.address).map_err(|e| e.to_string())?;
        let start = Instant::now();
        match attempt {
            "no hello" => {
                let _ = stream.write_all(&lookup);
            }
            "huge frame" => {
                // 64 MiB announced: refused at once, nothing allocated for it.
                let _ = stream.write_all(&[0, 0, 0, 4, 1, 0, 0, 0]);
            }
            _ => {
                stream.write_all(&hello).map_err(|e| e.to_string())?;
                // The challenge: a response frame to id 1, kind 10, a 32-byte nonce.
                let mut challenge = [0u8; 4 + 8 + 1 + 4 + 32];
                stream
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .map_err(|e| e.to_string())?;
                stream
                    .read_exact(&mut challenge)
                    .map_err(|e| format!("no challenge: {e}"))?;
                let answer = split_frame(&challenge, MAX_FRAME)
                    .map_err(|e| e.to_string())?
                    .ok_or("not a frame")?;
                let executor_nonce = match Response::decode(answer.message) {
                    Ok(Response::Challenge { nonce }) if answer.id == 1 && nonce.len() == 32 => {
                        nonce.to_vec()
                    }
                    other => return Err(format!("expected a challenge: {other:?}").into()),
                };
                if attempt == "wrong proof" {
                    let proof = wrong.linker_proof(Nonces {
                        linker: &nonce,
                        executor: &executor_nonce,
                    });
                    let _ = stream.write_all(&frame(2, &Request::Authenticate { proof: &proof }));
                } else {
                    let _ = stream.write_all(&lookup);
                }
            }
        }
        let more = read_until_closed(&mut stream)?;
        if !more.is_empty() {
            return Err(format!("{attempt}: the executor said more: {more:?}").into());
        }
        if start.elapsed() > Duration::from_secs(4) {
            return Err(format!("{attempt}: closed only after {:?}", start.elapsed()).into());
        }
    }
    // The executor still serves a linker that knows the token.
    let mut connection = tcp::connect(&executor.address)?;
    match connection.call(&Request::Shutdown) {
        Ok(Response::Done) => Ok(()),
        other => Err(format!("not served afterwards: {other:?}").into()),
    }
}

/// Run `cat.c` over `executor` with `input`: its output and how long it took.
fn timed_cat(
    case: &Case,
    executor: &TcpExecutor,
    input: &[u8],
) -> Result<(Output, Duration), Failed> {
    let start = Instant::now();
    let mut child = case
        .rjitlink_command(&[&executor.flag()])
        .env("RJITLINK_TOKEN", TEST_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let _ = child.stdin.take().unwrap().write_all(input);
    let output = wait_with_timeout(child)?;
    Ok((output, start.elapsed()))
}

/// A client that sends its hello a byte at a time holds only its own handshake, and only for
/// the handshake's deadline; a linker connecting meanwhile is served at once.
/// A TCP connection to `address` from `source` (another loopback address: the executor counts
/// handshakes per address).
fn connect_from(source: std::net::Ipv4Addr, address: &str) -> Result<TcpStream, String> {
    use std::os::fd::FromRawFd;
    let target: std::net::SocketAddrV4 = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor owned by the stream made from it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(source, 0);
        let remote = sockaddr(*target.ip(), target.port());
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0
        {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(stream)
    }
}

fn flood_from_one_address() -> Result<(), Failed> {
    // 64 connections that say nothing, from one address, fill every place the executor keeps
    // for handshakes unless one address may hold only a few: a linker from another address
    // must be served meanwhile.
    let case = cli_case("cat.c")?;
    let executor = TcpExecutor::start()?;
    let flood: Vec<TcpStream> = (0..64)
        .map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), &executor.address))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let (output, took) = timed_cat(&case, &executor, b"served\n")?;
    drop(flood);
    if output.stdout != b"served\n" || !output.status.success() {
        return Err(format!("the linker was not served beside a flood: {output:?}").into());
    }
    if took > Duration::from_secs(4) {
        return Err(format!("the linker took {took:?} beside a flood").into());
    }
    Ok(())
}

fn dripping_client() -> Result<(), Failed> {
    let case = cli_case("cat.c")?;
    let executor = TcpExecutor::start()?;
    let hello = frame(
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            nonce: &[1; 32],
        },
    );
    let address = executor.address.clone();
    let dripper = std::thread::spawn(move || -> Result<Duration, String> {
        let mut stream = TcpStream::connect(&address).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        for byte in hello.iter().cycle().take(200) {
            let _ = stream.write_all(&[*byte]);
            let mut buffer = [0u8; 1];
            match stream.read(&mut buffer) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                // Closed by the executor (or a byte, which it must not send).
                Ok(0) | Err(_) => return Ok(start.elapsed()),
                Ok(_) => return Err("the executor answered a partial hello".into()),
            }
        }
        Err("the dripping client was never disconnected".into())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (output, took) = timed_cat(&case, &executor, b"served\n")?;
    if output.stdout != b"served\n" || !output.status.success() {
        return Err(format!("the linker was not served: {output:?}").into());
    }
    let closed_after = dripper.join().map_err(|_| "the dripper panicked")??;
    if took > Duration::from_secs(4) {
        return Err(format!("the linker took {took:?} beside a dripping client").into());
    }
    // The handshake's deadline is 5 s, however the bytes trickle in.
    if !(Duration::from_secs(4)..Duration::from_secs(12)).contains(&closed_after) {
        return Err(format!("the dripping client was closed after {closed_after:?}").into());
    }
    Ok(())
}

/// The time from connecting to the challenge, with the wrong token's proof after it.
fn failed_attempt(address: &str) -> Result<Duration, Failed> {
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let nonce = [9u8; 32];
    stream
        .write_all(&frame(
            1,
            &Request::Hello {
                version: PROTOCOL_VERSION,
                nonce: &nonce,
            },
        ))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut challenge = [0u8; 4 + 8 + 1 + 4 + 32];
    stream
        .read_exact(&mut challenge)
        .map_err(|e| format!("no challenge: {e}"))?;
    let waited = start.elapsed();
    let proof = Token::new(b"another-token-of-enough-length")
        .unwrap()
        .linker_proof(Nonces {
            linker: &nonce,
            executor: &challenge[17..],
        });
    let _ = stream.write_all(&frame(2, &Request::Authenticate { proof: &proof }));
    read_until_closed(&mut stream)?;
    Ok(waited)
}

/// Each failed handshake makes the peer's next one wait longer (0.1 s, then doubling).
fn failed_handshakes() -> Result<(), Failed> {
    let executor = TcpExecutor::start()?;
    let waits = (0..5)
        .map(|_| failed_attempt(&executor.address))
        .collect::<Result<Vec<_>, _>>()?;
    // The fifth waits for four failures: 0.8 s (lower bounds: a loaded machine only adds).
    if waits[0] > Duration::from_secs(4) || waits[4] < Duration::from_millis(700) {
        return Err(format!("waits before the challenge: {waits:?}").into());
    }
    // A linker with the token is still served (after its turn).
    let mut connection = tcp::connect(&executor.address)?;
    match connection.call(&Request::Shutdown) {
        Ok(Response::Done) => Ok(()),
        other => Err(format!("not served afterwards: {other:?}").into()),
    }
}

/// A token shorter than 16 bytes is refused by the executor at start and by the linker.
fn token_minimum_length() -> Result<(), Failed> {
    let expected = "RJITLINK_TOKEN must be at least 16 bytes long (it has 15)";
    expect_error(
        Command::new(rjitlink())
            .args(["executor", "--listen", "127.0.0.1:0"])
            .env("RJITLINK_TOKEN", "fifteen-bytes!!"),
        expected,
    )?;
    let case = cli_case("cat.c")?;
    let executor = TcpExecutor::start()?;
    expect_error(
        case.rjitlink_command(&[&executor.flag()])
            .env("RJITLINK_TOKEN", "fifteen-bytes!!"),
        expected,
    )?;
    // Sixteen bytes are enough (the executor refuses this one only as the wrong token).
    expect_error(
        case.rjitlink_command(&[&executor.flag()])
            .env("RJITLINK_TOKEN", "sixteen-bytes!!!"),
        "wrong or missing RJITLINK_TOKEN?",
    )
}

/// With `--max-clients 1`, a second linker is told the executor is busy while the first
/// runs, and is served once it has ended.
fn max_clients() -> Result<(), Failed> {
    let case = cli_case("sleeper.c")?;
    let cat = cli_case("cat.c")?;
    let executor = TcpExecutor::start_with_options(&["--max-clients", "1"])?;
    let (first, pid) = spawn_reading_line(
        case.rjitlink_command(&[&executor.flag()])
            .env("RJITLINK_TOKEN", TEST_TOKEN),
    )?;
    expect_error(
        cat.rjitlink_command(&[&executor.flag()])
            .env("RJITLINK_TOKEN", TEST_TOKEN),
        "the executor is serving as many linkers as it may (1, its --max-clients); try again later",
    )?;
    kill(&pid, SIGKILL)?;
    let ended = wait_with_timeout(first)?;
    if ended.status.code() != Some(128 + SIGKILL) {
        return Err(format!("the first linker: {ended:?}").into());
    }
    // Its place is free again (the listener learns it as its session ends).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (output, _) = timed_cat(&cat, &executor, b"next\n")?;
        if output.status.success() && output.stdout == b"next\n" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the place was not freed: {output:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ask `connection`; the answer must be a refusal containing `expected`.
fn expect_refusal(
    connection: &mut Connection,
    request: &Request<'_>,
    expected: &str,
) -> Result<(), Failed> {
    match connection.call(request) {
        Ok(Response::Failed(message)) if String::from_utf8_lossy(message).contains(expected) => {
            Ok(())
        }
        other => {
            Err(format!("{request:?}: expected a refusal with `{expected}`, got {other:?}").into())
        }
    }
}

/// Wild addresses in every request that names one are refused; the connection goes on, and
/// the executor serves the next linker.
fn wild_addresses() -> Result<(), Failed> {
    let executor = TcpExecutor::start()?;
    let mut connection = tcp::connect(&executor.address)?;
    match connection.call(&Request::LoadLibrary { path: b"libc.so.6" }) {
        Ok(Response::Done) => {}
        other => return Err(format!("load libc: {other:?}").into()),
    }
    let environ = match connection.call(&Request::Lookup {
        names: vec![b"environ", b"getpid"],
    }) {
        Ok(Response::Addresses(addresses)) => match addresses[..] {
            [Some(environ), Some(_)] => environ,
            _ => return Err(format!("lookup: {addresses:?}").into()),
        },
        other => return Err(format!("lookup: {other:?}").into()),
    };
    let wild = TargetAddr(0xdead_0000);
    let copy = |original, copy| Request::Interpose {
        copies: vec![Copy {
            name: b"environ",
            original,
            copy,
            size: 8,
        }],
    };
    expect_refusal(
        &mut connection,
        &copy(TargetAddr(0x10), wild),
        "not a data object",
    )?;
    expect_refusal(
        &mut connection,
        &copy(environ, wild),
        "not in writable memory this executor holds",
    )?;
    let call = |function: u64, args| TargetCall {
        function: TargetAddr(function),
        args,
    };
    expect_refusal(
        &mut connection,
        &Request::Initialize {
            segments: vec![],
            actions: vec![call(0x1234, [0, 0])],
        },
        "neither code this executor holds nor a function of a loaded library",
    )?;
    // The jitdump reads the code it names: only live code of the executor's.
    expect_refusal(
        &mut connection,
        &Request::JitDump {
            directory: b"",
            functions: vec![rjitlink_protocol::JitDumpFunction {
                address: wild,
                size: 16,
                name: b"wild",
                lines: vec![],
            }],
        },
        "is not live code this executor holds",
    )?;
    expect_refusal(
        &mut connection,
        &Request::Deinitialize {
            ranges: vec![],
            actions: vec![call(wild.get(), [0, 0])],
        },
        "neither code this executor holds",
    )?;
    // A segment outside its reservations, and a real reservation with a wild argument.
    let range = match connection.call(&Request::Reserve {
        size: 1 << 16,
        placement: Placement::Anywhere,
        shared: false,
        nonce: b"",
    }) {
        Ok(Response::Reserved(range)) => range,
        other => return Err(format!("reserve: {other:?}").into()),
    };
    expect_refusal(
        &mut connection,
        &Request::Initialize {
            segments: vec![SegmentProtection {
                range: TargetRange {
                    start: TargetAddr(u64::MAX - 0xfff),
                    len: 0x2000,
                },
                protection: Protection::ReadExecute,
            }],
            actions: vec![],
        },
        "is not inside memory reserved by this executor",
    )?;
    let code = SegmentProtection {
        range: TargetRange {
            start: range.start,
            len: 4096,
        },
        protection: Protection::ReadExecute,
    };
    expect_refusal(
        &mut connection,
        &Request::Initialize {
            segments: vec![code],
            actions: vec![call(range.start.get(), [0x10, 0])],
        },
        "points outside the memory this executor holds",
    )?;
    expect_refusal(
        &mut connection,
        &Request::Run(RunProgram {
            entry: TargetAddr(0x1000),
            init: vec![],
            fini: vec![],
            args: vec![b"wild"],
            crash_report: true,
        }),
        "the entry 0x1000 is neither code",
    )?;
    expect_refusal(
        &mut connection,
        &Request::Release {
            range: TargetRange {
                start: wild,
                len: 4096,
            },
        },
        "not a reservation",
    )?;
    expect_refusal(
        &mut connection,
        &Request::Reserve {
            size: u64::MAX,
            placement: Placement::Anywhere,
            shared: false,
            nonce: b"",
        },
        "larger than this executor grants",
    )?;
    expect_refusal(
        &mut connection,
        &Request::Reserve {
            size: 4096,
            placement: Placement::Anywhere,
            shared: true,
            nonce: b"",
        },
        "nonce",
    )?;
    match connection.call(&Request::Shutdown) {
        Ok(Response::Done) => {}
        other => return Err(format!("not served after the refusals: {other:?}").into()),
    }
    // The executor is alive for the next linker.
    let case = cli_case("cat.c")?;
    let (output, _) = timed_cat(&case, &executor, b"alive\n")?;
    if output.stdout != b"alive\n" || !output.status.success() {
        return Err(format!("the executor did not serve the next linker: {output:?}").into());
    }
    Ok(())
}

/// How `command` ended, as a shell says it: the exit code, or 128 + the signal.
fn shell_status(output: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    output
        .status
        .code()
        .or_else(|| output.status.signal().map(|signal| 128 + signal))
}

/// Run `command` with `input` on its stdin and its stdout into a pipe whose reading end is
/// closed first if `closed_stdout`.
fn run_fed(command: &mut Command, input: &[u8], closed_stdout: bool) -> Result<Output, Failed> {
    let stdout = if closed_stdout {
        let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
        drop(reader);
        Stdio::from(writer)
    } else {
        Stdio::piped()
    };
    run_with_stdout(command, Some(input), stdout)
}

/// Every way a program ends, and its standard streams, over TCP as natively: the same output
/// and the same status (a signal's as 128 + N).
fn program_matrix() -> Result<(), Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cli/endings.c");
    let case = Case::new(&source, Build::O0)?;
    let native = case.link_native()?;
    let executor = TcpExecutor::start()?;
    let mut next = xorshift(0x5151_7a7a_1234_5678);
    let input: Vec<u8> = (0..3 << 20).map(|_| next() as u8).collect();
    let runs: [(&[&str], &[u8], bool); 9] = [
        (&["exit", "4"], b"", false),
        (&["_exit", "4"], b"", false),
        (&["exec"], b"", false),
        (&["signal"], b"", false),
        (&["thread-exit"], b"", false),
        (&["stdin"], b"a short line\n", false),
        (&["stdin"], &input, false),
        (&["large", "8"], b"", false),
        (&["closed-pipe"], b"", true),
    ];
    for (args, input, closed_stdout) in runs {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&native);
        command.arg0(&case.inputs[0]).args(args);
        let expected = run_fed(&mut command, input, closed_stdout)
            .map_err(|e| format!("{args:?} natively: {}", e.message().unwrap_or("")))?;
        let mut command = Command::new(rjitlink());
        command
            .arg("run")
            .args(&case.inputs)
            .arg(executor.flag())
            .arg("--")
            .args(args)
            .env("RJITLINK_TOKEN", TEST_TOKEN);
        let got = run_fed(&mut command, input, closed_stdout)
            .map_err(|e| format!("{args:?} over tcp: {}", e.message().unwrap_or("")))?;
        let same_stderr = match args[0] {
            // rjitlink says how the program ended, after what the program said.
            "signal" | "closed-pipe" => got.stderr.starts_with(&expected.stderr),
            _ => got.stderr == expected.stderr,
        };
        if got.stdout != expected.stdout
            || shell_status(&got) != shell_status(&expected)
            || !same_stderr
        {
            return Err(format!(
                "{args:?}: native {:?} ({} bytes out, stderr {:?}), over tcp {:?} ({} bytes out, stderr {:?})",
                shell_status(&expected),
                expected.stdout.len(),
                String::from_utf8_lossy(&expected.stderr),
                shell_status(&got),
                got.stdout.len(),
                String::from_utf8_lossy(&got.stderr),
            )
            .into());
        }
    }
    // Both ways at once: 3 MiB through `cat`, each direction with its backpressure.
    let cat = cli_case("cat.c")?;
    let mut command = cat.rjitlink_command(&[&executor.flag()]);
    command.env("RJITLINK_TOKEN", TEST_TOKEN);
    let output = run_fed(&mut command, &input, false)?;
    if output.stdout != input || !output.status.success() {
        return Err(format!(
            "cat over tcp: {} of {} bytes back, {}",
            output.stdout.len(),
            input.len(),
            output.status
        )
        .into());
    }
    Ok(())
}

/// kill -9 of the linker ends its program and the program's child.
fn killing_the_linker() -> Result<(), Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cli/endings.c");
    let case = Case::new(&source, Build::O0)?;
    let executor = TcpExecutor::start()?;
    let mut command = case.rjitlink_command(&[&executor.flag()]);
    command.env("RJITLINK_TOKEN", TEST_TOKEN).arg("sleep");
    let (mut linker, pids) = spawn_reading_line(&mut command)?;
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if pids.len() != 2 {
        return Err(format!("expected two pids, got {pids:?}").into());
    }
    kill(&linker.id().to_string(), SIGKILL)?;
    let _ = linker.wait();
    for pid in pids {
        wait_until_gone(pid)?;
    }
    Ok(())
}

/// A listener whose standard input closes ends, and so do the program it runs and the
/// program's child; in a PID namespace of its own (`unshare`) too.
fn listener_ends_with_stdin() -> Result<(), Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cli/endings.c");
    let case = Case::new(&source, Build::O0)?;
    for elsewhere in [false, true] {
        let mut executor = if elsewhere {
            TcpExecutor::start_elsewhere()?
        } else {
            TcpExecutor::start()?
        };
        let (mut linker, pids) = spawn_reading_line(
            case.rjitlink_command(&[&executor.flag()])
                .env("RJITLINK_TOKEN", TEST_TOKEN)
                .arg("sleep"),
        )?;
        executor.stdin = None;
        let start = Instant::now();
        while !executor.has_exited() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(
                    format!("elsewhere: {elsewhere}: the listener outlived its stdin").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The program ended with it: its linker is told the connection closed.
        let start = Instant::now();
        while linker.try_wait().map_err(|e| e.to_string())?.is_none() {
            if start.elapsed() > RUN_TIMEOUT {
                return Err("the program outlived its listener".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // In its own PID namespace the pids mean nothing here: the namespace ended anyway.
        if !elsewhere {
            for pid in pids.split_whitespace() {
                wait_until_gone(pid)?;
            }
        }
    }
    Ok(())
}
