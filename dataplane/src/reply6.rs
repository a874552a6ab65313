//! IPv6 replies built in place in the frame buffer, as [`crate::reply`]
//! builds IPv4's: ICMPv6 errors (RFC 4443), TCP resets, and the NDP
//! messages the router sends (RFC 4861: neighbour solicitations and
//! advertisements, router advertisements). Checksums cover the IPv6
//! pseudo-header. The frame buffer is reused, so a reply never allocates;
//! a buffer too small for the reply gives `None`. Slow path.

use crate::addr::Mac;
use crate::tables6::RaConfig;
use crate::wire::checksum;
use crate::wire::ethernet::{self, Frame};
use crate::wire::icmpv6;
use crate::wire::ipv6::{self, multicast_mac, solicited_node, AddrClass, NH_ICMPV6, NH_TCP};
use crate::wire::ndp::{self, NdpOption, PrefixInfo};
use crate::wire::tcp;

const ETH: usize = ethernet::HEADER_LEN;
const IP6: usize = ipv6::HEADER_LEN;
/// Hop limit of packets the router originates (errors, resets).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Hop limit of NDP messages: a receiver refuses anything else (RFC 4861
/// 6.1, 7.1), so they never cross a router.
pub const ND_HOP_LIMIT: u8 = 255;

/// Whether RFC 4443 2.4 (e) allows an ICMPv6 error about this packet: not
/// about an ICMPv6 error (types below 128) or a redirect, not about a
/// packet to a multicast address, not to an unspecified or multicast
/// source. A packet too big may answer a multicast destination:
/// [`may_send_packet_too_big6`]. An unknown ICMPv6 type (a later fragment)
/// does not forbid the error, as for IPv4.
#[inline]
pub fn may_send_error6(proto: u8, icmp_type: Option<u8>, dst: u128, src: u128) -> bool {
    !matches!(AddrClass::of(dst), AddrClass::Multicast(_))
        && may_send_packet_too_big6(proto, icmp_type, src)
}

/// [`may_send_error6`] for a packet too big, which RFC 4443 2.4 (e.3)
/// lets answer a multicast destination (path MTU discovery for multicast).
#[inline]
pub fn may_send_packet_too_big6(proto: u8, icmp_type: Option<u8>, src: u128) -> bool {
    let about_error = proto == NH_ICMPV6
        && icmp_type.is_some_and(|t| icmpv6::is_error(t) || t == icmpv6::REDIRECT);
    !about_error
        && !matches!(
            AddrClass::of(src),
            AddrClass::Unspecified | AddrClass::Multicast(_)
        )
}

fn write_eth6(buf: &mut [u8], dst: Mac, src: Mac) {
    let mut f = Frame::new_unchecked(&mut buf[..ETH]);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethernet::ETHERTYPE_IPV6);
}

fn write_ip6(buf: &mut [u8], src: u128, dst: u128, next_header: u8, hop_limit: u8, len: usize) {
    let mut p = ipv6::Packet::new_unchecked(&mut buf[ETH..ETH + IP6]);
    ipv6::Repr {
        src,
        dst,
        next_header,
        hop_limit,
        payload_len: len as u16,
    }
    .emit(&mut p);
}

fn addr_at(b: &[u8], off: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    u128::from_be_bytes(a)
}

/// Turn the frame holding the IPv6 packet `buf[14..frame_len]` into an
/// ICMPv6 error of `msg_type`/`code` from `src` to that packet's source,
/// sent to `dst_mac` from `src_mac`, quoting as much of the packet as
/// keeps the error within 1280 bytes (RFC 4443 2.4 (c)) and the buffer.
/// `param` is the MTU of a packet too big or the pointer of a parameter
/// problem (0 otherwise). Returns the new frame length.
#[allow(clippy::too_many_arguments)]
pub fn icmp6_error(
    buf: &mut [u8],
    frame_len: usize,
    src: u128,
    src_mac: Mac,
    dst_mac: Mac,
    msg_type: u8,
    code: u8,
    param: u32,
) -> Option<usize> {
    let head = IP6 + icmpv6::HEADER_LEN;
    if frame_len < ETH + IP6 || frame_len > buf.len() || buf.len() < ETH + head {
        return None;
    }
    let orig_src = addr_at(buf, ETH + 8);
    // Ethernet padding after the payload is not part of the packet.
    let payload = usize::from(u16::from_be_bytes([buf[ETH + 4], buf[ETH + 5]]));
    let invoking = (frame_len - ETH).min(IP6 + payload);
    let quote = invoking.min(icmpv6::MAX_QUOTE).min(buf.len() - ETH - head);
    buf.copy_within(ETH..ETH + quote, ETH + head);
    let msg_len = icmpv6::HEADER_LEN + quote;
    {
        let mut p = icmpv6::Packet::new_unchecked(&mut buf[ETH + IP6..ETH + IP6 + msg_len]);
        p.set_msg_type(msg_type);
        p.set_code(code);
        p.set_rest_of_header(param);
        p.fill_checksum(src, orig_src);
    }
    write_ip6(buf, src, orig_src, NH_ICMPV6, DEFAULT_HOP_LIMIT, msg_len);
    write_eth6(buf, dst_mac, src_mac);
    Some(ETH + IP6 + msg_len)
}

/// Turn the frame holding the TCP segment at `buf[14 + l4_off..]` (an
/// IPv6 packet at `buf[14..frame_len]`, `l4_off` past its extension
/// headers) into the RST that answers it (RFC 9293 3.10.7.1), from its
/// destination to its source, sent to `dst_mac` from `src_mac`, with no
/// extension headers. Returns the new frame length.
pub fn tcp_reset6(
    buf: &mut [u8],
    frame_len: usize,
    l4_off: usize,
    src_mac: Mac,
    dst_mac: Mac,
) -> Option<usize> {
    let new_len = ETH + IP6 + tcp::HEADER_LEN;
    if frame_len > buf.len() || l4_off < IP6 || frame_len < ETH + l4_off + tcp::HEADER_LEN {
        return None;
    }
    let src = addr_at(buf, ETH + 8);
    let dst = addr_at(buf, ETH + 24);
    let payload = usize::from(u16::from_be_bytes([buf[ETH + 4], buf[ETH + 5]]));
    let end = (ETH + IP6 + payload).min(frame_len);
    let seg = tcp::Packet::new_unchecked(&buf[ETH + l4_off..]);
    let (sport, dport, flags) = (seg.src_port(), seg.dst_port(), seg.flags());
    let (seq_in, ack_in) = (seg.seq_number(), seg.ack_number());
    let data_len = end.saturating_sub(ETH + l4_off + seg.header_len()) as u32;
    let (seq, ack, out_flags) = if flags & tcp::ACK != 0 {
        (ack_in, 0, tcp::RST)
    } else {
        let len = data_len + u32::from(flags & tcp::SYN != 0) + u32::from(flags & tcp::FIN != 0);
        (0, seq_in.wrapping_add(len), tcp::RST | tcp::ACK)
    };
    let t = &mut buf[ETH + IP6..new_len];
    t.fill(0);
    t[0..2].copy_from_slice(&dport.to_be_bytes());
    t[2..4].copy_from_slice(&sport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = out_flags;
    let sum = checksum::upper6(dst, src, NH_TCP, t);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    write_ip6(buf, dst, src, NH_TCP, DEFAULT_HOP_LIMIT, tcp::HEADER_LEN);
    write_eth6(buf, dst_mac, src_mac);
    Some(new_len)
}

/// Write the NDP message `msg` from `src` to `dst` (hop limit 255) into
/// the frame, to `dst_mac` from `src_mac`.
fn ndp_frame(
    buf: &mut [u8],
    src_mac: Mac,
    src: u128,
    dst: u128,
    dst_mac: Mac,
    msg: &ndp::Repr,
) -> Option<usize> {
    let len = msg.len();
    if buf.len() < ETH + IP6 + len {
        return None;
    }
    msg.emit(src, dst, &mut buf[ETH + IP6..ETH + IP6 + len]);
    write_ip6(buf, src, dst, NH_ICMPV6, ND_HOP_LIMIT, len);
    write_eth6(buf, dst_mac, src_mac);
    Some(ETH + IP6 + len)
}

/// Replace the frame with a neighbour solicitation for `target` from
/// `src`/`src_mac` with the source link-layer option (RFC 4861 4.3): to
/// the target's solicited-node multicast address and MAC, or, with
/// `unicast`, to `target` at that MAC (a probe of a known neighbour,
/// RFC 4861 7.3.3). Returns the new frame length.
pub fn neighbor_solicit(
    buf: &mut [u8],
    src_mac: Mac,
    src: u128,
    target: u128,
    unicast: Option<Mac>,
) -> Option<usize> {
    let (dst, dst_mac) = match unicast {
        Some(mac) => (target, mac),
        None => {
            let group = solicited_node(target);
            (group, multicast_mac(group))
        }
    };
    let msg = ndp::Repr::NeighborSolicit {
        target,
        source_mac: Some(src_mac),
    };
    ndp_frame(buf, src_mac, src, dst, dst_mac, &msg)
}

/// Replace the frame with a neighbour advertisement of `target` (ours, at
/// `src_mac`, sent from `target`) to `dst` at `dst_mac`, with the target
/// link-layer option and the override flag (RFC 4861 4.4, 7.2.4); the
/// solicited and router flags as told. Returns the new frame length.
pub fn neighbor_advert(
    buf: &mut [u8],
    src_mac: Mac,
    target: u128,
    dst: u128,
    dst_mac: Mac,
    solicited: bool,
    router: bool,
) -> Option<usize> {
    let mut flags = ndp::NA_OVERRIDE;
    if solicited {
        flags |= ndp::NA_SOLICITED;
    }
    if router {
        flags |= ndp::NA_ROUTER;
    }
    let msg = ndp::Repr::NeighborAdvert {
        flags,
        target,
        target_mac: Some(src_mac),
    };
    ndp_frame(buf, src_mac, target, dst, dst_mac, &msg)
}

/// Bytes of a router advertisement's fixed part.
const RA_FIXED: usize = 16;
/// Bytes of a prefix information option.
const PREFIX_OPT: usize = 32;

/// Replace the frame with a router advertisement (RFC 4861 4.2) from `src`
/// (the port's link-local address) to `dst` at `dst_mac`: `ra`'s hop
/// limit, flags and lifetime, the source link-layer option, the MTU
/// option (`mtu`) when `ra.mtu`, and a prefix information option per
/// `ra.prefixes`, as many as fit in `mtu` and the buffer. Returns the new
/// frame length.
pub fn router_advert(
    buf: &mut [u8],
    src_mac: Mac,
    src: u128,
    dst: u128,
    dst_mac: Mac,
    ra: &RaConfig,
    mtu: u16,
) -> Option<usize> {
    let room = buf
        .len()
        .min(ETH + usize::from(mtu).max(ipv6::MIN_MTU))
        .checked_sub(ETH + IP6)?;
    let head = RA_FIXED + 8 + if ra.mtu { 8 } else { 0 };
    if room < head {
        return None;
    }
    let prefixes = ra.prefixes.len().min((room - head) / PREFIX_OPT);
    let len = head + PREFIX_OPT * prefixes;
    let b = &mut buf[ETH + IP6..ETH + IP6 + len];
    b[..RA_FIXED].fill(0);
    b[0] = icmpv6::ROUTER_ADVERT;
    b[4] = ra.hop_limit;
    b[5] = if ra.managed { ndp::RA_MANAGED } else { 0 } | if ra.other { ndp::RA_OTHER } else { 0 };
    b[6..8].copy_from_slice(&ra.router_lifetime.to_be_bytes());
    // Reachable time and retransmission timer unspecified (0).
    let mut off = RA_FIXED;
    off += NdpOption::SourceLinkLayer(src_mac).emit(&mut b[off..]);
    if ra.mtu {
        off += NdpOption::Mtu(u32::from(mtu)).emit(&mut b[off..]);
    }
    for p in &ra.prefixes[..prefixes] {
        let pi = PrefixInfo {
            prefix_len: p.prefix.len(),
            on_link: p.on_link,
            autonomous: p.autonomous,
            valid_lifetime: p.valid_lifetime,
            preferred_lifetime: p.preferred_lifetime,
            prefix: p.prefix.addr(),
        };
        off += NdpOption::PrefixInfo(pi).emit(&mut b[off..]);
    }
    debug_assert_eq!(off, len);
    icmpv6::Packet::new_unchecked(&mut b[..]).fill_checksum(src, dst);
    write_ip6(buf, src, dst, NH_ICMPV6, ND_HOP_LIMIT, len);
    write_eth6(buf, dst_mac, src_mac);
    Some(ETH + IP6 + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables6::RaPrefix;
    use crate::wire::ipv6::{link_local_from_mac, ALL_NODES};
    use crate::wire::ndp::Repr;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x99]);

    /// The IPv6 header of a built frame and its payload, checked.
    fn parsed(f: &[u8]) -> (ipv6::Repr, &[u8]) {
        let e = Frame::new_checked(f).unwrap();
        assert_eq!(e.ethertype(), ethernet::ETHERTYPE_IPV6);
        let p = ipv6::Packet::new_checked(&f[ETH..]).unwrap();
        let r = ipv6::Repr::parse(&p);
        assert_eq!(f.len(), ETH + IP6 + usize::from(r.payload_len));
        (r, &f[ETH + IP6..])
    }

    /// A UDP datagram `src` -> `dst` of `data` bytes in a frame of `cap`.
    fn udp_frame(src: u128, dst: u128, data: usize, cap: usize) -> (Vec<u8>, usize) {
        let mut b = vec![0u8; cap];
        let len = 8 + data;
        write_ip6(&mut b, src, dst, ipv6::NH_UDP, 63, len);
        write_eth6(&mut b, OUR, PEER);
        b[ETH + IP6 + 4..ETH + IP6 + 6].copy_from_slice(&(len as u16).to_be_bytes());
        for (i, x) in b[ETH + IP6 + 8..ETH + IP6 + len].iter_mut().enumerate() {
            *x = i as u8;
        }
        (b, ETH + IP6 + len)
    }

    #[test]
    fn icmp6_error_quotes_the_packet_back_to_its_source() {
        let (src, dst, us) = (a("2001:db8::9"), a("2001:db8:1::7"), a("2001:db8::1"));
        let (mut b, n) = udp_frame(src, dst, 100, 2048);
        let orig = b[ETH..n].to_vec();
        let len = icmp6_error(&mut b, n, us, OUR, PEER, icmpv6::DST_UNREACHABLE, 3, 0).unwrap();
        let f = &b[..len];
        assert_eq!(Frame::new_unchecked(f).dst_addr(), PEER);
        assert_eq!(Frame::new_unchecked(f).src_addr(), OUR);
        let (ip, msg) = parsed(f);
        assert_eq!(
            (ip.src, ip.dst, ip.next_header, ip.hop_limit),
            (us, src, 58, 64)
        );
        let p = icmpv6::Packet::new_checked(msg).unwrap();
        assert!(p.verify_checksum(us, src));
        assert_eq!((p.msg_type(), p.code(), p.rest_of_header()), (1, 3, 0));
        assert_eq!(p.payload(), &orig[..], "the whole packet quoted");
    }

    #[test]
    fn icmp6_error_stays_within_1280_bytes_and_carries_the_mtu() {
        let (src, us) = (a("2001:db8::9"), a("2001:db8::1"));
        let (mut b, n) = udp_frame(src, a("2001:db8:1::7"), 1400, 2048);
        let len = icmp6_error(&mut b, n, us, OUR, PEER, icmpv6::PACKET_TOO_BIG, 0, 1280).unwrap();
        assert_eq!(len, ETH + 1280);
        let (_, msg) = parsed(&b[..len]);
        let p = icmpv6::Packet::new_checked(msg).unwrap();
        assert!(p.verify_checksum(us, src));
        assert_eq!((p.msg_type(), p.mtu()), (2, 1280));
        assert_eq!(p.payload().len(), icmpv6::MAX_QUOTE);
        // A buffer of the frame's own size quotes what fits in it.
        let (mut b, n) = udp_frame(src, a("2001:db8:1::7"), 20, 14 + 40 + 28);
        let len = icmp6_error(&mut b, n, us, OUR, PEER, 4, 0, 6).unwrap();
        assert_eq!(len, b.len());
        let (_, msg) = parsed(&b[..len]);
        assert!(icmpv6::Packet::new_checked(msg)
            .unwrap()
            .verify_checksum(us, src));
        // Not an IPv6 packet at all.
        assert_eq!(
            icmp6_error(&mut [0u8; 40], 40, us, OUR, PEER, 1, 0, 0),
            None
        );
    }

    #[test]
    fn errors_never_answer_errors_redirects_multicast_or_unspecified() {
        let (g, m) = (a("2001:db8::9"), a("ff02::1"));
        assert!(may_send_error6(17, None, g, g));
        assert!(may_send_error6(58, Some(128), g, g), "echo request");
        assert!(!may_send_error6(58, Some(1), g, g), "about an error");
        assert!(!may_send_error6(58, Some(137), g, g), "about a redirect");
        assert!(!may_send_error6(17, None, a("ff0e::1"), g), "to multicast");
        assert!(!may_send_error6(17, None, g, 0), "from ::");
        assert!(!may_send_error6(17, None, g, m), "from multicast");
        assert!(may_send_packet_too_big6(17, None, g));
        assert!(!may_send_packet_too_big6(58, Some(2), g));
    }

    fn tcp_frame(flags: u8, data: usize, ext: usize) -> (Vec<u8>, usize) {
        let (src, dst) = (a("2001:db8::9"), a("2001:db8:1::7"));
        let mut b = vec![0u8; 2048];
        let len = ext + 20 + data;
        write_ip6(&mut b, src, dst, NH_TCP, 60, len);
        let t = &mut b[ETH + IP6 + ext..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&22u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[8..12].copy_from_slice(&5000u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        (b, ETH + IP6 + len)
    }

    #[test]
    fn tcp_reset6_answers_syn_and_ack_segments() {
        let (src, dst) = (a("2001:db8::9"), a("2001:db8:1::7"));
        // A SYN behind an 8-byte extension header: ack = seq + 1.
        let (mut b, n) = tcp_frame(tcp::SYN, 0, 8);
        let len = tcp_reset6(&mut b, n, 48, OUR, PEER).unwrap();
        let (ip, seg) = parsed(&b[..len]);
        assert_eq!(
            (ip.src, ip.dst, ip.next_header, ip.hop_limit),
            (dst, src, 6, 64)
        );
        assert!(checksum::verify6(dst, src, 6, seg));
        let t = tcp::Packet::new_unchecked(seg);
        assert_eq!((t.src_port(), t.dst_port()), (22, 40000));
        assert_eq!((t.seq_number(), t.ack_number()), (0, 1001));
        assert_eq!(t.flags(), tcp::RST | tcp::ACK);
        // An ACK with 10 bytes: seq = its ack, no ACK flag.
        let (mut b, n) = tcp_frame(tcp::ACK | tcp::PSH, 10, 0);
        let len = tcp_reset6(&mut b, n, 40, OUR, PEER).unwrap();
        let (_, seg) = parsed(&b[..len]);
        assert!(checksum::verify6(dst, src, 6, seg));
        let t = tcp::Packet::new_unchecked(seg);
        assert_eq!((t.seq_number(), t.flags()), (5000, tcp::RST));
        // Truncated segment.
        let (mut b, _) = tcp_frame(tcp::SYN, 0, 0);
        assert_eq!(tcp_reset6(&mut b, ETH + IP6 + 10, 40, OUR, PEER), None);
    }

    #[test]
    fn neighbor_solicit_goes_to_the_solicited_node_group_or_unicast() {
        let (src, target) = (a("fe80::1"), a("2001:db8::abcd:1234"));
        let mut b = vec![0u8; 128];
        let len = neighbor_solicit(&mut b, OUR, src, target, None).unwrap();
        let f = &b[..len];
        assert_eq!(
            Frame::new_unchecked(f).dst_addr(),
            Mac([0x33, 0x33, 0xff, 0xcd, 0x12, 0x34])
        );
        let (ip, msg) = parsed(f);
        assert_eq!(ip.dst, a("ff02::1:ffcd:1234"));
        assert_eq!(ip.hop_limit, 255);
        assert!(icmpv6::Packet::new_checked(msg)
            .unwrap()
            .verify_checksum(src, ip.dst));
        assert_eq!(
            Repr::parse(ip.src, ip.dst, ip.hop_limit, msg),
            Ok(Repr::NeighborSolicit {
                target,
                source_mac: Some(OUR)
            })
        );
        let len = neighbor_solicit(&mut b, OUR, src, target, Some(PEER)).unwrap();
        let (ip, _) = parsed(&b[..len]);
        assert_eq!(Frame::new_unchecked(&b[..len]).dst_addr(), PEER);
        assert_eq!(ip.dst, target);
        assert_eq!(
            neighbor_solicit(&mut [0u8; 60], OUR, src, target, None),
            None
        );
    }

    #[test]
    fn neighbor_advert_carries_flags_and_the_target_mac() {
        let (target, dst) = (a("2001:db8::1"), a("2001:db8::9"));
        let mut b = vec![0u8; 128];
        let len = neighbor_advert(&mut b, OUR, target, dst, PEER, true, true).unwrap();
        let (ip, msg) = parsed(&b[..len]);
        assert_eq!((ip.src, ip.dst, ip.hop_limit), (target, dst, 255));
        assert!(icmpv6::Packet::new_checked(msg)
            .unwrap()
            .verify_checksum(target, dst));
        assert_eq!(
            Repr::parse(ip.src, ip.dst, ip.hop_limit, msg),
            Ok(Repr::NeighborAdvert {
                flags: ndp::NA_ROUTER | ndp::NA_SOLICITED | ndp::NA_OVERRIDE,
                target,
                target_mac: Some(OUR)
            })
        );
        let len = neighbor_advert(
            &mut b,
            OUR,
            target,
            ALL_NODES,
            multicast_mac(ALL_NODES),
            false,
            true,
        )
        .unwrap();
        let (ip, msg) = parsed(&b[..len]);
        assert_eq!(
            Frame::new_unchecked(&b[..len]).dst_addr(),
            Mac([0x33, 0x33, 0, 0, 0, 1])
        );
        assert!(matches!(
            Repr::parse(ip.src, ip.dst, ip.hop_limit, msg),
            Ok(Repr::NeighborAdvert { flags, .. }) if flags == ndp::NA_ROUTER | ndp::NA_OVERRIDE
        ));
    }

    #[test]
    fn router_advert_announces_mtu_and_prefixes() {
        let src = link_local_from_mac(OUR);
        let prefix = |s: &str| RaPrefix {
            prefix: s.parse().unwrap(),
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            on_link: true,
            autonomous: true,
        };
        let ra = RaConfig {
            managed: true,
            prefixes: vec![prefix("2001:db8:1::/64"), prefix("2001:db8:2::/64")],
            ..RaConfig::default()
        };
        let mut b = vec![0u8; 2048];
        let len = router_advert(
            &mut b,
            OUR,
            src,
            ALL_NODES,
            multicast_mac(ALL_NODES),
            &ra,
            1500,
        )
        .unwrap();
        let (ip, msg) = parsed(&b[..len]);
        assert_eq!((ip.src, ip.dst, ip.hop_limit), (src, ALL_NODES, 255));
        assert!(icmpv6::Packet::new_checked(msg)
            .unwrap()
            .verify_checksum(src, ALL_NODES));
        let Ok(Repr::RouterAdvert(r)) = Repr::parse(ip.src, ip.dst, ip.hop_limit, msg) else {
            panic!("not an RA");
        };
        assert_eq!(
            (r.hop_limit, r.flags, r.router_lifetime),
            (64, ndp::RA_MANAGED, 1800)
        );
        assert_eq!(
            (r.source_mac, r.mtu, r.prefix_count),
            (Some(OUR), Some(1500), 2)
        );
        let p = r.prefixes[1].unwrap();
        assert_eq!(
            (p.prefix, p.prefix_len, p.on_link, p.autonomous),
            (a("2001:db8:2::"), 64, true, true)
        );
        assert_eq!((p.valid_lifetime, p.preferred_lifetime), (86400, 14400));
        // No MTU option when not asked; a small buffer keeps the prefixes that fit.
        let ra = RaConfig { mtu: false, ..ra };
        let mut b = vec![0u8; ETH + IP6 + 24 + 32 + 10];
        let len = router_advert(&mut b, OUR, src, ALL_NODES, PEER, &ra, 1500).unwrap();
        let (ip, msg) = parsed(&b[..len]);
        let Ok(Repr::RouterAdvert(r)) = Repr::parse(ip.src, ip.dst, ip.hop_limit, msg) else {
            panic!("not an RA");
        };
        assert_eq!((r.mtu, r.prefix_count), (None, 1));
    }
}
