//! The rewrite stage: what a forwarded frame changes on its way out. TTL
//! minus one with an incremental checksum update, and the Ethernet
//! addresses of the next hop. Nothing else in the packet changes.

use crate::addr::Mac;
use crate::wire::ethernet;
use crate::wire::ipv4;

/// The Ethernet addresses a frame leaves with, destination then source as
/// they sit at the start of a frame, held as two words for two stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2 {
    head: u64,
    tail: u32,
}

impl L2 {
    /// No addresses (all zero).
    pub const NONE: L2 = L2 { head: 0, tail: 0 };

    /// The header of a frame from `src` to `dst`.
    #[inline]
    pub fn new(dst: Mac, src: Mac) -> L2 {
        let ([a, b, c, d, e, f], [g, h, i, j, k, l]) = (dst.0, src.0);
        L2 {
            head: u64::from_ne_bytes([a, b, c, d, e, f, g, h]),
            tail: u32::from_ne_bytes([i, j, k, l]),
        }
    }

    /// Write the addresses into the first 12 bytes of a frame header; the
    /// ethertype stays.
    #[inline(always)]
    pub fn write(self, eth: &mut [u8; ethernet::HEADER_LEN]) {
        let (head, rest) = eth.split_at_mut(8);
        head.copy_from_slice(&self.head.to_ne_bytes());
        rest[..4].copy_from_slice(&self.tail.to_ne_bytes());
    }
}

/// Set the Ethernet addresses and the IPv4 ethertype of the frame header
/// `eth`.
#[inline(always)]
pub fn set_l2(eth: &mut [u8; ethernet::HEADER_LEN], l2: L2) {
    l2.write(eth);
    ethernet::Frame::new_unchecked(&mut eth[..]).set_ethertype(ethernet::ETHERTYPE_IPV4);
}

/// RFC 1812 5.3.1 TTL - 1 with the RFC 1624 incremental checksum, as
/// [`ipv4::Packet::decrement_ttl`] computes it but on the checksum as it
/// sits in memory: ones' complement sums do not depend on byte order, so
/// adding `0x0100` to the big-endian word is adding the same two bytes to
/// the native one (as Linux's `ip_decrease_ttl`). The caller checked TTL > 1.
#[inline(always)]
pub fn decrement_ttl(h: &mut [u8; 20]) {
    h[8] = h[8].wrapping_sub(1);
    let c =
        u32::from(u16::from_ne_bytes([h[10], h[11]])) + u32::from(u16::from_ne_bytes([0x01, 0x00]));
    let c = (c + u32::from(c >= 0xffff)) as u16;
    h[10..12].copy_from_slice(&c.to_ne_bytes());
}

/// Rewrite a forwarded packet: RFC 1812 5.3.1 TTL - 1 with the RFC 1624
/// incremental checksum, then the next hop's MACs. The caller checked the
/// header and that TTL > 1.
#[inline(always)]
pub fn forward(ip_header: &mut [u8; 20], eth: &mut [u8; ethernet::HEADER_LEN], l2: L2) {
    ipv4::Packet::new_unchecked(&mut ip_header[..]).decrement_ttl();
    set_l2(eth, l2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_writes_destination_then_source_and_keeps_the_ethertype() {
        let dst = Mac([1, 2, 3, 4, 5, 6]);
        let src = Mac([7, 8, 9, 10, 11, 12]);
        let mut eth = [0xffu8; ethernet::HEADER_LEN];
        L2::new(dst, src).write(&mut eth);
        assert_eq!(eth, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff, 0xff]);
        set_l2(&mut eth, L2::new(dst, src));
        assert_eq!(&eth[12..], &[0x08, 0x00]);
    }

    #[test]
    fn decrement_ttl_agrees_with_the_wire_view_for_every_checksum() {
        for c in 0..=0xffffu16 {
            let mut a = [0u8; 20];
            a[0] = 0x45;
            a[8] = 64;
            a[9] = 17;
            a[10..12].copy_from_slice(&c.to_be_bytes());
            let mut b = a;
            decrement_ttl(&mut a);
            ipv4::Packet::new_unchecked(&mut b[..]).decrement_ttl();
            assert_eq!(a, b, "checksum {c:#06x}");
        }
    }
}
