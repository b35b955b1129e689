//! One message per SEQPACKET datagram, at most one descriptor per reply (SCM_RIGHTS).

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use policy::{encode, Response, MAX_MESSAGE};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("peer closed the socket")]
    Eof,
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("socket error: {0}")]
    Os(#[from] Errno),
    #[error("cannot encode reply: {0}")]
    Encode(#[from] policy::WireError),
}

/// Send one reply, with the descriptor if there is one.
pub fn send(
    sock: BorrowedFd<'_>,
    msg: &Response,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), IpcError> {
    let bytes = encode(msg)?;
    let iov = [IoSlice::new(&bytes)];
    let raw = fd.map(|f| [f.as_raw_fd()]);
    let cmsg: Vec<ControlMessage<'_>> = raw.iter().map(|r| ControlMessage::ScmRights(r)).collect();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(IpcError::Eof),
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receive one datagram into `buf` (which must hold MAX_MESSAGE + 1 bytes). Descriptors
/// the worker should never send are closed at once. A truncated datagram is `TooLarge`.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, IpcError> {
    let mut cmsg_buf = nix::cmsg_space!([std::os::fd::RawFd; 8]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let res = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match res {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Err(IpcError::Eof),
            Err(e) => return Err(e.into()),
            Ok(m) => m,
        };
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor for us; we own it and
                    // drop (close) it immediately.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.bytes > MAX_MESSAGE {
            return Err(IpcError::TooLarge);
        }
        if msg.bytes == 0 {
            return Err(IpcError::Eof);
        }
        return Ok(msg.bytes);
    }
}
