//! What an executor needs to run a linked program.

use rjitlink_memory::TargetAddr;

/// A linked program, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Called as `int entry(int argc, char **argv, char **envp)`.
    pub entry: TargetAddr,
    /// .preinit_array, then .init_array/.ctors functions, in the order they must be called.
    pub init: Vec<TargetAddr>,
    /// .fini_array/.dtors functions, in the order they must be called.
    pub fini: Vec<TargetAddr>,
    /// argv, `argv[0]` included.
    pub args: Vec<Vec<u8>>,
    /// Report a crash of linked code (a fatal signal with no handler of the program's) on
    /// stderr before dying of it (see `rjitlink_executor::crash`).
    pub crash_report: bool,
}
