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
//! the ICMP type, so a query and its reply have one owner.

use crate::conntrack::{is_icmp_reply, is_icmp_request, FlowKey};
use crate::wire::{icmp, ipv4};

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
}
