//! The worker's end of the helper socket (fd 3), the transport under the helper client:
//! one request, one reply, in order; descriptors arrive as SCM_RIGHTS. [`Notice`]s that
//! arrive while a reply is awaited are queued for the loop.

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessageOwned, MsgFlags};
use policy::{decode, encode, FromHelper, Notice, Request, Response, MAX_MESSAGE};
use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The descriptor the helper puts the socket on.
pub const HELPER_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("the helper closed the socket")]
    Eof,
    #[error("message from the helper larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("socket error: {0}")]
    Os(#[from] Errno),
    #[error("{0}")]
    Wire(#[from] policy::WireError),
    #[error("the helper refused: {0}")]
    Refused(String),
    #[error("the helper failed: {0}")]
    Failed(String, Option<i32>),
    #[error("unexpected reply from the helper: {0}")]
    Unexpected(String),
    /// A file or listing read in pieces did not add up.
    #[error("{0}")]
    Pieces(&'static str),
}

/// A reply from the helper and the descriptor that came with it.
pub type Incoming = (Response, Option<OwnedFd>);

pub struct Channel {
    sock: OwnedFd,
    notices: VecDeque<Notice>,
    buf: Vec<u8>,
}

impl Channel {
    pub fn new(sock: OwnedFd) -> Self {
        Self {
            sock,
            notices: VecDeque::new(),
            buf: vec![0; MAX_MESSAGE + 1],
        }
    }

    /// Take over fd 3 as left by the helper.
    ///
    /// # Safety
    /// Must be called once, in the worker role, where fd 3 is the helper's socket and
    /// nothing else owns it.
    pub unsafe fn from_helper_fd() -> Self {
        // SAFETY: the caller guarantees fd 3 is ours and unowned.
        Self::new(unsafe { OwnedFd::from_raw_fd(HELPER_FD) })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.sock
    }

    fn send(&self, req: &Request) -> Result<(), IpcError> {
        let bytes = encode(req)?;
        loop {
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &[IoSlice::new(&bytes)],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(IpcError::Eof),
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The next notice to handle in this loop turn: a queued one, else (once, if the
    /// socket polled readable, which `readable` records) the one on the socket; `None`
    /// when the turn has none left. Never blocks when `readable` is false.
    pub fn next_notice(&mut self, readable: &mut bool) -> Result<Option<Notice>, IpcError> {
        if let Some(n) = self.notices.pop_front() {
            return Ok(Some(n));
        }
        if !std::mem::take(readable) {
            return Ok(None);
        }
        self.recv_notice().map(Some)
    }

    /// The next notice (blocking), queued ones first. A reply nobody asked for is an error.
    pub fn recv_notice(&mut self) -> Result<Notice, IpcError> {
        if let Some(n) = self.notices.pop_front() {
            return Ok(n);
        }
        match self.recv_raw()? {
            (FromHelper::Notice(n), _) => Ok(n),
            (FromHelper::Reply(r), _) => Err(IpcError::Unexpected(format!("{r:?}"))),
        }
    }

    fn recv_raw(&mut self) -> Result<(FromHelper, Option<OwnedFd>), IpcError> {
        let mut cmsg = nix::cmsg_space!([RawFd; 2]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            let msg = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Err(IpcError::Eof),
                Err(e) => return Err(e.into()),
                Ok(m) => m,
            };
            let mut fds = Vec::new();
            for c in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel installed these descriptors for us just now.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                return Err(IpcError::TooLarge);
            }
            break (msg.bytes, fds);
        };
        if n == 0 {
            return Err(IpcError::Eof);
        }
        let msg: FromHelper = decode(self.buf.get(..n).ok_or(IpcError::TooLarge)?)?;
        Ok((msg, fds.into_iter().next()))
    }

    /// Send `req` and wait for its reply. `Refused`/`Failed` become errors; notices that
    /// arrive meanwhile are kept for [`Channel::next_notice`].
    pub fn call(&mut self, req: &Request) -> Result<Incoming, IpcError> {
        self.send(req)?;
        loop {
            match self.recv_raw()? {
                (FromHelper::Notice(n), _) => self.notices.push_back(n),
                (FromHelper::Reply(Response::Refused { reason }), _) => {
                    return Err(IpcError::Refused(reason))
                }
                (FromHelper::Reply(Response::Failed { reason, errno }), _) => {
                    return Err(IpcError::Failed(reason, errno))
                }
                (FromHelper::Reply(r), fd) => return Ok((r, fd)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use policy::{PublicKey, Request};

    fn pair() -> (Channel, OwnedFd) {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        (Channel::new(a), b)
    }

    fn send_raw(fd: &OwnedFd, r: impl Into<FromHelper>) {
        let bytes = encode(&r.into()).unwrap();
        nix::sys::socket::send(fd.as_raw_fd(), &bytes, MsgFlags::empty()).unwrap();
    }

    /// Verdicts of asynchronous `on verify` runs that arrive while the worker waits for a
    /// reply (it starts a verify per new handshake) are all handed out in the same loop
    /// turn, with the one on the socket: each held back a turn would keep its handshake in
    /// a verify slot, and a burst of new clients would find the slots full.
    #[test]
    fn all_queued_verdicts_are_handed_out_in_one_turn() {
        let (mut ch, helper) = pair();
        let done = |i: u8| Notice::VerifyDone {
            key: PublicKey([i; 32]),
            accepted: true,
        };
        for i in 0..40 {
            send_raw(&helper, done(i));
        }
        send_raw(&helper, Response::Done);
        send_raw(&helper, done(40));
        ch.call(&Request::Ready).unwrap();
        let mut readable = true;
        let mut got = Vec::new();
        for _ in 0..100 {
            match ch.next_notice(&mut readable).unwrap() {
                Some(Notice::VerifyDone { key, .. }) => got.push(key.0[0]),
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        assert_eq!(got, (0..=40).collect::<Vec<u8>>());
        // Nothing left: the turn ends without blocking on the socket.
        assert!(ch.next_notice(&mut readable).unwrap().is_none());
    }
}
