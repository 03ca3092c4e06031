//! The target side of rjitlink: the process that owns the memory linked code runs in, resolves
//! external symbols in its own address space and runs the program.
//!
//! [`InProcess`] is the executor living in the linker's own process (it implements the
//! `Executor` trait of `rjitlink-target`); [`serve`] serves the linker that spawned this
//! process and [`listen`] linkers over TCP (`listener`, with `relay` carrying a program's
//! standard streams), whose side of the connection is `rjitlink-remote`. Both do the same
//! target operations (`target`, `interpose`, `debugger`), one code path for the two. A
//! program run by either reports its crashes (`crash`) and writes perf's files when asked
//! (`perf`).

#![deny(missing_docs)]

mod crash;
mod debugger;
mod error;
mod inprocess;
mod interpose;
mod listener;
mod perf;
mod relay;
mod server;
mod start_state;
mod target;

pub use error::ServeError;
pub use inprocess::InProcess;
pub use listener::{listen, ListenOptions, DEFAULT_MAX_CLIENTS};
pub use rjitlink_protocol::{Token, TokenError};
pub use server::{serve, serve_inherited_socket};
pub use start_state::grow_descriptor_table;
