//! Helpers shared by the corpus suites (tests/corpus/): building testdata programs, running
//! them natively and under rjitlink with a timeout, and the executors they run in.

pub mod case;
pub mod direct_writes;
pub mod directives;
pub mod mode;
pub mod process;
pub mod random;
pub mod scratch;
pub mod tcp;

/// The rjitlink binary under test.
pub fn rjitlink() -> &'static str {
    env!("CARGO_BIN_EXE_rjitlink")
}
