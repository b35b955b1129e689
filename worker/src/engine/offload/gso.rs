//! UDP GSO on send (UDP_SEGMENT): which queued datagrams can leave in one `sendmsg`, the
//! kernel cutting them apart again. The rules are the kernel's (udp_send_skb): one
//! destination and source, every segment of the first one's size except the last, which may
//! be shorter, at most [`MAX_SEGMENTS`] segments and [`MAX_BYTES`] in all.

/// UDP_MAX_SEGMENTS of Linux before 6.9 (later kernels allow 128).
pub const MAX_SEGMENTS: usize = 64;
/// Below the largest UDP payload over IPv6 (65535 - 40 - 8), with room to spare.
pub const MAX_BYTES: usize = 65000;

/// The end (exclusive) of the run of datagrams starting at `from` that can go as one GSO
/// send; `same(j)` says datagram `j` has `from`'s destination and source. At least
/// `from + 1` (a run of one goes without UDP_SEGMENT).
pub fn run_end(lens: &[usize], same: impl Fn(usize) -> bool, from: usize) -> usize {
    let Some(&size) = lens.get(from) else {
        return from + 1;
    };
    let mut end = from + 1;
    let mut bytes = size;
    while end < lens.len() && end - from < MAX_SEGMENTS && size > 0 {
        let len = lens[end];
        if len > size || len == 0 || bytes + len > MAX_BYTES || !same(end) {
            break;
        }
        bytes += len;
        end += 1;
        if len < size {
            // A shorter segment is the last of its run.
            break;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_kernels_rules() {
        let all = |_| true;
        assert_eq!(run_end(&[100, 100, 100], all, 0), 3);
        // The shorter one ends the run; a longer one starts a new one.
        assert_eq!(run_end(&[100, 100, 60, 100], all, 0), 3);
        assert_eq!(run_end(&[60, 100], all, 0), 1);
        assert_eq!(run_end(&[100, 100, 100], |j| j != 2, 0), 2);
        assert_eq!(run_end(&[100, 100, 100], all, 2), 3);
        // Segment count and byte limits.
        assert_eq!(run_end(&[10; 100], all, 0), MAX_SEGMENTS);
        assert_eq!(run_end(&[1400; 60], all, 0), MAX_BYTES / 1400);
        assert_eq!(run_end(&[0, 0], all, 0), 1);
    }
}
