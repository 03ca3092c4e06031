//! The target side of rjitlink: the process that owns the memory linked code runs in, resolves
//! external symbols in its own address space and runs the program.
//!
//! [`InProcess`] is the executor living in the linker's own process (it implements the
//! `Executor` trait of `rjitlink-target`); [`serve`] and [`listen`] serve a remote linker,
//! whose side of the connection is `rjitlink-remote`. Both do the same target operations
//! (`target`, `interpose`), one code path for the two.

mod error;
mod inprocess;
mod interpose;
mod server;
mod start_state;
mod target;

pub use error::ServeError;
pub use inprocess::InProcess;
pub use server::{generate_token, listen, serve, serve_inherited_socket};
