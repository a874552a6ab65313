//! The rewrite stage: what a routed frame changes on its way out, RFC 1812
//! 5.3.1 TTL - 1 with the incremental checksum and the next hop's MACs,
//! with the byte helpers of [`crate::rewrite`]. The one place that builds
//! the Ethernet header of a frame to a neighbour.

use crate::addr::Mac;
use crate::packet::{PortId, ETH_HDR_LEN};
use crate::rewrite::{self, L2};
use crate::tables::Tables;

/// The Ethernet header of a frame out of port `out` to the neighbour `mac`.
#[inline]
pub(super) fn l2_to(t: &Tables, out: PortId, mac: Mac) -> L2 {
    L2::new(mac, t.interfaces[out.0 as usize].mac)
}

/// The transit fast path's rewrite of `hdr`, a frame's Ethernet and IPv4
/// headers: TTL - 1 (the fast path saw it above 1) and the next hop's
/// addresses; the ethertype stays IPv4.
#[inline(always)]
pub(super) fn fast(hdr: &mut [u8], l2: L2) {
    let (eth, ip) = hdr.split_at_mut(ETH_HDR_LEN);
    if let (Ok(eth), Ok(h)) = (eth.try_into(), <&mut [u8; 20]>::try_from(ip)) {
        rewrite::decrement_ttl(h);
        l2.write(eth);
    }
}

/// The IPv6 transit fast path's rewrite of `hdr`, a frame's Ethernet header
/// and the first 8 bytes of its IPv6 header: hop limit - 1 (no header
/// checksum in IPv6; the fast path saw it above 1) and the next hop's
/// addresses.
#[inline(always)]
pub(super) fn fast6(hdr: &mut [u8], l2: L2) {
    let (eth, ip) = hdr.split_at_mut(ETH_HDR_LEN);
    if let (Ok(eth), Some(hop)) = (<&mut [u8; ETH_HDR_LEN]>::try_from(eth), ip.get_mut(7)) {
        *hop = hop.wrapping_sub(1);
        l2.write(eth);
    }
}

/// The general path's rewrite of `frame` (its IPv4 header checked): the
/// addresses of `l2` and the IPv4 ethertype, and for a `forwarded` packet
/// (not one the router sends) TTL - 1.
#[inline]
pub(super) fn general(frame: &mut [u8], l2: L2, forwarded: bool) {
    let (eth, ipb) = frame.split_at_mut(ETH_HDR_LEN);
    let Ok(eth) = <&mut [u8; ETH_HDR_LEN]>::try_from(eth) else {
        return;
    };
    match <&mut [u8; 20]>::try_from(&mut ipb[..20]) {
        Ok(h) if forwarded => rewrite::forward(h, eth, l2),
        _ => rewrite::set_l2(eth, l2),
    }
}
