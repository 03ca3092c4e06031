//! The executor modes every corpus program runs in.

/// Where rjitlink runs the program.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    InProcess,
    /// `--executor=remote`: a spawned executor process on a socket pair, sharing memory.
    Remote,
    /// `--executor=remote --memory=copy`: bytes written into the spawned executor's memory
    /// by the linker (what TCP's copy mode sends over the connection).
    RemoteCopy,
    /// `--executor=tcp:...` against an `rjitlink executor --listen` started for the test.
    Tcp,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::InProcess, Mode::Remote, Mode::RemoteCopy, Mode::Tcp];

    pub fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Remote => "remote",
            Mode::RemoteCopy => "remote-copy",
            Mode::Tcp => "tcp",
        }
    }
}
