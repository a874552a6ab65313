//! The parse stage: Ethernet and IPv4 (RFC 1812 5.2.2) and the fixed L4
//! header into what the paths read, for the fast paths in one pass and for
//! the general path with every drop reason named.

use crate::conntrack::{CtState, FlowKey};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId, ETH_HDR_LEN};
use crate::tables::{IpOptionsPolicy, Tables};
use crate::wire::{self, icmp, ipv4, tcp, udp};

use super::State;

/// The IPv4 header fields the paths read. [`L3::read`] is the one reader
/// of them, over [`ipv4::Packet`]'s field offsets: for the fast parser, the
/// general parser and the header an ICMP error quotes.
#[derive(Clone, Copy)]
pub(super) struct L3 {
    /// The arrival port.
    pub(super) in_port: PortId,
    pub(super) total_len: usize,
    pub(super) src: u32,
    pub(super) dst: u32,
    pub(super) proto: u8,
    pub(super) ttl: u8,
}

impl L3 {
    /// The fields of `ip`'s fixed header, arrived on `in_port`; the caller
    /// checked what it needs.
    #[inline(always)]
    pub(super) fn read<T: AsRef<[u8]>>(in_port: PortId, ip: &ipv4::Packet<T>) -> L3 {
        L3 {
            in_port,
            total_len: usize::from(ip.total_len()),
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            proto: ip.protocol(),
            ttl: ip.ttl(),
        }
    }

    /// The fields of a frame whose header [`State::fast_l3`] checked
    /// already, read again without the checks.
    #[inline(always)]
    pub(super) fn checked_before(pkt: &Pkt<'_>) -> Option<L3> {
        let h: &[u8; 20] = pkt
            .buf
            .get(ETH_HDR_LEN..ETH_HDR_LEN + 20)?
            .try_into()
            .ok()?;
        Some(L3::read(pkt.port, &ipv4::Packet::new_unchecked(h)))
    }
}

#[inline]
fn map_ip_error(e: wire::Error) -> DropReason {
    match e {
        wire::Error::BadVersion => DropReason::IpBadVersion,
        wire::Error::BadHeaderLength => DropReason::IpBadHeaderLength,
        wire::Error::BadTotalLength => DropReason::IpBadTotalLength,
        _ => DropReason::IpTruncated,
    }
}

/// A MAC as a number: the low 48 bits of its six bytes read little-endian.
#[inline(always)]
pub(super) fn mac48(m: &[u8; 6]) -> u64 {
    u64::from(u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        | u64::from(u16::from_le_bytes([m[4], m[5]])) << 32
}

/// [`martian_source`] by first octet, for the fast parser.
static BAD_SOURCE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = martian_source((i as u32) << 24);
        i += 1;
    }
    t
};

/// [`bad_destination`] by first octet, for the fast parser (the general
/// parser names the reason).
static BAD_DESTINATION: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = bad_destination((i as u32) << 24).is_some();
        i += 1;
    }
    t
};

/// 0/8, 127/8, multicast, class E and limited broadcast never source a packet.
#[inline]
const fn martian_source(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 224
}

/// Why a packet to `a` is never forwarded: 0/8 and 127/8 are martian,
/// multicast and above are not unicast. None: a unicast destination.
#[inline]
const fn bad_destination(a: u32) -> Option<DropReason> {
    match a >> 24 {
        0 | 127 => Some(DropReason::IpMartianDestination),
        224.. => Some(DropReason::IpNotUnicast),
        _ => None,
    }
}

/// The TCP or UDP fields of `m.proto`'s header at `l4` (IPv4 and IPv6
/// alike). A router needs the fixed L4 header (ports, flags), not a valid
/// one: TCP data offset and UDP length are the end hosts' business, as in
/// Linux forwarding.
#[inline(always)]
pub(super) fn parse_ports(l4: &[u8], m: &mut Meta) -> Result<(), DropReason> {
    if m.proto == ipv4::PROTO_TCP {
        if l4.len() < tcp::HEADER_LEN {
            return Err(DropReason::L4Truncated);
        }
        let s = tcp::Packet::new_unchecked(l4);
        m.tcp_flags = s.flags();
    } else if l4.len() < udp::HEADER_LEN {
        return Err(DropReason::L4Truncated);
    }
    // TCP and UDP ports sit at the same offsets.
    let d = udp::Packet::new_unchecked(l4);
    m.sport = d.src_port();
    m.dport = d.dst_port();
    m.has_ports = true;
    Ok(())
}

impl State {
    /// Read the common frame's IPv4 header (to our MAC, IPv4 without
    /// options, not a fragment, good checksum, unicast addresses, and for
    /// TCP the whole fixed header) in one pass; anything else returns `None`
    /// and takes the general parser, which names the drop reason. No L4
    /// field: the transit fast path needs none.
    #[inline(always)]
    pub(super) fn fast_l3(&self, pkt: &Pkt<'_>) -> Option<L3> {
        let len = pkt.len;
        let port = pkt.port;
        let buf = pkt.buf.get(..len)?;
        if len < ETH_HDR_LEN + 28 {
            return None;
        }
        // Destination MAC (the low 48 bits) and ethertype 0x0800, version
        // 4 and IHL 5 (options take the general path) in two loads.
        let head = u64::from_le_bytes(buf[..8].try_into().ok()?);
        let tag = u32::from_le_bytes(buf[12..16].try_into().ok()?);
        if head & 0xffff_ffff_ffff != self.port_mac[port.0 as usize & 63]
            || tag & 0xff_ffff != 0x45_0008
        {
            return None;
        }
        let h: &[u8; 20] = buf[ETH_HDR_LEN..ETH_HDR_LEN + 20].try_into().ok()?;
        let ip = ipv4::Packet::new_unchecked(h);
        let l3 = L3::read(port, &ip);
        let total = l3.total_len;
        if total > len - ETH_HDR_LEN || total < 28 || ip.is_fragment() {
            return None;
        }
        if !wire::checksum::verify20(h) {
            return None;
        }
        if BAD_SOURCE[(l3.src >> 24) as usize] | BAD_DESTINATION[(l3.dst >> 24) as usize] {
            return None;
        }
        // The general parser names a short TCP header (`l4_truncated`); 28
        // bytes hold the UDP and ICMP ones.
        if l3.proto == ipv4::PROTO_TCP && total < 20 + tcp::HEADER_LEN {
            return None;
        }
        Some(l3)
    }

    /// [`State::fast_l3`] and the L4 fields, as the general parser reads
    /// them, into a `Meta`.
    #[inline(always)]
    pub(super) fn fast_parse(&self, pkt: &Pkt<'_>) -> Option<Meta> {
        self.fast_l4(pkt, self.fast_l3(pkt)?)
    }

    /// The `Meta` of a packet `fast_l3` read. The fields its protocol does
    /// not have stay zero (ports, ICMP fields): `fast_ct_info` counts on it.
    #[inline(always)]
    pub(super) fn fast_l4(&self, pkt: &Pkt<'_>, l3: L3) -> Option<Meta> {
        let L3 {
            in_port,
            total_len: total,
            src,
            dst,
            proto,
            ttl,
        } = l3;
        // `fast_l3` saw at least 8 bytes of L4 header (20 for TCP) within the
        // total length: fixed-size reads, one bounds check.
        let l4: &[u8; 20] = pkt
            .buf
            .get(ETH_HDR_LEN + 20..ETH_HDR_LEN + 40)?
            .try_into()
            .ok()?;
        // TCP and UDP ports sit at the same offsets.
        let ports = udp::Packet::new_unchecked(l4);
        let (a, b) = (ports.src_port(), ports.dst_port());
        let mut m = Meta {
            in_port,
            out_port: None,
            ihl: 20,
            total_len: total,
            src,
            dst,
            v6: false,
            src6: 0,
            dst6: 0,
            proto,
            ttl,
            fragment: false,
            nonfirst_fragment: false,
            has_ports: true,
            sport: a,
            dport: b,
            tcp_flags: 0,
            has_icmp: false,
            icmp_type: 0,
            icmp_code: 0,
            icmp_ident: 0,
            local_dst: false,
            ct_state: CtState::Untracked,
        };
        match proto {
            ipv4::PROTO_TCP => m.tcp_flags = tcp::Packet::new_unchecked(l4).flags(),
            ipv4::PROTO_UDP => {}
            ipv4::PROTO_ICMP => {
                m.has_ports = false;
                m.sport = 0;
                m.dport = 0;
                let c = icmp::Packet::new_unchecked(l4);
                m.has_icmp = true;
                m.icmp_type = c.msg_type();
                m.icmp_code = c.code();
                m.icmp_ident = c.echo_ident();
            }
            // Other protocols: no L4 fields, as in the general parser.
            _ => {
                m.has_ports = false;
                m.sport = 0;
                m.dport = 0;
            }
        }
        Some(m)
    }

    /// Parse and check the IPv4 header and the L4 header into `Meta`.
    #[inline(always)]
    pub(super) fn parse_ip(
        &self,
        t: &Tables,
        pkt: &Pkt<'_>,
        m: &mut Meta,
    ) -> Result<(), DropReason> {
        let ip = ipv4::Packet::new_checked(&pkt.buf[ETH_HDR_LEN..pkt.len]).map_err(map_ip_error)?;
        // RFC 1812 5.2.2 (2): the header checksum must verify.
        if !ip.verify_checksum() {
            return Err(DropReason::IpBadChecksum);
        }
        let l3 = L3::read(m.in_port, &ip);
        m.ihl = ip.header_len();
        m.total_len = l3.total_len;
        m.src = l3.src;
        m.dst = l3.dst;
        m.proto = l3.proto;
        m.ttl = l3.ttl;
        m.nonfirst_fragment = ip.frag_offset() != 0;
        m.fragment = m.nonfirst_fragment || ip.more_frags();
        if m.ihl > 20 && t.ip_options == IpOptionsPolicy::Drop {
            return Err(DropReason::IpOptions);
        }
        if martian_source(m.src) {
            return Err(DropReason::IpMartianSource);
        }
        if let Some(r) = bad_destination(m.dst) {
            return Err(r);
        }
        if m.nonfirst_fragment {
            return Ok(());
        }
        let l4 = ip.payload();
        match m.proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => parse_ports(l4, m)?,
            ipv4::PROTO_ICMP => {
                if l4.len() < icmp::HEADER_LEN {
                    return Err(DropReason::L4Truncated);
                }
                let c = icmp::Packet::new_unchecked(l4);
                m.icmp_type = c.msg_type();
                m.icmp_code = c.code();
                m.icmp_ident = c.echo_ident();
                m.has_icmp = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// The tuple of the packet an ICMP error quotes, as that packet was sent.
    pub(super) fn quoted_flow(pkt: &Pkt<'_>, m: &Meta) -> Option<FlowKey> {
        let start = ETH_HDR_LEN + m.ihl + 8;
        let end = ETH_HDR_LEN + m.total_len;
        crate::owner::quoted_flow(pkt.buf.get(start..end)?)
    }
}
