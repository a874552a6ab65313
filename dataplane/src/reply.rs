//! Replies built in place of the packet that caused them: ICMP errors,
//! TCP resets and ARP replies. The frame buffer is reused, so generating a
//! reply never allocates. Slow path: only for packets that are dropped.

use crate::addr::Mac;
use crate::wire::checksum;
use crate::wire::ethernet::{self, Frame};
use crate::wire::icmp;
use crate::wire::ipv4;
use crate::wire::tcp;

const ETH: usize = ethernet::HEADER_LEN;
/// TTL of packets the router originates.
pub const DEFAULT_TTL: u8 = 64;

/// Whether RFC 1812 4.3.2.7 allows an ICMP error about this packet: not
/// about an ICMP error, nor a non-first fragment (broadcast, multicast and
/// martian sources are dropped before anything could answer them).
#[inline]
pub fn may_send_error(proto: u8, icmp_type: Option<u8>, nonfirst_fragment: bool) -> bool {
    if nonfirst_fragment {
        return false;
    }
    !(proto == ipv4::PROTO_ICMP && icmp_type.is_some_and(icmp::is_error))
}

fn write_ip_header(buf: &mut [u8], src: u32, dst: u32, proto: u8, payload_len: usize) {
    let ip = &mut buf[ETH..];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0u16.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = DEFAULT_TTL;
    ip[9] = proto;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let mut p = ipv4::Packet::new_unchecked(&mut ip[..20]);
    p.fill_checksum();
}

fn write_eth(buf: &mut [u8], dst: Mac, src: Mac) {
    let mut f = Frame::new_unchecked(&mut buf[..ETH]);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethernet::ETHERTYPE_IPV4);
}

/// Turn the IPv4 packet at `buf[ETH..]` (header length `ihl`, total length
/// `total`) into an ICMP error of `msg_type`/`code` from `src` back to the
/// packet's source, sent to `dst_mac` from `src_mac`. `rest` is the ICMP
/// rest-of-header word (next-hop MTU for "fragmentation needed").
/// Returns the new frame length, or None when the buffer is too small.
#[allow(clippy::too_many_arguments)]
pub fn icmp_error(
    buf: &mut [u8],
    ihl: usize,
    total: usize,
    msg_type: u8,
    code: u8,
    rest: u32,
    src: u32,
    src_mac: Mac,
    dst_mac: Mac,
) -> Option<usize> {
    // RFC 792: the original IP header and the first 64 bits of its data.
    let quote = (ihl + 8).min(total);
    let icmp_off = ETH + 20;
    let new_len = icmp_off + 8 + quote;
    if buf.len() < new_len || buf.len() < ETH + total {
        return None;
    }
    let orig_src = u32::from_be_bytes([buf[ETH + 12], buf[ETH + 13], buf[ETH + 14], buf[ETH + 15]]);
    buf.copy_within(ETH..ETH + quote, icmp_off + 8);
    {
        let msg = &mut buf[icmp_off..new_len];
        msg[0] = msg_type;
        msg[1] = code;
        msg[2..4].copy_from_slice(&[0, 0]);
        msg[4..8].copy_from_slice(&rest.to_be_bytes());
        let sum = checksum::data(msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    write_ip_header(buf, src, orig_src, ipv4::PROTO_ICMP, 8 + quote);
    write_eth(buf, dst_mac, src_mac);
    Some(new_len)
}

/// Turn the TCP segment at `buf[ETH..]` into the RST that answers it
/// (RFC 9293 3.10.7.1), sent back to `dst_mac` from `src_mac`. Returns the
/// new frame length.
pub fn tcp_reset(
    buf: &mut [u8],
    ihl: usize,
    total: usize,
    src_mac: Mac,
    dst_mac: Mac,
) -> Option<usize> {
    if buf.len() < ETH + 40 || total < ihl + 20 {
        return None;
    }
    let ip = &buf[ETH..ETH + total];
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let seg = tcp::Packet::new_unchecked(&ip[ihl..]);
    let (sport, dport) = (seg.src_port(), seg.dst_port());
    let flags = seg.flags();
    let data_len = (total - ihl).saturating_sub(seg.header_len()) as u32;
    let (seq, ack, out_flags) = if flags & tcp::ACK != 0 {
        (seg.ack_number(), 0, tcp::RST)
    } else {
        let mut len = data_len;
        if flags & tcp::SYN != 0 {
            len += 1;
        }
        if flags & tcp::FIN != 0 {
            len += 1;
        }
        (0, seg.seq_number().wrapping_add(len), tcp::RST | tcp::ACK)
    };
    let t = &mut buf[ETH + 20..ETH + 40];
    t.fill(0);
    t[0..2].copy_from_slice(&dport.to_be_bytes());
    t[2..4].copy_from_slice(&sport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = out_flags;
    let sum =
        checksum::fold(checksum::pseudo_header(dst, src, ipv4::PROTO_TCP, 20) + checksum::sum(t));
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    write_ip_header(buf, dst, src, ipv4::PROTO_TCP, 20);
    write_eth(buf, dst_mac, src_mac);
    Some(ETH + 40)
}

/// Turn an ARP request at `buf[ETH..]` for `our_ip` into its reply from
/// `our_mac`. Returns the new frame length.
pub fn arp_reply(buf: &mut [u8], our_mac: Mac, our_ip: u32) -> Option<usize> {
    use crate::wire::arp;
    let new_len = ETH + arp::Repr::BUFFER_LEN;
    if buf.len() < new_len {
        return None;
    }
    let req = arp::Repr::parse(&arp::Packet::new_unchecked(&buf[ETH..new_len])).ok()?;
    let rep = arp::Repr {
        operation: arp::OP_REPLY,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: req.sender_mac,
        target_ip: req.sender_ip,
    };
    rep.emit(&mut arp::Packet::new_unchecked(&mut buf[ETH..new_len]));
    let mut f = Frame::new_unchecked(&mut buf[..ETH]);
    f.set_dst_addr(req.sender_mac);
    f.set_src_addr(our_mac);
    f.set_ethertype(ethernet::ETHERTYPE_ARP);
    Some(new_len)
}

/// Replace the frame with an ARP request for `target` from `our_mac`/`our_ip`
/// (RFC 826), padded to the Ethernet minimum. Returns the new frame length.
pub fn arp_request(buf: &mut [u8], our_mac: Mac, our_ip: u32, target: u32) -> Option<usize> {
    use crate::wire::arp;
    let len = ETH + arp::Repr::BUFFER_LEN;
    if buf.len() < 60 {
        return None;
    }
    let req = arp::Repr {
        operation: arp::OP_REQUEST,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: Mac::ZERO,
        target_ip: target,
    };
    req.emit(&mut arp::Packet::new_unchecked(&mut buf[ETH..len]));
    buf[len..60].fill(0);
    let mut f = Frame::new_unchecked(&mut buf[..ETH]);
    f.set_dst_addr(Mac::BROADCAST);
    f.set_src_addr(our_mac);
    f.set_ethertype(ethernet::ETHERTYPE_ARP);
    Some(60)
}

/// Once-a-second limit on ARP requests per neighbour address: a fixed
/// array indexed by a hash of the address, no allocation.
pub struct ArpLimiter {
    last: Box<[(u32, u32)]>,
}

impl Default for ArpLimiter {
    fn default() -> Self {
        ArpLimiter {
            last: vec![(0, 0); 256].into_boxed_slice(),
        }
    }
}

impl ArpLimiter {
    /// Whether a request for `addr` may go out at second `now`.
    pub fn allow(&mut self, addr: u32, now: u32) -> bool {
        let i = (addr.wrapping_mul(0x9E37_79B1) >> 24) as usize;
        let slot = &mut self.last[i];
        if slot.0 == addr && slot.1 == now {
            return false;
        }
        *slot = (addr, now);
        true
    }
}

/// Per-source token buckets for ICMP errors (RFC 1812 4.3.2.8). A fixed
/// array indexed by a hash of the source: sources that collide share a
/// bucket, which only makes the limit stricter. No allocation.
pub struct IcmpLimiter {
    buckets: Box<[(u32, u32)]>,
    rate: u32,
    burst: u32,
}

const LIMITER_BUCKETS: usize = 1024;

impl IcmpLimiter {
    /// `rate` errors a second per source, up to `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        IcmpLimiter {
            buckets: vec![(burst, 0); LIMITER_BUCKETS].into_boxed_slice(),
            rate,
            burst,
        }
    }

    /// Take a token for an error to `dst` at second `now`.
    #[inline]
    pub fn allow(&mut self, dst: u32, now: u32) -> bool {
        let i = (dst.wrapping_mul(0x9E37_79B1) >> 22) as usize % LIMITER_BUCKETS;
        let (tokens, last) = &mut self.buckets[i];
        if now > *last {
            let add = (now - *last).saturating_mul(self.rate);
            *tokens = tokens.saturating_add(add).min(self.burst);
            *last = now;
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }
}
