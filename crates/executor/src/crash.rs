//! Crash reports: when linked code dies of SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP or SIGABRT
//! and the program has no handler of its own for it, one report goes to stderr — the signal,
//! the faulting address, the frames — and the process then dies of the same signal, so that
//! its exit status and core dump are what they would have been.
//!
//! The handler runs on an alternate stack (the main thread's; a thread of the program's uses
//! its own stack) and does only async-signal-safe work plus glibc's `backtrace`, which walks
//! the signal frame and the linked code with the unwind tables the `eh_frame` plugin
//! registered; the helper thread below calls it once as it starts, so that libgcc_s is loaded
//! and the unwinder has sorted the registered tables (both allocate) before a crash. The
//! frames then go through a mailbox (a static record and a futex word: no descriptors, whose
//! table would have to grow, stalling a threaded process for an RCU grace period) to the
//! helper thread, started before the program, which may allocate and take locks: it names
//! library frames (`dladdr`) and hands the report to the [`Reporter`] (print it in process,
//! send it to the linker remotely). The handler waits for its answer a bounded time; without
//! one (the helper stuck on a lock the crashed thread held, or no helper: a child the program
//! forked), it writes the raw addresses itself. Then it sets the signal's action back to the
//! default and raises it again, and returning lets the kernel deliver it.
//!
//! A program that installs its own handler replaces ours: it gets no report, as natively.

use rjitlink_memory::TargetAddr;
use rjitlink_target::symbolize::MAX_CRASH_FRAMES;
use rjitlink_target::{CrashFrame, CrashReport, LibraryFrame};
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// The signals reported: those of a crash, which by default end the process with a core.
pub const CRASH_SIGNALS: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
];

/// How long the handler waits for the helper thread's report (milliseconds).
const HELPER_TIMEOUT_MS: c_int = 5000;

/// The alternate signal stack of the thread that runs the program: room for `backtrace`.
const ALTERNATE_STACK_SIZE: usize = 256 << 10;

/// What the handler hands the helper thread: plain words.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawRecord {
    signal: i32,
    code: i32,
    address: u64,
    count: u64,
    frames: [u64; MAX_CRASH_FRAMES],
}

/// Hands a crash report on; runs on the helper thread (it may allocate and take locks).
pub type Reporter = Box<dyn Fn(&CrashReport) + Send>;

/// The mailbox between the handler and the helper thread: `MAILBOX_STATE` says whose turn it
/// is (futex word), `MAILBOX` holds the record while the handler waits.
struct Mailbox(std::cell::UnsafeCell<RawRecord>);

// SAFETY: the record is written by the one reporting handler before it sets REQUESTED, and
// read by the helper only after it sees REQUESTED (acquire/release on MAILBOX_STATE).
unsafe impl Sync for Mailbox {}

static MAILBOX: Mailbox = Mailbox(std::cell::UnsafeCell::new(RawRecord {
    signal: 0,
    code: 0,
    address: 0,
    count: 0,
    frames: [0; MAX_CRASH_FRAMES],
}));
static MAILBOX_STATE: AtomicU32 = AtomicU32::new(NO_HELPER);
/// `MAILBOX_STATE`: no helper thread (yet), the helper waits, a report is requested, it is
/// done.
const NO_HELPER: u32 = 0;
const WAITING: u32 = 1;
const REQUESTED: u32 = 2;
const REPORTED: u32 = 3;

/// Wait while `word` holds `expected`, at most `timeout` (forever if `None`). Async-signal-safe.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<libc::timespec>) {
    let timeout = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: a futex wait on a word of ours; returns on a wake, a timeout, a signal, or at
    // once if the word no longer holds `expected`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            timeout,
        )
    };
}

/// Wake whoever waits on `word`. Async-signal-safe.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: a futex wake on a word of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// The process the helper thread lives in: a child the program forks has no helper.
static HELPER_PID: AtomicI32 = AtomicI32::new(0);
/// The thread reporting a crash (0: none): a second crashing thread waits for it to end the
/// process.
static REPORTING_THREAD: AtomicI32 = AtomicI32::new(0);

extern "C" {
    fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
}

/// Whether the program started with its standard error open. Started with it closed
/// (`2>&-`), descriptor 2 is whatever the program opens first, and a report written there
/// would land in one of the program's own files: none is written in this process then.
static STDERR_OPEN: AtomicBool = AtomicBool::new(false);

/// Whether a report may be written on descriptor 2 of this process (see `STDERR_OPEN`).
/// Async-signal-safe.
pub(crate) fn stderr_open() -> bool {
    STDERR_OPEN.load(Ordering::Relaxed)
}

/// Set up crash reports in the thread about to run the program, after its signal state was
/// put back: for each crash signal whose action is the default, a handler on an alternate
/// stack; a helper thread that gives each report to `reporter`. Best effort: what cannot be
/// set up is left as it was (the program then dies unreported, as natively).
pub(crate) fn install(reporter: Reporter) {
    // SAFETY: F_GETFD on a descriptor number only reads its flags (-1 if it is closed).
    let stderr_open = unsafe { libc::fcntl(2, libc::F_GETFD) } != -1;
    STDERR_OPEN.store(stderr_open, Ordering::Relaxed);
    let signals: Vec<c_int> = CRASH_SIGNALS
        .into_iter()
        .filter(|&signal| {
            rjitlink_target::start_state::action(signal)
                .is_some_and(|action| action.sa_sigaction == libc::SIG_DFL)
        })
        .collect();
    if signals.is_empty() {
        return;
    }
    if start_helper(reporter).is_err() {
        return;
    }
    HELPER_PID.store(std::process::id() as i32, Ordering::Relaxed);
    // A fork while the helper warms the unwinder up would give the child libgcc's lock held
    // by a thread it does not have: the child's first unwind (an exception, a crash) would
    // wait for it forever. The program's forks wait for the warm-up instead (milliseconds,
    // once).
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registering a prepare handler that only waits on a futex.
        unsafe { libc::pthread_atfork(Some(before_fork), None, None) };
    });
    set_alternate_stack();
    for signal in signals {
        // SAFETY: installing a handler that does async-signal-safe work (and `backtrace`,
        // warmed above); every signal is blocked while it runs.
        unsafe {
            let mut action = std::mem::zeroed::<libc::sigaction>();
            action.sa_sigaction = on_crash as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigfillset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Run in the thread that forks, before the fork: wait (at most `HELPER_TIMEOUT_MS`) until the
/// helper is done warming the unwinder up, so that the child gets none of its locks held.
extern "C" fn before_fork() {
    // SAFETY: getpid has no preconditions.
    if HELPER_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() } {
        wait_while(NO_HELPER, &Deadline::start(HELPER_TIMEOUT_MS));
    }
}

/// An alternate signal stack for this thread, so that a stack overflow is reported too. The
/// memory is never freed: the program may crash until the process ends.
fn set_alternate_stack() {
    // SAFETY: a fresh private mapping, owned by the kernel's stack record from here on.
    unsafe {
        let memory = libc::mmap(
            std::ptr::null_mut(),
            ALTERNATE_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if memory == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t {
            ss_sp: memory,
            ss_flags: 0,
            ss_size: ALTERNATE_STACK_SIZE,
        };
        libc::sigaltstack(&stack, std::ptr::null_mut());
    }
}

/// Start the helper thread with every signal blocked: it must never take one of the
/// program's.
fn start_helper(reporter: Reporter) -> std::io::Result<()> {
    // SAFETY: sigset operations on local sets; the mask is put back below.
    let previous = unsafe {
        let mut all = std::mem::zeroed::<libc::sigset_t>();
        let mut previous = std::mem::zeroed::<libc::sigset_t>();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        previous
    };
    let started = std::thread::Builder::new()
        .name("crash reports".into())
        .spawn(move || serve_reports(reporter));
    // SAFETY: putting back the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    started.map(drop)
}

/// The helper thread: each record from the handler becomes a report for `reporter`, then the
/// handler is told it may go on.
fn serve_reports(reporter: Reporter) {
    // Load libgcc_s and let the unwinder sort the registered unwind tables (the first lookup
    // does), here rather than in the handler: both allocate, which a handler must not. Here,
    // not before the program starts: sorting CPython's tables takes milliseconds, which the
    // program need not wait for (a crash meanwhile waits for the unwinder's lock instead).
    let mut warm = [std::ptr::null_mut::<c_void>(); 4];
    // SAFETY: a buffer of 4 entries.
    unsafe { backtrace(warm.as_mut_ptr(), warm.len() as c_int) };
    MAILBOX_STATE.store(WAITING, Ordering::Release);
    futex_wake(&MAILBOX_STATE);
    loop {
        let state = MAILBOX_STATE.load(Ordering::Acquire);
        if state != REQUESTED {
            futex_wait(&MAILBOX_STATE, state, None);
            continue;
        }
        // SAFETY: the handler wrote the record before setting REQUESTED and does not touch it
        // until REPORTED.
        let record = unsafe { *MAILBOX.0.get() };
        reporter(&report_of(&record));
        MAILBOX_STATE.store(REPORTED, Ordering::Release);
        futex_wake(&MAILBOX_STATE);
    }
}

/// The start of the object that holds `address`, per the loader.
fn object_base(address: u64) -> Option<u64> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills `info` for any address, or returns 0.
    if unsafe { libc::dladdr(address as *const c_void, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: filled by the successful call.
    Some(unsafe { info.assume_init() }.dli_fbase as u64)
}

/// The report of a raw record, library frames named by the loader. The frames end where
/// rjitlink's own code called the program (its `main`, or an init function): what lies
/// below is the executor's, not the program's.
fn report_of(record: &RawRecord) -> CrashReport {
    let count = (record.count as usize).min(MAX_CRASH_FRAMES);
    let ours = object_base(report_of as *const () as u64);
    let count = record.frames[..count]
        .iter()
        .skip(1)
        .position(|&pc| ours.is_some() && object_base(pc.saturating_sub(1)) == ours)
        .map_or(count, |index| index + 1);
    let frames = record.frames[..count]
        .iter()
        .enumerate()
        .map(|(index, &pc)| CrashFrame {
            pc: TargetAddr(pc),
            // A return address may be the first byte after its function: name the call.
            library: library_frame(if index == 0 { pc } else { pc.saturating_sub(1) }, pc),
        })
        .collect();
    CrashReport {
        signal: record.signal,
        code: record.code,
        address: TargetAddr(record.address),
        frames,
    }
}

/// The loaded object holding `lookup`, and its nearest symbol before it, with `pc`'s offset
/// from that symbol.
fn library_frame(lookup: u64, pc: u64) -> Option<LibraryFrame> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills `info` for any address, or returns 0.
    if unsafe { libc::dladdr(lookup as *const c_void, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: filled by the successful call.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: the loader's NUL-terminated strings, valid while the object is loaded.
    let text = |name: *const libc::c_char| unsafe { CStr::from_ptr(name) }.to_string_lossy();
    let symbol = (!info.dli_sname.is_null()).then(|| {
        (
            text(info.dli_sname).into_owned(),
            pc.wrapping_sub(info.dli_saddr as u64),
        )
    });
    Some(LibraryFrame {
        path: text(info.dli_fname).into_owned(),
        symbol,
    })
}

/// The handler of the crash signals (see the module's comment).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: gettid has no preconditions.
    let thread = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    if REPORTING_THREAD
        .compare_exchange(0, thread, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread is reporting and will end the process; this one waits for that.
        loop {
            // SAFETY: sleep is async-signal-safe.
            unsafe { libc::sleep(1) };
        }
    }
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    let (code, address, pc, frame_pointer, stack_pointer) = unsafe {
        let context = &*(context as *const libc::ucontext_t);
        let register = |index: c_int| context.uc_mcontext.gregs[index as usize] as u64;
        (
            (*info).si_code,
            (*info).si_addr() as u64,
            register(libc::REG_RIP),
            register(libc::REG_RBP),
            register(libc::REG_RSP),
        )
    };
    let mut record = RawRecord {
        signal,
        code,
        address,
        count: 1,
        frames: [0; MAX_CRASH_FRAMES],
    };
    record.frames[0] = pc;
    // The callers: what `backtrace` finds past the signal frame, which holds the faulting pc.
    // Not in a child the program forked: a lock of the unwinder's that another thread of the
    // parent held at the fork stays held in the child forever. The child follows the frame
    // pointers below instead.
    // SAFETY: getpid is async-signal-safe.
    let forked_child = HELPER_PID.load(Ordering::Relaxed) != unsafe { libc::getpid() };
    let mut trace = [std::ptr::null_mut::<c_void>(); MAX_CRASH_FRAMES + 8];
    let found = if forked_child {
        0
    } else {
        // SAFETY: a buffer of the size given; warmed up by the helper.
        unsafe { backtrace(trace.as_mut_ptr(), trace.len() as c_int) }.max(0) as usize
    };
    if let Some(at) = trace[..found].iter().position(|&frame| frame as u64 == pc) {
        for &frame in &trace[at + 1..found] {
            if record.count as usize == MAX_CRASH_FRAMES {
                break;
            }
            record.frames[record.count as usize] = frame as u64;
            record.count += 1;
        }
    }
    // No unwind table for the faulting code (assembly without CFI, code built without
    // unwind tables): its callers by the frame pointers, where they are kept.
    if record.count == 1 {
        walk_frame_pointers(&mut record, frame_pointer, stack_pointer);
    }
    if !report_through_helper(&record) {
        write_raw(&record);
    }
    // SAFETY: async-signal-safe calls. With the default action back, the signal raised here
    // stays pending (every signal is blocked in this handler) and ends the process as the
    // handler returns; a fault raises its own again as the instruction runs again.
    unsafe {
        let mut action = std::mem::zeroed::<libc::sigaction>();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &action, std::ptr::null_mut());
        libc::raise(signal);
    }
}

/// How far above the stack pointer a frame may lie: frame pointers beyond are not believed.
const FRAME_POINTER_REACH: u64 = 64 << 20;

/// Read a word of this process's memory without faulting: None where it is not readable.
/// Async-signal-safe (a system call).
fn read_word(address: u64) -> Option<u64> {
    let mut word = 0u64;
    let local = libc::iovec {
        iov_base: &mut word as *mut u64 as *mut c_void,
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: address as *mut c_void,
        iov_len: 8,
    };
    // SAFETY: reads into our own word; a bad address fails with EFAULT instead of faulting.
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (read == 8).then_some(word)
}

/// Add the callers found by following saved frame pointers from `frame_pointer`: each frame
/// holds its caller's frame pointer and, above it, the return address. Frames must lie above
/// the stack pointer, within reach, aligned and ascending, or the walk stops.
fn walk_frame_pointers(record: &mut RawRecord, frame_pointer: u64, stack_pointer: u64) {
    let mut frame = frame_pointer;
    while (record.count as usize) < MAX_CRASH_FRAMES
        && frame >= stack_pointer
        && frame - stack_pointer < FRAME_POINTER_REACH
        && frame.is_multiple_of(8)
    {
        let (Some(caller_frame), Some(return_address)) =
            (read_word(frame), frame.checked_add(8).and_then(read_word))
        else {
            return;
        };
        if return_address == 0 {
            return;
        }
        record.frames[record.count as usize] = return_address;
        record.count += 1;
        if caller_frame <= frame {
            return;
        }
        frame = caller_frame;
    }
}

/// Hand the record to the helper thread and wait for its answer; false if there is no helper
/// in this process (yet, or a child the program forked) or it did not answer in time.
fn report_through_helper(record: &RawRecord) -> bool {
    // SAFETY: getpid is async-signal-safe.
    if HELPER_PID.load(Ordering::Relaxed) != unsafe { libc::getpid() } {
        return false;
    }
    let deadline = Deadline::start(HELPER_TIMEOUT_MS);
    // A helper still warming up (a crash as the program starts) is waited for.
    if !wait_while(NO_HELPER, &deadline) {
        return false;
    }
    if MAILBOX_STATE.load(Ordering::Acquire) != WAITING {
        return false;
    }
    // SAFETY: only the one reporting thread gets here (REPORTING_THREAD), and the helper
    // reads the record only once it sees REQUESTED.
    unsafe { *MAILBOX.0.get() = *record };
    MAILBOX_STATE.store(REQUESTED, Ordering::Release);
    futex_wake(&MAILBOX_STATE);
    wait_while(REQUESTED, &deadline) && MAILBOX_STATE.load(Ordering::Acquire) == REPORTED
}

/// A point in time on the monotonic clock, read async-signal-safely.
struct Deadline {
    at: u128,
}

fn monotonic_nanos() -> u128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe; fills `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
}

impl Deadline {
    fn start(milliseconds: c_int) -> Deadline {
        Deadline {
            at: monotonic_nanos() + milliseconds as u128 * 1_000_000,
        }
    }

    /// What is left of the time, `None` once it has passed.
    fn left(&self) -> Option<libc::timespec> {
        let left = self.at.checked_sub(monotonic_nanos()).filter(|&l| l > 0)?;
        Some(libc::timespec {
            tv_sec: (left / 1_000_000_000) as libc::time_t,
            tv_nsec: (left % 1_000_000_000) as libc::c_long,
        })
    }
}

/// Wait while the mailbox's state is `state`; false if the deadline passed first.
fn wait_while(state: u32, deadline: &Deadline) -> bool {
    while MAILBOX_STATE.load(Ordering::Acquire) == state {
        let Some(left) = deadline.left() else {
            return false;
        };
        futex_wait(&MAILBOX_STATE, state, Some(left));
    }
    true
}

/// Write the record as text with no allocation: the signal, address and frames in hex.
fn write_raw(record: &RawRecord) {
    if !stderr_open() {
        return;
    }
    let mut line = Line::default();
    line.push(b"rjitlink: crash: signal ");
    line.number(record.signal as u64, 10);
    line.push(b" at address 0x");
    line.number(record.address, 16);
    line.push(b"\n");
    line.flush();
    for &frame in &record.frames[..(record.count as usize).min(MAX_CRASH_FRAMES)] {
        line.push(b"  0x");
        line.number(frame, 16);
        line.push(b"\n");
        line.flush();
    }
}

/// A line of output built on the stack.
struct Line {
    bytes: [u8; 128],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            bytes: [0; 128],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, text: &[u8]) {
        let room = self.bytes.len() - self.len;
        let taken = text.len().min(room);
        self.bytes[self.len..self.len + taken].copy_from_slice(&text[..taken]);
        self.len += taken;
    }

    fn number(&mut self, mut value: u64, base: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[(value % base) as usize];
            value /= base;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn flush(&mut self) {
        // SAFETY: write is async-signal-safe; the bytes are ours.
        unsafe { libc::write(2, self.bytes.as_ptr() as *const c_void, self.len) };
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines_are_built_without_allocating() {
        let mut line = Line::default();
        line.push(b"0x");
        line.number(0xdead_beef, 16);
        line.push(b" ");
        line.number(11, 10);
        line.push(b" ");
        line.number(0, 16);
        assert_eq!(&line.bytes[..line.len], b"0xdeadbeef 11 0");
        // Too long a line is cut, never overflows.
        let mut long = Line::default();
        for _ in 0..100 {
            long.push(b"abc");
        }
        assert_eq!(long.len, 128);
    }
}
