//! ARP (RFC 826) for Ethernet and IPv4 only.
//!
//! The field offsets assume 6-byte hardware and 4-byte protocol addresses;
//! [`Repr::parse`] refuses anything else. After [`Packet::check_len`] passes
//! (28 bytes), no accessor panics, whatever the length fields say.

use super::{fixed, fixed_mut, get16, get32, set16, set32, Error};
use crate::addr::Mac;

/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;
/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type of IPv4 (its ethertype).
pub const PTYPE_IPV4: u16 = super::ethernet::ETHERTYPE_IPV4;

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Bytes of an Ethernet/IPv4 ARP packet.
const LEN: usize = 28;

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// Wraps `buffer` and checks that an Ethernet/IPv4 ARP body fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 28 bytes. Frames may pad
    /// the packet: longer buffers are fine.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < LEN {
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
    fn header(&self) -> &[u8; LEN] {
        fixed(self.buffer.as_ref())
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        get16(self.header(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        get16(self.header(), field::PTYPE)
    }

    /// Hardware address length (6 for Ethernet).
    #[inline]
    pub fn hw_len(&self) -> u8 {
        self.header()[field::HLEN]
    }

    /// Protocol address length (4 for IPv4).
    #[inline]
    pub fn proto_len(&self) -> u8 {
        self.header()[field::PLEN]
    }

    /// Operation ([`OP_REQUEST`], [`OP_REPLY`]).
    #[inline]
    pub fn operation(&self) -> u16 {
        get16(self.header(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hw_addr(&self) -> Mac {
        Mac(self.header()[field::SHA].try_into().expect("6-byte MAC"))
    }

    /// Sender protocol address (host order).
    #[inline]
    pub fn sender_proto_addr(&self) -> u32 {
        get32(self.header(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hw_addr(&self) -> Mac {
        Mac(self.header()[field::THA].try_into().expect("6-byte MAC"))
    }

    /// Target protocol address (host order).
    #[inline]
    pub fn target_proto_addr(&self) -> u32 {
        get32(self.header(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        set16(self.header_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        set16(self.header_mut(), field::PTYPE, v);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hw_len(&mut self, v: u8) {
        self.header_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_proto_len(&mut self, v: u8) {
        self.header_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, v: u16) {
        set16(self.header_mut(), field::OPER, v);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sender_hw_addr(&mut self, mac: Mac) {
        self.header_mut()[field::SHA].copy_from_slice(&mac.0);
    }

    /// Sets the sender protocol address (host order).
    #[inline]
    pub fn set_sender_proto_addr(&mut self, ip: u32) {
        set32(self.header_mut(), field::SPA, ip);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hw_addr(&mut self, mac: Mac) {
        self.header_mut()[field::THA].copy_from_slice(&mac.0);
    }

    /// Sets the target protocol address (host order).
    #[inline]
    pub fn set_target_proto_addr(&mut self, ip: u32) {
        set32(self.header_mut(), field::TPA, ip);
    }
}

/// An Ethernet/IPv4 ARP packet, owned: for answering requests and asking
/// for next hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// [`OP_REQUEST`] or [`OP_REPLY`].
    pub operation: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender IPv4 address (host order).
    pub sender_ip: u32,
    /// Target hardware address (zero in a request).
    pub target_mac: Mac,
    /// Target IPv4 address (host order).
    pub target_ip: u32,
}

impl Repr {
    /// Bytes [`Repr::emit`] writes.
    pub const BUFFER_LEN: usize = LEN;

    /// Parses a checked packet. `Unsupported` unless it is Ethernet/IPv4
    /// (types 1/0x0800, lengths 6/4) with a request or reply opcode.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != PTYPE_IPV4
            || p.hw_len() != 6
            || p.proto_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let operation = p.operation();
        if operation != OP_REQUEST && operation != OP_REPLY {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation,
            sender_mac: p.sender_hw_addr(),
            sender_ip: p.sender_proto_addr(),
            target_mac: p.target_hw_addr(),
            target_ip: p.target_proto_addr(),
        })
    }

    /// Writes the 28-byte packet, types and lengths included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(PTYPE_IPV4);
        p.set_hw_len(6);
        p.set_proto_len(4);
        p.set_operation(self.operation);
        p.set_sender_hw_addr(self.sender_mac);
        p.set_sender_proto_addr(self.sender_ip);
        p.set_target_hw_addr(self.target_mac);
        p.set_target_proto_addr(self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 198.18.0.1? Tell 198.18.0.2 (02:00:00:00:00:02), as a host
    /// sends it, padded to the Ethernet minimum with 18 zero bytes.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // lengths
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sender MAC
        198, 18, 0, 2, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        198, 18, 0, 1, // target IP
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_be_bytes([a, b, c, d])
    }

    #[test]
    fn request_fields() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), HTYPE_ETHERNET);
        assert_eq!(p.protocol_type(), PTYPE_IPV4);
        assert_eq!((p.hw_len(), p.proto_len()), (6, 4));
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_hw_addr(), Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.sender_proto_addr(), ip(198, 18, 0, 2));
        assert_eq!(p.target_hw_addr(), Mac::ZERO);
        assert_eq!(p.target_proto_addr(), ip(198, 18, 0, 1));
    }

    #[test]
    fn truncated_is_refused() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        assert!(Packet::new_checked(&REQUEST[..28]).is_ok());
    }

    #[test]
    fn parse_and_reply() {
        let req = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        assert_eq!(
            req,
            Repr {
                operation: OP_REQUEST,
                sender_mac: Mac([2, 0, 0, 0, 0, 2]),
                sender_ip: ip(198, 18, 0, 2),
                target_mac: Mac::ZERO,
                target_ip: ip(198, 18, 0, 1),
            }
        );
        let ours = Mac([2, 0, 0, 0, 0, 1]);
        let reply = Repr {
            operation: OP_REPLY,
            sender_mac: ours,
            sender_ip: req.target_ip,
            target_mac: req.sender_mac,
            target_ip: req.sender_ip,
        };
        let mut buf = [0xeeu8; Repr::BUFFER_LEN];
        reply.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            buf,
            [
                0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // header, reply
                0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 198, 18, 0, 1, // sender
                0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2, // target
            ]
        );
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(reply)
        );
    }

    #[test]
    fn parse_refuses_other_kinds() {
        // (offset, byte): another hardware type, protocol, lengths, opcode.
        for (at, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16), (7, 3), (7, 0), (6, 1)] {
            let mut buf = REQUEST;
            buf[at] = v;
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Repr::parse(&p), Err(Error::Unsupported), "byte {at} = {v}");
        }
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 28];
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_hardware_type(0x1234);
        p.set_protocol_type(0x5678);
        p.set_hw_len(9);
        p.set_proto_len(10);
        p.set_operation(0xabcd);
        p.set_sender_hw_addr(Mac([1, 2, 3, 4, 5, 6]));
        p.set_sender_proto_addr(0x0a0b_0c0d);
        p.set_target_hw_addr(Mac([7, 8, 9, 10, 11, 12]));
        p.set_target_proto_addr(0xc000_0201);
        assert_eq!(p.hardware_type(), 0x1234);
        assert_eq!(p.protocol_type(), 0x5678);
        assert_eq!((p.hw_len(), p.proto_len()), (9, 10));
        assert_eq!(p.operation(), 0xabcd);
        assert_eq!(p.sender_hw_addr(), Mac([1, 2, 3, 4, 5, 6]));
        assert_eq!(p.sender_proto_addr(), 0x0a0b_0c0d);
        assert_eq!(p.target_hw_addr(), Mac([7, 8, 9, 10, 11, 12]));
        assert_eq!(p.target_proto_addr(), 0xc000_0201);
        assert_eq!(buf[14..18], [0x0a, 0x0b, 0x0c, 0x0d]);
    }
}
