//! The connection to a remote executor, shared by the `Remote` executor and its memory mapper:
//! the handshakes (deferred with a spawned executor, authenticated over TCP), one call
//! (request, response, and what the response means), and the memory requests both mappers
//! send.

use rjitlink_memory::{MapError, Placement, SegmentProtection, TargetCall, TargetRange};
use rjitlink_protocol::auth::{ExecutorInfo, Nonces, NONCE_LEN};
use rjitlink_protocol::{
    Connection, ProtocolError, Request, Response, Token, MAX_FRAME, MAX_HANDSHAKE_FRAME,
    PROTOCOL_VERSION,
};
use rjitlink_target::{full_message, TargetError};
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the TCP handshake may take in all. The executor may hold back a peer whose
/// handshakes failed before (for up to 10 s) and gives each handshake 5 s.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(20);

/// The connection to the executor, and a hello sent but not yet answered (a spawned
/// executor starts while the linker reads its inputs).
pub(crate) struct ExecutorConnection {
    pub(crate) connection: Connection,
    /// The id of the hello whose answer the next request must read first.
    pending_hello: Option<u64>,
    /// The executor's pid, once its hello is read (at once over TCP).
    pub(crate) executor_pid: Option<u32>,
    /// Whether the executor is this linker's own child, spawned on a socket pair: then
    /// `executor_pid` is its process, which stays its own (unreaped) while the connection
    /// lasts, and the copy mapper may write into its memory directly.
    pub(crate) own_child: bool,
    /// A shared reservation asked for ahead of the link, read right after the hello.
    pub(crate) ahead: Option<ReservedAhead>,
}

/// A shared reservation asked for as the executor starts (see
/// `SharedMemoryMapper::reserve_ahead`), so that the executor makes its memory file while the
/// linker reads and resolves, and the link's `reserve` finds it made.
pub(crate) struct ReservedAhead {
    /// What was asked.
    pub(crate) size: usize,
    pub(crate) placement: Placement,
    /// The nonce the executor writes past the range.
    pub(crate) nonce: Vec<u8>,
    /// The request's id, until its answer is read.
    pub(crate) id: Option<u64>,
    /// The answer (Err with the executor's refusal), once read.
    pub(crate) answer: Option<Result<SharedReservation, TargetError>>,
}

/// A shared reservation as the executor answered it.
pub(crate) struct SharedReservation {
    pub(crate) range: TargetRange,
    /// The executor's number for its memory file.
    pub(crate) fd_number: u32,
    /// The file, or why it did not come.
    pub(crate) file: Result<OwnedFd, String>,
}

/// A connection shared by the executor and its mapper.
pub(crate) type SharedConnection = Arc<Mutex<ExecutorConnection>>;

/// Share `connection`; `pending_hello` is the id of a hello sent and not yet answered, and
/// `executor_pid` the pid of an executor whose hello was read already.
pub(crate) fn share(
    connection: Connection,
    pending_hello: Option<u64>,
    executor_pid: Option<u32>,
) -> SharedConnection {
    Arc::new(Mutex::new(ExecutorConnection {
        connection,
        pending_hello,
        executor_pid,
        own_child: false,
        ahead: None,
    }))
}

pub(crate) fn lock(connection: &SharedConnection) -> MutexGuard<'_, ExecutorConnection> {
    connection.lock().unwrap_or_else(|e| e.into_inner())
}

/// A mapper failure from the executor or the connection, phrased for the user.
pub(crate) fn map_error(message: String) -> MapError {
    MapError::Executor(message)
}

/// A `TargetError` as a mapper failure, with its sources in the message.
pub(crate) fn target_map_error(error: TargetError) -> MapError {
    map_error(full_message(&error))
}

/// The protocol version to announce: normally ours; tests set RJITLINK_PROTOCOL_VERSION to
/// check that a mismatch is reported.
pub(crate) fn announced_version() -> u32 {
    std::env::var("RJITLINK_PROTOCOL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROTOCOL_VERSION)
}

/// What the executor says of itself in its answer to hello.
#[derive(Debug)]
pub(crate) struct ExecutorHello {
    pub(crate) page_size: u64,
    pub(crate) pid: u32,
    /// `CAPABILITY_*` bits.
    pub(crate) capabilities: u64,
}

/// A spawned executor's answer to hello, checked. (It is this linker's own child on a socket
/// pair: there is nothing to authenticate.)
pub(crate) fn check_hello(
    hello: Result<Response<'_>, ProtocolError>,
) -> Result<ExecutorHello, TargetError> {
    match hello {
        Ok(Response::Hello {
            version,
            page_size,
            pid,
            capabilities,
            proof: _,
        }) => {
            if version != announced_version() {
                return Err(TargetError::VersionMismatch {
                    ours: announced_version(),
                    theirs: version,
                });
            }
            Ok(ExecutorHello {
                page_size: checked_page_size(page_size)?,
                pid,
                capabilities,
            })
        }
        Ok(Response::Failed(message)) => Err(refused(message)),
        Ok(other) => Err(TargetError::UnexpectedHandshake {
            response: format!("{other:?}"),
        }),
        Err(ProtocolError::Closed) => Err(TargetError::ClosedInHandshake),
        Err(e) => Err(TargetError::Handshake(Box::new(e))),
    }
}

/// The executor's message refusing a request.
pub(crate) fn refused(message: &[u8]) -> TargetError {
    TargetError::Refused(String::from_utf8_lossy(message).into_owned())
}

/// The executor's page size, if it is one: the mappers align to it.
fn checked_page_size(page_size: u64) -> Result<u64, TargetError> {
    if page_size.is_power_of_two() && (4096..=1 << 30).contains(&page_size) {
        Ok(page_size)
    } else {
        Err(TargetError::UnexpectedHandshake {
            response: format!("a page size of {page_size} bytes"),
        })
    }
}

/// Why a TCP executor was not accepted: it did not prove that it knows the token.
#[derive(Debug)]
enum AuthError {
    /// It answered hello without a challenge, as if no proof were needed.
    NoChallenge,
    /// Its challenge holds no proper nonce.
    BadChallenge,
    /// Its proof (of its hello or of a refusal) is wrong.
    WrongProof,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            AuthError::NoChallenge => "it answered without asking for proof of the token",
            AuthError::BadChallenge => "its challenge is malformed",
            AuthError::WrongProof => "its proof is wrong",
        };
        write!(
            f,
            "the executor did not prove that it knows RJITLINK_TOKEN ({what}): it is not the executor meant, or its token differs"
        )
    }
}

impl std::error::Error for AuthError {}

fn not_proven(error: AuthError) -> TargetError {
    TargetError::Handshake(Box::new(error))
}

/// A message from an executor that has not proved who it is: shown, but as plain text of
/// bounded length, so that it cannot play with the user's terminal.
fn unproven_message(message: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(message).chars().take(200).collect();
    format!("the executor says: {}", text.escape_debug())
}

/// A handshake failure from the connection.
fn handshake_error(error: ProtocolError) -> TargetError {
    match error {
        ProtocolError::Closed => TargetError::ClosedInHandshake,
        e => TargetError::Handshake(Box::new(e)),
    }
}

/// The linker's side of the TCP handshake (see `rjitlink_protocol::auth`): prove that it
/// knows `token`, and accept nothing from the executor — no answer, no number — before the
/// executor has proved that it knows it too. Until then frames are small and the whole
/// exchange has a deadline.
pub(crate) fn authenticate(
    connection: &mut Connection,
    token: &Token,
) -> Result<ExecutorHello, TargetError> {
    connection.set_max_frame(MAX_HANDSHAKE_FRAME);
    connection
        .set_deadline(Some(Instant::now() + HANDSHAKE_DEADLINE))
        .map_err(handshake_error)?;
    let linker_nonce = rjitlink_protocol::auth::nonce()?;
    let version = announced_version();
    let id = connection
        .send_request(&Request::Hello {
            version,
            nonce: &linker_nonce,
        })
        .map_err(handshake_error)?;
    let executor_nonce: [u8; NONCE_LEN] = match connection.receive_response(id) {
        Ok(Response::Challenge { nonce }) => nonce
            .try_into()
            .map_err(|_| not_proven(AuthError::BadChallenge))?,
        // Another version: its words, plainly, since there is nothing else to go by.
        Ok(Response::Failed(message)) => {
            return Err(TargetError::Refused(unproven_message(message)))
        }
        Ok(Response::Hello { .. }) => return Err(not_proven(AuthError::NoChallenge)),
        Ok(_) => return Err(not_proven(AuthError::NoChallenge)),
        Err(e) => return Err(handshake_error(e)),
    };
    let nonces = Nonces {
        linker: &linker_nonce,
        executor: &executor_nonce,
    };
    let proof = token.linker_proof(nonces);
    let id = connection
        .send_request(&Request::Authenticate { proof: &proof })
        .map_err(handshake_error)?;
    let hello = match connection.receive_response(id) {
        Ok(Response::Hello {
            version: theirs,
            page_size,
            pid,
            capabilities,
            proof,
        }) => {
            let info = ExecutorInfo {
                version: theirs,
                page_size,
                pid,
                capabilities,
            };
            if !token.check_executor_proof(nonces, &info, proof) {
                return Err(not_proven(AuthError::WrongProof));
            }
            if theirs != version {
                return Err(TargetError::VersionMismatch {
                    ours: version,
                    theirs,
                });
            }
            ExecutorHello {
                page_size: checked_page_size(page_size)?,
                pid,
                capabilities,
            }
        }
        Ok(Response::Refused { reason, proof }) => {
            if !token.check_refusal_proof(nonces, reason, proof) {
                return Err(not_proven(AuthError::WrongProof));
            }
            return Err(refused(reason));
        }
        Ok(_) => return Err(not_proven(AuthError::WrongProof)),
        Err(e) => return Err(handshake_error(e)),
    };
    connection.set_deadline(None).map_err(handshake_error)?;
    connection.set_max_frame(MAX_FRAME);
    Ok(hello)
}

/// Lock the connection, first finishing a deferred handshake.
pub(crate) fn ready(
    connection: &SharedConnection,
) -> Result<MutexGuard<'_, ExecutorConnection>, TargetError> {
    let mut locked = lock(connection);
    if let Some(id) = locked.pending_hello.take() {
        let hello = check_hello(locked.connection.receive_response(id))?;
        locked.executor_pid = Some(hello.pid);
    }
    // A reservation asked for ahead is answered next, its memory file after the answer.
    let ExecutorConnection {
        connection, ahead, ..
    } = &mut *locked;
    if let Some(ahead) = ahead {
        if let Some(id) = ahead.id.take() {
            ahead.answer = Some(match connection.receive_response(id) {
                Ok(Response::ReservedShared { range, fd }) => {
                    let file = match connection.transport().unix_socket() {
                        Some(socket) => {
                            rjitlink_protocol::receive_fd(socket).map_err(|e| e.to_string())
                        }
                        None => Err("the executor's memory file did not come".into()),
                    };
                    Ok(SharedReservation {
                        range,
                        fd_number: fd,
                        file,
                    })
                }
                Ok(Response::Failed(message)) => Err(refused(message)),
                Ok(other) => Err(TargetError::UnexpectedResponse {
                    request: Some("reserve"),
                    response: format!("{other:?}"),
                }),
                Err(ProtocolError::Closed) => return Err(TargetError::Closed),
                Err(e) => return Err(TargetError::Connection(Box::new(e))),
            });
        }
    }
    Ok(locked)
}

/// What a call's response means: `Failed` becomes an error with the executor's message.
pub(crate) fn interpret<T>(
    response: Result<Response<'_>, ProtocolError>,
    accept: impl FnOnce(Response<'_>) -> Option<T>,
) -> Result<T, TargetError> {
    match response {
        Ok(Response::Failed(message)) => Err(refused(message)),
        Ok(Response::Terminated(signal)) => Err(TargetError::Terminated { signal }),
        Ok(response) => {
            let description = format!("{response:?}");
            accept(response).ok_or(TargetError::UnexpectedResponse {
                request: None,
                response: description,
            })
        }
        Err(ProtocolError::Closed) => Err(TargetError::Closed),
        Err(e) => Err(TargetError::Connection(Box::new(e))),
    }
}

/// Send `request` and interpret the response.
pub(crate) fn call<T>(
    connection: &SharedConnection,
    request: &Request<'_>,
    accept: impl FnOnce(Response<'_>) -> Option<T>,
) -> Result<T, TargetError> {
    let mut locked = ready(connection)?;
    interpret(locked.connection.call(request), accept)
}

/// Send `request` with `payloads` after it, raw, and interpret the response.
pub(crate) fn call_with_payloads<T>(
    connection: &SharedConnection,
    request: &Request<'_>,
    payloads: &[&[u8]],
    accept: impl FnOnce(Response<'_>) -> Option<T>,
) -> Result<T, TargetError> {
    let mut locked = ready(connection)?;
    interpret(
        locked.connection.call_with_payloads(request, payloads),
        accept,
    )
}

/// A memory request answered `Done`: one round trip.
fn memory_request(connection: &SharedConnection, request: &Request<'_>) -> Result<(), MapError> {
    call(connection, request, |r| {
        matches!(r, Response::Done).then_some(())
    })
    .map_err(target_map_error)
}

/// Protections and finalize calls, as both remote mappers send them (the copy mapper after
/// the bytes).
pub(crate) fn initialize_remote(
    connection: &SharedConnection,
    segments: &[SegmentProtection],
    actions: &[TargetCall],
) -> Result<(), MapError> {
    let segments = segments.to_vec();
    let actions = actions.to_vec();
    memory_request(connection, &Request::Initialize { segments, actions })
}

pub(crate) fn deinitialize_remote(
    connection: &SharedConnection,
    ranges: &[TargetRange],
    actions: &[TargetCall],
) -> Result<(), MapError> {
    let ranges = ranges.to_vec();
    let actions = actions.to_vec();
    memory_request(connection, &Request::Deinitialize { ranges, actions })
}

pub(crate) fn release_remote(
    connection: &SharedConnection,
    range: TargetRange,
) -> Result<(), MapError> {
    memory_request(connection, &Request::Release { range })
}
