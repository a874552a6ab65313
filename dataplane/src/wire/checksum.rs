//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! [`sum`] returns a partial ones-complement sum folded to at most `0xFFFF`,
//! so partial sums (a pseudo-header, a header, a payload) add up in a `u32`
//! without overflow before [`fold`] folds and complements them. A partial sum
//! is only meaningful for data that starts at an even offset of the checksummed
//! message; only the last piece may have an odd length.
//!
//! Folding uses end-around carries, so the sum of data that is not all zeros
//! is never `0x0000`: a checksum computed here is `0xFFFF` only for all-zero
//! data, which is why [`update16`] (RFC 1624 eqn. 3) agrees with a full
//! recomputation for every IPv4 header (its version byte is never zero).

/// Ones-complement sum of `data` as big-endian 16-bit words, an odd last byte
/// padded with zero. The result is at most `0xFFFF` and is `0` only when every
/// byte is zero.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Add 32-bit halves of 64-bit words into a u64: 2^32 = 1 (mod 0xFFFF), so
    // the carries fold back in later, and a u64 cannot overflow before 16 GiB.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().expect("8-byte chunk"));
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        acc += u64::from(u32::from_be_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        acc += u64::from(u16::from_be_bytes(*w));
        rest = tail;
    }
    if let Some(&b) = rest.first() {
        acc += u64::from(b) << 8;
    }
    // One end-around-carry add takes the u64 to a u32, two folds to 16 bits.
    let (s, carry) = (acc as u32).overflowing_add((acc >> 32) as u32);
    fold16(s + u32::from(carry))
}

/// Folds a sum to 16 bits with end-around carries (nonzero stays nonzero).
#[inline(always)]
fn fold16(mut s: u32) -> u32 {
    s = (s & 0xffff) + (s >> 16);
    (s & 0xffff) + (s >> 16)
}

/// Folds a sum of partial sums to 16 bits and complements it: the checksum
/// to write into a header.
#[inline]
pub fn fold(sum: u32) -> u16 {
    !(fold16(sum) as u16)
}

/// The Internet checksum of `data`. Over a message that carries a correct
/// checksum this is `0`.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// Partial sum of the TCP/UDP pseudo-header (RFC 793 3.1, RFC 768):
/// addresses in host byte order, `len` the TCP/UDP length in bytes.
#[inline]
pub fn pseudo_header(src: u32, dst: u32, proto: u8, len: u16) -> u32 {
    (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + u32::from(proto) + u32::from(len)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 8.1) for ICMPv6, TCP
/// and UDP: addresses in host byte order, `next_header` the upper-layer
/// protocol (not the first extension header), `len` the upper-layer length
/// in bytes. Folded to at most `0xFFFF`.
#[inline]
pub fn pseudo_header6(src: u128, dst: u128, next_header: u8, len: u32) -> u32 {
    let words = |a: u128| -> u32 {
        let (hi, lo) = ((a >> 64) as u64, a as u64);
        let w = |x: u64| {
            (x >> 48) as u32
                + ((x >> 32) & 0xffff) as u32
                + ((x >> 16) & 0xffff) as u32
                + (x & 0xffff) as u32
        };
        w(hi) + w(lo)
    };
    // At most 16 words of 0xFFFF plus a 32-bit length: no u32 overflow.
    fold16(words(src) + words(dst) + (len >> 16) + (len & 0xffff) + u32::from(next_header))
}

/// The checksum to write into an upper-layer header over IPv6 (ICMPv6,
/// TCP, UDP): pseudo-header plus `data` (the whole upper-layer message with
/// its checksum field zero). For UDP over IPv6 a result of `0x0000` must be
/// sent as `0xFFFF` (RFC 8200 8.1): use [`udp6`].
#[inline]
pub fn upper6(src: u128, dst: u128, next_header: u8, data: &[u8]) -> u16 {
    fold(pseudo_header6(src, dst, next_header, data.len() as u32) + sum(data))
}

/// Whether an upper-layer message over IPv6 (checksum field as received)
/// checksums to zero.
#[inline]
pub fn verify6(src: u128, dst: u128, next_header: u8, data: &[u8]) -> bool {
    upper6(src, dst, next_header, data) == 0
}

/// The UDP checksum over IPv6: as [`upper6`], but never `0x0000`, which
/// means "no checksum" and is invalid over IPv6 (RFC 8200 8.1): `0xFFFF`
/// instead.
#[inline]
pub fn udp6(src: u128, dst: u128, data: &[u8]) -> u16 {
    match upper6(src, dst, 17, data) {
        0 => 0xffff,
        c => c,
    }
}

/// Whether a received UDP datagram over IPv6 has a valid checksum: a zero
/// checksum field is invalid (RFC 8200 8.1, "IPv6 receivers must discard
/// UDP packets containing a zero checksum"), anything else must verify.
#[inline]
pub fn verify_udp6(src: u128, dst: u128, data: &[u8]) -> bool {
    data.get(6..8).is_some_and(|c| c != [0, 0]) && verify6(src, dst, 17, data)
}

/// Whether a 20-byte IPv4 header (no options) checksums to zero: five
/// 32-bit words summed in native order (the ones' complement sum is byte
/// order independent, and 0xFFFF is its own swap).
#[inline(always)]
pub fn verify20(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    // Below 2^35: the high word is at most 4, so one carry folds 64 to 32.
    let s = w(0) + w(4) + w(8) + w(12) + w(16);
    let (lo, carry) = (s as u32).overflowing_add((s >> 32) as u32);
    let s = lo + u32::from(carry);
    // 32 to 16 with the end-around carry: the high half of s + (s rotated 16).
    (s.wrapping_add(s.rotate_right(16)) >> 16) == 0xffff
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word changes from `old` to
/// `new`, `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 it never turns a checksum
/// into `0xFFFF` unless the whole message sums to zero.
#[inline]
pub fn update16(old_checksum: u16, old: u16, new: u16) -> u16 {
    fold(u32::from(!old_checksum) + u32::from(!old) + u32::from(new))
}

/// RFC 1624 eqn. 3 for a 32-bit field (an address) changing from `old` to
/// `new`: both of its 16-bit words at once.
#[inline]
pub fn update32(old_checksum: u16, old: u32, new: u32) -> u16 {
    fold(
        u32::from(!old_checksum)
            + u32::from(!(old >> 16) as u16)
            + u32::from(!(old as u16))
            + (new >> 16)
            + (new & 0xffff),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny xorshift64 generator, enough to spread test inputs.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub(crate) fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    /// RFC 1071 4.1 reference: 16 bits at a time, carries folded at the end.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            s += u64::from(data[i]) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// A plausible IPv4 header (version 4, IHL 5) with its checksum filled.
    fn random_header(rng: &mut XorShift) -> [u8; 20] {
        let mut h = [0u8; 20];
        rng.fill(&mut h);
        h[0] = 0x45;
        fill(&mut h);
        h
    }

    fn fill(h: &mut [u8; 20]) {
        h[10] = 0;
        h[11] = 0;
        let c = data(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }

    fn word(h: &[u8; 20], at: usize) -> u16 {
        u16::from_be_bytes([h[at], h[at + 1]])
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&bytes), 0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
        // Byte order independence (RFC 1071 2.B): swapped input, swapped sum.
        let swapped = [0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6];
        assert_eq!(sum(&swapped), 0xf2dd);
    }

    #[test]
    fn known_ipv4_header_verifies() {
        // 192.168.0.1 -> 192.168.0.199, UDP, checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(data(&h), 0xb861);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0x01]), 0x0100);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn sum_matches_reference_for_every_length_and_all_ones() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 300];
        for len in 0..buf.len() {
            rng.fill(&mut buf[..len]);
            assert_eq!(
                sum(&buf[..len]),
                u32::from(reference_sum(&buf[..len])),
                "len {len}"
            );
        }
        // All-ones data sums to 0xFFFF (negative zero), never to 0.
        let ones = [0xffu8; 1500];
        assert_eq!(sum(&ones), 0xffff);
        assert_eq!(sum(&ones[..10]), 0xffff);
        assert_eq!(sum(&ones[..9]), 0xff00, "odd byte padded with zero");
    }

    #[test]
    fn partial_sums_add_up() {
        let mut rng = XorShift(7);
        let mut buf = [0u8; 1001];
        rng.fill(&mut buf);
        for cut in (0..buf.len()).step_by(2) {
            let whole = data(&buf);
            let parts = fold(sum(&buf[..cut]) + sum(&buf[cut..]));
            assert_eq!(parts, whole, "cut {cut}");
        }
    }

    #[test]
    fn pseudo_header_is_the_sum_of_its_bytes() {
        let src: u32 = 0xc633_6401; // 198.51.100.1
        let dst: u32 = 0xcb00_7107; // 203.0.113.7
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&src.to_be_bytes());
        bytes[4..8].copy_from_slice(&dst.to_be_bytes());
        bytes[9] = 17;
        bytes[10..12].copy_from_slice(&1480u16.to_be_bytes());
        assert_eq!(fold(pseudo_header(src, dst, 17, 1480)), data(&bytes));
    }

    fn a6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn pseudo_header6_is_the_sum_of_its_bytes() {
        let (src, dst) = (a6("2001:db8::ffff:1"), a6("fe80::dead:beef:1:2"));
        // RFC 8200 8.1: src, dst, 32-bit length, 3 zero bytes, next header.
        let mut bytes = [0u8; 40];
        bytes[0..16].copy_from_slice(&src.to_be_bytes());
        bytes[16..32].copy_from_slice(&dst.to_be_bytes());
        bytes[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        bytes[39] = 58;
        assert_eq!(fold(pseudo_header6(src, dst, 58, 70_000)), data(&bytes));
        let ones = u128::MAX;
        let mut bytes = [0xffu8; 40];
        bytes[36..39].fill(0);
        bytes[39] = 255;
        assert_eq!(
            fold(pseudo_header6(ones, ones, 255, u32::MAX)),
            data(&bytes)
        );
    }

    #[test]
    fn known_icmpv6_and_udp6_checksums() {
        // fe80::1 -> fe80::2: smoltcp's echo request (checksum 0x19b3), and
        // a UDP datagram 0xbf00 -> 53 with 4 bytes of data, whose checksum
        // 0x989c was computed apart with a plain RFC 1071 sum in Python
        // (smoltcp quotes this datagram with a made-up 0x124d).
        let (src, dst) = (a6("fe80::1"), a6("fe80::2"));
        let mut echo = [
            0x80, 0x00, 0x19, 0xb3, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
        ];
        assert!(verify6(src, dst, 58, &echo));
        assert!(
            !verify6(dst, src.wrapping_add(2), 58, &echo),
            "other addresses"
        );
        echo[2..4].fill(0);
        assert_eq!(upper6(src, dst, 58, &echo), 0x19b3);
        let mut udp = [
            0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x98, 0x9c, 0xaa, 0x00, 0x00, 0xff,
        ];
        assert!(verify_udp6(src, dst, &udp));
        udp[6..8].fill(0);
        assert_eq!(udp6(src, dst, &udp), 0x989c);
        assert!(
            !verify_udp6(src, dst, &udp),
            "zero UDP checksum is invalid over IPv6"
        );
    }

    #[test]
    fn udp6_never_emits_zero() {
        // A datagram (checksum field 0) whose computed checksum is 0x0000:
        // udp6 sends 0xFFFF instead, and that verifies.
        let (src, dst) = (a6("2001:db8::1"), a6("2001:db8::2"));
        let mut d = [0x12, 0x34, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00];
        let w = (0..=0xffffu16)
            .find(|&w| {
                d[8..10].copy_from_slice(&w.to_be_bytes());
                upper6(src, dst, 17, &d) == 0
            })
            .expect("some word makes the checksum 0");
        d[8..10].copy_from_slice(&w.to_be_bytes());
        assert_eq!(udp6(src, dst, &d), 0xffff);
        d[6..8].copy_from_slice(&[0xff, 0xff]);
        assert!(verify_udp6(src, dst, &d));
        d[6..8].fill(0);
        assert!(
            !verify_udp6(src, dst, &d),
            "0 means none: invalid over IPv6"
        );
        assert!(!verify_udp6(src, dst, &d[..7]), "shorter than a UDP header");
    }

    #[test]
    fn update16_equals_full_recomputation() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let mut h = random_header(&mut rng);
            // Any word but the checksum itself (offset 10).
            let at = [0, 2, 4, 6, 8, 12, 14, 16, 18][(rng.next() % 9) as usize];
            let old = word(&h, at);
            let new = rng.next() as u16;
            let incremental = update16(word(&h, 10), old, new);
            h[at..at + 2].copy_from_slice(&new.to_be_bytes());
            fill(&mut h);
            assert_eq!(
                incremental,
                word(&h, 10),
                "word {at}: {old:04x} -> {new:04x}"
            );
            assert_eq!(data(&h), 0);
        }
    }

    #[test]
    fn update32_equals_full_recomputation() {
        let mut rng = XorShift(42);
        for _ in 0..20_000 {
            let mut h = random_header(&mut rng);
            let at = if rng.next() & 1 == 0 { 12 } else { 16 };
            let old = u32::from_be_bytes(h[at..at + 4].try_into().unwrap());
            let new = rng.next() as u32;
            let incremental = update32(word(&h, 10), old, new);
            h[at..at + 4].copy_from_slice(&new.to_be_bytes());
            fill(&mut h);
            assert_eq!(incremental, word(&h, 10));
        }
    }

    #[test]
    fn update_corner_cases_0000_and_ffff() {
        let mut rng = XorShift(0xdead_beef);
        for _ in 0..20 {
            let mut h = random_header(&mut rng);
            // Find an ident that makes the full checksum 0x0000 (the header
            // sums to 0xFFFF); one exists in 0..=0xFFFF for every header.
            let ident = (0..=0xffffu16)
                .find(|&v| {
                    h[4..6].copy_from_slice(&v.to_be_bytes());
                    fill(&mut h);
                    word(&h, 10) == 0x0000
                })
                .expect("an ident giving checksum 0");
            assert_eq!(data(&h), 0);
            // Into the corner: from another ident to this one.
            let mut other = h;
            let other_ident = ident.wrapping_add(0x0101);
            other[4..6].copy_from_slice(&other_ident.to_be_bytes());
            fill(&mut other);
            assert_eq!(update16(word(&other, 10), other_ident, ident), 0x0000);
            // Out of the corner, and a no-op change that must stay 0x0000
            // (eqn. 2 would give 0xFFFF here).
            assert_eq!(update16(0x0000, ident, other_ident), word(&other, 10));
            assert_eq!(update16(0x0000, ident, ident), 0x0000);
            // A word going from 0x0000 to 0xFFFF (both zero in ones complement).
            let mut z = h;
            z[18..20].copy_from_slice(&[0, 0]);
            fill(&mut z);
            let before = word(&z, 10);
            z[18..20].copy_from_slice(&[0xff, 0xff]);
            fill(&mut z);
            assert_eq!(update16(before, 0x0000, 0xffff), word(&z, 10));
            assert_eq!(update16(word(&z, 10), 0xffff, 0x0000), before);
        }
    }
}
