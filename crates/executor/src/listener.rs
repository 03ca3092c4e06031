//! The TCP listener (`rjitlink executor --listen`): serves several linkers at once, each in a
//! process of its own forked for the connection, once the linker has proved that it knows the
//! token (`rjitlink_protocol::auth`).
//!
//! What a stranger can do is bounded: the handshake must be over within `HANDSHAKE_DEADLINE`
//! (however slowly the bytes come), its frames are small, at most `MAX_PENDING` handshakes run
//! at once (`MAX_PENDING_PER_PEER` from one address), and a peer whose handshakes failed waits longer and longer before its next one is
//! served (`Peers`) — each in its own process, so that no one client delays another. At most
//! `max_clients` authenticated linkers are served at once; more are told so.
//!
//! Each connection's process (the *session*) talks to the listener over a socket pair: it
//! says when the linker is authenticated (the listener answers whether a place is free) or
//! has failed. The listener keeps the connection open until the session has ended, to tell
//! the linker if it was killed by a signal.

use crate::error::ServeError;
use crate::server::{executor_info, receive_hello, serve_requests, ProgramIo};
use rjitlink_protocol::auth::{self, Nonces, NONCE_LEN};
use rjitlink_protocol::{Connection, Request, Response, Token, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use rjitlink_target::full_message;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a new connection has to authenticate, in all: a client that trickles its bytes
/// gains nothing.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Handshakes under way at once; connections beyond are closed at once. Each ends within the
/// deadline (plus its penalty wait), so a flood holds them only briefly.
const MAX_PENDING: usize = 64;

/// Handshakes under way at once from one address: one peer cannot take every place of
/// `MAX_PENDING` from the others.
const MAX_PENDING_PER_PEER: usize = 8;

/// The default of `--max-clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 8;

/// The wait before a peer's next handshake after its first failure; it doubles with each
/// further failure, up to `MAX_PENALTY`.
const FIRST_PENALTY: Duration = Duration::from_millis(100);
const MAX_PENALTY: Duration = Duration::from_secs(5);
/// A connection whose turn would come later than this is closed at once.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// A peer's failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Peers remembered at most; the oldest failures are forgotten first.
const MAX_PEERS: usize = 4096;

/// Session → listener: the linker is authenticated; may it be served?
const AUTHENTICATED: u8 = b'A';
/// Session → listener: the handshake failed (it counts against the peer).
const FAILED: u8 = b'F';
/// Listener → session: serve it.
const WELCOME: u8 = b'Y';
/// Listener → session: `max_clients` linkers are being served.
const BUSY: u8 = b'N';

/// How the listener serves.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// Authenticated linkers served at once; more are told that the executor is busy.
    pub max_clients: usize,
    /// Stop serving (ending every session) when standard input reaches its end: a supervisor
    /// (a test, a service manager) then ends the executor by closing a pipe, even if it dies.
    pub exit_with_stdin: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            max_clients: DEFAULT_MAX_CLIENTS,
            exit_with_stdin: false,
        }
    }
}

/// What the listener remembers of a peer whose handshakes failed.
struct PeerRecord {
    failures: u32,
    last_failure: Instant,
    /// When the peer's next handshake may start: its connections wait their turn, one
    /// penalty apart, so that opening many at once does not help it.
    next_turn: Instant,
}

/// Failed handshakes by peer address (an IPv6 address by its /64, which one host has).
#[derive(Default)]
struct Peers {
    records: HashMap<IpAddr, PeerRecord>,
}

fn peer_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

fn penalty(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_PENALTY * (1u32 << doublings)).min(MAX_PENALTY)
}

impl Peers {
    /// How long a new connection from `address` must wait before its handshake, or `None` if
    /// its turn is too far off (it is closed).
    fn admit(&mut self, address: IpAddr, now: Instant) -> Option<Duration> {
        let key = peer_key(address);
        let Some(record) = self.records.get_mut(&key) else {
            return Some(Duration::ZERO);
        };
        if now.duration_since(record.last_failure) > FORGET_AFTER {
            self.records.remove(&key);
            return Some(Duration::ZERO);
        }
        let turn = record.next_turn.max(now);
        let wait = turn - now;
        if wait > MAX_WAIT {
            return None;
        }
        record.next_turn = turn + penalty(record.failures);
        Some(wait)
    }

    /// A handshake from `address` failed.
    fn failed(&mut self, address: IpAddr, now: Instant) {
        if self.records.len() >= MAX_PEERS {
            self.records
                .retain(|_, record| now.duration_since(record.last_failure) <= FORGET_AFTER);
            if self.records.len() >= MAX_PEERS {
                let oldest = self
                    .records
                    .iter()
                    .min_by_key(|(_, record)| record.last_failure)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    self.records.remove(&oldest);
                }
            }
        }
        let record = self.records.entry(peer_key(address)).or_insert(PeerRecord {
            failures: 0,
            last_failure: now,
            next_turn: now,
        });
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.next_turn = record.next_turn.max(now + penalty(record.failures));
    }
}

/// A session process, as the listener sees it.
struct Session {
    pid: libc::pid_t,
    peer: SocketAddr,
    /// The listener's end of the session's channel.
    control: UnixStream,
    /// The linker's connection, kept to tell the linker if the session is killed.
    stream: TcpStream,
    /// The linker is authenticated and holds one of the `max_clients` places.
    active: bool,
    /// The session closed its channel: it is ending, to be reaped.
    ended: bool,
}

/// Serve linkers over TCP at `address`, several at once, each in a forked process, each after
/// proving that it knows `token`. Returns only if it cannot listen, or when standard input
/// ends with `exit_with_stdin`.
pub fn listen(address: &str, token: &Token, options: &ListenOptions) -> Result<(), ServeError> {
    let listener = TcpListener::bind(address).map_err(|source| ServeError::Listen {
        address: address.to_owned(),
        source,
    })?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        eprintln!(
            "rjitlink executor: warning: listening on {local}, reachable from other machines: anyone with the token can run code here, and the traffic is neither encrypted nor protected (tunnel it: see the README)"
        );
    }
    println!("rjitlink executor listening on {local}");
    std::io::stdout().flush()?;
    listener.set_nonblocking(true)?;
    let mut sessions: Vec<Session> = Vec::new();
    let mut peers = Peers::default();
    let listener_pid = std::process::id();
    loop {
        reap(&mut sessions, &mut peers);
        let mut fds = vec![libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if options.exit_with_stdin {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_session = fds.len();
        for session in &sessions {
            fds.push(libc::pollfd {
                // An ended session's channel is not polled (it would wake at once).
                fd: if session.ended {
                    -1
                } else {
                    session.control.as_raw_fd()
                },
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Ended sessions are reaped soon; otherwise wake now and then to reap anyway.
        let timeout = if sessions.iter().any(|s| s.ended) {
            20
        } else {
            1000
        };
        // SAFETY: `fds` is a valid pollfd array of its length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error.into());
        }
        if options.exit_with_stdin && fds[1].revents != 0 && stdin_ended() {
            return Ok(());
        }
        let now = Instant::now();
        let mut active = sessions.iter().filter(|s| s.active && !s.ended).count();
        for (session, polled) in sessions.iter_mut().zip(&fds[first_session..]) {
            if polled.revents != 0 {
                handle_control(session, &mut active, options.max_clients, &mut peers, now);
            }
        }
        if fds[0].revents != 0 {
            accept_all(
                &listener,
                &mut sessions,
                &mut peers,
                token,
                options,
                listener_pid,
            );
        }
    }
}

/// Whether standard input has ended (or failed): data on it is read and ignored.
fn stdin_ended() -> bool {
    let mut buffer = [0u8; 4096];
    // SAFETY: reading into our own buffer.
    let n = unsafe { libc::read(0, buffer.as_mut_ptr().cast(), buffer.len()) };
    n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
}

/// A message on a session's channel: a request for a place, a failure, or its end.
fn handle_control(
    session: &mut Session,
    active: &mut usize,
    max_clients: usize,
    peers: &mut Peers,
    now: Instant,
) {
    let mut byte = [0u8; 1];
    match session.control.read(&mut byte) {
        Ok(1) if byte[0] == AUTHENTICATED && !session.active => {
            let verdict = if *active < max_clients {
                *active += 1;
                session.active = true;
                WELCOME
            } else {
                BUSY
            };
            // One byte into an empty socket buffer: it does not block.
            let _ = session.control.write_all(&[verdict]);
        }
        Ok(1) if byte[0] == FAILED => peers.failed(session.peer.ip(), now),
        Ok(1) => {}
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        // Closed (or broken): the session is ending.
        _ => {
            if session.active {
                *active = active.saturating_sub(1);
            }
            session.ended = true;
        }
    }
}

/// Reap ended sessions; tell the linker of one killed by a signal.
fn reap(sessions: &mut Vec<Session>, peers: &mut Peers) {
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child of ours, without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let Some(index) = sessions.iter().position(|s| s.pid == pid) else {
            continue;
        };
        let session = sessions.swap_remove(index);
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            eprintln!(
                "rjitlink executor: {}: the session was killed by {}",
                session.peer,
                rjitlink_target::signal_name(signal)
            );
            if session.active {
                // Only an authenticated linker hears anything: it is told how its executor
                // ended, rather than finding the connection closed.
                let _ = session
                    .stream
                    .set_write_timeout(Some(Duration::from_secs(1)));
                let mut connection = Connection::new(Box::new(session.stream));
                let _ = connection.respond(0, &Response::Terminated(signal));
            } else {
                peers.failed(session.peer.ip(), Instant::now());
            }
        }
    }
}

/// Accept every waiting connection, each into a session process.
fn accept_all(
    listener: &TcpListener,
    sessions: &mut Vec<Session>,
    peers: &mut Peers,
    token: &Token,
    options: &ListenOptions,
    listener_pid: u32,
) {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("rjitlink executor: accept failed: {e}");
                // Out of descriptors, say: give sessions time to end rather than spin.
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        };
        let pending = || sessions.iter().filter(|s| !s.active && !s.ended);
        if pending().count() >= MAX_PENDING {
            eprintln!("rjitlink executor: {peer}: closed: {MAX_PENDING} handshakes are under way");
            continue;
        }
        if pending().filter(|s| s.peer.ip() == peer.ip()).count() >= MAX_PENDING_PER_PEER {
            eprintln!(
                "rjitlink executor: {peer}: closed: {MAX_PENDING_PER_PEER} of its handshakes are under way"
            );
            continue;
        }
        let Some(wait) = peers.admit(peer.ip(), Instant::now()) else {
            eprintln!("rjitlink executor: {peer}: closed: too many failed handshakes from it");
            continue;
        };
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("rjitlink executor: {peer}: cannot create a channel: {e}");
                continue;
            }
        };
        // SAFETY: this process is single-threaded, so the child may run anything.
        match unsafe { libc::fork() } {
            -1 => eprintln!(
                "rjitlink executor: {peer}: fork failed: {}",
                std::io::Error::last_os_error()
            ),
            0 => {
                // The session: nothing of the listener's but its own connection and channel.
                drop(ours);
                // SAFETY: the listening socket must not stay open in the session; `listener`
                // is never used or dropped here again (the session ends with _exit).
                unsafe { libc::close(listener.as_raw_fd()) };
                sessions.clear();
                let code = run_session(stream, peer, theirs, token, wait, options, listener_pid);
                // _exit: the libraries the session loaded are not to run their destructors
                // here, nor anything else of the listener's at exit.
                // SAFETY: ends this process.
                unsafe { libc::_exit(code) }
            }
            pid => {
                drop(theirs);
                sessions.push(Session {
                    pid,
                    peer,
                    control: ours,
                    stream,
                    active: false,
                    ended: false,
                });
            }
        }
    }
}

/// In the session process: authenticate, take a place, serve. Returns the exit code.
fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    control: UnixStream,
    token: &Token,
    wait: Duration,
    options: &ListenOptions,
    listener_pid: u32,
) -> i32 {
    // Every session ends with the listener: none outlives it holding memory and programs.
    // SIGTERM, not SIGKILL, so that it ends its program's whole process group first.
    crate::relay::end_program_on_sigterm();
    // SAFETY: prctl and getppid have no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() as u32 != listener_pid {
            return 1;
        }
    }
    match session(stream, control, token, wait, options) {
        Ok(()) => 0,
        Err(ServeError::LinkerGone) => 0,
        Err(e) => {
            eprintln!("rjitlink executor: {peer}: {}", full_message(&e));
            1
        }
    }
}

fn session(
    stream: TcpStream,
    mut control: UnixStream,
    token: &Token,
    wait: Duration,
    options: &ListenOptions,
) -> Result<(), ServeError> {
    // A peer that failed before waits its turn here, in its own process.
    std::thread::sleep(wait);
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(Box::new(stream));
    connection.set_max_frame(MAX_HANDSHAKE_FRAME);
    connection.set_deadline(Some(Instant::now() + HANDSHAKE_DEADLINE))?;
    let (id, linker_nonce, executor_nonce) = match authenticate(&mut connection, token) {
        Ok(authenticated) => authenticated,
        Err(error) => {
            // Every failure counts against the peer, another version's hello too: it costs
            // a fork like any other, and an honest linker of another version fails anyway.
            let _ = control.write_all(&[FAILED]);
            return Err(error);
        }
    };
    let nonces = Nonces {
        linker: &linker_nonce,
        executor: &executor_nonce,
    };
    control.write_all(&[AUTHENTICATED])?;
    control.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut verdict = [0u8; 1];
    control.read_exact(&mut verdict)?;
    connection.set_deadline(None)?;
    if verdict[0] != WELCOME {
        let reason = format!(
            "the executor is serving as many linkers as it may ({}, its --max-clients); try again later",
            options.max_clients
        );
        let proof = token.refusal_proof(nonces, reason.as_bytes());
        connection.respond(
            id,
            &Response::Refused {
                reason: reason.as_bytes(),
                proof: &proof,
            },
        )?;
        return Err(ServeError::Busy {
            limit: options.max_clients,
        });
    }
    let info = executor_info();
    let proof = token.executor_proof(nonces, &info);
    connection.respond(
        id,
        &Response::Hello {
            version: info.version,
            page_size: info.page_size,
            pid: info.pid,
            capabilities: info.capabilities,
            proof: &proof,
        },
    )?;
    connection.set_max_frame(MAX_FRAME);
    serve_requests(connection, ProgramIo::OverConnection)
}

/// The executor's side of the handshake (see `rjitlink_protocol::auth`): Ok with the id of
/// the linker's `Authenticate` (to answer) and both nonces once the linker has proved that it
/// knows `token`. A wrong proof gets no answer.
fn authenticate(
    connection: &mut Connection,
    token: &Token,
) -> Result<(u64, [u8; NONCE_LEN], [u8; NONCE_LEN]), ServeError> {
    let (id, linker_nonce) = receive_hello(connection)?;
    let linker_nonce: [u8; NONCE_LEN] =
        linker_nonce.try_into().map_err(|_| ServeError::NotHello)?;
    let executor_nonce = auth::nonce().map_err(ServeError::Token)?;
    connection.respond(
        id,
        &Response::Challenge {
            nonce: &executor_nonce,
        },
    )?;
    let (id, proof) = match connection.next_request()? {
        None => return Err(ServeError::ClosedBeforeProof),
        Some((id, Request::Authenticate { proof })) => (id, proof),
        Some(_) => return Err(ServeError::NotProof),
    };
    let nonces = Nonces {
        linker: &linker_nonce,
        executor: &executor_nonce,
    };
    if !token.check_linker_proof(nonces, proof) {
        return Err(ServeError::WrongToken);
    }
    Ok((id, linker_nonce, executor_nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_a_peer_down_and_are_forgotten() {
        let mut peers = Peers::default();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        assert_eq!(peers.admit(peer, start), Some(Duration::ZERO));
        peers.failed(peer, start);
        // The next attempt waits the first penalty; another at once waits a turn more.
        assert_eq!(peers.admit(peer, start), Some(FIRST_PENALTY));
        assert_eq!(peers.admit(peer, start), Some(FIRST_PENALTY * 2));
        // Others are not held back.
        assert_eq!(peers.admit(other, start), Some(Duration::ZERO));
        for _ in 0..10 {
            peers.failed(peer, start);
        }
        assert_eq!(penalty(11), MAX_PENALTY);
        // Too far off: closed at once.
        let mut refused = false;
        for _ in 0..10 {
            refused |= peers.admit(peer, start).is_none();
        }
        assert!(refused);
        // A minute of quiet, and the peer is a stranger again.
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(peers.admit(peer, later), Some(Duration::ZERO));
    }

    #[test]
    fn ipv6_peers_count_by_their_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_eq!(peer_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
