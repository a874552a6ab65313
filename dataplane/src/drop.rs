//! Every reason the dataplane drops a packet, one flat list for all stages.
//!
//! Names are stable (`<stage>_<reason>`): they are counter names in
//! `routerctl stats`, in metrics and in `explain` output. Add at the end of a
//! group, never rename.

/// Why a packet was dropped. `COUNT` sizes per-reason counter arrays.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    // --- eth: link layer
    /// Frame shorter than an Ethernet header (or its 802.1Q tag).
    EthTruncated,
    /// Ethertype we do not handle (LLDP, ...).
    EthUnsupportedEthertype,
    /// Destination MAC is neither the port's nor broadcast.
    EthNotForUs,
    /// More than one VLAN tag, or a tag on a port with no VLAN configured.
    EthVlanUnsupported,
    // --- arp
    /// ARP packet shorter than an Ethernet/IPv4 ARP body.
    ArpTruncated,
    /// ARP for another hardware or protocol type, or an unknown opcode.
    ArpUnsupported,
    /// ARP request for an address that is not ours (counted, not answered).
    ArpNotForUs,
    // --- ip: RFC 1812 5.2.2 and friends
    /// Fewer bytes than a minimal IPv4 header.
    IpTruncated,
    /// Version field is not 4.
    IpBadVersion,
    /// Header length below 5 words or beyond the packet.
    IpBadHeaderLength,
    /// Total length below the header length or beyond the frame.
    IpBadTotalLength,
    /// Header checksum does not verify.
    IpBadChecksum,
    /// TTL would reach zero on a forwarded packet.
    IpTtlExpired,
    /// Source is 0/8, 127/8, multicast, class E or limited broadcast.
    IpMartianSource,
    /// Destination is 0/8 or 127/8 (never routable).
    IpMartianDestination,
    /// Destination is multicast or broadcast, which this router does not forward.
    IpNotUnicast,
    /// Packet carries IP options and `dataplane.ip_options` is `drop`.
    IpOptions,
    /// Larger than the output port's MTU (fragmentation is not done; with
    /// DF an ICMP "fragmentation needed" is sent).
    IpMtuExceeded,
    // --- ip6: RFC 8200, RFC 4291
    /// Fewer bytes than the 40-byte IPv6 header.
    Ip6Truncated,
    /// An IPv6 ethertype whose version field is not 6.
    Ip6BadVersion,
    /// Payload length beyond the frame.
    Ip6BadPayloadLength,
    /// An extension header runs past the payload.
    Ip6ExtTruncated,
    /// More extension headers than the walk allows (`wire::ipv6::MAX_EXT_HEADERS`).
    Ip6ExtTooMany,
    /// The upper-layer header starts beyond the walk's byte bound.
    Ip6ExtTooLong,
    /// A hop-by-hop options header that is not first (RFC 8200 4.3).
    Ip6ExtHbhNotFirst,
    /// A type 0 routing header with segments left (RFC 5095).
    Ip6ExtRh0,
    /// A first fragment without the whole header chain (RFC 7112).
    Ip6FragIncompleteChain,
    /// A fragment (M=1) whose length is not a multiple of 8 (RFC 8200 4.5).
    Ip6FragBadLength,
    /// Source is multicast (RFC 4291 2.7).
    Ip6SrcMulticast,
    /// Source is `::` on anything but duplicate address detection (RFC 4291 2.5.2).
    Ip6SrcUnspecified,
    /// Source is `::1` (RFC 4291 2.5.3).
    Ip6SrcLoopback,
    /// Destination is `::1`.
    Ip6DstLoopback,
    /// Destination is `::`.
    Ip6DstUnspecified,
    /// A link-local source or destination on a packet to be forwarded: never forwarded (RFC 4291 2.5.6).
    Ip6LinkLocal,
    /// An IPv4-mapped address (`::ffff:0:0/96`), never on the wire (RFC 4291 2.5.5.2).
    Ip6Ipv4Mapped,
    /// Hop limit would reach zero on a forwarded packet (ICMPv6 time exceeded sent).
    Ip6HopLimitExceeded,
    /// Larger than the output port's MTU: IPv6 routers never fragment (ICMPv6 packet too big sent).
    Ip6MtuExceeded,
    /// Multicast that is not for the router: this router does not route multicast.
    Ip6MulticastNotRouted,
    // --- ndp: RFC 4861, and ICMPv6 to the router
    /// Neighbour discovery with a hop limit other than 255: it crossed a router (RFC 4861 7.1.1).
    NdpBadHopLimit,
    /// Neighbour discovery that fails RFC 4861's validity checks (code, length, options, target).
    NdpInvalid,
    /// Neighbour solicitation for an address that is not ours (counted, not answered).
    NdpNotForUs,
    /// ICMPv6 to the router whose checksum does not verify.
    Icmp6BadChecksum,
    // --- l4
    /// First fragment (or whole packet) too short for its TCP/UDP/ICMP header.
    L4Truncated,
    // --- conntrack
    /// Table full and no unconfirmed-both-ways entry could be evicted.
    ConntrackTableFull,
    /// Fragment on the tracked path: fragments are not reassembled.
    ConntrackFragment,
    // --- filter
    /// A filter rule with action `drop` matched.
    FilterDenied,
    /// No rule matched and the chain policy is `drop`.
    FilterPolicy,
    /// A filter rule with action `reject` matched (a reply was sent instead).
    FilterRejected,
    // --- route
    /// No route to the destination.
    RouteNoRoute,
    // --- neighbour
    /// Next hop has no link-layer address yet.
    NeighbourUnresolved,
    /// Queue of packets waiting for a pending neighbour is full.
    NeighbourQueueFull,
    // --- host path
    /// Packet for the router itself but no host path is up.
    HostUnavailable,
    /// Packet from the host path that is neither IPv4 nor IPv6.
    HostBadPacket,
    // --- workers
    /// A tracked packet for another worker found that worker's hand-off
    /// queue (or the hand-off buffers) full.
    HandoffQueueFull,
}

impl DropReason {
    /// Number of reasons: the size of per-reason counter arrays.
    pub const COUNT: usize = DropReason::HandoffQueueFull as usize + 1;

    /// All reasons in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::EthTruncated,
        DropReason::EthUnsupportedEthertype,
        DropReason::EthNotForUs,
        DropReason::EthVlanUnsupported,
        DropReason::ArpTruncated,
        DropReason::ArpUnsupported,
        DropReason::ArpNotForUs,
        DropReason::IpTruncated,
        DropReason::IpBadVersion,
        DropReason::IpBadHeaderLength,
        DropReason::IpBadTotalLength,
        DropReason::IpBadChecksum,
        DropReason::IpTtlExpired,
        DropReason::IpMartianSource,
        DropReason::IpMartianDestination,
        DropReason::IpNotUnicast,
        DropReason::IpOptions,
        DropReason::IpMtuExceeded,
        DropReason::Ip6Truncated,
        DropReason::Ip6BadVersion,
        DropReason::Ip6BadPayloadLength,
        DropReason::Ip6ExtTruncated,
        DropReason::Ip6ExtTooMany,
        DropReason::Ip6ExtTooLong,
        DropReason::Ip6ExtHbhNotFirst,
        DropReason::Ip6ExtRh0,
        DropReason::Ip6FragIncompleteChain,
        DropReason::Ip6FragBadLength,
        DropReason::Ip6SrcMulticast,
        DropReason::Ip6SrcUnspecified,
        DropReason::Ip6SrcLoopback,
        DropReason::Ip6DstLoopback,
        DropReason::Ip6DstUnspecified,
        DropReason::Ip6LinkLocal,
        DropReason::Ip6Ipv4Mapped,
        DropReason::Ip6HopLimitExceeded,
        DropReason::Ip6MtuExceeded,
        DropReason::Ip6MulticastNotRouted,
        DropReason::NdpBadHopLimit,
        DropReason::NdpInvalid,
        DropReason::NdpNotForUs,
        DropReason::Icmp6BadChecksum,
        DropReason::L4Truncated,
        DropReason::ConntrackTableFull,
        DropReason::ConntrackFragment,
        DropReason::FilterDenied,
        DropReason::FilterPolicy,
        DropReason::FilterRejected,
        DropReason::RouteNoRoute,
        DropReason::NeighbourUnresolved,
        DropReason::NeighbourQueueFull,
        DropReason::HostUnavailable,
        DropReason::HostBadPacket,
        DropReason::HandoffQueueFull,
    ];

    /// Stable snake_case name, `<stage>_<reason>`.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::EthTruncated => "eth_truncated",
            DropReason::EthUnsupportedEthertype => "eth_unsupported_ethertype",
            DropReason::EthNotForUs => "eth_not_for_us",
            DropReason::EthVlanUnsupported => "eth_vlan_unsupported",
            DropReason::ArpTruncated => "arp_truncated",
            DropReason::ArpUnsupported => "arp_unsupported",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpBadVersion => "ip_bad_version",
            DropReason::IpBadHeaderLength => "ip_bad_header_length",
            DropReason::IpBadTotalLength => "ip_bad_total_length",
            DropReason::IpBadChecksum => "ip_bad_checksum",
            DropReason::IpTtlExpired => "ip_ttl_expired",
            DropReason::IpMartianSource => "ip_martian_source",
            DropReason::IpMartianDestination => "ip_martian_destination",
            DropReason::IpNotUnicast => "ip_not_unicast",
            DropReason::IpOptions => "ip_options",
            DropReason::IpMtuExceeded => "ip_mtu_exceeded",
            DropReason::Ip6Truncated => "ip6_truncated",
            DropReason::Ip6BadVersion => "ip6_bad_version",
            DropReason::Ip6BadPayloadLength => "ip6_bad_payload_length",
            DropReason::Ip6ExtTruncated => "ip6_ext_truncated",
            DropReason::Ip6ExtTooMany => "ip6_ext_too_many",
            DropReason::Ip6ExtTooLong => "ip6_ext_too_long",
            DropReason::Ip6ExtHbhNotFirst => "ip6_ext_hbh_not_first",
            DropReason::Ip6ExtRh0 => "ip6_ext_rh0",
            DropReason::Ip6FragIncompleteChain => "ip6_frag_incomplete_chain",
            DropReason::Ip6FragBadLength => "ip6_frag_bad_length",
            DropReason::Ip6SrcMulticast => "ip6_src_multicast",
            DropReason::Ip6SrcUnspecified => "ip6_src_unspecified",
            DropReason::Ip6SrcLoopback => "ip6_src_loopback",
            DropReason::Ip6DstLoopback => "ip6_dst_loopback",
            DropReason::Ip6DstUnspecified => "ip6_dst_unspecified",
            DropReason::Ip6LinkLocal => "ip6_link_local",
            DropReason::Ip6Ipv4Mapped => "ip6_ipv4_mapped",
            DropReason::Ip6HopLimitExceeded => "ip6_hop_limit_exceeded",
            DropReason::Ip6MtuExceeded => "ip6_mtu_exceeded",
            DropReason::Ip6MulticastNotRouted => "ip6_multicast_not_routed",
            DropReason::NdpBadHopLimit => "ndp_bad_hop_limit",
            DropReason::NdpInvalid => "ndp_invalid",
            DropReason::NdpNotForUs => "ndp_not_for_us",
            DropReason::Icmp6BadChecksum => "icmp6_bad_checksum",
            DropReason::L4Truncated => "l4_truncated",
            DropReason::ConntrackTableFull => "conntrack_table_full",
            DropReason::ConntrackFragment => "conntrack_fragment",
            DropReason::FilterDenied => "filter_denied",
            DropReason::FilterPolicy => "filter_policy",
            DropReason::FilterRejected => "filter_rejected",
            DropReason::RouteNoRoute => "route_no_route",
            DropReason::NeighbourUnresolved => "neighbour_unresolved",
            DropReason::NeighbourQueueFull => "neighbour_queue_full",
            DropReason::HostUnavailable => "host_unavailable",
            DropReason::HostBadPacket => "host_bad_packet",
            DropReason::HandoffQueueFull => "handoff_queue_full",
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_counter_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r} out of order");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
