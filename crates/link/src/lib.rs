//! rjitlink's linker: from x86-64 ELF relocatable objects and archives to fixed-up bytes at
//! target addresses, ready to run.
//!
//! The phases, one module each, in the order `link` runs them:
//! inputs → resolve → scan → layout → allocate → apply → finalize (see `Session::link`).

mod apply;
mod archive;
mod elf;
mod export;
mod ids;
mod input;
mod layout;
mod resolve;
mod scan;
mod session;
mod symbols;
mod timing;
pub mod x86_64;

pub use ids::{GlobalId, ImageOffset, ObjectId};
pub use input::{default_inputs, InputArg, SearchPath};
pub use session::{LinkOptions, LinkedUnit, Session, SessionOptions, UnitId};
pub use timing::PhaseTimes;
