//! The signal state a program starts with: which signals are blocked and which ignored.
//!
//! A program started natively inherits both from its parent (every other signal is at its
//! default action, since exec drops handlers). By the time linked code runs, rjitlink's process
//! is no longer in that state: the Rust runtime ignores SIGPIPE before `main` (so that a write
//! to a closed pipe fails with EPIPE) and handles SIGSEGV and SIGBUS on an alternate stack (to
//! report stack overflows). And the standard library's `Command` starts every process with
//! SIGPIPE at its default, so that a process rjitlink starts (an executor, or rjitlink run
//! again) cannot tell whether the user started rjitlink with SIGPIPE ignored (`trap '' PIPE`);
//! some versions of it empty the signal mask too.
//!
//! So the state is recorded as rjitlink starts, before the Rust runtime changes it (by a
//! function in `.init_array`, which the C runtime runs before `main`); it travels to every
//! process rjitlink starts to run linked code in [`INHERITED_VAR`] ([`pass_on`]), which that
//! process takes out of its environment first thing ([`adopt_inherited`]); and the executor
//! puts it back just before the program's first init function runs.

use std::ffi::c_int;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Carries [`startup`]'s state to a process rjitlink starts, as `BLOCKED:IGNORED` (hex
/// [`SignalState`] bit sets). Removed from the environment before the program runs.
pub const INHERITED_VAR: &str = "RJITLINK_SIGNAL_STATE";

/// Linux numbers signals 1 to 64 (the kernel's signal set is 64 bits wide).
pub const SIGNALS: std::ops::RangeInclusive<c_int> = 1..=64;

/// Which signals are blocked in a thread and which are ignored by its process: bit `n - 1` of
/// each set stands for signal `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalState {
    pub blocked: u64,
    pub ignored: u64,
}

fn bit(signal: c_int) -> u64 {
    1 << (signal - 1)
}

impl SignalState {
    /// The calling thread's signal mask and the process's ignored signals, now. Only system
    /// calls: safe to call before the Rust runtime is set up.
    pub fn of_this_thread() -> SignalState {
        let mut state = SignalState {
            blocked: blocked_signals(),
            ignored: 0,
        };
        for signal in SIGNALS {
            if action(signal).is_some_and(|action| action.sa_sigaction == libc::SIG_IGN) {
                state.ignored |= bit(signal);
            }
        }
        state
    }

    pub fn is_blocked(&self, signal: c_int) -> bool {
        self.blocked & bit(signal) != 0
    }

    pub fn is_ignored(&self, signal: c_int) -> bool {
        self.ignored & bit(signal) != 0
    }

    /// As [`INHERITED_VAR`] carries it.
    pub fn encode(&self) -> String {
        format!("{:x}:{:x}", self.blocked, self.ignored)
    }

    /// The inverse of [`encode`](Self::encode); `None` for anything it did not write.
    pub fn decode(text: &str) -> Option<SignalState> {
        let (blocked, ignored) = text.split_once(':')?;
        Some(SignalState {
            blocked: u64::from_str_radix(blocked, 16).ok()?,
            ignored: u64::from_str_radix(ignored, 16).ok()?,
        })
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

fn record(state: SignalState) {
    STARTUP_BLOCKED.store(state.blocked, Ordering::Relaxed);
    STARTUP_IGNORED.store(state.ignored, Ordering::Relaxed);
    RECORDED.store(true, Ordering::Release);
}

extern "C" fn record_at_startup() {
    record(SignalState::of_this_thread());
}

/// Run by the C runtime before `main`, so before the Rust runtime ignores SIGPIPE. (`#[used]`
/// keeps it in any program that links this crate.)
#[used]
#[link_section = ".init_array"]
static RECORD_AT_STARTUP: extern "C" fn() = record_at_startup;

/// The signal state the program should start with: this process's at startup, or the one
/// inherited from the rjitlink that started it. If nothing was recorded (a program whose C
/// runtime did not run `.init_array`), the calling thread's now, without the Rust runtime's
/// SIGPIPE.
pub fn startup() -> SignalState {
    if RECORDED.load(Ordering::Acquire) {
        return SignalState {
            blocked: STARTUP_BLOCKED.load(Ordering::Relaxed),
            ignored: STARTUP_IGNORED.load(Ordering::Relaxed),
        };
    }
    let mut now = SignalState::of_this_thread();
    now.ignored &= !bit(libc::SIGPIPE);
    now
}

/// Give a process rjitlink starts to run linked code (an executor, or rjitlink run again) the
/// signal state to start the program with.
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
    if let Some(state) = value.to_str().and_then(SignalState::decode) {
        record(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [
            SignalState::default(),
            SignalState {
                blocked: bit(libc::SIGINT) | bit(64),
                ignored: bit(libc::SIGPIPE) | bit(1),
            },
            SignalState {
                blocked: u64::MAX,
                ignored: u64::MAX,
            },
        ] {
            assert_eq!(SignalState::decode(&state.encode()), Some(state));
        }
        for garbage in ["", ":", "1", "x:1", "1:2:3", "10000000000000000:0"] {
            assert_eq!(SignalState::decode(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn the_startup_state_was_recorded_before_the_rust_runtime_ignored_sigpipe() {
        // The test harness runs under the Rust runtime, which ignores SIGPIPE; the state
        // recorded before it did has SIGPIPE as the harness's parent left it, and cargo starts
        // tests with SIGPIPE at its default.
        assert!(RECORDED.load(Ordering::Acquire));
        assert!(SignalState::of_this_thread().is_ignored(libc::SIGPIPE));
        assert!(!startup().is_ignored(libc::SIGPIPE));
        let set = signal_set(bit(libc::SIGINT) | bit(64));
        // SAFETY: an initialized set.
        let members: Vec<c_int> = SIGNALS
            .filter(|&signal| unsafe { libc::sigismember(&set, signal) } == 1)
            .collect();
        assert_eq!(members, [libc::SIGINT, 64]);
    }
}
