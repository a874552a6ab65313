//! Which worker owns a tracked flow.
//!
//! Connection tables are per worker, so every packet of a tracked flow
//! must be judged by one worker: its owner, found from the flow itself by a
//! hash that is the same for both directions (the addresses and the ports
//! are combined with XOR before mixing), and for an ICMP error from the
//! flow it quotes, so RELATED finds its entry. A NIC's RSS may put the two
//! directions on different queues, and the kernel's packets come from the
//! TUN: a worker that gets a tracked packet it does not own hands it to the
//! owner. Untracked transit never asks.
//!
//! The key is conntrack's tuple ([`FlowKey`]): ports for TCP and UDP, the
//! query identifier in both ports (and the type and code) for ICMP queries,
//! none otherwise and for non-first fragments. The owner does not depend on
//! the ICMP type, so a query and its reply have one owner. IPv6 flows
//! ([`FlowKey6`]) the same, the addresses folded to 64 bits after the XOR.

use crate::conntrack::{
    is_icmp_reply, is_icmp_request, is_icmpv6_reply, is_icmpv6_request, FlowKey, FlowKey6,
};
use crate::wire::{icmp, icmpv6, ipv4, ipv6};

/// The owner of the flow `key` among `workers` workers (0 for one).
#[inline(always)]
pub fn owner(key: &FlowKey, workers: usize) -> usize {
    let a = key.src ^ key.dst;
    let p = key.sport ^ key.dport;
    let x = (u64::from(a) << 32 | u64::from(p) << 8 | u64::from(key.proto))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The high half is the well-mixed one; then a multiply maps it onto
    // 0..workers without a division.
    (((x >> 32) * workers as u64) >> 32) as usize
}

/// [`owner`] of an IPv6 flow: the same for both directions.
#[inline(always)]
pub fn owner6(key: &FlowKey6, workers: usize) -> usize {
    let a = key.src ^ key.dst;
    let a = (a >> 64) as u64 ^ a as u64;
    let p = key.sport ^ key.dport;
    let x = ((a ^ a >> 32) << 32 | u64::from(p) << 8 | u64::from(key.proto))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (((x >> 32) * workers as u64) >> 32) as usize
}

/// The ports, and `type << 8 | code` for an ICMPv6 echo, of an IPv6 upper
/// header `l4` of protocol `proto` (`None` when too short for them, or an
/// ICMPv6 message that is not echo).
fn ports6(proto: u8, l4: &[u8]) -> Option<(u16, u16, u16)> {
    match proto {
        ipv6::NH_TCP | ipv6::NH_UDP => {
            let p = l4.get(..4)?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
                0,
            ))
        }
        ipv6::NH_ICMPV6 => {
            let p = l4.get(..icmpv6::HEADER_LEN)?;
            let id = u16::from_be_bytes([p[4], p[5]]);
            Some((id, id, u16::from(p[0]) << 8 | u16::from(p[1])))
        }
        _ => Some((0, 0, 0)),
    }
}

/// [`quoted_flow`] for an ICMPv6 error: the tuple of the IPv6 packet it
/// quotes (`inner`: the quoted fixed header and what follows, as that
/// packet was sent), past its extension headers: ports for TCP and UDP,
/// the identifier for an echo, none otherwise and for a later fragment.
pub fn quoted_flow6(inner: &[u8]) -> Option<FlowKey6> {
    if inner.len() < ipv6::HEADER_LEN || inner[0] >> 4 != 6 {
        return None;
    }
    // The quote may be cut short: the header's payload length is not checked.
    let ip = ipv6::Packet::new_unchecked(inner);
    let chain = ipv6::walk(ip.next_header(), &inner[ipv6::HEADER_LEN..]).ok()?;
    let l4 = &inner[ipv6::HEADER_LEN + chain.offset..];
    let (proto, (sport, dport, icmp)) = match chain.upper {
        Some(ipv6::NH_ICMPV6) => {
            let t = *l4.first()?;
            if !is_icmpv6_request(t) && !is_icmpv6_reply(t) {
                return None;
            }
            (ipv6::NH_ICMPV6, ports6(ipv6::NH_ICMPV6, l4)?)
        }
        Some(p) => (p, ports6(p, l4)?),
        None => (chain.last_next_header, (0, 0, 0)),
    };
    Some(FlowKey6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        sport,
        dport,
        proto,
        icmp,
    })
}

/// [`flow_of_ip_packet`] for an IPv6 packet: conntrack's tuple past the
/// extension headers, or for an ICMPv6 error the quoted flow's. `None` for
/// what is not IPv6 or has a malformed extension header chain (any worker
/// then takes it and the pipeline names the drop).
pub fn flow_of_ip6_packet(pkt: &[u8]) -> Option<FlowKey6> {
    let ip = ipv6::Packet::new_checked(pkt).ok()?;
    let payload = ip.payload();
    let chain = ipv6::walk(ip.next_header(), payload).ok()?;
    let none = FlowKey6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        sport: 0,
        dport: 0,
        proto: chain.last_next_header,
        icmp: 0,
    };
    let Some(proto) = chain.upper else {
        return Some(none);
    };
    let l4 = &payload[chain.offset..];
    if proto == ipv6::NH_ICMPV6 && l4.len() >= icmpv6::HEADER_LEN && icmpv6::is_error(l4[0]) {
        return quoted_flow6(&l4[icmpv6::HEADER_LEN..]);
    }
    Some(match ports6(proto, l4) {
        Some((sport, dport, icmp)) => FlowKey6 {
            sport,
            dport,
            icmp,
            ..none
        },
        None => none,
    })
}

/// The tuple of the packet an ICMP error quotes (`inner`: the quoted IPv4
/// header and what follows), as that packet was sent: ports for TCP and
/// UDP, the identifier for an echo or other query, none otherwise.
pub fn quoted_flow(inner: &[u8]) -> Option<FlowKey> {
    if inner.len() < ipv4::HEADER_LEN || inner[0] >> 4 != 4 {
        return None;
    }
    let ip = ipv4::Packet::new_unchecked(inner);
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let l4 = inner.get(ip.header_len()..)?;
    let (sport, dport, icmp) = match proto {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
            let p = l4.get(..4)?;
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
                0,
            )
        }
        ipv4::PROTO_ICMP => {
            let p = l4.get(..8)?;
            if !is_icmp_request(p[0]) && !is_icmp_reply(p[0]) {
                return None;
            }
            let id = u16::from_be_bytes([p[4], p[5]]);
            (id, id, u16::from(p[0]) << 8 | u16::from(p[1]))
        }
        _ => (0, 0, 0),
    };
    Some(FlowKey {
        src,
        dst,
        sport,
        dport,
        proto,
        icmp,
    })
}

/// The flow an IP packet belongs to for ownership (the host path's
/// packets, which have no Ethernet header): conntrack's tuple, or for an
/// ICMP error the quoted flow's. `None` for what is not IPv4 (any worker
/// then takes it and the pipeline names the drop).
pub fn flow_of_ip_packet(pkt: &[u8]) -> Option<FlowKey> {
    let ip = ipv4::Packet::new_checked(pkt).ok()?;
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let none = FlowKey {
        src,
        dst,
        sport: 0,
        dport: 0,
        proto,
        icmp: 0,
    };
    if ip.frag_offset() != 0 {
        return Some(none);
    }
    let l4 = ip.payload();
    match proto {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP if l4.len() >= 4 => Some(FlowKey {
            sport: u16::from_be_bytes([l4[0], l4[1]]),
            dport: u16::from_be_bytes([l4[2], l4[3]]),
            ..none
        }),
        ipv4::PROTO_ICMP if l4.len() >= icmp::HEADER_LEN => {
            if icmp::is_error(l4[0]) {
                return quoted_flow(&l4[icmp::HEADER_LEN..]);
            }
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            Some(FlowKey {
                sport: id,
                dport: id,
                icmp: u16::from(l4[0]) << 8 | u16::from(l4[1]),
                ..none
            })
        }
        _ => Some(none),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: u32, dst: u32, sport: u16, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
            icmp: 0,
        }
    }

    #[test]
    fn both_directions_have_one_owner_and_flows_spread() {
        let mut per_worker = [0u32; 4];
        for i in 0..4000u32 {
            let k = key(0xc612_0002 + i % 50, 0xc613_0002, 40000 + i as u16, 22, 6);
            let o = owner(&k, 4);
            assert_eq!(owner(&k.reverse(), 4), o, "{k:?}");
            assert_eq!(owner(&k, 1), 0);
            per_worker[o] += 1;
        }
        // Spread, not necessarily even: each worker gets a fair share.
        assert!(per_worker.iter().all(|&n| n > 600), "{per_worker:?}");
    }

    #[test]
    fn an_icmp_error_belongs_to_the_flow_it_quotes() {
        // A UDP packet 198.19.0.2:5000 > 198.18.0.2:53 as it was sent ...
        let mut inner = vec![0u8; 28];
        inner[0] = 0x45;
        inner[9] = ipv4::PROTO_UDP;
        inner[12..16].copy_from_slice(&[198, 19, 0, 2]);
        inner[16..20].copy_from_slice(&[198, 18, 0, 2]);
        inner[20..22].copy_from_slice(&5000u16.to_be_bytes());
        inner[22..24].copy_from_slice(&53u16.to_be_bytes());
        // ... and the port unreachable the far host sends back about it.
        let mut err = vec![0u8; 28];
        err[0] = 0x45;
        err[2..4].copy_from_slice(&((28 + 28) as u16).to_be_bytes());
        err[8] = 64;
        err[9] = ipv4::PROTO_ICMP;
        err[12..16].copy_from_slice(&[198, 18, 0, 2]);
        err[16..20].copy_from_slice(&[198, 19, 0, 2]);
        err[20] = icmp::DEST_UNREACHABLE;
        err[21] = icmp::PORT_UNREACHABLE;
        err.extend_from_slice(&inner);
        let flow = key(0xc613_0002, 0xc612_0002, 5000, 53, ipv4::PROTO_UDP);
        assert_eq!(flow_of_ip_packet(&err), Some(flow));
        assert_eq!(quoted_flow(&inner), Some(flow));
        // The reply direction of the flow has the same owner.
        assert_eq!(owner(&flow.reverse(), 3), owner(&flow, 3));
    }

    #[test]
    fn queries_key_on_their_identifier() {
        let mut echo = vec![0u8; 28];
        echo[0] = 0x45;
        echo[2..4].copy_from_slice(&28u16.to_be_bytes());
        echo[9] = ipv4::PROTO_ICMP;
        echo[20] = icmp::ECHO_REQUEST;
        echo[24..26].copy_from_slice(&77u16.to_be_bytes());
        let k = flow_of_ip_packet(&echo).expect("IPv4");
        assert_eq!((k.sport, k.dport, k.proto), (77, 77, ipv4::PROTO_ICMP));
        assert_eq!(flow_of_ip_packet(&[0x60; 40]), None, "not IPv4");
    }

    const A6: u128 = 0x2001_0db8_0001 << 80 | 2;
    const B6: u128 = 0x2001_0db8_0002 << 80 | 2;

    /// An IPv6 packet `src` > `dst` whose payload is a destination options
    /// header (8 bytes) then `l4` of protocol `proto`.
    fn ip6(src: u128, dst: u128, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; ipv6::HEADER_LEN + 8];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((8 + l4.len()) as u16).to_be_bytes());
        p[6] = ipv6::NH_DEST_OPTS;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.to_be_bytes());
        p[24..40].copy_from_slice(&dst.to_be_bytes());
        p[40] = proto;
        // Hdr Ext Len 0, then a PadN option filling the 8 bytes.
        p[42] = 1;
        p[43] = 4;
        p.extend_from_slice(l4);
        p
    }

    proptest::proptest! {
        #[test]
        fn both_directions_of_an_ipv6_flow_have_one_owner(
            src: u128, dst: u128, sport: u16, dport: u16, proto: u8, icmp: u16, workers in 1usize..64,
        ) {
            let k = FlowKey6 { src, dst, sport, dport, proto, icmp };
            let o = owner6(&k, workers);
            proptest::prop_assert!(o < workers);
            proptest::prop_assert_eq!(owner6(&k.reverse(), workers), o);
        }
    }

    #[test]
    fn ipv6_flows_spread_over_workers() {
        let mut per_worker = [0u32; 4];
        for i in 0..4000u32 {
            let k = FlowKey6 {
                src: A6 + (u128::from(i % 50) << 64),
                dst: B6,
                sport: 40000 + i as u16,
                dport: 22,
                proto: ipv6::NH_TCP,
                icmp: 0,
            };
            per_worker[owner6(&k, 4)] += 1;
        }
        assert!(per_worker.iter().all(|&n| n > 600), "{per_worker:?}");
    }

    #[test]
    fn an_icmpv6_error_belongs_to_the_flow_it_quotes() {
        // A UDP packet [A6]:5000 > [B6]:53 as it was sent, past a
        // destination options header ...
        let mut udp = [0u8; 8];
        udp[..2].copy_from_slice(&5000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        let inner = ip6(A6, B6, ipv6::NH_UDP, &udp);
        let flow = FlowKey6 {
            src: A6,
            dst: B6,
            sport: 5000,
            dport: 53,
            proto: ipv6::NH_UDP,
            icmp: 0,
        };
        assert_eq!(quoted_flow6(&inner), Some(flow));
        assert_eq!(flow_of_ip6_packet(&inner), Some(flow));
        // ... and the port unreachable B6 sends back about it.
        let mut msg = vec![
            icmpv6::DST_UNREACHABLE,
            icmpv6::PORT_UNREACHABLE,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        msg.extend_from_slice(&inner);
        let err = ip6(B6, A6, ipv6::NH_ICMPV6, &msg);
        assert_eq!(flow_of_ip6_packet(&err), Some(flow));
        assert_eq!(owner6(&flow.reverse(), 3), owner6(&flow, 3));
        // A quote cut after the ports is enough; one cut inside them, or
        // quoting an ICMPv6 message that is not echo, is no flow.
        assert_eq!(quoted_flow6(&inner[..inner.len() - 4]), Some(flow));
        assert_eq!(quoted_flow6(&inner[..inner.len() - 6]), None);
        assert_eq!(
            quoted_flow6(&inner[..ipv6::HEADER_LEN + 4]),
            None,
            "cut inside the options"
        );
        let ns = ip6(
            A6,
            B6,
            ipv6::NH_ICMPV6,
            &[icmpv6::NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(quoted_flow6(&ns), None);
        assert_eq!(quoted_flow6(&inner[..39]), None);
        let mut v4 = inner.clone();
        v4[0] = 0x45;
        assert_eq!(quoted_flow6(&v4), None);
    }

    #[test]
    fn ipv6_queries_key_on_their_identifier_and_fragments_on_none() {
        let echo = [icmpv6::ECHO_REQUEST, 0, 0, 0, 0, 77, 0, 1];
        let k = flow_of_ip6_packet(&ip6(A6, B6, ipv6::NH_ICMPV6, &echo)).expect("IPv6");
        let want = FlowKey6 {
            src: A6,
            dst: B6,
            sport: 77,
            dport: 77,
            proto: ipv6::NH_ICMPV6,
            icmp: u16::from(icmpv6::ECHO_REQUEST) << 8,
        };
        assert_eq!(k, want);
        // The echo an error quotes keys alike.
        let mut msg = vec![icmpv6::TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&ip6(A6, B6, ipv6::NH_ICMPV6, &echo));
        assert_eq!(
            flow_of_ip6_packet(&ip6(B6, A6, ipv6::NH_ICMPV6, &msg)),
            Some(want)
        );
        // A later fragment of a TCP segment: no ports.
        let mut frag = ip6(A6, B6, ipv6::NH_FRAGMENT, &[0u8; 16]);
        frag[48] = ipv6::NH_TCP;
        frag[50..52].copy_from_slice(&(8u16 << 3).to_be_bytes());
        let k = flow_of_ip6_packet(&frag).expect("IPv6");
        assert_eq!((k.sport, k.dport, k.proto), (0, 0, ipv6::NH_TCP));
        assert_eq!(flow_of_ip6_packet(&[0x45; 40]), None, "not IPv6");
        let mut cut = ip6(A6, B6, ipv6::NH_UDP, &[0u8; 8]);
        cut[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            flow_of_ip6_packet(&cut),
            None,
            "payload length beyond the packet"
        );
    }
}
