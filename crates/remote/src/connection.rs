//! The connection to a remote executor, shared by the `Remote` executor and its memory mapper:
//! the deferred handshake, one call (request, response, and what the response means), and the
//! memory requests both mappers send.

use rjitlink_memory::{MapError, SegmentProtection, TargetCall, TargetRange};
use rjitlink_protocol::{Connection, ProtocolError, Request, Response, PROTOCOL_VERSION};
use rjitlink_target::{full_message, TargetError};
use std::sync::{Arc, Mutex, MutexGuard};

/// The connection to the executor, and a hello sent but not yet answered (a spawned
/// executor starts while the linker reads its inputs).
pub(crate) struct ExecutorConnection {
    pub(crate) connection: Connection,
    /// The id of the hello whose answer the next request must read first.
    pending_hello: Option<u64>,
}

/// A connection shared by the executor and its mapper.
pub(crate) type SharedConnection = Arc<Mutex<ExecutorConnection>>;

/// Share `connection`; `pending_hello` is the id of a hello sent and not yet answered.
pub(crate) fn share(connection: Connection, pending_hello: Option<u64>) -> SharedConnection {
    Arc::new(Mutex::new(ExecutorConnection {
        connection,
        pending_hello,
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
pub(crate) struct ExecutorHello {
    pub(crate) page_size: u64,
    pub(crate) pid: u32,
    /// `CAPABILITY_*` bits.
    pub(crate) capabilities: u64,
}

/// The executor's answer to hello, checked.
pub(crate) fn check_hello(
    hello: Result<Response<'_>, ProtocolError>,
) -> Result<ExecutorHello, TargetError> {
    match hello {
        Ok(Response::Hello {
            version,
            page_size,
            pid,
            capabilities,
        }) => {
            if version != announced_version() {
                return Err(TargetError::VersionMismatch {
                    ours: announced_version(),
                    theirs: version,
                });
            }
            Ok(ExecutorHello {
                page_size,
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

/// Lock the connection, first finishing a deferred handshake.
pub(crate) fn ready(
    connection: &SharedConnection,
) -> Result<MutexGuard<'_, ExecutorConnection>, TargetError> {
    let mut locked = lock(connection);
    if let Some(id) = locked.pending_hello.take() {
        check_hello(locked.connection.receive_response(id))?;
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
