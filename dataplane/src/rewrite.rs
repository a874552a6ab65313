//! The rewrite stage: what a forwarded frame changes on its way out. TTL
//! minus one with an incremental checksum update, and the Ethernet
//! addresses of the next hop. Nothing else in the packet changes.

use crate::addr::Mac;
use crate::wire::ethernet;
use crate::wire::ipv4;

/// Destination then source MAC, as they sit at the start of a frame.
#[inline]
pub fn l2_header(dst: Mac, src: Mac) -> [u8; 12] {
    let mut l2 = [0u8; 12];
    l2[..6].copy_from_slice(&dst.0);
    l2[6..].copy_from_slice(&src.0);
    l2
}

/// Set the Ethernet addresses (`l2` from [`l2_header`]) and the IPv4
/// ethertype of the frame header `eth`.
#[inline(always)]
pub fn set_l2(eth: &mut [u8], l2: &[u8; 12]) {
    // Both addresses in one copy: they are adjacent in the header.
    eth[..12].copy_from_slice(l2);
    ethernet::Frame::new_unchecked(&mut eth[..ethernet::HEADER_LEN])
        .set_ethertype(ethernet::ETHERTYPE_IPV4);
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
pub fn forward(ip_header: &mut [u8; 20], eth: &mut [u8], l2: &[u8; 12]) {
    ipv4::Packet::new_unchecked(&mut ip_header[..]).decrement_ttl();
    set_l2(eth, l2);
}

#[cfg(test)]
mod tests {
    use super::*;

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
