//! Serving the status socket from the worker's single-threaded mio loop (docs/config.md §5.1–5.2).
//!
//! fastd writes each document from its own thread so that a slow reader cannot stall the
//! daemon, and serves any number of clients. The worker has one thread, so a [`StatusWriter`]
//! writes as much as the socket takes on each writable event and keeps the rest;
//! [`StatusServer`] writes to at most [`MAX_STATUS_CLIENTS`] clients at once (memory: one
//! document each, shared by the clients accepted together). Further clients wait in the
//! listener's queue, unaccepted and costing the worker nothing, until a writer finishes; every
//! client gets the whole document, never an empty or cut reply.
//!
//! Syscalls: accept4 (CLOEXEC|NONBLOCK, via mio), sendto with MSG_NOSIGNAL|MSG_DONTWAIT (a client
//! that hung up gives EPIPE, never SIGPIPE, whatever the signal disposition), close, epoll_ctl,
//! and ioctl(FIONBIO) once on the listener. All are on the worker's seccomp allow-list.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::sys::socket::{send, MsgFlags};

use super::json::{to_json, JsonError};
use super::snapshot::StatusSnapshot;

/// At most this many clients are being written to at once; more wait to be accepted.
pub const MAX_STATUS_CLIENTS: usize = 64;

/// Where a [`StatusWriter`] stands after a writable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The socket is full; wait for the next writable event.
    Pending,
    /// Everything is written; drop the writer to close the connection.
    Done,
}

/// One accepted client and the document it is owed.
#[derive(Debug)]
pub struct StatusWriter {
    stream: UnixStream,
    doc: Rc<[u8]>,
    written: usize,
}

impl StatusWriter {
    /// A writer for `doc` on an accepted, non-blocking stream. The stream is closed when the
    /// writer is dropped.
    pub fn new(stream: UnixStream, doc: Rc<[u8]>) -> Self {
        Self {
            stream,
            doc,
            written: 0,
        }
    }

    /// Writes until the document is out or the socket is full. An error (EPIPE when the
    /// client hung up) means: drop the writer.
    pub fn write_some(&mut self) -> io::Result<Progress> {
        let fd = self.stream.as_raw_fd();
        loop {
            let Some(rest) = self.doc.get(self.written..).filter(|r| !r.is_empty()) else {
                return Ok(Progress::Done);
            };
            match send(fd, rest, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(Progress::Pending),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The stream, to register it with the loop.
    pub fn stream_mut(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}

/// Something the loop should log (fastd's wording in brackets).
#[derive(Debug, thiserror::Error)]
pub enum StatusNotice {
    /// accept failed (`fastd_status_handle: accept`).
    #[error("status socket: accept: {0}")]
    AcceptFailed(io::Error),
    /// Writing to a client failed (`can't dump status: write`).
    #[error("can't dump status: write: {0}")]
    WriteFailed(io::Error),
    /// Registering a client with the loop failed; it was closed.
    #[error("status socket: cannot register a client: {0}")]
    RegisterFailed(io::Error),
    /// The document could not be built; the client was closed.
    #[error(transparent)]
    Json(#[from] JsonError),
}

/// The status socket: its listener and up to [`MAX_STATUS_CLIENTS`] writers.
///
/// Tokens: the listener uses `base`, client slot `i` uses `base + 1 + i`; the loop reserves
/// that range ([`StatusServer::owns`]) and hands every event in it to [`StatusServer::handle`].
#[derive(Debug)]
pub struct StatusServer {
    listener: UnixListener,
    base: usize,
    clients: Vec<Option<StatusWriter>>,
    /// Clients may be waiting in the listener's queue: every slot was busy when the listener
    /// was last readable. The listener's readiness is edge-triggered, so the next free slot
    /// has to look for them.
    waiting: bool,
}

impl StatusServer {
    /// Takes over the listening socket the helper created (`Request::StatusSocket`).
    pub fn new(listener: OwnedFd, base: Token) -> io::Result<Self> {
        let listener = std::os::unix::net::UnixListener::from(listener);
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener: UnixListener::from_std(listener),
            base: base.0,
            clients: (0..MAX_STATUS_CLIENTS).map(|_| None).collect(),
            waiting: false,
        })
    }

    /// Registers the listener (readable) with the loop.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, Token(self.base), Interest::READABLE)
    }

    /// Whether `token` belongs to the status socket.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 - self.base <= MAX_STATUS_CLIENTS
    }

    /// Clients being written to right now.
    pub fn active_clients(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Handles an event for one of this server's tokens. On the listener it accepts pending
    /// clients while a slot is free (mio is edge-triggered) and calls `snapshot` at most once:
    /// the clients accepted in one go share one document, as they would share fastd's
    /// `ctx.now`. A client that finishes frees its slot for a waiting one.
    pub fn handle<F>(&mut self, registry: &Registry, token: Token, snapshot: F) -> Vec<StatusNotice>
    where
        F: FnOnce() -> StatusSnapshot,
    {
        let mut notices = Vec::new();
        if token.0 == self.base {
            self.accept_all(registry, snapshot, &mut notices);
        } else if let Some(slot) = token.0.checked_sub(self.base + 1) {
            let freed = self.continue_client(registry, slot, &mut notices);
            if freed && self.waiting {
                self.accept_all(registry, snapshot, &mut notices);
            }
        }
        notices
    }

    fn accept_all<F>(&mut self, registry: &Registry, snapshot: F, notices: &mut Vec<StatusNotice>)
    where
        F: FnOnce() -> StatusSnapshot,
    {
        let mut snapshot = Some(snapshot);
        let mut doc: Option<Rc<[u8]>> = None;
        loop {
            // A full house leaves the rest queued in the kernel (bounded by the listen
            // backlog; later connects wait there) instead of answering them with nothing.
            let Some(slot) = self.clients.iter().position(Option::is_none) else {
                self.waiting = true;
                return;
            };
            self.waiting = false;
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE and the like: the client stays queued; a freed slot retries.
                    self.waiting = true;
                    notices.push(StatusNotice::AcceptFailed(e));
                    return;
                }
            };
            let doc = match (&doc, snapshot.take()) {
                (Some(doc), _) => Rc::clone(doc),
                (None, Some(take)) => match to_json(&take()) {
                    Ok(bytes) => Rc::clone(doc.insert(Rc::from(bytes))),
                    Err(e) => {
                        notices.push(e.into());
                        return;
                    }
                },
                // The snapshot is taken only together with building the document.
                (None, None) => return,
            };
            let mut writer = StatusWriter::new(stream, doc);
            match writer.write_some() {
                Ok(Progress::Done) => {}
                Ok(Progress::Pending) => {
                    let token = Token(self.base + 1 + slot);
                    match registry.register(writer.stream_mut(), token, Interest::WRITABLE) {
                        Ok(()) => {
                            if let Some(entry) = self.clients.get_mut(slot) {
                                *entry = Some(writer);
                            }
                        }
                        Err(e) => notices.push(StatusNotice::RegisterFailed(e)),
                    }
                }
                Err(e) => notices.push(StatusNotice::WriteFailed(e)),
            }
        }
    }

    /// Writes more to the client in `slot`; true when that freed the slot.
    fn continue_client(
        &mut self,
        registry: &Registry,
        slot: usize,
        notices: &mut Vec<StatusNotice>,
    ) -> bool {
        let Some(entry) = self.clients.get_mut(slot) else {
            return false;
        };
        let Some(writer) = entry.as_mut() else {
            return false;
        };
        let finished = match writer.write_some() {
            Ok(Progress::Pending) => false,
            Ok(Progress::Done) => true,
            Err(e) => {
                notices.push(StatusNotice::WriteFailed(e));
                true
            }
        };
        if finished {
            if let Some(mut writer) = entry.take() {
                // The descriptor is closed right after; a failed deregister changes nothing.
                let _ = registry.deregister(writer.stream_mut());
            }
        }
        finished
    }
}
