//! Settings of this process made once by the command line for a link (not by the library, which
//! must leave its host's allocator as it found it), when no program runs in the process after.
//!
//! glibc's malloc gives each thread that allocates concurrently a heap of its own (an arena in
//! a 64 MiB reservation), and makes it writable a page at a time with `mprotect` as it grows;
//! the main arena grows by `brk` with 128 KiB to spare. Each of those calls takes the address
//! space's lock for writing: the CPython link makes about 120 of them, the LLVM one about 900,
//! while the link's other threads fault pages in and, in shared-memory mode, a thread populates
//! the executor's memory holding the lock for reading. A writer waits for every reader, and
//! every fault behind the waiting writer waits too: when the populating thread is preempted
//! holding the lock (two cores, three runnable threads), the link stalls for milliseconds.
//!
//! A larger top pad is taken whole when a heap is made or the break is moved: an arena's first
//! heap is then writable from the start (the pad is its whole reservation) and the break moves
//! a few times in a link instead of a dozen: 23 such calls are left in the CPython link, 43 in
//! the LLVM one. Memory given back less often is also faulted in again less often (the LLVM
//! link: 25% fewer page faults). Pages are still only touched as they are allocated: the peak
//! resident size grows by about 1.5%.

/// The top pad while linking: a non-main arena's whole reservation (HEAP_MAX_SIZE on 64-bit).
const LINK_TOP_PAD: libc::c_int = 64 << 20;

/// Whether the user chose the top pad (`glibc.malloc.top_pad` in GLIBC_TUNABLES, or the older
/// MALLOC_TOP_PAD_): theirs is kept.
fn user_set_top_pad() -> bool {
    std::env::var_os("MALLOC_TOP_PAD_").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| tunables_set_top_pad(&t))
}

/// Whether a GLIBC_TUNABLES value (`name=value:name=value...`) sets the top pad.
fn tunables_set_top_pad(tunables: &std::ffi::OsStr) -> bool {
    tunables
        .as_encoded_bytes()
        .split(|&b| b == b':')
        .any(|tunable| tunable.starts_with(b"glibc.malloc.top_pad="))
}

/// Settings for a link, made as `rjitlink run` starts (while the process has one thread, before
/// any arena but the main one exists). None when `program_runs_here`: setting the top pad also
/// ends glibc's sliding mmap threshold for good (a program freeing and allocating 1 MiB blocks
/// would map and unmap each one), so a program run in this process gets glibc's allocator as
/// it was. An executor (`rjitlink executor`) keeps glibc's too: its address space changes do not
/// hold up the linker's.
pub fn for_linking(program_runs_here: bool) {
    if !program_runs_here && !user_set_top_pad() {
        // SAFETY: mallopt only sets a parameter of the allocator (under its lock); it returns 0
        // for a value it rejects, which leaves glibc's own.
        unsafe { libc::mallopt(libc::M_TOP_PAD, LINK_TOP_PAD) };
    }
}

#[cfg(test)]
mod tests {
    use super::tunables_set_top_pad;
    use std::ffi::OsStr;

    #[test]
    fn a_top_pad_among_the_tunables_is_the_users() {
        assert!(tunables_set_top_pad(OsStr::new("glibc.malloc.top_pad=0")));
        assert!(tunables_set_top_pad(OsStr::new(
            "glibc.rtld.optional_static_tls=4096:glibc.malloc.top_pad=65536"
        )));
        assert!(!tunables_set_top_pad(OsStr::new(
            "glibc.rtld.optional_static_tls=4096"
        )));
        assert!(!tunables_set_top_pad(OsStr::new(
            "glibc.malloc.top_pad_x=1"
        )));
        assert!(!tunables_set_top_pad(OsStr::new("")));
    }
}
