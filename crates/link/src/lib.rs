//! rjitlink's linker: from relocatable ELF objects and archives to fixed-up bytes at target
//! addresses, ready to run.
//!
//! `Session::link` runs the phases, one module each, each returning the value the next
//! consumes:
//!
//! | phase    | module                | result        |
//! |----------|-----------------------|---------------|
//! | inputs   | `input`, `archive`    | `LinkInputs`  |
//! | resolve  | `resolve`             | `SymbolDb`    |
//! | scan     | `sections`, `scan`    | `Scan`        |
//! | layout   | `layout`              | `Layout`      |
//! | allocate | `image`               | `InFlight`    |
//! | addresses | `image`, `addresses` | `Addresses`   |
//! | tls      | `tls`                 | `LoadedTls` (the TLS module in the target) |
//! | apply    | `image`, `apply`      | `Image`       |
//! | finalize | `unit`                | `Unit`        |
//!
//! Plugins (`plugins`) observe the points between them. Architecture facts come from
//! `rjitlink_arch::HostArch`; errors are [`LinkError`].
//!
//! Most programs want the `rjitlink` crate, which wraps this one with an executor, builders
//! and typed lookups; [`Session`] is the layer below it.

#![deny(missing_docs)]

mod addresses;
mod apply;
mod archive;
mod elf;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ids;
mod image;
mod input;
mod layout;
mod options;
mod plugins;
mod resolve;
mod scan;
mod sections;
mod session;
mod shared_object;
mod symbols;
mod timing;
mod tls;
mod unit;

pub use error::{
    escape_bytes, escape_path, EntryProblem, LinkError, RelocationProblem, TlsProblem,
    UndefinedSymbol,
};
pub use input::{default_inputs, InputArg, InputBytes, SearchPath};
pub use options::{LinkOptions, PluginSwitches, SessionOptions};
pub use session::{LinkedUnit, Session, UnitId};
pub use timing::PhaseTimes;
