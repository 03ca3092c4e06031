//! A spawned executor's process, started off the caller's thread: starting a process blocks
//! its starter until the new program is loaded (posix_spawn waits for the exec, 0.5-1 ms for
//! rjitlink's binary), which the linker spends reading its inputs instead.
//!
//! The thread that starts the executor stays until the executor is reaped: a process's
//! parent-death signal (`PR_SET_PDEATHSIG`, which makes the executor die with its linker)
//! follows the thread that started it, not the process, so that thread must live exactly as
//! long as the linker wants the executor. It blocks every signal, as the linker's worker
//! threads do, so that signals meant for the process are not taken by it — except while it
//! starts the executor, which inherits its mask and must start with the caller's.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{channel, Receiver, Sender};

/// The executor's process: its pid, reaped (once) by `wait` or `try_wait`, as
/// `std::process::Child` is.
pub(crate) struct Child {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
}

impl Child {
    pub(crate) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Wait for the process to end, and reap it (or its status, if reaped already).
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            match self.reap(0)? {
                Some(status) => return Ok(status),
                // Not ended: only WNOHANG says so; waiting again is harmless.
                None => continue,
            }
        }
    }

    /// Its status if it has ended (reaping it), None if it runs.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    fn reap(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            // SAFETY: waiting for our own child, into a local.
            match unsafe { libc::waitpid(self.pid, &mut raw, flags) } {
                0 => return Ok(None),
                -1 => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
                _ => {
                    let status = ExitStatus::from_raw(raw);
                    self.status = Some(status);
                    return Ok(Some(status));
                }
            }
        }
    }
}

/// The file to start for `program`: a path (one with a `/`) as it is, a bare name in the
/// first directory of `PATH` holding an executable file of that name, as execvp (and so
/// `Command`) looks for it. Err if there is none (or only files that cannot be executed):
/// what starting it would have said.
pub(crate) fn find_program(program: &Path) -> io::Result<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        std::fs::metadata(program)?;
        return Ok(program.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let mut not_executable = false;
    for directory in path.as_bytes().split(|&byte| byte == b':') {
        // An empty entry is the current directory.
        let directory = match directory {
            b"" => Path::new("."),
            directory => Path::new(OsStr::from_bytes(directory)),
        };
        let candidate = directory.join(program);
        match std::fs::metadata(&candidate) {
            Ok(file) if file.is_file() && file.permissions().mode() & 0o111 != 0 => {
                return Ok(candidate)
            }
            Ok(_) => not_executable = true,
            Err(_) => {}
        }
    }
    Err(match not_executable {
        true => io::Error::from_raw_os_error(libc::EACCES),
        false => io::Error::from_raw_os_error(libc::ENOENT),
    })
}

/// A C string of `text`, which must hold no NUL.
fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in the executor's command line or environment",
        )
    })
}

/// Start `command`'s program with its arguments and this process's environment changed as
/// it says (nothing else of it is used), SIGPIPE at its default as `Command` does, and
/// `passed` at the same descriptor number in the new process.
///
/// `passed` stays close-on-exec here: the new process gets a copy that is not, made by
/// posix_spawn's file actions in the new process alone. Cleared here, any process this
/// process starts meanwhile (another thread's, or the caller's own while this thread starts
/// the executor) would inherit the executor's end of the connection, and keep the
/// connection open after the executor died.
fn spawn(command: &Command, passed: &UnixStream) -> io::Result<Child> {
    let program = c_string(command.get_program())?;
    let mut argv = vec![program.clone()];
    for arg in command.get_args() {
        argv.push(c_string(arg)?);
    }
    let mut environment: std::collections::BTreeMap<OsString, OsString> =
        std::env::vars_os().collect();
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => environment.insert(name.to_owned(), value.to_owned()),
            None => environment.remove(name),
        };
    }
    let mut envp = Vec::with_capacity(environment.len());
    for (name, value) in environment {
        let mut entry = name;
        entry.push("=");
        entry.push(value);
        envp.push(c_string(&entry)?);
    }
    let pointers = |strings: &[CString]| -> Vec<*mut libc::c_char> {
        strings
            .iter()
            .map(|s| s.as_ptr() as *mut libc::c_char)
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    };
    let (argv_pointers, envp_pointers) = (pointers(&argv), pointers(&envp));
    let target = passed.as_raw_fd();
    // A close-on-exec duplicate to copy from: dup2 onto `target` in the new process makes a
    // descriptor that is not close-on-exec, whatever the C library makes of dup2 onto itself.
    // SAFETY: duplicating a descriptor we own; the duplicate is owned below.
    let spare = unsafe { libc::fcntl(target, libc::F_DUPFD_CLOEXEC, 0) };
    if spare < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, ours alone.
    let spare = unsafe { OwnedFd::from_raw_fd(spare) };
    // SAFETY: the file actions and attributes are initialized before use and destroyed after;
    // every pointer passed lives (argv, envp and their strings) until posix_spawn returns,
    // which glibc does once the new program is loaded (or failed to be).
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attributes: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        let mut pid: libc::pid_t = 0;
        let mut result = libc::posix_spawn_file_actions_init(&mut actions);
        if result != 0 {
            return Err(io::Error::from_raw_os_error(result));
        }
        result = libc::posix_spawnattr_init(&mut attributes);
        if result == 0 {
            result =
                libc::posix_spawn_file_actions_adddup2(&mut actions, spare.as_raw_fd(), target);
            libc::sigemptyset(&mut defaults);
            libc::sigaddset(&mut defaults, libc::SIGPIPE);
            if result == 0 {
                result = libc::posix_spawnattr_setsigdefault(&mut attributes, &defaults);
            }
            if result == 0 {
                result = libc::posix_spawnattr_setflags(
                    &mut attributes,
                    libc::POSIX_SPAWN_SETSIGDEF as libc::c_short,
                );
            }
            if result == 0 {
                result = libc::posix_spawn(
                    &mut pid,
                    program.as_ptr(),
                    &actions,
                    &attributes,
                    argv_pointers.as_ptr(),
                    envp_pointers.as_ptr(),
                );
            }
            libc::posix_spawnattr_destroy(&mut attributes);
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        match result {
            0 => Ok(Child { pid, status: None }),
            error => Err(io::Error::from_raw_os_error(error)),
        }
    }
}

/// What the starting thread has to say.
enum State {
    /// Not heard from yet.
    Starting(Receiver<Started>),
    Running(Child),
    /// The executor could not be started: why (an OS error number, or the message).
    Failed(io::ErrorKind, Option<i32>, String),
}

/// The executor process, started (or being started) by a thread of its own.
pub(crate) struct Spawned {
    state: State,
    /// The starting thread waits on this: a child sent is reaped before the thread ends;
    /// dropping the sender ends it at once.
    finish: Option<Sender<Child>>,
    /// The executor's end of the connection, when the executor could not be started: held
    /// here, shut for writing, until the caller is done with the connection (see `start`).
    _unused_end: Option<UnixStream>,
}

/// What the starting thread sends back: the executor, or why it could not be started and
/// the end of the connection it would have had.
type Started = Result<Child, (io::Error, UnixStream)>;

/// The starting thread's stack: it only spawns a process and waits.
const STACK_SIZE: usize = 128 << 10;

/// Set the calling thread's signal mask to `blocked` (see `start_state::signal_set`).
fn set_mask(blocked: u64) {
    let set = rjitlink_target::start_state::signal_set(blocked);
    // SAFETY: an initialized signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Start a thread named `name` that runs `work` with every signal blocked, as the linker's
/// worker threads do: signals meant for the process (or for a host's own threads) are not
/// taken by it.
pub(crate) fn start_quiet_thread(
    name: &str,
    stack_size: usize,
    work: impl FnOnce() + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    let previous = rjitlink_target::start_state::blocked_signals();
    // A new thread inherits the mask of the thread that starts it.
    set_mask(u64::MAX);
    let thread = std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack_size)
        .spawn(work);
    set_mask(previous);
    thread
}

impl Spawned {
    /// Start `command` on a new thread. `theirs`, the executor's end of the connection, is
    /// closed here once the executor has it, so that only the executor holds it.
    ///
    /// If the executor cannot be started, `theirs` is not closed but shut for writing and
    /// kept until `Spawned` goes: the caller, which sent its hello and may send more before it
    /// learns of the failure, reads the end of the connection at its first answer (and asks
    /// `child` why), rather than having a write fail on a connection with no other end — an
    /// error of its own, and SIGPIPE for a host that does not ignore it.
    pub(crate) fn start(command: Command, theirs: UnixStream) -> io::Result<Spawned> {
        let (started_tx, started) = channel::<Started>();
        let (finish, finish_rx) = channel::<Child>();
        let previous = rjitlink_target::start_state::blocked_signals();
        start_quiet_thread("rjitlink-spawn", STACK_SIZE, move || {
            // The executor starts with the caller's mask (posix_spawn passes the spawning
            // thread's on); the thread blocks every signal again once it has started.
            set_mask(previous);
            let child = spawn(&command, &theirs);
            set_mask(u64::MAX);
            let child = match child {
                Ok(child) => {
                    drop(theirs);
                    Ok(child)
                }
                Err(error) => {
                    let _ = theirs.shutdown(std::net::Shutdown::Write);
                    Err((error, theirs))
                }
            };
            // The receiver lives until `Spawned` has the child (see `Drop`).
            let _ = started_tx.send(child);
            if let Ok(mut child) = finish_rx.recv() {
                let _ = child.wait();
            }
        })
        .map(drop)?;
        Ok(Spawned {
            state: State::Starting(started),
            finish: Some(finish),
            _unused_end: None,
        })
    }

    /// The executor process, once started: waits for the start. Err says why it could not
    /// be started.
    pub(crate) fn child(&mut self) -> io::Result<&mut Child> {
        if let State::Starting(started) = &self.state {
            self.state = match started.recv() {
                Ok(Ok(child)) => State::Running(child),
                Ok(Err((error, theirs))) => {
                    self._unused_end = Some(theirs);
                    State::Failed(error.kind(), error.raw_os_error(), error.to_string())
                }
                Err(_) => State::Failed(
                    io::ErrorKind::Other,
                    None,
                    "the thread starting the executor ended".into(),
                ),
            };
        }
        match &mut self.state {
            State::Running(child) => Ok(child),
            State::Failed(_, Some(code), _) => Err(io::Error::from_raw_os_error(*code)),
            State::Failed(kind, None, message) => Err(io::Error::new(*kind, message.clone())),
            State::Starting(_) => unreachable!("settled above"),
        }
    }

    /// The executor's pid, once started.
    pub(crate) fn id(&mut self) -> Option<u32> {
        self.child().ok().map(|child| child.id())
    }

    /// Wait for the executor to end, and reap it. None if it never started.
    pub(crate) fn wait(&mut self) -> Option<ExitStatus> {
        self.child().ok().and_then(|child| child.wait().ok())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let finish = self.finish.take();
        // A running executor is left to the starting thread, which reaps it once it ends (the
        // caller asked it to stop), so that it leaves no zombie; it keeps its parent until
        // then. Otherwise the thread ends now.
        let running = matches!(self.child().map(|child| child.try_wait()), Ok(Ok(None)));
        if running {
            if let (State::Running(child), Some(finish)) = (
                std::mem::replace(
                    &mut self.state,
                    State::Failed(io::ErrorKind::Other, None, String::new()),
                ),
                finish,
            ) {
                let _ = finish.send(child);
            }
        }
    }
}
