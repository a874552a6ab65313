//! ICMPv6 messages (RFC 4443), the carrier of NDP ([`super::ndp`]).
//!
//! The view covers the whole ICMPv6 message (the upper-layer payload of an
//! IPv6 packet). Its checksum covers the IPv6 pseudo-header (RFC 4443 2.3),
//! so [`Packet::verify_checksum`] and [`Packet::fill_checksum`] take the
//! addresses. After [`Packet::check_len`] passes (8 bytes), no accessor
//! panics.
//!
//! Errors a router sends ([`ErrorRepr::emit`]) quote as much of the invoking
//! packet as fits in the minimum MTU, 1280 bytes (RFC 4443 2.4 (c)).

use super::ipv6::{self, MIN_MTU, NH_ICMPV6};
use super::{checksum, fixed, fixed_mut, get16, get32, set16, set32, Error};

/// Destination unreachable.
pub const DST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// Parameter problem.
pub const PARAM_PROBLEM: u8 = 4;
/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Multicast listener query (RFC 2710).
pub const MLD_QUERY: u8 = 130;
/// Multicast listener report (RFC 2710).
pub const MLD_REPORT: u8 = 131;
/// Multicast listener done (RFC 2710).
pub const MLD_DONE: u8 = 132;
/// Router solicitation (RFC 4861).
pub const ROUTER_SOLICIT: u8 = 133;
/// Router advertisement (RFC 4861).
pub const ROUTER_ADVERT: u8 = 134;
/// Neighbor solicitation (RFC 4861).
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbor advertisement (RFC 4861).
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Redirect (RFC 4861).
pub const REDIRECT: u8 = 137;
/// Version 2 multicast listener report (RFC 3810).
pub const MLD2_REPORT: u8 = 143;

/// Destination unreachable code: no route to destination.
pub const NO_ROUTE: u8 = 0;
/// Destination unreachable code: communication administratively prohibited.
pub const ADMIN_PROHIBITED: u8 = 1;
/// Destination unreachable code: beyond scope of source address.
pub const BEYOND_SCOPE: u8 = 2;
/// Destination unreachable code: address unreachable.
pub const ADDR_UNREACHABLE: u8 = 3;
/// Destination unreachable code: port unreachable.
pub const PORT_UNREACHABLE: u8 = 4;
/// Destination unreachable code: source address failed ingress/egress policy.
pub const FAILED_POLICY: u8 = 5;
/// Destination unreachable code: reject route to destination.
pub const REJECT_ROUTE: u8 = 6;
/// Time exceeded code: hop limit exceeded in transit.
pub const HOP_LIMIT_EXCEEDED: u8 = 0;
/// Time exceeded code: fragment reassembly time exceeded.
pub const REASSEMBLY_EXCEEDED: u8 = 1;
/// Parameter problem code: erroneous header field.
pub const ERRONEOUS_FIELD: u8 = 0;
/// Parameter problem code: unrecognized next header type.
pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
/// Parameter problem code: unrecognized IPv6 option.
pub const UNRECOGNIZED_OPTION: u8 = 2;

/// Bytes of the ICMPv6 header (type, code, checksum, 4 more).
pub const HEADER_LEN: usize = 8;
/// Most bytes of an invoking packet an error quotes: what fits in 1280
/// with the IPv6 and ICMPv6 headers.
pub const MAX_QUOTE: usize = MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
}

/// Whether `msg_type` is an error message (RFC 4443 2.1: types 0..=127),
/// which must never be sent about another error (RFC 4443 2.4 (e)).
#[inline]
pub const fn is_error(msg_type: u8) -> bool {
    msg_type < 128
}

/// Types with names, in nftables spelling (`nft describe icmpv6 type`).
const NAMES: [(u8, &str); 15] = [
    (DST_UNREACHABLE, "destination-unreachable"),
    (PACKET_TOO_BIG, "packet-too-big"),
    (TIME_EXCEEDED, "time-exceeded"),
    (PARAM_PROBLEM, "parameter-problem"),
    (ECHO_REQUEST, "echo-request"),
    (ECHO_REPLY, "echo-reply"),
    (MLD_QUERY, "mld-listener-query"),
    (MLD_REPORT, "mld-listener-report"),
    (MLD_DONE, "mld-listener-done"),
    (ROUTER_SOLICIT, "nd-router-solicit"),
    (ROUTER_ADVERT, "nd-router-advert"),
    (NEIGHBOR_SOLICIT, "nd-neighbor-solicit"),
    (NEIGHBOR_ADVERT, "nd-neighbor-advert"),
    (REDIRECT, "nd-redirect"),
    (MLD2_REPORT, "mld2-listener-report"),
];

/// The type named `name` in nftables spelling (`echo-request`), if any.
pub fn type_from_name(name: &str) -> Option<u8> {
    NAMES.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
}

/// The nftables name of `msg_type`, if it has one.
pub fn type_name(msg_type: u8) -> Option<&'static str> {
    NAMES.iter().find(|(t, _)| *t == msg_type).map(|(_, n)| *n)
}

/// A view of an ICMPv6 message.
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

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.header(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.header(), field::ECHO_SEQ)
    }

    /// MTU of a packet too big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        get32(self.header(), field::REST)
    }

    /// Pointer of a parameter problem message: the offset in the invoking
    /// packet of the field in error.
    #[inline]
    pub fn pointer(&self) -> u32 {
        get32(self.header(), field::REST)
    }

    /// The four bytes after the checksum, whatever the type makes of them.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get32(self.header(), field::REST)
    }

    /// Whether the checksum over the pseudo-header and the whole message is
    /// correct (RFC 4443 2.3).
    #[inline]
    pub fn verify_checksum(&self, src: u128, dst: u128) -> bool {
        checksum::verify6(src, dst, NH_ICMPV6, self.buffer.as_ref())
    }

    /// Everything after the 8-byte header: echo data, the invoking packet of
    /// an error, NDP's target and options.
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

    /// Sets the four bytes after the checksum (MTU, pointer, or zero).
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set32(self.header_mut(), field::REST, v);
    }

    /// Computes and stores the checksum over the pseudo-header and the
    /// whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, src: u128, dst: u128) {
        self.set_checksum(0);
        let c = checksum::upper6(src, dst, NH_ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Everything after the 8-byte header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An echo request or reply, owned (the data stays in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoRepr {
    /// Request (true) or reply.
    pub request: bool,
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
}

impl EchoRepr {
    /// The echo fields of a checked message, `None` for other types or a
    /// nonzero code (RFC 4443 4.1: code 0).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Option<EchoRepr> {
        let request = match (p.msg_type(), p.code()) {
            (ECHO_REQUEST, 0) => true,
            (ECHO_REPLY, 0) => false,
            _ => return None,
        };
        Some(EchoRepr {
            request,
            ident: p.echo_ident(),
            seq: p.echo_seq(),
        })
    }

    /// Writes the header and the checksum over the whole buffer: the data
    /// must already be in place (an echo reply reuses the request's).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>, src: u128, dst: u128) {
        p.set_msg_type(if self.request {
            ECHO_REQUEST
        } else {
            ECHO_REPLY
        });
        p.set_code(0);
        p.set_echo_ident(self.ident);
        p.set_echo_seq(self.seq);
        p.fill_checksum(src, dst);
    }
}

/// An ICMPv6 error message a router sends (RFC 4443 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorRepr {
    /// Destination unreachable with its code ([`NO_ROUTE`], ...).
    DstUnreachable(u8),
    /// Packet too big with the next hop's MTU (RFC 4443 3.2).
    PacketTooBig(u32),
    /// Time exceeded with its code ([`HOP_LIMIT_EXCEEDED`], ...).
    TimeExceeded(u8),
    /// Parameter problem with its code and the pointer into the invoking
    /// packet (RFC 4443 3.4).
    ParamProblem {
        /// [`ERRONEOUS_FIELD`], [`UNRECOGNIZED_NEXT_HEADER`] or
        /// [`UNRECOGNIZED_OPTION`].
        code: u8,
        /// Offset of the offending byte in the invoking packet.
        pointer: u32,
    },
}

impl ErrorRepr {
    /// The error fields of a checked message, `None` for other types.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Option<ErrorRepr> {
        Some(match p.msg_type() {
            DST_UNREACHABLE => ErrorRepr::DstUnreachable(p.code()),
            PACKET_TOO_BIG => ErrorRepr::PacketTooBig(p.mtu()),
            TIME_EXCEEDED => ErrorRepr::TimeExceeded(p.code()),
            PARAM_PROBLEM => ErrorRepr::ParamProblem {
                code: p.code(),
                pointer: p.pointer(),
            },
            _ => return None,
        })
    }

    fn type_code_rest(&self) -> (u8, u8, u32) {
        match *self {
            ErrorRepr::DstUnreachable(code) => (DST_UNREACHABLE, code, 0),
            ErrorRepr::PacketTooBig(mtu) => (PACKET_TOO_BIG, 0, mtu),
            ErrorRepr::TimeExceeded(code) => (TIME_EXCEEDED, code, 0),
            ErrorRepr::ParamProblem { code, pointer } => (PARAM_PROBLEM, code, pointer),
        }
    }

    /// Bytes [`ErrorRepr::emit`] writes for an invoking packet of
    /// `invoking_len` bytes: at most 1280.
    pub const fn packet_len(invoking_len: usize) -> usize {
        let q = if invoking_len < MAX_QUOTE {
            invoking_len
        } else {
            MAX_QUOTE
        };
        ipv6::HEADER_LEN + HEADER_LEN + q
    }

    /// Writes a whole IPv6 packet into `out`: the IPv6 header (`src` ->
    /// `dst`, `hop_limit`), this error, and as much of `invoking` (the
    /// offending IPv6 packet from its fixed header) as fits in 1280 bytes
    /// and in `out` (RFC 4443 2.4 (c)); the checksum filled. Returns the
    /// bytes written.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than 48 bytes (the two headers).
    pub fn emit(
        &self,
        src: u128,
        dst: u128,
        hop_limit: u8,
        invoking: &[u8],
        out: &mut [u8],
    ) -> usize {
        let room = out.len().saturating_sub(ipv6::HEADER_LEN + HEADER_LEN);
        let quote = invoking.len().min(MAX_QUOTE).min(room);
        let len = ipv6::HEADER_LEN + HEADER_LEN + quote;
        assert!(
            out.len() >= ipv6::HEADER_LEN + HEADER_LEN,
            "ICMPv6 error buffer below 48 bytes"
        );
        let out = &mut out[..len];
        ipv6::Repr {
            src,
            dst,
            next_header: NH_ICMPV6,
            hop_limit,
            payload_len: (HEADER_LEN + quote) as u16,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
        let (t, c, rest) = self.type_code_rest();
        let mut p = Packet::new_unchecked(&mut out[ipv6::HEADER_LEN..]);
        p.set_msg_type(t);
        p.set_code(c);
        p.set_rest_of_header(rest);
        p.payload_mut().copy_from_slice(&invoking[..quote]);
        p.fill_checksum(src, dst);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    /// smoltcp's echo request, fe80::1 -> fe80::2: ident 0x1234, seq
    /// 0xabcd, 4 bytes of data, checksum 0x19b3.
    const ECHO: [u8; 12] = [
        0x80, 0x00, 0x19, 0xb3, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
    ];

    /// smoltcp's packet too big, fe80::1 -> fe80::2, MTU 1500, quoting a
    /// UDP packet fe80::1 -> fe80::2 (40 + 12 bytes), checksum 0x0fc9.
    const TOO_BIG: [u8; 60] = [
        0x02, 0x00, 0x0f, 0xc9, 0x00, 0x00, 0x05, 0xdc, // ICMPv6 header
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x40, // quoted IPv6 header
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff, // UDP
    ];

    #[test]
    fn echo_request_fields_and_checksum() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code(), p.checksum()),
            (ECHO_REQUEST, 0, 0x19b3)
        );
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 0xabcd));
        assert_eq!(p.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        assert!(p.verify_checksum(a("fe80::1"), a("fe80::2")));
        assert!(
            !p.verify_checksum(a("fe80::1"), a("fe80::3")),
            "pseudo-header counts"
        );
        assert!(!is_error(p.msg_type()));
        assert_eq!(
            EchoRepr::parse(&p),
            Some(EchoRepr {
                request: true,
                ident: 0x1234,
                seq: 0xabcd
            })
        );
    }

    #[test]
    fn echo_reply_from_request() {
        let mut buf = ECHO;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        let req = EchoRepr::parse(&p).unwrap();
        let reply = EchoRepr {
            request: false,
            ..req
        };
        reply.emit(&mut p, a("fe80::2"), a("fe80::1"));
        assert!(p.verify_checksum(a("fe80::2"), a("fe80::1")));
        assert_eq!(EchoRepr::parse(&p), Some(reply));
        assert_eq!(p.payload(), &ECHO[8..], "data kept");
        // Type 128 -> 129 raises the first word by 0x0100; the pseudo-header
        // is the same with the addresses swapped: checksum down by 0x0100.
        assert_eq!(p.checksum(), 0x18b3);
        buf[1] = 1;
        assert_eq!(
            EchoRepr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            None,
            "code 1"
        );
    }

    #[test]
    fn packet_too_big_matches_known_bytes() {
        let p = Packet::new_checked(&TOO_BIG[..]).unwrap();
        assert_eq!(p.msg_type(), PACKET_TOO_BIG);
        assert_eq!(p.mtu(), 1500);
        assert!(p.verify_checksum(a("fe80::1"), a("fe80::2")));
        assert_eq!(ErrorRepr::parse(&p), Some(ErrorRepr::PacketTooBig(1500)));
        // Emit the same error about the same invoking packet.
        let mut out = [0u8; 1500];
        let n = ErrorRepr::PacketTooBig(1500).emit(
            a("fe80::1"),
            a("fe80::2"),
            64,
            &TOO_BIG[8..],
            &mut out,
        );
        assert_eq!(n, 40 + 60);
        assert_eq!(out[40..n], TOO_BIG[..], "ICMPv6 bytes as known");
        let ip = ipv6::Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (ip.next_header(), ip.payload_len(), ip.hop_limit()),
            (NH_ICMPV6, 60, 64)
        );
    }

    #[test]
    fn errors_quote_up_to_1280_bytes() {
        let (src, dst) = (a("2001:db8::1"), a("2001:db8:1::2"));
        let invoking: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let mut out = [0u8; 1600];
        for (e, t) in [
            (ErrorRepr::TimeExceeded(HOP_LIMIT_EXCEEDED), TIME_EXCEEDED),
            (ErrorRepr::DstUnreachable(NO_ROUTE), DST_UNREACHABLE),
            (ErrorRepr::PacketTooBig(1400), PACKET_TOO_BIG),
            (
                ErrorRepr::ParamProblem {
                    code: ERRONEOUS_FIELD,
                    pointer: 4,
                },
                PARAM_PROBLEM,
            ),
        ] {
            let n = e.emit(src, dst, 255, &invoking, &mut out);
            assert_eq!(n, 1280, "{e:?}");
            assert_eq!(n, ErrorRepr::packet_len(invoking.len()));
            let ip = ipv6::Packet::new_checked(&out[..n]).unwrap();
            assert_eq!(ip.payload_len(), 1240);
            let p = Packet::new_checked(ip.payload()).unwrap();
            assert_eq!(p.msg_type(), t);
            assert!(is_error(t));
            assert!(p.verify_checksum(src, dst));
            assert_eq!(ErrorRepr::parse(&p), Some(e));
            assert_eq!(p.payload(), &invoking[..MAX_QUOTE]);
        }
        // A short invoking packet is quoted whole; a short buffer cuts it.
        let n = ErrorRepr::TimeExceeded(0).emit(src, dst, 64, &invoking[..100], &mut out);
        assert_eq!(n, 148);
        let n = ErrorRepr::TimeExceeded(0).emit(src, dst, 64, &invoking, &mut out[..60]);
        assert_eq!(n, 60);
        let p = Packet::new_checked(&out[40..60]).unwrap();
        assert!(p.verify_checksum(src, dst));
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 10];
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(PARAM_PROBLEM);
        p.set_code(UNRECOGNIZED_NEXT_HEADER);
        p.set_rest_of_header(40);
        assert_eq!((p.msg_type(), p.code(), p.pointer()), (4, 1, 40));
        p.set_echo_ident(0xaaaa);
        p.set_echo_seq(0xbbbb);
        assert_eq!(p.rest_of_header(), 0xaaaa_bbbb);
        p.set_checksum(0xcafe);
        assert_eq!(p.checksum(), 0xcafe);
        p.payload_mut().copy_from_slice(&[9, 8]);
        assert_eq!(buf, [4, 1, 0xca, 0xfe, 0xaa, 0xaa, 0xbb, 0xbb, 9, 8]);
        assert_eq!(
            Packet::new_checked(&buf[..7]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn error_types_and_names() {
        for t in 0..=255u8 {
            assert_eq!(is_error(t), t < 128);
            if let Some(n) = type_name(t) {
                assert_eq!(type_from_name(n), Some(t));
            }
        }
        assert_eq!(type_from_name("nd-neighbor-solicit"), Some(135));
        assert_eq!(type_from_name("packet-too-big"), Some(2));
        assert_eq!(type_from_name("echo_request"), None);
        assert_eq!((0..=255u8).filter_map(type_name).count(), NAMES.len());
    }
}
