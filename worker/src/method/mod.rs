//! fastd v22 data-path methods (docs/protocol.md §5): name registry, sessions, and the primitives
//! behind them.
//!
//! [`by_name`] parses a method name into a [`MethodSpec`]; [`MethodSpec::session`] builds a
//! [`Session`] from the handshake's session key. `Session` is an enum over the method families
//! (static dispatch, no allocation per packet) that implements [`MethodSession`].

mod cipher;
mod common;
mod gmac;
mod nh;
mod null;
mod poly1305;
pub mod replay;
pub mod salsa;
pub mod simd;
pub mod uhash;
mod umac;

#[cfg(test)]
mod tests;

use std::ops::Range;
use std::time::Instant;

pub use cipher::CipherKind;

use common::{AeadSession, TagLayout};
use gmac::Gmac;
use null::{NullL2tpSession, NullSession};
use poly1305::Poly;
use uhash::UhashKey;
use umac::Umac;

/// Largest keepalive any method sends (`null@l2tp`: 20 bytes; crypto methods: 24).
pub const MAX_KEEPALIVE_BYTES: usize = 24;
/// Largest header any method puts in front of the payload.
pub const MAX_OVERHEAD: usize = common::HEADER_BYTES;

/// Errors building a session or sending a packet.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MethodError {
    /// The session key has the wrong length for the method.
    #[error("session key for method `{method}' must be {expected} bytes, got {got}")]
    KeyLength {
        method: String,
        expected: usize,
        got: usize,
    },
    /// The buffer has no room for the method's header.
    #[error("buffer smaller than the method overhead")]
    BufferTooSmall,
    /// The 48-bit nonce space is used up; the session must not send any more.
    #[error("session nonce space exhausted")]
    NonceExhausted,
}

/// Why a received data packet was not delivered. Every variant but [`DropReason::Duplicate`]
/// means the packet did not authenticate (or was refused before trying).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the method header.
    #[error("truncated packet")]
    Truncated,
    /// Data type byte does not match the session (0x00, or 0x02 in compat sessions).
    #[error("unexpected packet type")]
    BadType,
    /// Non-zero flags byte.
    #[error("non-zero flags")]
    BadFlags,
    /// Malformed `null@l2tp` session header.
    #[error("bad L2TP session header")]
    BadHeader,
    /// Nonce of the wrong parity (the direction we send in).
    #[error("nonce of the wrong parity")]
    BadNonce,
    /// More than 64 packets older than the newest accepted one.
    #[error("packet too old")]
    TooOld,
    /// Older than the newest accepted packet, which came more than 10 s ago.
    #[error("reordered packet after the reorder deadline")]
    ReorderExpired,
    /// Tag mismatch.
    #[error("verification failed")]
    AuthFailed,
    /// Authenticated, but already received: drop the payload, yet count it as a sign of life.
    #[error("duplicate packet")]
    Duplicate,
}

impl DropReason {
    /// Whether the packet authenticated (fastd then still counts it as received for the 90 s
    /// peer timeout): only duplicates.
    pub fn authenticated(self) -> bool {
        self == Self::Duplicate
    }
}

/// An authenticated data packet, as [`MethodSession::receive`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The payload within the buffer (empty for a keepalive).
    pub payload: Range<usize>,
    /// `Some(age)`: accepted although a newer packet came first, `age` nonces (of the peer's
    /// direction) behind the newest one. fastd counts these as `rx_reordered`.
    pub reordered: Option<u8>,
}

impl Decrypted {
    /// A packet that came in order (or a method without nonces).
    pub fn in_order(payload: Range<usize>) -> Self {
        Decrypted {
            payload,
            reordered: None,
        }
    }
}

/// One established session of a method: the per-packet data path.
pub trait MethodSession: Send {
    /// Header bytes before the payload (1, 8 or 24).
    fn overhead(&self) -> usize;

    /// `buf[..overhead]` is headroom the method fills; `buf[overhead..]` is the plaintext,
    /// encrypted in place. Consumes a nonce. An empty payload is a keepalive.
    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), MethodError>;

    /// Authenticates and decrypts in place; on success returns where the payload is within
    /// `buf` and whether the packet arrived out of order. Length, type byte, flags and the
    /// replay window are checked before authentication, the replay bookkeeping runs only
    /// after it.
    fn receive(&mut self, buf: &mut [u8], now: Instant) -> Result<Decrypted, DropReason>;

    /// [`receive`](Self::receive) for callers that only want the payload.
    fn decrypt(&mut self, buf: &mut [u8], now: Instant) -> Result<Range<usize>, DropReason> {
        self.receive(buf, now).map(|d| d.payload)
    }

    /// Builds a keepalive (empty payload) in `out` and returns the datagram to send. Equal to
    /// `encrypt` of an empty payload except for `null@l2tp`, whose keepalive carries an L2TP
    /// control header (20 bytes).
    fn keepalive<'a>(
        &mut self,
        out: &'a mut [u8; MAX_KEEPALIVE_BYTES],
    ) -> Result<&'a [u8], MethodError> {
        let n = self.overhead();
        let pkt = out.get_mut(..n).ok_or(MethodError::BufferTooSmall)?;
        self.encrypt(pkt)?;
        Ok(pkt)
    }

    /// The nonce's top byte reached 0xFF: a new handshake is wanted.
    fn want_refresh(&self) -> bool;

    /// The nonce space is not exhausted.
    fn is_valid(&self) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    NullL2tp,
    /// `tag: None` = generic-umac, `Some` = composed-umac (tag cipher).
    Umac {
        data: CipherKind,
        tag: Option<CipherKind>,
    },
    /// `tag: None` = generic-gmac, `Some` = composed-gmac (tag cipher).
    Gmac {
        data: CipherKind,
        tag: Option<CipherKind>,
    },
    Poly1305 {
        cipher: CipherKind,
    },
}

/// A parsed method name: what `method "<name>";` selects and the handshake negotiates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodSpec {
    name: Box<str>,
    kind: Kind,
}

/// The 17 method names of the Debian v22 build (docs/config.md §1.11).
pub const DEBIAN_METHODS: [&str; 17] = [
    "null",
    "null@l2tp",
    "aes128-gcm",
    "salsa20+gmac",
    "salsa2012+gmac",
    "aes128-ctr+umac",
    "salsa20+umac",
    "salsa2012+umac",
    "aes128-ctr+poly1305",
    "salsa20+poly1305",
    "salsa2012+poly1305",
    "null+aes128-gmac",
    "null+salsa20+gmac",
    "null+salsa2012+gmac",
    "null+aes128-ctr+umac",
    "null+salsa20+umac",
    "null+salsa2012+umac",
];

/// Parses a method name with the rules of fastd v22's Debian build (docs/config.md §1.11).
pub fn by_name(name: &str) -> Option<MethodSpec> {
    let kind = parse(name)?;
    Some(MethodSpec {
        name: name.into(),
        kind,
    })
}

fn cipher(name: &str) -> Option<CipherKind> {
    CipherKind::by_name(name)
}

fn real_cipher(name: &str) -> Option<CipherKind> {
    cipher(name).filter(|c| *c != CipherKind::Null)
}

/// A GHASH tag cipher spelled directly before `+gmac`: a `-ctr` cipher must be spelled
/// `<x>-gcm`/`<x>-gmac` instead (`aes128-ctr+gmac` is rejected by fastd).
fn gmac_cipher(name: &str) -> Option<CipherKind> {
    real_cipher(name).filter(|_| !name.ends_with("-ctr"))
}

fn ctr_cipher(prefix: &str) -> Option<CipherKind> {
    real_cipher(&format!("{prefix}-ctr"))
}

fn parse(name: &str) -> Option<Kind> {
    match name {
        "null" => return Some(Kind::Null),
        "null@l2tp" => return Some(Kind::NullL2tp),
        _ => {}
    }
    if let Some(rest) = name.strip_suffix("+umac") {
        return match rest.split_once('+') {
            None => Some(Kind::Umac {
                data: real_cipher(rest)?,
                tag: None,
            }),
            Some((c1, c2)) => Some(Kind::Umac {
                data: cipher(c1)?,
                tag: Some(real_cipher(c2)?),
            }),
        };
    }
    if let Some(rest) = name.strip_suffix("+gmac") {
        return match rest.split_once('+') {
            None => Some(Kind::Gmac {
                data: gmac_cipher(rest)?,
                tag: None,
            }),
            Some((c1, c2)) => Some(Kind::Gmac {
                data: cipher(c1)?,
                tag: Some(gmac_cipher(c2)?),
            }),
        };
    }
    if let Some(rest) = name.strip_suffix("-gcm") {
        if rest.contains('+') {
            return None;
        }
        return Some(Kind::Gmac {
            data: ctr_cipher(rest)?,
            tag: None,
        });
    }
    if let Some(rest) = name.strip_suffix("-gmac") {
        let (c1, x) = rest.split_once('+')?;
        if x.contains('+') {
            return None;
        }
        return Some(Kind::Gmac {
            data: cipher(c1)?,
            tag: Some(ctr_cipher(x)?),
        });
    }
    if let Some(rest) = name.strip_suffix("+poly1305") {
        return Some(Kind::Poly1305 {
            cipher: real_cipher(rest)?,
        });
    }
    None
}

impl MethodSpec {
    /// The method name, as negotiated in the handshake.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of session key material the handshake must derive (docs/protocol.md §5.2).
    pub fn key_len(&self) -> usize {
        let tag_len = |t: Option<CipherKind>| t.map_or(0, CipherKind::key_len);
        match self.kind {
            Kind::Null | Kind::NullL2tp => 0,
            Kind::Umac { data, tag } => data.key_len() + tag_len(tag) + uhash::KEY_BYTES,
            Kind::Gmac { data, tag } => data.key_len() + tag_len(tag),
            Kind::Poly1305 { cipher } => cipher.key_len(),
        }
    }

    /// Header bytes in front of every payload: 1 (`null`), 8 (`null@l2tp`) or 24.
    pub fn overhead(&self) -> usize {
        match self.kind {
            Kind::Null => 1,
            Kind::NullL2tp => 8,
            _ => common::HEADER_BYTES,
        }
    }

    /// `null` or `null@l2tp`: sessions never expire or refresh, and a superseded session is
    /// invalid at once (docs/protocol.md §5.7).
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null | Kind::NullL2tp)
    }

    /// `null@l2tp` sends keepalives every 20 s even while data flows (docs/protocol.md §5.10).
    pub fn forces_keepalives(&self) -> bool {
        self.kind == Kind::NullL2tp
    }

    /// Builds a session from the handshake's session key. `initiator`: we initiated the
    /// handshake that established it. `compat`: the peer did not announce L2TP support, data type
    /// byte 0x02 (ignored by `null@l2tp`). `now` is recorded as the establishment time.
    pub fn session(
        &self,
        key: &[u8],
        initiator: bool,
        compat: bool,
        now: Instant,
    ) -> Result<Session, MethodError> {
        let key_error = || MethodError::KeyLength {
            method: self.name.to_string(),
            expected: self.key_len(),
            got: key.len(),
        };
        if key.len() != self.key_len() {
            return Err(key_error());
        }
        let mut key_reader = KeyReader(key);
        let r = &mut key_reader;
        let inner = match self.kind {
            Kind::Null => Inner::Null(NullSession::new(compat)),
            Kind::NullL2tp => Inner::NullL2tp(NullL2tpSession),
            Kind::Umac { data, tag } => {
                let layout = r.layout(data, tag).ok_or_else(key_error)?;
                let uhash = r.uhash().ok_or_else(key_error)?;
                Inner::Umac(AeadSession::new(
                    Umac::new(layout, uhash),
                    initiator,
                    compat,
                ))
            }
            Kind::Gmac { data, tag } => {
                let layout = r.layout(data, tag).ok_or_else(key_error)?;
                Inner::Gmac(AeadSession::new(Gmac::new(layout), initiator, compat))
            }
            Kind::Poly1305 { cipher } => {
                let c = r.cipher(cipher).ok_or_else(key_error)?;
                Inner::Poly1305(AeadSession::new(Poly::new(c), initiator, compat))
            }
        };
        Ok(Session {
            inner,
            established: now,
        })
    }
}

/// Consumes a session key front to back: data cipher ‖ tag cipher ‖ UHASH key (docs/protocol.md §5.2).
struct KeyReader<'a>(&'a [u8]);

impl KeyReader<'_> {
    fn cipher(&mut self, kind: CipherKind) -> Option<cipher::Cipher> {
        let (k, rest) = self.0.split_at_checked(kind.key_len())?;
        self.0 = rest;
        kind.init(k)
    }

    fn layout(&mut self, data: CipherKind, tag: Option<CipherKind>) -> Option<TagLayout> {
        let data = self.cipher(data)?;
        let tag = match tag {
            Some(t) => Some(self.cipher(t)?),
            None => None,
        };
        Some(TagLayout { data, tag })
    }

    fn uhash(&mut self) -> Option<UhashKey> {
        let (k, rest) = self.0.split_first_chunk::<{ uhash::KEY_BYTES }>()?;
        self.0 = rest;
        Some(UhashKey::new(k))
    }
}

enum Inner {
    Null(NullSession),
    NullL2tp(NullL2tpSession),
    Umac(AeadSession<Umac>),
    Gmac(AeadSession<Gmac>),
    Poly1305(AeadSession<Poly>),
}

/// A session of any method; implements [`MethodSession`] by static dispatch.
pub struct Session {
    inner: Inner,
    established: Instant,
}

impl Session {
    /// When the session was built (the `now` given to [`MethodSpec::session`]).
    pub fn established(&self) -> Instant {
        self.established
    }

    #[cfg(test)]
    fn set_send_nonce(&mut self, n: u64) {
        match &mut self.inner {
            Inner::Umac(s) => s.set_send_nonce(n),
            Inner::Gmac(s) => s.set_send_nonce(n),
            Inner::Poly1305(s) => s.set_send_nonce(n),
            Inner::Null(_) | Inner::NullL2tp(_) => {}
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $e:expr) => {
        match &$self.inner {
            Inner::Null($s) => $e,
            Inner::NullL2tp($s) => $e,
            Inner::Umac($s) => $e,
            Inner::Gmac($s) => $e,
            Inner::Poly1305($s) => $e,
        }
    };
    (mut $self:expr, $s:ident => $e:expr) => {
        match &mut $self.inner {
            Inner::Null($s) => $e,
            Inner::NullL2tp($s) => $e,
            Inner::Umac($s) => $e,
            Inner::Gmac($s) => $e,
            Inner::Poly1305($s) => $e,
        }
    };
}

impl MethodSession for Session {
    fn overhead(&self) -> usize {
        dispatch!(self, s => s.overhead())
    }

    #[inline]
    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), MethodError> {
        dispatch!(mut self, s => s.encrypt(buf))
    }

    #[inline]
    fn receive(&mut self, buf: &mut [u8], now: Instant) -> Result<Decrypted, DropReason> {
        dispatch!(mut self, s => s.receive(buf, now))
    }

    fn keepalive<'a>(
        &mut self,
        out: &'a mut [u8; MAX_KEEPALIVE_BYTES],
    ) -> Result<&'a [u8], MethodError> {
        dispatch!(mut self, s => s.keepalive(out))
    }

    fn want_refresh(&self) -> bool {
        dispatch!(self, s => s.want_refresh())
    }

    fn is_valid(&self) -> bool {
        dispatch!(self, s => s.is_valid())
    }
}
