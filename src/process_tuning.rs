//! Settings of this process made once by the command line for a link (not by the library, which
//! must leave its host's allocator as it found it), and given back before a program runs here.
//!
//! glibc's malloc gives each thread that allocates concurrently a heap of its own (an arena in
//! a 64 MiB reservation), and makes it writable a page at a time with `mprotect` as it grows;
//! the main arena grows by `brk` with 128 KiB to spare. Each of those calls takes the address
//! space's lock for writing: the CPython link makes about 100 of them, the LLVM one about 950,
//! while the link's other threads fault pages in and, in shared-memory mode, a thread populates
//! the executor's memory holding the lock for reading. A writer waits for every reader, and
//! every fault behind the waiting writer waits too: when the populating thread is preempted
//! holding the lock (two cores, three runnable threads), the link stalls for milliseconds.
//!
//! A larger top pad is taken whole when a heap is made or the break is moved: an arena's first
//! heap is then writable from the start (the pad is its whole reservation) and the break moves
//! three times in a link instead of a dozen. That leaves 18 `mprotect`s in the CPython link
//! and 38 in the LLVM one. Pages are still only touched as they are allocated, so the resident
//! size does not grow (the peak grows by about 1%: the allocator gives less back in between).

/// glibc's own top pad, put back before a program runs in this process.
const GLIBC_TOP_PAD: libc::c_int = 128 << 10;

/// The top pad while linking: a non-main arena's whole reservation (HEAP_MAX_SIZE on 64-bit).
const LINK_TOP_PAD: libc::c_int = 64 << 20;

/// Whether the user chose the top pad (`glibc.malloc.top_pad` in GLIBC_TUNABLES, or the older
/// MALLOC_TOP_PAD_): theirs is kept, for the link and the program alike.
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
/// any arena but the main one exists). An executor (`rjitlink executor`) keeps glibc's: its
/// address space changes do not hold up the linker's.
pub fn for_linking() {
    if !user_set_top_pad() {
        // SAFETY: mallopt only sets a parameter of the allocator (under its lock); it returns 0
        // for a value it rejects, which leaves glibc's own, as with another libc.
        unsafe { libc::mallopt(libc::M_TOP_PAD, LINK_TOP_PAD) };
    }
}

/// Settings for a program about to run in this process: glibc's top pad again, so that memory
/// the program frees is given back as it would be natively.
pub fn for_program() {
    if !user_set_top_pad() {
        // SAFETY: as in `for_linking`.
        unsafe { libc::mallopt(libc::M_TOP_PAD, GLIBC_TOP_PAD) };
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
