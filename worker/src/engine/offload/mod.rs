//! Offloads between the kernel and the packet path: TUN devices opened with a
//! virtio-net header and TUNSETOFFLOAD hand us TCP/UDP super-packets of up to 64 KiB with
//! partial checksums; we split them into MTU-sized IP packets, as the kernel's GSO would, so
//! that every fastd packet on the wire still carries one IP packet. Pure functions only: the
//! engine does the reads and writes.

pub mod coalesce;
pub mod csum;
pub mod gso;
pub mod segment;
pub mod vnet;

/// The largest packet a device with offloads hands over (an IP packet's 16-bit length).
pub const MAX_SUPER: usize = 65535;

/// Why a packet from the device could not be split (dropped and counted by the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("virtio-net header missing or truncated")]
    ShortHeader,
    #[error("unsupported GSO type {0}")]
    GsoType(u8),
    #[error("malformed IP/TCP/UDP headers for GSO")]
    Malformed,
    #[error("segment larger than the buffer")]
    TooLarge,
}

#[cfg(test)]
mod coalesce_tests;
#[cfg(test)]
mod tests;
