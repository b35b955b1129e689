//! One message per SEQPACKET datagram, at most one descriptor per reply (SCM_RIGHTS).
//! The helper's side never blocks: replies go through an [`Outbox`], reads are
//! non-blocking.

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use policy::{encode, FromHelper, MAX_MESSAGE};
use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

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
    #[error("the worker does not read its replies ({0} queued)")]
    Wedged(usize),
    #[error("nothing to read")]
    WouldBlock,
}

/// Send one reply, with the descriptor if there is one (blocking; the helper's loop
/// uses an [`Outbox`]).
pub fn send(
    sock: BorrowedFd<'_>,
    msg: &FromHelper,
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
/// the worker should never send are closed at once. A truncated datagram is `TooLarge`;
/// nothing to read is `WouldBlock` (the call never waits).
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, IpcError> {
    let mut cmsg_buf = nix::cmsg_space!([std::os::fd::RawFd; 8]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let res = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        );
        let msg = match res {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Err(IpcError::WouldBlock),
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

/// Replies the worker has not taken yet, at most this many...
pub const MAX_QUEUED_MESSAGES: usize = 256;
/// ...and at most this many bytes. A worker that waits for each reply (as ours does) has
/// one reply and a few notices (`VerifyDone`, at most one per asynchronous verify) in
/// flight; the socket buffer takes a few hundred before anything queues here at all.
pub const MAX_QUEUED_BYTES: usize = 4 << 20;
/// A queue that has not moved for this long belongs to a worker that stopped reading.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker's replies and notices on their way out. The helper never blocks on the
/// worker: each message is sent with MSG_DONTWAIT, what the socket does not take waits
/// here (in order, with its descriptor), and a worker that lets the queue overflow or
/// sit for [`DRAIN_TIMEOUT`] is not draining its socket ([`IpcError::Wedged`]).
#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<(Vec<u8>, Option<OwnedFd>)>,
    bytes: usize,
    /// When the queue last moved (or became non-empty).
    moved: Option<Instant>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queue one message and send what the socket takes now.
    pub fn send(
        &mut self,
        sock: BorrowedFd<'_>,
        msg: &FromHelper,
        fd: Option<OwnedFd>,
    ) -> Result<(), IpcError> {
        let bytes = encode(msg)?;
        if self.queue.len() >= MAX_QUEUED_MESSAGES || self.bytes + bytes.len() > MAX_QUEUED_BYTES {
            return Err(IpcError::Wedged(self.queue.len()));
        }
        if self.queue.is_empty() {
            self.moved = Some(Instant::now());
        }
        self.bytes += bytes.len();
        self.queue.push_back((bytes, fd));
        self.flush(sock)
    }

    /// Send queued messages until the socket would block.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> Result<(), IpcError> {
        while let Some((bytes, fd)) = self.queue.front() {
            if !try_send(sock, bytes, fd.as_ref().map(AsFd::as_fd))? {
                break;
            }
            self.bytes -= bytes.len();
            self.queue.pop_front();
            self.moved = Some(Instant::now());
        }
        if self.queue.is_empty() {
            self.moved = None;
        }
        Ok(())
    }

    /// `Wedged` when something has waited longer than [`DRAIN_TIMEOUT`] without the
    /// queue moving.
    pub fn check_stalled(&self) -> Result<(), IpcError> {
        match self.moved {
            Some(t) if t.elapsed() > DRAIN_TIMEOUT => Err(IpcError::Wedged(self.queue.len())),
            _ => Ok(()),
        }
    }
}

/// One non-blocking send: false when the socket buffer is full.
fn try_send(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> Result<bool, IpcError> {
    let iov = [IoSlice::new(bytes)];
    let raw = fd.map(|f| [f.as_raw_fd()]);
    let cmsg: Vec<ControlMessage<'_>> = raw.iter().map(|r| ControlMessage::ScmRights(r)).collect();
    loop {
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, flags, None) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(false),
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(IpcError::Eof),
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(true),
        }
    }
}
