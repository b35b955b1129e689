//! The Internet checksum (RFC 1071) over byte slices, with the IPv4/IPv6 pseudo-headers.

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last byte padded) added
/// to `acc`, not yet folded.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Adding the two 32-bit halves keeps the sum congruent modulo 0xffff.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = rest.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum for an L4 segment of `len` bytes with protocol `proto` between the
/// addresses of the IP header `ip` (version from its first nibble).
pub fn pseudo(ip: &[u8], proto: u8, len: usize) -> u64 {
    let mut acc = u64::from(proto) + len as u64;
    match ip.first().map(|b| b >> 4) {
        Some(4) => acc = sum(ip.get(12..20).unwrap_or(&[]), acc),
        Some(6) => acc = sum(ip.get(8..40).unwrap_or(&[]), acc),
        _ => {}
    }
    acc
}

/// The checksum to store: complemented; UDP's "no checksum" 0 is sent as 0xffff (as the
/// kernel's csum_fold users do), which is the same value in one's complement.
pub fn finish(acc: u64) -> u16 {
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// The IPv4 header checksum of `hdr` (its checksum field is ignored).
pub fn ipv4_header(hdr: &[u8]) -> u16 {
    let acc = sum(hdr.get(..10).unwrap_or(&[]), 0);
    !fold(sum(hdr.get(12..).unwrap_or(&[]), acc))
}
