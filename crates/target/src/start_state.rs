//! What a program inherits as it starts and rjitlink's process no longer has by the time linked
//! code runs: which signals are blocked and which ignored, and which standard descriptors (0,
//! 1, 2) are closed.
//!
//! A program started natively inherits these from its parent (every signal not ignored is at
//! its default action, since exec drops handlers). The Rust runtime changes them before `main`:
//! it ignores SIGPIPE (so that a write to a closed pipe fails with EPIPE), handles SIGSEGV and
//! SIGBUS on an alternate stack (to report stack overflows), and opens /dev/null on a closed
//! standard descriptor. And the standard library's `Command` starts every process with SIGPIPE
//! at its default, so that a process rjitlink starts (an executor, or rjitlink run again)
//! cannot tell whether the user started rjitlink with SIGPIPE ignored (`trap '' PIPE`); some
//! versions of it empty the signal mask too.
//!
//! So the state is recorded as rjitlink starts, before the Rust runtime changes it (by a
//! function in `.init_array`, which the C runtime runs before `main`); it travels to every
//! process rjitlink starts to run linked code in [`INHERITED_VAR`] ([`pass_on`]), which that
//! process takes out of its environment first thing ([`adopt_inherited`]); and the executor
//! puts it back just before the program's first init function runs.

use std::ffi::c_int;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Carries [`startup`]'s state to a process rjitlink starts, as `BLOCKED:IGNORED:CLOSED` (hex
/// [`StartState`] bit sets). Removed from the environment before the program runs.
pub const INHERITED_VAR: &str = "RJITLINK_START_STATE";

/// Linux numbers signals 1 to 64 (the kernel's signal set is 64 bits wide).
pub const SIGNALS: std::ops::RangeInclusive<c_int> = 1..=64;

/// Which signals are blocked in a thread and which are ignored by its process (bit `n - 1` of
/// each set stands for signal `n`), and which standard descriptors are closed (bit `fd`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartState {
    /// Blocked signals (bit `n - 1` for signal `n`).
    pub blocked: u64,
    /// Ignored signals.
    pub ignored: u64,
    /// Closed standard descriptors (bit `fd`).
    pub closed: u8,
}

fn bit(signal: c_int) -> u64 {
    1 << (signal - 1)
}

impl StartState {
    /// The calling thread's signal mask, the process's ignored signals and closed standard
    /// descriptors, now. Only system calls: safe to call before the Rust runtime is set up.
    pub fn of_this_thread() -> StartState {
        let mut state = StartState {
            blocked: blocked_signals(),
            ignored: 0,
            closed: 0,
        };
        for signal in SIGNALS {
            if action(signal).is_some_and(|action| action.sa_sigaction == libc::SIG_IGN) {
                state.ignored |= bit(signal);
            }
        }
        for fd in 0..3 {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
                state.closed |= 1 << fd;
            }
        }
        state
    }

    /// Whether `signal` is blocked.
    pub fn is_blocked(&self, signal: c_int) -> bool {
        self.blocked & bit(signal) != 0
    }

    /// Whether `signal` is ignored.
    pub fn is_ignored(&self, signal: c_int) -> bool {
        self.ignored & bit(signal) != 0
    }

    /// Whether standard descriptor `fd` (0, 1 or 2) is closed.
    pub fn is_closed(&self, fd: c_int) -> bool {
        (0..3).contains(&fd) && self.closed & (1 << fd) != 0
    }

    /// As [`INHERITED_VAR`] carries it.
    pub fn encode(&self) -> String {
        format!("{:x}:{:x}:{:x}", self.blocked, self.ignored, self.closed)
    }

    /// The inverse of [`encode`](Self::encode); `None` for anything it did not write.
    pub fn decode(text: &str) -> Option<StartState> {
        let mut fields = text.split(':');
        let state = StartState {
            blocked: u64::from_str_radix(fields.next()?, 16).ok()?,
            ignored: u64::from_str_radix(fields.next()?, 16).ok()?,
            closed: u8::from_str_radix(fields.next()?, 16)
                .ok()
                .filter(|closed| *closed < 8)?,
        };
        fields.next().is_none().then_some(state)
    }
}

/// The action for `signal`, or `None` if it has none to read (a number glibc keeps for itself).
pub fn action(signal: c_int) -> Option<libc::sigaction> {
    let mut action = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: reading an action into memory we own.
    (unsafe { libc::sigaction(signal, std::ptr::null(), action.as_mut_ptr()) } == 0)
        // SAFETY: initialized by the successful call (and zeroed before it).
        .then(|| unsafe { action.assume_init() })
}

/// The calling thread's signal mask, as a bit set.
pub fn blocked_signals() -> u64 {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: with no new set, pthread_sigmask only stores the current mask in `set`.
    let set = unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr());
        set.assume_init()
    };
    SIGNALS
        // SAFETY: `set` is an initialized signal set.
        .filter(|&signal| unsafe { libc::sigismember(&set, signal) } == 1)
        .fold(0, |blocked, signal| blocked | bit(signal))
}

/// `blocked` as a signal set.
pub fn signal_set(blocked: u64) -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigemptyset initializes the set, sigaddset fills it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for signal in SIGNALS.filter(|&signal| blocked & bit(signal) != 0) {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        set.assume_init()
    }
}

/// The state this process started with (or inherited from the rjitlink that started it); the
/// atomics are written only before `main` and by [`adopt_inherited`], which runs first in it.
static RECORDED: AtomicBool = AtomicBool::new(false);
static STARTUP_BLOCKED: AtomicU64 = AtomicU64::new(0);
static STARTUP_IGNORED: AtomicU64 = AtomicU64::new(0);
static STARTUP_CLOSED: AtomicU8 = AtomicU8::new(0);

fn record(state: StartState) {
    STARTUP_BLOCKED.store(state.blocked, Ordering::Relaxed);
    STARTUP_IGNORED.store(state.ignored, Ordering::Relaxed);
    STARTUP_CLOSED.store(state.closed, Ordering::Relaxed);
    RECORDED.store(true, Ordering::Release);
}

extern "C" fn record_at_startup() {
    record(StartState::of_this_thread());
}

/// Run by the C runtime before `main`, so before the Rust runtime changes anything. (`#[used]`
/// keeps it in any program that links this crate.)
#[used]
#[link_section = ".init_array"]
static RECORD_AT_STARTUP: extern "C" fn() = record_at_startup;

/// The state the program should start with: this process's at startup, or the one inherited
/// from the rjitlink that started it. If nothing was recorded (a program whose C runtime did
/// not run `.init_array`), the calling thread's now, without the Rust runtime's SIGPIPE (its
/// /dev/null on closed descriptors cannot be told from the user's).
pub fn startup() -> StartState {
    if RECORDED.load(Ordering::Acquire) {
        return StartState {
            blocked: STARTUP_BLOCKED.load(Ordering::Relaxed),
            ignored: STARTUP_IGNORED.load(Ordering::Relaxed),
            closed: STARTUP_CLOSED.load(Ordering::Relaxed),
        };
    }
    let mut now = StartState::of_this_thread();
    now.ignored &= !bit(libc::SIGPIPE);
    now
}

/// Give a process rjitlink starts to run linked code (an executor, or rjitlink run again) the
/// state to start the program with.
pub fn pass_on(command: &mut Command) {
    command.env(INHERITED_VAR, startup().encode());
}

/// At the start of a process that [`pass_on`] may have started: take the state it carries as
/// this process's startup state, and remove it from the environment. A value rjitlink did not
/// write is removed and otherwise ignored.
///
/// Call before any other thread exists: it changes the environment.
pub fn adopt_inherited() {
    let Some(value) = std::env::var_os(INHERITED_VAR) else {
        return;
    };
    std::env::remove_var(INHERITED_VAR);
    if let Some(state) = value.to_str().and_then(StartState::decode) {
        record(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [
            StartState::default(),
            StartState {
                blocked: bit(libc::SIGINT) | bit(64),
                ignored: bit(libc::SIGPIPE) | bit(1),
                closed: 0b010,
            },
            StartState {
                blocked: u64::MAX,
                ignored: u64::MAX,
                closed: 0b111,
            },
        ] {
            assert_eq!(StartState::decode(&state.encode()), Some(state));
        }
        for garbage in [
            "",
            "::",
            "1:2",
            "x:1:0",
            "1:2:3:4",
            "1:2:8",
            "10000000000000000:0:0",
        ] {
            assert_eq!(StartState::decode(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn the_startup_state_was_recorded_before_the_rust_runtime_ignored_sigpipe() {
        // The test harness runs under the Rust runtime, which ignores SIGPIPE; the state
        // recorded before it did has SIGPIPE as the harness's parent left it, and cargo starts
        // tests with SIGPIPE at its default.
        assert!(RECORDED.load(Ordering::Acquire));
        assert!(StartState::of_this_thread().is_ignored(libc::SIGPIPE));
        assert!(!startup().is_ignored(libc::SIGPIPE));
        let set = signal_set(bit(libc::SIGINT) | bit(64));
        // SAFETY: an initialized set.
        let members: Vec<c_int> = SIGNALS
            .filter(|&signal| unsafe { libc::sigismember(&set, signal) } == 1)
            .collect();
        assert_eq!(members, [libc::SIGINT, 64]);
    }
}
