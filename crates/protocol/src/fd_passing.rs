//! Passing a file descriptor over a Unix socket (SCM_RIGHTS), one byte of payload with it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

const FD_SPACE: usize = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;

/// Call `f` with a message of one payload byte and room for one descriptor in its control
/// data, all of which live on this stack frame for the duration of the call.
fn with_one_byte_message<T>(f: impl FnOnce(&mut libc::msghdr) -> T) -> T {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut control = [0u8; FD_SPACE];
    // SAFETY: an all-zero msghdr is valid; its pointers are set to the buffers above.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    message.msg_controllen = FD_SPACE;
    f(&mut message)
}

/// Send `fd` with one byte of payload.
pub fn send_fd(socket: &UnixStream, fd: RawFd) -> io::Result<()> {
    with_one_byte_message(|message| {
        // SAFETY: msghdr and cmsghdr are plain C structures filled as sendmsg(2) documents;
        // the control buffer has room for one descriptor.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(header) as *mut RawFd, fd);
            if libc::sendmsg(socket.as_raw_fd(), message, libc::MSG_NOSIGNAL) != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

/// Receive a descriptor sent by `send_fd`.
pub fn receive_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    with_one_byte_message(|message| {
        // SAFETY: as in `send_fd`; the received descriptor is checked before it is owned.
        unsafe {
            let received = libc::recvmsg(socket.as_raw_fd(), message, libc::MSG_CMSG_CLOEXEC);
            if received < 0 {
                return Err(io::Error::last_os_error());
            }
            let header = libc::CMSG_FIRSTHDR(message);
            if received != 1
                || header.is_null()
                || (*header).cmsg_level != libc::SOL_SOCKET
                || (*header).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "expected a file descriptor from the executor",
                ));
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(header) as *const RawFd);
            Ok(OwnedFd::from_raw_fd(fd))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_descriptor_crosses_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = std::fs::File::from(
            // SAFETY: memfd_create returns a fresh descriptor or -1 (checked by OwnedFd use).
            unsafe { OwnedFd::from_raw_fd(libc::memfd_create(c"test".as_ptr(), 0)) },
        );
        file.write_all(b"shared").unwrap();
        send_fd(&a, file.as_raw_fd()).unwrap();
        let mut received = std::fs::File::from(receive_fd(&b).unwrap());
        received.rewind().unwrap();
        let mut text = String::new();
        received.read_to_string(&mut text).unwrap();
        assert_eq!(text, "shared");
    }
}
