//! IPv4 headers (RFC 791), validated as RFC 1812 5.2.2 asks of a router.
//!
//! After [`Packet::check_len`] passes, no accessor panics: the buffer holds
//! the 20-byte fixed header, the header length field is at least 20 and
//! within the buffer, and the total length lies between the header length
//! and the buffer length (a frame may carry link-layer padding after it).
//! The checksum is not part of `check_len` (RFC 1812 5.2.2 (2)): call
//! [`Packet::verify_checksum`], so that a stage can count it separately.

use super::{checksum, fixed, fixed_mut, get16, get32, set16, set32, Error};

/// Protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Bytes of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; see [`Packet::check_len`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and validates the lengths and the version.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// RFC 1812 5.2.2 header validation, all but the checksum.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        // RFC 1812 5.2.2 (1): the link layer carries at least a minimal header.
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        // RFC 1812 5.2.2 (3): the version is 4.
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        // RFC 1812 5.2.2 (4): IHL >= 5 words; and the link layer carries it all.
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::BadHeaderLength);
        }
        let total_len = usize::from(self.total_len());
        // RFC 1812 5.2.2 (5): total length >= header length; and the link
        // layer carries the whole datagram (more is padding).
        if total_len < header_len || total_len > len {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    fn header(&self) -> &[u8; HEADER_LEN] {
        fixed(self.buffer.as_ref())
    }

    /// Version field (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.header()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.header()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN, the former type of service byte.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.header()[field::DSCP_ECN]
    }

    /// Total length in bytes, header included.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get16(self.header(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get16(self.header(), field::IDENT)
    }

    /// Don't fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get16(self.header(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get16(self.header(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get16(self.header(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (first or later) rather than a whole datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get16(self.header(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.header()[field::TTL]
    }

    /// Protocol of the payload ([`PROTO_ICMP`], [`PROTO_TCP`], [`PROTO_UDP`], ...).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.header()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.header(), field::CHECKSUM)
    }

    /// Source address (host order).
    #[inline]
    pub fn src_addr(&self) -> u32 {
        get32(self.header(), field::SRC_ADDR)
    }

    /// Destination address (host order).
    #[inline]
    pub fn dst_addr(&self) -> u32 {
        get32(self.header(), field::DST_ADDR)
    }

    /// Whether the header carries options (IHL > 5).
    #[inline]
    pub fn has_options(&self) -> bool {
        self.header()[field::VER_IHL] & 0x0f != 5
    }

    /// The options, `20..header_len` (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// RFC 1812 5.2.2 (2): whether the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        if self.has_options() {
            checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0
        } else {
            checksum::verify20(self.header())
        }
    }

    /// The payload, `header_len..total_len`: link-layer padding excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets the version (keeps the header length).
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let h = self.header_mut();
        h[field::VER_IHL] = (version << 4) | (h[field::VER_IHL] & 0x0f);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60); keeps
    /// the version. Call `check_len` again before trusting the view.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let h = self.header_mut();
        h[field::VER_IHL] = (h[field::VER_IHL] & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.header_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length. Call `check_len` again before trusting the view.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        set16(self.header_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        set16(self.header_mut(), field::IDENT, ident);
    }

    /// Sets the flags and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_and_frag(&mut self, dont_frag: bool, more_frags: bool, frag_offset: u16) {
        let mut v = (frag_offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set16(self.header_mut(), field::FLG_OFF, v);
    }

    /// Sets the TTL (the checksum is left alone; see [`Packet::decrement_ttl`]).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.header_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, proto: u8) {
        self.header_mut()[field::PROTOCOL] = proto;
    }

    /// Sets the header checksum.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set16(self.header_mut(), field::CHECKSUM, c);
    }

    /// Sets the source address (host order); the checksum is left alone.
    #[inline]
    pub fn set_src_addr(&mut self, addr: u32) {
        set32(self.header_mut(), field::SRC_ADDR, addr);
    }

    /// Sets the destination address (host order); the checksum is left alone.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: u32) {
        set32(self.header_mut(), field::DST_ADDR, addr);
    }

    /// Computes and stores the header checksum over `header_len` bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = if self.has_options() {
            let len = self.header_len();
            checksum::sum(&self.buffer.as_ref()[..len])
        } else {
            checksum::sum(self.header())
        };
        self.set_checksum(checksum::fold(sum));
    }

    /// Decrements the TTL and updates the checksum incrementally (RFC 1624
    /// eqn. 3 over the TTL/protocol word). The caller checks `ttl() > 1`
    /// first (RFC 1812 5.3.1); a TTL of 0 wraps to 255.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let h = self.header_mut();
        h[field::TTL] = h[field::TTL].wrapping_sub(1);
        // RFC 1624 eqn. 3 with m' = m - 0x0100: HC' = HC + 0x0100 in ones'
        // complement; a result of 0xFFFF folds to 0x0000 as a full
        // recomputation would give (as Linux's ip_decrease_ttl).
        let c = u32::from(get16(h, field::CHECKSUM)) + 0x0100;
        set16(h, field::CHECKSUM, (c + u32::from(c >= 0xFFFF)) as u16);
    }

    /// The payload, `header_len..total_len`, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// An IPv4 header without options, owned: for building replies and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address (host order).
    pub src: u32,
    /// Destination address (host order).
    pub dst: u32,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Payload bytes after the 20-byte header.
    pub payload_len: u16,
    /// Identification.
    pub ident: u16,
    /// Don't fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Bytes [`Repr::emit`] writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// The fields of a checked packet (options and fragment fields are not
    /// kept; `payload_len` is `total_len - header_len`).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            payload_len: p.total_len() - p.header_len() as u16,
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        }
    }

    /// Writes a 20-byte header (DSCP 0, no options, not a fragment) with its
    /// checksum. `p` needs at least 20 bytes; the payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let h = p.header_mut();
        h[field::VER_IHL] = 0x45;
        h[field::DSCP_ECN] = 0;
        p.set_total_len(HEADER_LEN as u16 + self.payload_len);
        p.set_ident(self.ident);
        p.set_flags_and_frag(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::tests::XorShift;

    /// A ping, 198.51.100.1 -> 203.0.113.7, TTL 64, DF, ident 0x1c46, ICMP
    /// echo request with 16 bytes of data, then 2 bytes of link padding.
    const PING: [u8; 46] = [
        0x45, 0x00, 0x00, 0x2c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0xb8, 0x4e, // fixed
        0xc6, 0x33, 0x64, 0x01, 0xcb, 0x00, 0x71, 0x07, // addresses
        0x08, 0x00, 0x2d, 0x0a, 0x12, 0x34, 0x00, 0x01, // ICMP echo request
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e,
        0x1f, // echo data
        0xee, 0xee, // padding
    ];

    /// 192.0.2.1 -> 192.0.2.2, UDP, TTL 1, ident 0xabcd, with a Router Alert
    /// option (IHL 6), 8 bytes of payload.
    const WITH_OPTIONS: [u8; 32] = [
        0x46, 0x00, 0x00, 0x20, 0xab, 0xcd, 0x00, 0x00, 0x01, 0x11, 0xf4, 0xf7, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x94, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_be_bytes([a, b, c, d])
    }

    #[test]
    fn ping_fields() {
        let p = Packet::new_checked(&PING[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_ICMP);
        assert_eq!(p.checksum(), 0xb84e);
        assert_eq!(p.src_addr(), ip(198, 51, 100, 1));
        assert_eq!(p.dst_addr(), ip(203, 0, 113, 7));
        assert!(!p.has_options());
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &PING[20..44], "padding excluded");
    }

    #[test]
    fn options_fields() {
        let p = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.has_options());
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0u8; 8]);
        assert!(!p.dont_frag());
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), PROTO_UDP);
    }

    #[test]
    fn bad_checksum_is_detected() {
        let mut buf = PING;
        buf[11] ^= 1;
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
        let mut buf = WITH_OPTIONS;
        buf[22] = 1; // an option byte, covered by the checksum
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn rfc1812_checks() {
        // (1) shorter than a minimal header.
        assert_eq!(
            Packet::new_checked(&PING[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(Packet::new_checked(&[][..]).unwrap_err(), Error::Truncated);
        // (3) version 6 in an IPv4 ethertype.
        let mut buf = PING;
        buf[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadVersion
        );
        // (4) IHL 4, and IHL 15 (60 bytes) in a 46-byte buffer.
        buf[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadHeaderLength
        );
        buf[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadHeaderLength
        );
        // (5) total length below the header length (19, and 20 with a
        // 24-byte header), and beyond the buffer.
        let mut buf = PING;
        buf[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadTotalLength
        );
        let mut opt = WITH_OPTIONS;
        opt[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&opt[..]).unwrap_err(),
            Error::BadTotalLength
        );
        assert_eq!(
            Packet::new_checked(&PING[..43]).unwrap_err(),
            Error::BadTotalLength
        );
        // Edges that are fine: exactly the datagram; a bare header.
        assert!(Packet::new_checked(&PING[..44]).is_ok());
        let mut bare = [0u8; 20];
        bare[..20].copy_from_slice(&PING[..20]);
        bare[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert!(Packet::new_checked(&bare[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = PING;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_dscp_ecn(0xb8);
        p.set_ident(0xbeef);
        p.set_flags_and_frag(false, true, 1480);
        p.set_ttl(3);
        p.set_protocol(PROTO_TCP);
        p.set_src_addr(ip(192, 0, 2, 1));
        p.set_dst_addr(ip(198, 18, 0, 9));
        p.set_total_len(40);
        assert_eq!(p.dscp_ecn(), 0xb8);
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 3);
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(p.src_addr(), ip(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), ip(198, 18, 0, 9));
        assert_eq!(p.total_len(), 40);
        assert!(!p.verify_checksum(), "setters leave the checksum alone");
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_checksum(0x1234);
        assert_eq!(p.checksum(), 0x1234);
        p.set_flags_and_frag(true, false, 0);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        // A last fragment: offset only.
        p.set_flags_and_frag(false, false, 8);
        assert!(p.is_fragment());
        p.set_header_len(24);
        assert_eq!((p.version(), p.header_len()), (4, 24));
        p.set_version(6);
        assert_eq!((p.version(), p.header_len()), (6, 24));
        assert_eq!(p.check_len(), Err(Error::BadVersion));
        p.set_version(4);
        p.set_header_len(20);
        p.payload_mut()[0] = 0x00;
        assert_eq!(buf[20], 0x00);
        assert_eq!(buf[1], 0xb8);
    }

    #[test]
    fn fill_checksum_with_options() {
        let mut buf = WITH_OPTIONS;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_checksum(0);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xf4f7);
    }

    #[test]
    fn decrement_ttl_matches_full_recomputation() {
        let mut buf = PING;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0xb94e);

        let mut rng = XorShift(0x5eed);
        for _ in 0..10_000 {
            let mut h = [0u8; 20];
            rng.fill(&mut h);
            h[0] = 0x45;
            h[2..4].copy_from_slice(&20u16.to_be_bytes());
            h[8] = h[8].max(1);
            let mut p = Packet::new_checked(&mut h[..]).unwrap();
            p.fill_checksum();
            let ttl = p.ttl();
            p.decrement_ttl();
            let incremental = p.checksum();
            assert_eq!(p.ttl(), ttl - 1);
            p.fill_checksum();
            assert_eq!(incremental, p.checksum(), "ttl {ttl}");
        }
    }

    #[test]
    fn decrement_ttl_corner_cases() {
        // A header whose checksum goes to 0x0000 and one that leaves 0x0000.
        let mut rng = XorShift(99);
        let mut h = [0u8; 20];
        rng.fill(&mut h);
        h[0] = 0x45;
        h[2..4].copy_from_slice(&20u16.to_be_bytes());
        h[8] = 10;
        let ident = (0..=0xffffu16)
            .find(|&v| {
                let mut p = Packet::new_unchecked(&mut h[..]);
                p.set_ident(v);
                p.set_ttl(9);
                p.fill_checksum();
                p.checksum() == 0
            })
            .unwrap();
        let mut p = Packet::new_checked(&mut h[..]).unwrap();
        p.set_ident(ident);
        p.set_ttl(10);
        p.fill_checksum();
        p.decrement_ttl();
        assert_eq!(p.checksum(), 0x0000);
        assert!(p.verify_checksum());
        p.decrement_ttl();
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(incremental, p.checksum());
        assert!(p.verify_checksum());
    }

    #[test]
    fn repr_emit_and_parse() {
        let repr = Repr {
            src: ip(198, 51, 100, 1),
            dst: ip(203, 0, 113, 7),
            protocol: PROTO_ICMP,
            ttl: 64,
            payload_len: 24,
            ident: 0x1c46,
            dont_frag: true,
        };
        let mut buf = [0xffu8; 44];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[..20], PING[..20]);
        assert_eq!(buf[20..], [0xff; 24], "payload untouched");
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p), repr);
        let opt = Repr::parse(&Packet::new_checked(&WITH_OPTIONS[..]).unwrap());
        assert_eq!(opt.payload_len, 8);
        assert!(!opt.dont_frag);
    }
}
