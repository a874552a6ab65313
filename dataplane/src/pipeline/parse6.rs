//! The parse stage for IPv6: the fixed header (RFC 8200 3), the extension
//! header chain (walked with a bound, [`ipv6::walk`]), the address rules of
//! RFC 4291 that hold whatever the route, and the upper-layer fields into
//! [`Meta`]. Every malformed packet gets its named drop reason.

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, ETH_HDR_LEN};
use crate::wire::ipv6::{self, AddrClass, ExtError};
use crate::wire::{self, icmpv6};

use super::parse::parse_ports;
use super::State;

/// The drop reason of a fixed header that does not check.
fn map_error(e: wire::Error) -> DropReason {
    match e {
        wire::Error::BadVersion => DropReason::Ip6BadVersion,
        wire::Error::BadTotalLength => DropReason::Ip6BadPayloadLength,
        _ => DropReason::Ip6Truncated,
    }
}

/// The drop reason of a malformed extension header chain.
pub(super) const fn ext_reason(e: ExtError) -> DropReason {
    match e {
        ExtError::Truncated => DropReason::Ip6ExtTruncated,
        ExtError::TooMany => DropReason::Ip6ExtTooMany,
        ExtError::TooLong => DropReason::Ip6ExtTooLong,
        ExtError::HopByHopNotFirst => DropReason::Ip6ExtHbhNotFirst,
        ExtError::RoutingType0 => DropReason::Ip6ExtRh0,
        ExtError::IncompleteChain => DropReason::Ip6FragIncompleteChain,
        ExtError::BadFragmentLength => DropReason::Ip6FragBadLength,
    }
}

/// Whether an unspecified source is allowed: duplicate address detection
/// (a neighbour solicitation, RFC 4862 5.4.2) and router solicitations
/// (RFC 4861 6.1.1) of a host that has no address yet.
#[inline]
fn unspecified_allowed(m: &Meta) -> bool {
    m.has_icmp
        && matches!(
            m.icmp_type,
            icmpv6::NEIGHBOR_SOLICIT | icmpv6::ROUTER_SOLICIT
        )
}

impl State {
    /// Parse and check the IPv6 header, its extension headers and the
    /// upper-layer header into `m` (`m.in_port` set by the caller).
    pub(super) fn parse_ip6(&self, pkt: &Pkt<'_>, m: &mut Meta) -> Result<(), DropReason> {
        let ip = ipv6::Packet::new_checked(&pkt.buf[ETH_HDR_LEN..pkt.len]).map_err(map_error)?;
        m.v6 = true;
        m.src6 = ip.src_addr();
        m.dst6 = ip.dst_addr();
        m.ttl = ip.hop_limit();
        m.total_len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        // RFC 4291 2.5.2, 2.5.3, 2.5.5.2, 2.7: addresses never valid as a
        // source, or as a destination, whatever the packet.
        match AddrClass::of(m.src6) {
            AddrClass::Multicast(_) => return Err(DropReason::Ip6SrcMulticast),
            AddrClass::Loopback => return Err(DropReason::Ip6SrcLoopback),
            AddrClass::Ipv4Mapped => return Err(DropReason::Ip6Ipv4Mapped),
            _ => {}
        }
        match AddrClass::of(m.dst6) {
            AddrClass::Unspecified => return Err(DropReason::Ip6DstUnspecified),
            AddrClass::Loopback => return Err(DropReason::Ip6DstLoopback),
            AddrClass::Ipv4Mapped => return Err(DropReason::Ip6Ipv4Mapped),
            _ => {}
        }
        let payload = ip.payload();
        let chain = ipv6::walk(ip.next_header(), payload).map_err(ext_reason)?;
        m.ihl = ipv6::HEADER_LEN + chain.offset;
        m.proto = chain.upper.unwrap_or(chain.last_next_header);
        if let Some(f) = chain.fragment {
            // An atomic fragment (offset 0, M=0, RFC 6946) is a whole packet.
            m.nonfirst_fragment = !f.is_first();
            m.fragment = m.nonfirst_fragment || f.more;
        }
        if chain.upper.is_some() {
            self.parse_l4_6(&payload[chain.offset..], m)?;
        }
        if m.src6 == 0 && !unspecified_allowed(m) {
            return Err(DropReason::Ip6SrcUnspecified);
        }
        Ok(())
    }

    /// The upper-layer fields: ports and TCP flags, or the ICMPv6 type, code
    /// and echo identifier.
    fn parse_l4_6(&self, l4: &[u8], m: &mut Meta) -> Result<(), DropReason> {
        match m.proto {
            ipv6::NH_TCP | ipv6::NH_UDP => parse_ports(l4, m)?,
            ipv6::NH_ICMPV6 => {
                if l4.len() < icmpv6::HEADER_LEN {
                    return Err(DropReason::L4Truncated);
                }
                let c = icmpv6::Packet::new_unchecked(l4);
                m.icmp_type = c.msg_type();
                m.icmp_code = c.code();
                if matches!(m.icmp_type, icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY) {
                    m.icmp_ident = c.echo_ident();
                }
                m.has_icmp = true;
            }
            _ => {}
        }
        Ok(())
    }
}
