//! ICMP messages (RFC 792).
//!
//! The view covers the whole ICMP message (the IPv4 payload): the checksum is
//! over all of it. After [`Packet::check_len`] passes (8 bytes), no accessor
//! panics.

use super::{checksum, fixed, fixed_mut, get16, get32, set16, set32, Error};

/// Echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Source quench (deprecated by RFC 6633, still an error message).
pub const SOURCE_QUENCH: u8 = 4;
/// Redirect.
pub const REDIRECT: u8 = 5;
/// Echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;
/// Timestamp request.
pub const TIMESTAMP: u8 = 13;
/// Timestamp reply.
pub const TIMESTAMP_REPLY: u8 = 14;

/// Destination unreachable code: network unreachable.
pub const NET_UNREACHABLE: u8 = 0;
/// Destination unreachable code: host unreachable.
pub const HOST_UNREACHABLE: u8 = 1;
/// Destination unreachable code: protocol unreachable.
pub const PROTO_UNREACHABLE: u8 = 2;
/// Destination unreachable code: port unreachable.
pub const PORT_UNREACHABLE: u8 = 3;
/// Destination unreachable code: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;
/// Destination unreachable code: communication administratively prohibited
/// (RFC 1812 5.2.7.1).
pub const ADMIN_PROHIBITED: u8 = 13;
/// Time exceeded code: TTL exceeded in transit.
pub const TTL_EXCEEDED: u8 = 0;
/// Time exceeded code: fragment reassembly time exceeded.
pub const REASSEMBLY_EXCEEDED: u8 = 1;

/// Bytes of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    // RFC 1191: next-hop MTU in a fragmentation-needed message.
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
}

/// Whether `msg_type` is an error message (one that quotes an offending
/// datagram and must never be sent about another error, RFC 1812 4.3.2.7).
#[inline]
pub const fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
    )
}

/// Types with names, in nftables spelling.
const NAMES: [(u8, &str); 9] = [
    (ECHO_REPLY, "echo-reply"),
    (DEST_UNREACHABLE, "destination-unreachable"),
    (SOURCE_QUENCH, "source-quench"),
    (REDIRECT, "redirect"),
    (ECHO_REQUEST, "echo-request"),
    (TIME_EXCEEDED, "time-exceeded"),
    (PARAMETER_PROBLEM, "parameter-problem"),
    (TIMESTAMP, "timestamp-request"),
    (TIMESTAMP_REPLY, "timestamp-reply"),
];

/// The type named `name` in nftables spelling (`echo-request`), if any.
pub fn type_from_name(name: &str) -> Option<u8> {
    NAMES.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
}

/// The nftables name of `msg_type`, if it has one.
pub fn type_name(msg_type: u8) -> Option<&'static str> {
    NAMES.iter().find(|(t, _)| *t == msg_type).map(|(_, n)| *n)
}

/// A view of an ICMP message.
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

    /// Wraps `buffer` and checks that the 8-byte header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
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

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.header()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.header()[field::CODE]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.header(), field::CHECKSUM)
    }

    /// Echo identifier (echo request/reply, timestamp).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.header(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply, timestamp).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.header(), field::ECHO_SEQ)
    }

    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get16(self.header(), field::NEXT_HOP_MTU)
    }

    /// The four bytes after the checksum, whatever the type makes of them.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get32(self.header(), field::REST)
    }

    /// Whether the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram
    /// of an error.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.header_mut()[field::TYPE] = t;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.header_mut()[field::CODE] = c;
    }

    /// Sets the checksum.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set16(self.header_mut(), field::CHECKSUM, c);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set16(self.header_mut(), field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        set16(self.header_mut(), field::ECHO_SEQ, v);
    }

    /// Sets the next-hop MTU of a fragmentation-needed message.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        set16(self.header_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// Sets the four bytes after the checksum (zero for most errors).
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set32(self.header_mut(), field::REST, v);
    }

    /// Computes and stores the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Everything after the 8-byte header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ping -p 10` style echo request: ident 0x1234, seq 1, 16 bytes of data.
    const ECHO: [u8; 24] = [
        0x08, 0x00, 0x2d, 0x0a, 0x12, 0x34, 0x00, 0x01, // header
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e,
        0x1f,
    ];

    #[test]
    fn echo_request_fields() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x2d0a);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &ECHO[8..]);
        assert!(!is_error(p.msg_type()));
    }

    #[test]
    fn truncated_is_refused() {
        assert_eq!(
            Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        assert!(Packet::new_checked(&ECHO[..8])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn echo_reply_from_request() {
        let mut buf = ECHO;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        // Type 8 -> 0 lowers the first word by 0x0800: checksum up by 0x0800.
        assert_eq!(p.checksum(), 0x350a);
        let mut odd = [0u8; 9]; // odd length: last byte padded
        odd[8] = 0xab;
        let mut p = Packet::new_checked(&mut odd[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.checksum(), !0xab00);
        assert!(p.verify_checksum());
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(DEST_UNREACHABLE);
        p.set_code(FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        assert_eq!((p.msg_type(), p.code(), p.next_hop_mtu()), (3, 4, 1400));
        assert_eq!(p.rest_of_header(), 1400);
        p.set_echo_ident(0xaaaa);
        p.set_echo_seq(0xbbbb);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0xaaaa, 0xbbbb));
        p.set_rest_of_header(0x0102_0304);
        assert_eq!(p.rest_of_header(), 0x0102_0304);
        p.set_checksum(0xcafe);
        assert_eq!(p.checksum(), 0xcafe);
        p.payload_mut().copy_from_slice(&[9, 8, 7, 6]);
        assert_eq!(p.payload(), &[9, 8, 7, 6]);
        assert_eq!(buf, [3, 4, 0xca, 0xfe, 1, 2, 3, 4, 9, 8, 7, 6]);
    }

    #[test]
    fn error_types() {
        for t in [
            DEST_UNREACHABLE,
            SOURCE_QUENCH,
            REDIRECT,
            TIME_EXCEEDED,
            PARAMETER_PROBLEM,
        ] {
            assert!(is_error(t), "{t}");
        }
        for t in [
            ECHO_REPLY,
            ECHO_REQUEST,
            TIMESTAMP,
            TIMESTAMP_REPLY,
            9,
            10,
            255,
        ] {
            assert!(!is_error(t), "{t}");
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(type_from_name("echo-request"), Some(8));
        assert_eq!(type_from_name("destination-unreachable"), Some(3));
        assert_eq!(type_from_name("timestamp-request"), Some(13));
        assert_eq!(type_from_name("echo_request"), None);
        assert_eq!(type_from_name("Echo-Request"), None);
        assert_eq!(type_name(11), Some("time-exceeded"));
        assert_eq!(type_name(9), None);
        for t in 0..=255u8 {
            if let Some(n) = type_name(t) {
                assert_eq!(type_from_name(n), Some(t));
            }
        }
        assert_eq!((0..=255u8).filter_map(type_name).count(), 9);
    }
}
