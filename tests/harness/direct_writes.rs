//! Whether this system lets a process write into its own child's memory
//! (`process_vm_writev`), as copy mode does to an executor it spawned. Where Yama's
//! ptrace_scope (2 or 3) or a seccomp policy refuses it, the bytes are sent instead, and the
//! tests that count bytes sent expect that.

use std::process::{Command, Stdio};

/// Ask the kernel to write one byte at address 0 of a child: a system that allows the write
/// answers EFAULT (the address is not mapped there), one that refuses it EPERM or EACCES.
/// Nothing is written either way.
pub fn may_write_into_children() -> bool {
    let Ok(mut child) = Command::new("sleep").arg("30").stdin(Stdio::null()).spawn() else {
        return false;
    };
    let byte = [0u8; 1];
    let local = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 1,
    };
    // SAFETY: one local byte that outlives the call; the remote address is not mapped in the
    // child, so nothing can be written there.
    let written =
        unsafe { libc::process_vm_writev(child.id() as libc::pid_t, &local, 1, &remote, 1, 0) };
    let allowed =
        written < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    let _ = child.kill();
    let _ = child.wait();
    allowed
}
