//! The process that runs linked code, as it starts: room for thread-local storage that units
//! bring, which glibc sizes once, when a process starts.
//!
//! A unit with thread-local variables (or a library it loads with initial-exec TLS) needs
//! room in the loader's static TLS block; a process has little to spare (glibc's default
//! surplus), and a link that finds none fails with [`Error::is_static_tls_exhausted`]. Remote
//! executors always start with a larger surplus. In process, a host can start itself again
//! with one:
//!
//! ```no_run
//! fn main() {
//!     // First thing: after a restart, the user's environment and start state come back.
//!     let has_surplus = rjitlink::process::adopt_restart_state();
//!     let result = link_and_run();
//!     if let Err(error) = &result {
//!         // Nothing linked has run yet: run again from the start, with more room.
//!         if error.is_static_tls_exhausted() && !has_surplus {
//!             if let Some(e) = rjitlink::process::restart_with_static_tls_surplus() {
//!                 eprintln!("cannot restart: {e}");
//!             }
//!         }
//!     }
//! }
//! # fn link_and_run() -> Result<(), rjitlink::Error> { Ok(()) }
//! ```
//!
//! [`Error::is_static_tls_exhausted`]: crate::Error::is_static_tls_exhausted

use rjitlink_target::{start_state, static_tls};

/// Call first thing in `main`, while the process has one thread (it changes the environment):
/// if this process was started by [`restart_with_static_tls_surplus`] (or is an executor a
/// session spawned), put back the `GLIBC_TUNABLES` the user gave, and take the signal state
/// and standard descriptors the first process started with as this one's, which programs it
/// runs get back. Returns whether the process was started with the larger static TLS surplus.
///
/// Does nothing of that, and returns false, in a process started otherwise. In every process
/// it grows the descriptor table past the descriptors sessions move their own files to, while
/// that is cheap: growing it once threads exist waits for the kernel (9 to 17 ms measured in
/// the middle of a link).
pub fn adopt_restart_state() -> bool {
    let has_surplus = static_tls::restore_user_tunables();
    start_state::adopt_inherited();
    rjitlink_executor::grow_descriptor_table();
    has_surplus
}

/// Replace this process by the same program (`/proc/self/exe`, even if its path changed
/// since it started) with the same arguments, standard streams and environment, started with
/// a larger static TLS surplus, and with the signal state and descriptors this process was
/// started with passed on (see [`adopt_restart_state`], which the new process must call).
///
/// Does not return if it succeeds. Returns `None` at once, doing nothing, if the user's own
/// `GLIBC_TUNABLES` sets the surplus (theirs is kept), or the error if the new program could
/// not be started.
pub fn restart_with_static_tls_surplus() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(argv0) = args.next() {
        command.arg0(argv0);
    }
    command.args(args);
    if !static_tls::add_surplus(&mut command) {
        return None;
    }
    // `Command` resets SIGPIPE, and the Rust runtime put /dev/null on closed standard
    // descriptors: the user's state travels in the environment instead.
    start_state::pass_on(&mut command);
    Some(command.exec())
}
