//! Crash reports: when linked code dies of SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP or SIGABRT
//! and the program has no handler of its own for it, one report goes to stderr — the signal,
//! the faulting address, the frames — and the process then dies of the same signal, so that
//! its exit status and core dump are what they would have been.
//!
//! The handler runs on an alternate stack (the main thread's; a thread of the program's uses
//! its own stack) and does only async-signal-safe work plus glibc's `backtrace`, which walks
//! the signal frame and the linked code with the unwind tables the `eh_frame` plugin
//! registered; it is called once before the program runs, so that it has loaded libgcc_s and
//! the unwinder has sorted the registered tables (both allocate) before any crash. The frames
//! then go through a pipe to a helper thread started before the program, which may allocate
//! and take locks: it names library frames (`dladdr`) and hands the report to the
//! [`Reporter`] (print it in process, send it to the linker remotely). The handler waits for
//! its answer a bounded time; without one (the helper stuck on a lock the crashed thread
//! held), it writes the raw addresses itself. Then it sets the signal's action back to the
//! default and raises it again, and returning lets the kernel deliver it.
//!
//! A program that installs its own handler replaces ours: it gets no report, as natively.

use rjitlink_memory::TargetAddr;
use rjitlink_target::symbolize::MAX_CRASH_FRAMES;
use rjitlink_target::{CrashFrame, CrashReport, LibraryFrame};
use std::ffi::{c_int, c_void, CStr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

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

/// What the handler hands the helper thread: plain words, written to the pipe in one
/// `write` (smaller than PIPE_BUF, so never split).
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

/// The write end of the pipe to the helper thread (-1 before `install`).
static TO_HELPER: AtomicI32 = AtomicI32::new(-1);
/// The read end of the helper's answers.
static FROM_HELPER: AtomicI32 = AtomicI32::new(-1);
/// The process the helper thread lives in: a child the program forks has no helper.
static HELPER_PID: AtomicI32 = AtomicI32::new(0);
/// The thread reporting a crash (0: none): a second crashing thread waits for it to end the
/// process.
static REPORTING_THREAD: AtomicI32 = AtomicI32::new(0);

extern "C" {
    fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
}

/// A pipe whose ends are out of the program's way (high descriptors, close-on-exec).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors, owned from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((
        crate::start_state::out_of_the_programs_way(read),
        crate::start_state::out_of_the_programs_way(write),
    ))
}

/// Set up crash reports in the thread about to run the program, after its signal state was
/// put back: for each crash signal whose action is the default, a handler on an alternate
/// stack; a helper thread that gives each report to `reporter`. Best effort: what cannot be
/// set up is left as it was (the program then dies unreported, as natively).
pub(crate) fn install(reporter: Reporter) {
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
    let Ok(((request_read, request_write), (answer_read, answer_write))) =
        pipe().and_then(|requests| Ok((requests, pipe()?)))
    else {
        return;
    };
    if start_helper(request_read, answer_write, reporter).is_err() {
        return;
    }
    TO_HELPER.store(request_write.into_raw_fd(), Ordering::Relaxed);
    FROM_HELPER.store(answer_read.into_raw_fd(), Ordering::Relaxed);
    HELPER_PID.store(std::process::id() as i32, Ordering::Relaxed);
    set_alternate_stack();
    // Load libgcc_s and let the unwinder sort the registered tables now: both allocate, which
    // a signal handler must not.
    let mut warm = [std::ptr::null_mut::<c_void>(); 4];
    // SAFETY: a buffer of 4 entries.
    unsafe { backtrace(warm.as_mut_ptr(), warm.len() as c_int) };
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
fn start_helper(requests: OwnedFd, answers: OwnedFd, reporter: Reporter) -> std::io::Result<()> {
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
        .spawn(move || serve_reports(requests, answers, reporter));
    // SAFETY: putting back the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    started.map(drop)
}

/// The helper thread: each record from the handler becomes a report for `reporter`, then the
/// handler is told it may go on.
fn serve_reports(requests: OwnedFd, answers: OwnedFd, reporter: Reporter) {
    loop {
        let mut record = std::mem::MaybeUninit::<RawRecord>::zeroed();
        let size = std::mem::size_of::<RawRecord>();
        // SAFETY: reading at most `size` bytes into the record.
        let read = unsafe {
            libc::read(
                requests.as_raw_fd(),
                record.as_mut_ptr() as *mut c_void,
                size,
            )
        };
        if read < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if read != size as isize {
            return;
        }
        // SAFETY: fully written by the handler; every bit pattern is a valid RawRecord.
        let record = unsafe { record.assume_init() };
        reporter(&report_of(&record));
        // SAFETY: one byte to our own pipe.
        unsafe { libc::write(answers.as_raw_fd(), b"k".as_ptr() as *const c_void, 1) };
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
            pc - info.dli_saddr as u64,
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
    let (code, address, pc) = unsafe {
        let context = &*(context as *const libc::ucontext_t);
        (
            (*info).si_code,
            (*info).si_addr() as u64,
            context.uc_mcontext.gregs[libc::REG_RIP as usize] as u64,
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
    let mut trace = [std::ptr::null_mut::<c_void>(); MAX_CRASH_FRAMES + 8];
    // SAFETY: a buffer of the size given; warmed up by `install`.
    let found = unsafe { backtrace(trace.as_mut_ptr(), trace.len() as c_int) }.max(0) as usize;
    if let Some(at) = trace[..found].iter().position(|&frame| frame as u64 == pc) {
        for &frame in &trace[at + 1..found] {
            if record.count as usize == MAX_CRASH_FRAMES {
                break;
            }
            record.frames[record.count as usize] = frame as u64;
            record.count += 1;
        }
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

/// Hand the record to the helper thread and wait for its answer; false if there is no helper
/// in this process or it did not answer in time.
fn report_through_helper(record: &RawRecord) -> bool {
    let to_helper = TO_HELPER.load(Ordering::Relaxed);
    let from_helper = FROM_HELPER.load(Ordering::Relaxed);
    // SAFETY: getpid, write, poll and read are async-signal-safe; the buffers are ours.
    unsafe {
        if to_helper < 0 || HELPER_PID.load(Ordering::Relaxed) != libc::getpid() {
            return false;
        }
        let size = std::mem::size_of::<RawRecord>();
        if libc::write(to_helper, record as *const RawRecord as *const c_void, size)
            != size as isize
        {
            return false;
        }
        let mut poll = libc::pollfd {
            fd: from_helper,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, HELPER_TIMEOUT_MS) != 1 {
            return false;
        }
        let mut answer = 0u8;
        libc::read(from_helper, &mut answer as *mut u8 as *mut c_void, 1) == 1
    }
}

/// Write the record as text with no allocation: the signal, address and frames in hex.
fn write_raw(record: &RawRecord) {
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
