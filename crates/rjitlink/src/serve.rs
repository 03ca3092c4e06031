//! Serving as an executor: the process that runs what linkers link, over TCP for linkers
//! anywhere ([`listen`]), or for the linker that spawned it ([`serve_spawned`]; a program
//! whose sessions use [`SessionBuilder::spawn_self`](crate::SessionBuilder::spawn_self) lets
//! [`serve_executor_if_asked`](crate::serve_executor_if_asked) call it).
//!
//! ```no_run
//! // A TCP executor on port 7000 of every interface, for linkers that know the token.
//! let token = rjitlink::Token::new(b"a shared secret of 16 bytes or more")?;
//! rjitlink::serve::listen("0.0.0.0:7000", &token, &rjitlink::serve::ListenOptions::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An executor loads what its linkers ask for and calls their code: serve only linkers you
//! trust with this process (the token is how they prove who they are). Start it with the
//! larger static TLS surplus a unit's thread-local storage may need
//! ([`process::restart_with_static_tls_surplus`](crate::process::restart_with_static_tls_surplus)),
//! as `rjitlink executor --listen` does.

use crate::{Error, Token};

pub use rjitlink_executor::{ListenOptions, ServeError, DEFAULT_MAX_CLIENTS};

/// Serve linkers over TCP at `address` (`HOST:PORT`), each in a process of its own forked
/// for it, at most `options.max_clients` at once, each after proving that it knows `token`
/// (which never crosses the network). Returns only on failure to listen
/// ([`Error::Serve`]), or, with `options.exit_with_stdin`, when standard input ends.
pub fn listen(address: &str, token: &Token, options: &ListenOptions) -> Result<(), Error> {
    rjitlink_executor::listen(address, token, options).map_err(Error::Serve)
}

/// Serve the linker that spawned this process, over the socket at descriptor `fd` that it
/// passed (`executor --fd FD --parent PID` are the arguments it gives), until it shuts the
/// session down. `parent` is its pid: this process dies with it, and refuses to start
/// ([`Error::Serve`]) if it is gone already. A program run here exits this process.
pub fn serve_spawned(fd: std::os::fd::RawFd, parent: u32) -> Result<(), Error> {
    rjitlink_executor::serve_inherited_socket(fd, parent).map_err(Error::Serve)
}
