//! The worker's end of the helper socket (fd 3): one request, one reply, in order;
//! descriptors arrive as SCM_RIGHTS. Unsolicited `Reload`/`Stop` notices that arrive
//! while a reply is awaited are queued for the caller.

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessageOwned, MsgFlags};
use policy::{decode, encode, Request, Response, MAX_MESSAGE};
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
}

/// A message from the helper and the descriptor that came with it.
pub type Incoming = (Response, Option<OwnedFd>);

pub struct Channel {
    sock: OwnedFd,
    notices: VecDeque<Response>,
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

    pub fn send(&self, req: &Request) -> Result<(), IpcError> {
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

    /// A `Reload`/`ResetAll`/`VerifyDone`/`Stop` that arrived during a call, if any (never blocks).
    pub fn pending_notice(&mut self) -> Option<Response> {
        self.notices.pop_front()
    }

    /// The next message from the helper (blocking), queued notices first.
    pub fn recv(&mut self) -> Result<Incoming, IpcError> {
        if let Some(n) = self.notices.pop_front() {
            return Ok((n, None));
        }
        self.recv_raw()
    }

    fn recv_raw(&mut self) -> Result<Incoming, IpcError> {
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
        let resp: Response = decode(self.buf.get(..n).ok_or(IpcError::TooLarge)?)?;
        Ok((resp, fds.into_iter().next()))
    }

    /// Send `req` and wait for its reply. `Refused`/`Failed` become errors; `Reload`
    /// and `Stop` that arrive meanwhile are kept for [`Channel::recv`].
    pub fn call(&mut self, req: &Request) -> Result<Incoming, IpcError> {
        self.send(req)?;
        loop {
            match self.recv_raw()? {
                (
                    n @ (Response::Reload
                    | Response::ResetAll
                    | Response::VerifyDone { .. }
                    | Response::HooksFree
                    | Response::Stop),
                    _,
                ) => self.notices.push_back(n),
                (Response::Refused { reason }, _) => return Err(IpcError::Refused(reason)),
                (Response::Failed { reason, errno }, _) => {
                    return Err(IpcError::Failed(reason, errno))
                }
                other => return Ok(other),
            }
        }
    }

    /// A call whose reply must carry a descriptor.
    pub fn call_fd(&mut self, req: &Request) -> Result<(Response, OwnedFd), IpcError> {
        match self.call(req)? {
            (r, Some(fd)) => Ok((r, fd)),
            (r, None) => Err(IpcError::Unexpected(format!("{r:?} without a descriptor"))),
        }
    }
}
