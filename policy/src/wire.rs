//! The only place that knows the encoding (bincode 1.x, RUSTSEC-2025-0141: see
//! deny.toml). Both directions use the same options: fixed-width integers, a hard size
//! limit, trailing bytes rejected. Unknown enum variants fail in bincode itself, and
//! every typed value is re-validated by its `try_from` constructor.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// Largest message on the socket (one SEQPACKET datagram).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Largest piece of a file in one reply, leaving room for the framing.
pub const MAX_FILE: usize = MAX_MESSAGE - 1024;

/// Largest file the helper reads for the worker (in pieces of [`MAX_FILE`]).
pub const MAX_FILE_TOTAL: usize = 16 * 1024 * 1024;

/// Largest encoded manifest, sent in [`crate::Request::ManifestPart`] pieces (a
/// configured peer costs about 100 bytes).
pub const MAX_MANIFEST: usize = 16 * 1024 * 1024;

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE`] (or the manifest limit).
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    /// Not a valid message: bincode's reason, or a typed value's constructor refused it.
    #[error("malformed message: {0}")]
    Malformed(String),
}

fn options() -> impl Options {
    options_limit(MAX_MESSAGE)
}

fn options_limit(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit as u64)
        .reject_trailing_bytes()
}

/// A manifest encoded whole, to be sent in pieces of at most [`MAX_FILE`] bytes.
pub fn encode_manifest(m: &crate::Manifest) -> Result<Vec<u8>, WireError> {
    options_limit(MAX_MANIFEST)
        .serialize(m)
        .map_err(|e| match *e {
            bincode::ErrorKind::SizeLimit => WireError::TooLarge,
            other => WireError::Malformed(other.to_string()),
        })
}

/// The manifest of the collected [`crate::Request::ManifestPart`] bytes, validated by
/// the same typed constructors as every message.
pub fn decode_manifest(bytes: &[u8]) -> Result<crate::Manifest, WireError> {
    if bytes.len() > MAX_MANIFEST {
        return Err(WireError::TooLarge);
    }
    options_limit(MAX_MANIFEST)
        .deserialize(bytes)
        .map_err(|e| match *e {
            bincode::ErrorKind::SizeLimit => WireError::TooLarge,
            other => WireError::Malformed(other.to_string()),
        })
}

/// One message in the wire encoding, at most [`MAX_MESSAGE`] bytes.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let bytes = options().serialize(msg).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => WireError::TooLarge,
        other => WireError::Malformed(other.to_string()),
    })?;
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge);
    }
    Ok(bytes)
}

/// One message from the wire encoding; every typed value is validated on the way.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge);
    }
    options().deserialize(bytes).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => WireError::TooLarge,
        other => WireError::Malformed(other.to_string()),
    })
}
