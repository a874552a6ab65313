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
    /// Ethertype we do not handle (IPv6 for now, LLDP, ...).
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
    /// Packet from the host path that is not IPv4.
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
