//! One test per drop reason: the malformed-packet corpus of a router facing
//! the Internet, each frame crafted by hand and run through the whole
//! pipeline, asserting the verdict, that `drops[reason]` went up by exactly
//! one (and no other reason moved) and, where the router answers, the bytes
//! of the answer. `every_drop_reason_has_a_case` fails when a reason is
//! added to `DropReason` without a case in `CASES`.

mod support;

use dataplane::conntrack::CtState;
use dataplane::drop::DropReason;
use dataplane::packet::{PortId, Verdict, ETH_HDR_LEN};
use dataplane::rules::{ChainId, FilterAction};
use dataplane::tables::{IpOptionsPolicy, RouteSpec};
use dataplane::wire::{arp, ethernet, icmp, ipv4, tcp};
use support::*;

/// How a reason is covered.
enum Case {
    /// A test crafting packets that must be dropped for the reason.
    Crafted(fn()),
    /// `Pipeline::process` never returns this reason; something outside it
    /// (the worker) is meant to count it. The string says what.
    NotFromPipeline(&'static str),
}

const CASES: &[(DropReason, Case)] = &[
    (DropReason::EthTruncated, Case::Crafted(eth_truncated)),
    (
        DropReason::EthUnsupportedEthertype,
        Case::Crafted(eth_unsupported_ethertype),
    ),
    (DropReason::EthNotForUs, Case::Crafted(eth_not_for_us)),
    (
        DropReason::EthVlanUnsupported,
        Case::Crafted(eth_vlan_unsupported),
    ),
    (DropReason::ArpTruncated, Case::Crafted(arp_truncated)),
    (DropReason::ArpUnsupported, Case::Crafted(arp_unsupported)),
    (DropReason::ArpNotForUs, Case::Crafted(arp_not_for_us)),
    (DropReason::IpTruncated, Case::Crafted(ip_truncated)),
    (DropReason::IpBadVersion, Case::Crafted(ip_bad_version)),
    (
        DropReason::IpBadHeaderLength,
        Case::Crafted(ip_bad_header_length),
    ),
    (
        DropReason::IpBadTotalLength,
        Case::Crafted(ip_bad_total_length),
    ),
    (DropReason::IpBadChecksum, Case::Crafted(ip_bad_checksum)),
    (DropReason::IpTtlExpired, Case::Crafted(ip_ttl_expired)),
    (
        DropReason::IpMartianSource,
        Case::Crafted(ip_martian_source),
    ),
    (
        DropReason::IpMartianDestination,
        Case::Crafted(ip_martian_destination),
    ),
    (DropReason::IpNotUnicast, Case::Crafted(ip_not_unicast)),
    (
        DropReason::IpOptions,
        Case::Crafted(ip_options_dropped_by_policy),
    ),
    (DropReason::IpMtuExceeded, Case::Crafted(ip_mtu_exceeded)),
    (DropReason::Ip6Truncated, Case::Crafted(ip6_truncated)),
    (DropReason::Ip6BadVersion, Case::Crafted(ip6_bad_version)),
    (
        DropReason::Ip6BadPayloadLength,
        Case::Crafted(ip6_bad_payload_length),
    ),
    (
        DropReason::Ip6ExtTruncated,
        Case::Crafted(ip6_ext_truncated),
    ),
    (DropReason::Ip6ExtTooMany, Case::Crafted(ip6_ext_too_many)),
    (DropReason::Ip6ExtTooLong, Case::Crafted(ip6_ext_too_long)),
    (
        DropReason::Ip6ExtHbhNotFirst,
        Case::Crafted(ip6_ext_hbh_not_first),
    ),
    (DropReason::Ip6ExtRh0, Case::Crafted(ip6_ext_rh0)),
    (
        DropReason::Ip6FragIncompleteChain,
        Case::Crafted(ip6_frag_incomplete_chain),
    ),
    (
        DropReason::Ip6FragBadLength,
        Case::Crafted(ip6_frag_bad_length),
    ),
    (
        DropReason::Ip6SrcMulticast,
        Case::Crafted(ip6_src_multicast),
    ),
    (
        DropReason::Ip6SrcUnspecified,
        Case::Crafted(ip6_src_unspecified),
    ),
    (DropReason::Ip6SrcLoopback, Case::Crafted(ip6_src_loopback)),
    (DropReason::Ip6DstLoopback, Case::Crafted(ip6_dst_loopback)),
    (
        DropReason::Ip6DstUnspecified,
        Case::Crafted(ip6_dst_unspecified),
    ),
    (DropReason::Ip6LinkLocal, Case::Crafted(ip6_link_local)),
    (DropReason::Ip6Ipv4Mapped, Case::Crafted(ip6_ipv4_mapped)),
    (
        DropReason::Ip6HopLimitExceeded,
        Case::Crafted(ip6_hop_limit_exceeded),
    ),
    (DropReason::Ip6MtuExceeded, Case::Crafted(ip6_mtu_exceeded)),
    (
        DropReason::Ip6MulticastNotRouted,
        Case::Crafted(ip6_multicast_not_routed),
    ),
    (DropReason::NdpBadHopLimit, Case::Crafted(ndp_bad_hop_limit)),
    (DropReason::NdpInvalid, Case::Crafted(ndp_invalid)),
    (DropReason::NdpNotForUs, Case::Crafted(ndp_not_for_us)),
    (
        DropReason::Icmp6BadChecksum,
        Case::Crafted(icmp6_bad_checksum),
    ),
    (DropReason::L4Truncated, Case::Crafted(l4_truncated)),
    (
        DropReason::ConntrackTableFull,
        Case::Crafted(conntrack_table_full),
    ),
    (
        DropReason::ConntrackFragment,
        Case::Crafted(conntrack_fragment),
    ),
    (DropReason::FilterDenied, Case::Crafted(filter_denied)),
    (
        DropReason::FilterPolicy,
        Case::Crafted(filter_policy_invalid_tcp_flags),
    ),
    (
        DropReason::FilterRejected,
        Case::Crafted(filter_rejected_tcp),
    ),
    (DropReason::RouteNoRoute, Case::Crafted(route_no_route)),
    (
        DropReason::NeighbourUnresolved,
        Case::Crafted(neighbour_unresolved),
    ),
    (
        DropReason::NeighbourQueueFull,
        Case::Crafted(neighbour_queue_full),
    ),
    (
        DropReason::HostUnavailable,
        Case::NotFromPipeline("the worker counts it when the host path is down"),
    ),
    (DropReason::HostBadPacket, Case::Crafted(host_bad_packet)),
    (
        DropReason::HandoffQueueFull,
        Case::NotFromPipeline(
            "the worker counts it when the owner's hand-off queue is full \
             (tests/fake_kernel.rs: a_full_hand_off_queue_drops_and_counts)",
        ),
    ),
];

#[test]
fn every_drop_reason_has_a_case() {
    for reason in DropReason::ALL {
        let cases: Vec<_> = CASES.iter().filter(|(r, _)| *r == reason).collect();
        assert_eq!(cases.len(), 1, "{reason}: needs exactly one entry in CASES");
        match &cases[0].1 {
            Case::Crafted(f) => f(),
            Case::NotFromPipeline(why) => assert!(!why.is_empty()),
        }
    }
}

// --- eth ---------------------------------------------------------------

#[test]
fn eth_truncated() {
    let mut p = pipeline();
    let full = Packet::ping(OUTSIDE, WAN_ADDR, 1).frame();
    for n in [0, 1, 6, 13] {
        expect_silent_drop(&mut p, WAN, &full[..n], DropReason::EthTruncated);
    }
}

#[test]
fn eth_unsupported_ethertype() {
    let mut p = pipeline();
    // PPPoE discovery and LLDP, addressed to us.
    for (ethertype, body) in [(0x8863, 40), (0x88cc, 46)] {
        let mut f = eth_header(WAN_MAC, PEER_MAC, ethertype);
        f.resize(ETH_HDR_LEN + body, 0x60);
        expect_silent_drop(&mut p, WAN, &f, DropReason::EthUnsupportedEthertype);
    }
}

#[test]
fn eth_not_for_us() {
    let mut p = pipeline();
    let ping = Packet::ping(OUTSIDE, WAN_ADDR, 1);
    // Another host's MAC, a multicast MAC, the other port's MAC.
    for mac in [
        PEER_MAC,
        dataplane::addr::Mac([0x01, 0x00, 0x5e, 0, 0, 1]),
        LAN_MAC,
    ] {
        let f = ping.clone().dst_mac(mac).frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::EthNotForUs);
    }
    // A port index with no interface.
    expect_silent_drop(&mut p, NO_SUCH_PORT, &ping.frame(), DropReason::EthNotForUs);
    // Broadcast MAC with a unicast IP to us is accepted.
    let f = ping.dst_mac(dataplane::addr::Mac::BROADCAST).frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Host);
}

#[test]
fn eth_vlan_unsupported() {
    let mut p = pipeline();
    let inner = Packet::ping(OUTSIDE, WAN_ADDR, 1).ip_bytes();
    let mut f = eth_header(WAN_MAC, PEER_MAC, ethernet::ETHERTYPE_VLAN);
    f.extend_from_slice(&[0x00, 0x0a, 0x08, 0x00]); // VLAN 10, IPv4
    f.extend_from_slice(&inner);
    expect_silent_drop(&mut p, WAN, &f, DropReason::EthVlanUnsupported);
    // A tag and nothing after it.
    expect_silent_drop(&mut p, WAN, &f[..16], DropReason::EthVlanUnsupported);
}

// --- arp -----------------------------------------------------------------

#[test]
fn arp_truncated() {
    let mut p = pipeline();
    let f = arp_frame(
        dataplane::addr::Mac::BROADCAST,
        arp::OP_REQUEST,
        PEER_MAC,
        ip(198, 18, 0, 9),
        WAN_ADDR,
    );
    for n in [ETH_HDR_LEN, ETH_HDR_LEN + 8, ETH_HDR_LEN + 27] {
        expect_silent_drop(&mut p, WAN, &f[..n], DropReason::ArpTruncated);
    }
    // The full request is answered.
    let r = run(&mut p, WAN, &f);
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    let rep = arp::Repr::parse(&arp::Packet::new_checked(&r.out[ETH_HDR_LEN..]).unwrap()).unwrap();
    assert_eq!(rep.operation, arp::OP_REPLY);
    assert_eq!((rep.sender_mac, rep.sender_ip), (WAN_MAC, WAN_ADDR));
    assert_eq!(
        (rep.target_mac, rep.target_ip),
        (PEER_MAC, ip(198, 18, 0, 9))
    );
    assert_eq!(&r.out[..6], &PEER_MAC.0);
}

#[test]
fn arp_unsupported() {
    let mut p = pipeline();
    let good = arp_frame(
        dataplane::addr::Mac::BROADCAST,
        arp::OP_REQUEST,
        PEER_MAC,
        ip(198, 18, 0, 9),
        WAN_ADDR,
    );
    let a = ETH_HDR_LEN;
    let mutations: [(usize, u8); 5] = [
        (a + 1, 6),    // hardware type 6 (IEEE 802)
        (a + 2, 0x86), // protocol type 0x8600
        (a + 4, 8),    // hardware length 8
        (a + 5, 16),   // protocol length 16
        (a + 7, 3),    // opcode 3 (RARP request)
    ];
    for (at, v) in mutations {
        let mut f = good.clone();
        f[at] = v;
        expect_silent_drop(&mut p, WAN, &f, DropReason::ArpUnsupported);
    }
    assert!(p.neighbours().get(ip(198, 18, 0, 9)).is_none());
}

#[test]
fn arp_not_for_us() {
    let mut p = pipeline();
    let sender = ip(198, 18, 0, 9);
    // Who has .77 (not ours)? A gratuitous announcement of the sender.
    for target in [ip(198, 18, 0, 77), sender, LAN_ADDR] {
        let f = arp_frame(
            dataplane::addr::Mac::BROADCAST,
            arp::OP_REQUEST,
            PEER_MAC,
            sender,
            target,
        );
        expect_silent_drop(&mut p, WAN, &f, DropReason::ArpNotForUs);
    }
    let f = arp_frame(WAN_MAC, arp::OP_REPLY, PEER_MAC, sender, ip(198, 18, 0, 77));
    expect_silent_drop(&mut p, WAN, &f, DropReason::ArpNotForUs);
    assert!(
        p.neighbours().get(sender).is_none(),
        "ARP not for us must not be learned"
    );
}

// --- ip header -------------------------------------------------------------

/// A TCP SYN to the router, the base of header corruptions.
fn syn_frame() -> Vec<u8> {
    Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::SYN).frame()
}

#[test]
fn ip_truncated() {
    let mut p = pipeline();
    let f = syn_frame();
    for n in [0, 1, 10, 19] {
        expect_silent_drop(&mut p, WAN, &f[..ETH_HDR_LEN + n], DropReason::IpTruncated);
    }
}

#[test]
fn ip_bad_version() {
    let mut p = pipeline();
    for v in [0u8, 5, 6, 15] {
        let mut f = syn_frame();
        f[ETH_HDR_LEN] = (v << 4) | 5;
        refill_ip_checksum(&mut f);
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadVersion);
    }
}

#[test]
fn ip_bad_header_length() {
    let mut p = pipeline();
    // IHL below 5 words.
    for ihl in 0u8..5 {
        let mut f = syn_frame();
        f[ETH_HDR_LEN] = 0x40 | ihl;
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadHeaderLength);
    }
    // IHL 15 (60 bytes) in a 40-byte packet.
    let mut f = syn_frame();
    assert_eq!(f.len(), ETH_HDR_LEN + 40);
    f[ETH_HDR_LEN] = 0x4f;
    expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadHeaderLength);
}

#[test]
fn ip_bad_total_length() {
    let mut p = pipeline();
    let set_total = |f: &mut Vec<u8>, t: u16| {
        f[ETH_HDR_LEN + 2..ETH_HDR_LEN + 4].copy_from_slice(&t.to_be_bytes());
        refill_ip_checksum(f);
    };
    // Beyond the frame, by one byte and by a lot.
    for t in [41u16, 1500, 0xffff] {
        let mut f = syn_frame();
        set_total(&mut f, t);
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadTotalLength);
    }
    // Below the header length, without and with options.
    for t in [0u16, 19] {
        let mut f = syn_frame();
        set_total(&mut f, t);
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadTotalLength);
    }
    let mut f = Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::SYN)
        .options(&[1, 1, 1, 0])
        .frame();
    set_total(&mut f, 22);
    expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadTotalLength);
}

#[test]
fn ip_bad_checksum() {
    let mut p = pipeline();
    // Flip the checksum, the TTL, the destination.
    for at in [10usize, 8, 16] {
        let mut f = syn_frame();
        f[ETH_HDR_LEN + at] ^= 0x01;
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadChecksum);
    }
    let mut f = Packet::tcp(OUTSIDE, INSIDE, 40000, 80, tcp::SYN)
        .options(&[1, 1, 1, 0])
        .frame();
    f[ETH_HDR_LEN + 22] = 7;
    expect_silent_drop(&mut p, WAN, &f, DropReason::IpBadChecksum);
    // Padding after the packet is not part of the checksum.
    let f = Packet::tcp(OUTSIDE, INSIDE, 40000, 80, tcp::SYN)
        .padding(6)
        .frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Tx(LAN));
}

/// Check an ICMP error sent back to the sender of `orig` (an IP packet that
/// arrived on `port`, source MAC `PEER_MAC`), from router address `from`.
fn assert_icmp_error_for(
    out: &[u8],
    orig: &Packet,
    port: PortId,
    from: u32,
    ty: u8,
    code: u8,
) -> IcmpError {
    let e = parse_icmp_error(out);
    let port_mac = if port == LAN { LAN_MAC } else { WAN_MAC };
    assert_eq!(e.dst_mac, orig.src_mac, "back to the sender's MAC");
    assert_eq!(e.src_mac, port_mac, "from the arrival port's MAC");
    assert_eq!((e.src, e.dst), (from, orig.src));
    assert_eq!((e.ty, e.code), (ty, code));
    assert_eq!(e.ttl, dataplane::reply::DEFAULT_TTL);
    assert_eq!(
        e.quote,
        expected_quote(&orig.ip_bytes()),
        "quotes the header as received and 8 bytes of data"
    );
    e
}

#[test]
fn ip_ttl_expired() {
    let mut p = pipeline();
    // TTL 1 and 0 on transit, from the lan and from the Internet.
    for ttl in [1u8, 0] {
        let orig = Packet::udp(LAN_HOST, OUTSIDE, 33434, 33435)
            .on(LAN)
            .ttl(ttl)
            .payload_len(32);
        let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::IpTtlExpired);
        assert_eq!(
            r.verdict,
            Verdict::Tx(LAN),
            "sent back out the arrival port"
        );
        let e = assert_icmp_error_for(&r.out, &orig, LAN, LAN_ADDR, icmp::TIME_EXCEEDED, 0);
        assert_eq!(e.rest, 0);
        assert_eq!(e.quote.len(), 28);

        let orig = Packet::tcp(OUTSIDE, INSIDE, 40000, 443, tcp::SYN)
            .ttl(ttl)
            .options(&[1, 1, 1, 1, 1, 1, 1, 0]);
        let r = expect_drop(&mut p, WAN, &orig.frame(), DropReason::IpTtlExpired);
        assert_eq!(r.verdict, Verdict::Tx(WAN));
        let e = assert_icmp_error_for(&r.out, &orig, WAN, WAN_ADDR, icmp::TIME_EXCEEDED, 0);
        assert_eq!(e.quote.len(), 28 + 8, "options are part of the quote");
    }
    let c = p.counters();
    assert_eq!((c.icmp_errors_sent, c.generated), (4, 4));
    assert_eq!(c.tx[LAN.0 as usize].packets, 2);
    // TTL 1 is fine for the router itself.
    let f = Packet::ping(OUTSIDE, WAN_ADDR, 9).ttl(1).frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Host);
    // TTL 2 is forwarded with TTL 1.
    let r = run(
        &mut p,
        WAN,
        &Packet::ping(OUTSIDE, INSIDE, 9).ttl(2).frame(),
    );
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(r.out[ETH_HDR_LEN + 8], 1);
}

#[test]
fn icmp_errors_are_rate_limited_per_source() {
    let mut p = pipeline();
    let burst = p.tables().icmp_errors.burst as usize;
    let rate = p.tables().icmp_errors.rate as usize;
    p.set_now(100);
    let expired = |src: u32, seq: u16| Packet::udp(src, OUTSIDE, 40000, seq).on(LAN).ttl(1).frame();
    let mut replies = 0;
    for i in 0..(3 * burst) as u16 {
        let r = expect_drop(&mut p, LAN, &expired(LAN_HOST, i), DropReason::IpTtlExpired);
        replies += usize::from(matches!(r.verdict, Verdict::Tx(_)));
    }
    assert_eq!(replies, burst, "at most `burst` errors in one second");
    assert_eq!(p.counters().icmp_errors_sent, burst as u64);
    assert_eq!(p.counters().icmp_errors_rate_limited, 2 * burst as u64);
    assert_eq!(
        p.counters().drops[DropReason::IpTtlExpired as usize],
        3 * burst as u64
    );
    // Another source has its own bucket.
    let r = run(&mut p, LAN, &expired(ip(198, 19, 0, 6), 1));
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    // One second later, `rate` more.
    p.set_now(101);
    let mut replies = 0;
    for i in 0..(2 * rate) as u16 {
        let r = run(&mut p, LAN, &expired(LAN_HOST, i));
        replies += usize::from(matches!(r.verdict, Verdict::Tx(_)));
    }
    assert_eq!(replies, rate);
    assert_counters_balance(&p);
}

#[test]
fn no_icmp_error_about_an_icmp_error() {
    let mut p = pipeline();
    let quoted = Packet::udp(OUTSIDE, LAN_HOST, 1, 2).ip_bytes();
    for ty in [
        icmp::DEST_UNREACHABLE,
        icmp::SOURCE_QUENCH,
        icmp::REDIRECT,
        icmp::TIME_EXCEEDED,
        icmp::PARAMETER_PROBLEM,
    ] {
        let err = Packet::icmp(LAN_HOST, OUTSIDE, ty, 0, 0)
            .on(LAN)
            .payload(&quoted[..28]);
        // TTL expiry, no route, and MTU with DF all stay silent.
        expect_silent_drop(
            &mut p,
            LAN,
            &err.clone().ttl(1).frame(),
            DropReason::IpTtlExpired,
        );
        let mut e = err.clone();
        e.dst = UNREACHABLE;
        expect_silent_drop(&mut p, LAN, &e.frame(), DropReason::RouteNoRoute);
    }
    assert_eq!(p.counters().icmp_errors_sent, 0);
    // An echo request is a query, not an error: it gets one.
    let f = Packet::ping(LAN_HOST, OUTSIDE, 3).on(LAN).ttl(1).frame();
    let r = expect_drop(&mut p, LAN, &f, DropReason::IpTtlExpired);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
}

#[test]
fn no_icmp_error_about_a_non_first_fragment() {
    let mut p = pipeline();
    let f = Packet::udp(LAN_HOST, OUTSIDE, 1, 2)
        .on(LAN)
        .ttl(1)
        .fragment(false, 1480)
        .payload_len(40)
        .frame();
    expect_silent_drop(&mut p, LAN, &f, DropReason::IpTtlExpired);
    // The first fragment gets one.
    let f = Packet::udp(LAN_HOST, OUTSIDE, 1, 2)
        .on(LAN)
        .ttl(1)
        .fragment(true, 0)
        .payload_len(40)
        .frame();
    let r = expect_drop(&mut p, LAN, &f, DropReason::IpTtlExpired);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
}

#[test]
fn ip_martian_source() {
    let mut p = pipeline();
    for src in [
        ip(0, 0, 0, 0),
        ip(0, 1, 2, 3),
        ip(127, 0, 0, 1),
        ip(127, 255, 0, 9),
        ip(224, 0, 0, 1),
        ip(239, 255, 255, 250),
        ip(240, 0, 0, 1),
        ip(255, 255, 255, 255),
    ] {
        for dst in [WAN_ADDR, INSIDE] {
            let f = Packet::udp(src, dst, 1, 2).frame();
            expect_silent_drop(&mut p, WAN, &f, DropReason::IpMartianSource);
        }
        // Even with TTL 1: no ICMP error to a martian.
        let f = Packet::udp(src, INSIDE, 1, 2).ttl(1).frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpMartianSource);
    }
}

#[test]
fn ip_martian_destination() {
    let mut p = pipeline();
    for dst in [
        ip(0, 0, 0, 0),
        ip(0, 9, 9, 9),
        ip(127, 0, 0, 1),
        ip(127, 1, 2, 3),
    ] {
        let f = Packet::udp(OUTSIDE, dst, 1, 2).frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpMartianDestination);
    }
}

#[test]
fn ip_not_unicast() {
    let mut p = pipeline();
    for dst in [
        ip(224, 0, 0, 5),
        ip(239, 1, 2, 3),
        ip(255, 255, 255, 255),
        ip(198, 19, 0, 255), // directed broadcast of the lan, from the wan
        ip(198, 18, 0, 255), // broadcast of the arrival network
    ] {
        let f = Packet::udp(OUTSIDE, dst, 1, 2)
            .dst_mac(dataplane::addr::Mac::BROADCAST)
            .frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpNotUnicast);
        let f = Packet::udp(LAN_HOST, dst, 1, 2).on(LAN).frame();
        expect_silent_drop(&mut p, LAN, &f, DropReason::IpNotUnicast);
    }
}

#[test]
fn ip_options_dropped_by_policy() {
    let mut p = pipeline_with(|s| s.ip_options = IpOptionsPolicy::Drop);
    // Record route (7), router alert (148), and plain NOPs.
    for opts in [
        &[7u8, 7, 4, 0, 0, 0, 0, 0][..],
        &[148, 4, 0, 0],
        &[1, 1, 1, 0],
    ] {
        let f = Packet::udp(OUTSIDE, INSIDE, 1, 2).options(opts).frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpOptions);
        let f = Packet::ping(OUTSIDE, WAN_ADDR, 1).options(opts).frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::IpOptions);
    }
    // No options: forwarded.
    let f = Packet::udp(OUTSIDE, INSIDE, 1, 2).frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Tx(LAN));
}

#[test]
fn ip_options_forwarded_untouched_by_default() {
    let mut p = pipeline();
    let opts = [7u8, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // record route, 2 slots
    let orig = Packet::udp(OUTSIDE, INSIDE, 1, 2)
        .options(&opts)
        .payload_len(20);
    let f = orig.frame();
    let r = run(&mut p, WAN, &f);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(r.out.len(), f.len());
    assert_eq!(
        &r.out[ETH_HDR_LEN + 20..ETH_HDR_LEN + 32],
        &opts,
        "options not processed"
    );
    assert_eq!(r.out[ETH_HDR_LEN + 8], 63);
    let out = ipv4::Packet::new_checked(&r.out[ETH_HDR_LEN..]).unwrap();
    assert!(out.verify_checksum());
    assert_eq!(out.payload(), &orig.ip_bytes()[32..]);
}

#[test]
fn ip_mtu_exceeded() {
    let mut p = pipeline_with(|s| s.interfaces[0].mtu = 1280);
    // 1300 bytes from the lan to the Internet (out of the 1280-byte wan).
    let big = Packet::udp(LAN_HOST, OUTSIDE, 5000, 6000)
        .on(LAN)
        .payload_len(1300 - 28);
    assert_eq!(big.ip_bytes().len(), 1300);
    // With DF: ICMP fragmentation needed with the next-hop MTU.
    let df = big.clone().df();
    let r = expect_drop(&mut p, LAN, &df.frame(), DropReason::IpMtuExceeded);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    let e = assert_icmp_error_for(
        &r.out,
        &df,
        LAN,
        LAN_ADDR,
        icmp::DEST_UNREACHABLE,
        icmp::FRAG_NEEDED,
    );
    assert_eq!(e.rest, 1280, "RFC 1191: next-hop MTU in the low 16 bits");
    // Without DF: dropped (no fragmentation), no error.
    expect_silent_drop(&mut p, LAN, &big.frame(), DropReason::IpMtuExceeded);
    // Exactly the MTU passes.
    let fits = Packet::udp(LAN_HOST, OUTSIDE, 5000, 6000)
        .on(LAN)
        .df()
        .payload_len(1280 - 28)
        .frame();
    assert_eq!(run(&mut p, LAN, &fits).verdict, Verdict::Tx(WAN));
    // From the host: dropped, never an ICMP error to ourselves.
    let own = Packet::udp(WAN_ADDR, OUTSIDE, 5000, 6000)
        .df()
        .payload_len(1300 - 28)
        .frame();
    expect_silent_drop(&mut p, PortId::HOST, &own, DropReason::IpMtuExceeded);
}

// --- l4 ---------------------------------------------------------------------

#[test]
fn l4_truncated() {
    let mut p = pipeline();
    let short = |proto: u8, n: usize, dst: u32| {
        Packet::other(OUTSIDE, dst, proto)
            .payload(&vec![0u8; n])
            .frame()
    };
    for dst in [WAN_ADDR, INSIDE] {
        for n in [0, 8, 19] {
            expect_silent_drop(
                &mut p,
                WAN,
                &short(ipv4::PROTO_TCP, n, dst),
                DropReason::L4Truncated,
            );
        }
        for n in [0, 4, 7] {
            expect_silent_drop(
                &mut p,
                WAN,
                &short(ipv4::PROTO_UDP, n, dst),
                DropReason::L4Truncated,
            );
        }
        for n in [0, 3, 7] {
            expect_silent_drop(
                &mut p,
                WAN,
                &short(ipv4::PROTO_ICMP, n, dst),
                DropReason::L4Truncated,
            );
        }
        // TCP data offset beyond the segment, UDP length beyond the
        // datagram: the fixed header is there, so the router has its ports;
        // checking the rest is the end host's business (as Linux forwarding).
        let mut f = Packet::tcp(OUTSIDE, dst, 1, 22, tcp::SYN).frame();
        f[ETH_HDR_LEN + 20 + 12] = 0x60;
        let v = run(&mut p, WAN, &f).verdict;
        assert!(matches!(v, Verdict::Tx(_) | Verdict::Host), "{v:?}");
        let mut f = Packet::udp(OUTSIDE, dst, 1, 53).payload_len(4).frame();
        f[ETH_HDR_LEN + 20 + 5] = 13;
        let v = run(&mut p, WAN, &f).verdict;
        assert!(dst == WAN_ADDR || matches!(v, Verdict::Tx(_)), "{v:?}");
        // A first fragment too short for its TCP header.
        let f = Packet::other(OUTSIDE, dst, ipv4::PROTO_TCP)
            .fragment(true, 0)
            .payload(&[0u8; 8])
            .frame();
        expect_silent_drop(&mut p, WAN, &f, DropReason::L4Truncated);
    }
    // Bytes after the IP total length (padding) do not make up a header.
    let mut f = short(ipv4::PROTO_TCP, 8, INSIDE);
    f.resize(f.len() + 20, 0);
    expect_silent_drop(&mut p, WAN, &f, DropReason::L4Truncated);
}

// --- conntrack ------------------------------------------------------------------

#[test]
fn conntrack_table_full() {
    let mut p = pipeline_with(|s| s.conntrack.max_entries = 1);
    // One assured flow: SYN in, SYN-ACK from the host, ACK in.
    let syn = Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::SYN).frame();
    assert_eq!(run(&mut p, WAN, &syn).verdict, Verdict::Host);
    let synack = Packet::tcp(WAN_ADDR, OUTSIDE, 22, 40000, tcp::SYN | tcp::ACK).frame();
    assert_eq!(run(&mut p, PortId::HOST, &synack).verdict, Verdict::Tx(WAN));
    let ack = Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::ACK).frame();
    let r = run(&mut p, WAN, &ack);
    assert_eq!(r.verdict, Verdict::Host);
    assert_eq!(r.ct_state(), Some(CtState::Established));
    assert!(p.conntrack().flows(p.now()).all(|f| f.assured));
    // A new connection cannot evict it.
    let syn2 = Packet::tcp(OUTSIDE, WAN_ADDR, 40001, 22, tcp::SYN).frame();
    expect_silent_drop(&mut p, WAN, &syn2, DropReason::ConntrackTableFull);
    assert_eq!(p.conntrack().counters().table_full, 1);
    assert_eq!(p.conntrack().len(), 1);
    // The assured flow still works.
    assert_eq!(run(&mut p, WAN, &ack).verdict, Verdict::Host);
}

#[test]
fn conntrack_fragment() {
    let mut p = pipeline();
    // Fragments to the router are tracked, and not reassembled.
    let first = Packet::ping(OUTSIDE, WAN_ADDR, 1)
        .fragment(true, 0)
        .payload_len(64)
        .frame();
    expect_silent_drop(&mut p, WAN, &first, DropReason::ConntrackFragment);
    let rest = Packet::ping(OUTSIDE, WAN_ADDR, 1)
        .fragment(false, 72)
        .payload_len(40)
        .frame();
    expect_silent_drop(&mut p, WAN, &rest, DropReason::ConntrackFragment);
    let c = p.counters();
    assert_eq!((c.tracked, c.untracked), (2, 0));
}

#[test]
fn untracked_transit_fragments_are_forwarded_and_port_rules_skip_non_first() {
    let mut p = pipeline();
    // The forward chain drops tcp dport 2323; a first fragment shows the port.
    let first = Packet::tcp(OUTSIDE, INSIDE, 1, 2323, tcp::SYN)
        .fragment(true, 0)
        .payload_len(32)
        .frame();
    expect_silent_drop(&mut p, WAN, &first, DropReason::FilterDenied);
    // A non-first fragment carries no ports: the rule cannot match it, even
    // when its payload bytes look like a header with port 2323.
    let mut fake_header = Packet::tcp(OUTSIDE, INSIDE, 1, 2323, tcp::SYN).ip_bytes()[20..].to_vec();
    fake_header.resize(48, 0);
    let rest = Packet::other(OUTSIDE, INSIDE, ipv4::PROTO_TCP)
        .fragment(true, 48)
        .payload(&fake_header);
    let r = run(&mut p, WAN, &rest.frame());
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(
        r.filter(),
        Some((ChainId::Forward, None, FilterAction::Accept))
    );
    assert_eq!(r.ct_state(), Some(CtState::Untracked));
    let last = Packet::other(OUTSIDE, INSIDE, ipv4::PROTO_TCP)
        .fragment(false, 96)
        .payload(&[0u8; 3]);
    let r = run(&mut p, WAN, &last.frame());
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(&r.out[ETH_HDR_LEN + 20..], &[0u8; 3]);
}

// --- filter ----------------------------------------------------------------------

#[test]
fn filter_denied() {
    let mut p = pipeline();
    let f = Packet::tcp(OUTSIDE, INSIDE, 40000, 2323, tcp::SYN).frame();
    let r = expect_drop(&mut p, WAN, &f, DropReason::FilterDenied);
    assert_eq!(r.verdict, Verdict::Drop(DropReason::FilterDenied));
    assert_eq!(
        r.filter(),
        Some((ChainId::Forward, Some(FWD_DROP_2323), FilterAction::Drop))
    );
    assert_eq!(
        p.counters().filter_rules[ChainId::Forward as usize][FWD_DROP_2323].packets,
        1
    );
    // UDP to the same port is not matched.
    let f = Packet::udp(OUTSIDE, INSIDE, 40000, 2323).frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Tx(LAN));
}

const BAD_FLAG_SETS: [(u8, &str); 3] = [
    (tcp::SYN | tcp::FIN, "SYN+FIN"),
    (0, "no flags"),
    (0xff, "all flags"),
];

#[test]
fn filter_policy_invalid_tcp_flags() {
    let mut p = pipeline();
    for (flags, what) in BAD_FLAG_SETS {
        // To port 22, which a NEW SYN may reach: these are INVALID instead.
        let f = Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, flags).frame();
        let r = expect_drop(&mut p, WAN, &f, DropReason::FilterPolicy);
        assert_eq!(r.verdict, Verdict::Drop(DropReason::FilterPolicy), "{what}");
        assert_eq!(r.ct_state(), Some(CtState::Invalid), "{what}");
        assert_eq!(
            r.filter(),
            Some((ChainId::Input, None, FilterAction::Drop)),
            "{what}"
        );
    }
    assert_eq!(
        p.counters().filter_policy[ChainId::Input as usize].packets,
        3
    );
    assert!(p.conntrack().is_empty());
    // Something NEW that no rule accepts.
    let f = Packet::udp(OUTSIDE, WAN_ADDR, 1, 53).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::FilterPolicy);
}

#[test]
fn invalid_tcp_flags_in_untracked_transit_are_forwarded() {
    let mut p = pipeline();
    for (flags, what) in BAD_FLAG_SETS {
        let f = Packet::tcp(OUTSIDE, INSIDE, 40000, 22, flags).frame();
        let r = run(&mut p, WAN, &f);
        assert_eq!(
            r.verdict,
            Verdict::Tx(LAN),
            "{what}: a stateless router forwards it"
        );
        assert_eq!(r.ct_state(), Some(CtState::Untracked));
        assert_eq!(r.out[ETH_HDR_LEN + 20 + 13], flags);
    }
    assert_eq!(p.counters().forwarded, 3);
}

/// Parse a TCP RST the router sent.
fn parse_rst(out: &[u8]) -> (u32, u32, u16, u16, u32, u32, u8) {
    let ip = ipv4::Packet::new_checked(&out[ETH_HDR_LEN..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), ipv4::PROTO_TCP);
    assert_eq!(usize::from(ip.total_len()), out.len() - ETH_HDR_LEN);
    let s = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert!(
        s.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    assert_eq!(s.payload().len(), 0);
    (
        ip.src_addr(),
        ip.dst_addr(),
        s.src_port(),
        s.dst_port(),
        s.seq_number(),
        s.ack_number(),
        s.flags(),
    )
}

#[test]
fn filter_rejected_tcp() {
    let mut p = pipeline();
    // A SYN with 5 bytes of data: ack = seq + 1 + 5, RST|ACK, seq 0.
    let syn = Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 23, tcp::SYN).payload_len(5);
    let r = expect_drop(&mut p, WAN, &syn.frame(), DropReason::FilterRejected);
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    assert_eq!(&r.out[..6], &PEER_MAC.0);
    assert_eq!(&r.out[6..12], &WAN_MAC.0);
    assert_eq!(
        parse_rst(&r.out),
        (
            WAN_ADDR,
            OUTSIDE,
            23,
            40000,
            0,
            0x0100_0000 + 6,
            tcp::RST | tcp::ACK
        )
    );
    assert_eq!(
        r.filter(),
        Some((ChainId::Input, Some(IN_REJECT_TELNET), FilterAction::Reject))
    );
    // An ACK segment: seq = its ack, RST only (RFC 9293 3.10.7.1).
    let ack = Packet::tcp(OUTSIDE, WAN_ADDR, 40001, 23, tcp::ACK | tcp::PSH).payload_len(10);
    let r = expect_drop(&mut p, WAN, &ack.frame(), DropReason::FilterRejected);
    assert_eq!(
        parse_rst(&r.out),
        (WAN_ADDR, OUTSIDE, 23, 40001, 0x0200_0000, 0, tcp::RST)
    );
    // Options on the rejected packet do not leak into the RST.
    let opt = Packet::tcp(OUTSIDE, WAN_ADDR, 40002, 23, tcp::SYN).options(&[1, 1, 1, 0]);
    let r = expect_drop(&mut p, WAN, &opt.frame(), DropReason::FilterRejected);
    assert_eq!(
        parse_rst(&r.out),
        (
            WAN_ADDR,
            OUTSIDE,
            23,
            40002,
            0,
            0x0100_0001,
            tcp::RST | tcp::ACK
        )
    );
    // Never a RST for a RST.
    let rst = Packet::tcp(OUTSIDE, WAN_ADDR, 40003, 23, tcp::RST).frame();
    expect_silent_drop(&mut p, WAN, &rst, DropReason::FilterRejected);
    assert_eq!(p.counters().tcp_resets_sent, 3);
}

#[test]
fn filter_rejected_udp() {
    let mut p = pipeline();
    let tftp = Packet::udp(OUTSIDE, WAN_ADDR, 40000, 69).payload_len(30);
    let r = expect_drop(&mut p, WAN, &tftp.frame(), DropReason::FilterRejected);
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    assert_icmp_error_for(
        &r.out,
        &tftp,
        WAN,
        WAN_ADDR,
        icmp::DEST_UNREACHABLE,
        icmp::PORT_UNREACHABLE,
    );
    assert_eq!(
        r.filter(),
        Some((ChainId::Input, Some(IN_REJECT_TFTP), FilterAction::Reject))
    );
}

// --- route -----------------------------------------------------------------------

#[test]
fn route_no_route() {
    // An `unreachable` route answers with ICMP network unreachable.
    let mut p = pipeline();
    let orig = Packet::udp(LAN_HOST, UNREACHABLE, 1, 2)
        .on(LAN)
        .payload_len(12);
    let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::RouteNoRoute);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_icmp_error_for(
        &r.out,
        &orig,
        LAN,
        LAN_ADDR,
        icmp::DEST_UNREACHABLE,
        icmp::NET_UNREACHABLE,
    );
    // A `blackhole` route is silent.
    let f = Packet::udp(LAN_HOST, BLACKHOLED, 1, 2).on(LAN).frame();
    expect_silent_drop(&mut p, LAN, &f, DropReason::RouteNoRoute);

    // No route at all (no default): ICMP network unreachable too.
    let mut p = pipeline_with(|s| s.routes.retain(|r: &RouteSpec| r.prefix.len() != 0));
    let orig = Packet::tcp(LAN_HOST, OUTSIDE, 40000, 80, tcp::SYN).on(LAN);
    let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::RouteNoRoute);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_icmp_error_for(
        &r.out,
        &orig,
        LAN,
        LAN_ADDR,
        icmp::DEST_UNREACHABLE,
        icmp::NET_UNREACHABLE,
    );
    // From the host: dropped, no error.
    let own = Packet::udp(WAN_ADDR, OUTSIDE, 1, 2).frame();
    expect_silent_drop(&mut p, PortId::HOST, &own, DropReason::RouteNoRoute);
}

// --- neighbour --------------------------------------------------------------------

/// Drain the neighbour queue into a list of (frame, port).
fn drain(p: &mut dataplane::pipeline::Pipeline) -> Vec<(Vec<u8>, PortId)> {
    let mut out = Vec::new();
    p.drain_pending(|f, port| {
        out.push((f.to_vec(), port));
        true
    });
    out
}

fn assert_arp_request_for(frame: &[u8], target: u32) {
    assert_eq!(&frame[..6], &[0xff; 6]);
    assert_eq!(&frame[6..12], &LAN_MAC.0);
    assert_eq!(&frame[12..14], &[0x08, 0x06]);
    let req = arp::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(req.operation(), arp::OP_REQUEST);
    assert_eq!(req.sender_proto_addr(), LAN_ADDR);
    assert_eq!(req.target_proto_addr(), target);
}

#[test]
fn neighbour_unresolved() {
    let mut p = pipeline();
    p.set_now(100);
    let f = Packet::udp(OUTSIDE, LAN_HOST, 1, 2).frame();
    // The packet waits in the neighbour queue and its frame becomes an ARP
    // request for the next hop, broadcast out of the port the route chose.
    let r = run(&mut p, WAN, &f);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_arp_request_for(&r.out, LAN_HOST);
    assert_eq!(p.pending_packets(), 1);
    assert_eq!(
        p.counters().total_drops(),
        0,
        "a queued packet is not dropped"
    );
    // Nobody answers: one retry a second, three requests in all ...
    assert!(drain(&mut p).is_empty(), "no retry within the same second");
    for now in [101, 102] {
        p.set_now(now);
        let sent = drain(&mut p);
        assert_eq!(sent.len(), 1, "one retry at {now}");
        assert_arp_request_for(&sent[0].0, LAN_HOST);
        assert_eq!(sent[0].1, LAN);
    }
    p.set_now(103);
    assert!(drain(&mut p).is_empty(), "three requests is the limit");
    // ... then the queued packet is dropped, counted, and the count balances.
    p.set_now(104);
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.pending_packets(), 0);
    assert_eq!(
        p.counters().drops[DropReason::NeighbourUnresolved as usize],
        1
    );
    assert_eq!(p.counters().arp_resolution_failures, 1);
    assert_eq!(p.counters().arp_requests_sent, 3);
    assert_counters_balance(&p);
}

#[test]
fn neighbour_queue_full() {
    let mut p = pipeline();
    p.set_now(100);
    let f = |sport: u16| Packet::udp(OUTSIDE, LAN_HOST, sport, 2).frame();
    // Three packets wait (the first frame carries the ARP request) ...
    assert_eq!(run(&mut p, WAN, &f(1)).verdict, Verdict::Tx(LAN));
    assert_eq!(run(&mut p, WAN, &f(2)).verdict, Verdict::Consumed);
    assert_eq!(run(&mut p, WAN, &f(3)).verdict, Verdict::Consumed);
    // ... the fourth finds the neighbour's queue full.
    expect_silent_drop(&mut p, WAN, &f(4), DropReason::NeighbourQueueFull);
    assert_eq!(p.pending_packets(), 3);
    // The host answers: learned, and the queue goes out in order, rewritten.
    let is_at = arp_frame(LAN_MAC, arp::OP_REPLY, PEER_MAC, LAN_HOST, LAN_ADDR);
    assert_eq!(run(&mut p, LAN, &is_at).verdict, Verdict::Consumed);
    let sent = drain(&mut p);
    assert_eq!(sent.len(), 3);
    for (i, (frame, port)) in sent.iter().enumerate() {
        assert_eq!(*port, LAN);
        assert_eq!(&frame[..6], &PEER_MAC.0);
        assert_eq!(&frame[6..12], &LAN_MAC.0);
        assert_eq!(frame[ETH_HDR_LEN + 8], 63, "TTL one lower");
        let ip = ipv4::Packet::new_checked(&frame[ETH_HDR_LEN..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            u16::from_be_bytes([frame[ETH_HDR_LEN + 20], frame[ETH_HDR_LEN + 21]]),
            i as u16 + 1
        );
    }
    assert_eq!(p.pending_packets(), 0);
    assert_eq!(p.counters().forwarded, 3);
    assert_counters_balance(&p);
    // Resolved: the next packet goes straight through.
    let r = run(&mut p, WAN, &f(5));
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(&r.out[..6], &PEER_MAC.0);
}

// --- host path ----------------------------------------------------------------------

#[test]
fn host_bad_packet() {
    let mut p = pipeline();
    // Neither IPv4 nor IPv6 from the host (version 5, behind the
    // placeholder IPv4 Ethernet header).
    let mut v5 = eth_header(
        dataplane::addr::Mac::ZERO,
        dataplane::addr::Mac::ZERO,
        ethernet::ETHERTYPE_IPV4,
    );
    v5.extend_from_slice(&[0x50, 0, 0, 0, 0, 8, 17, 64]);
    v5.resize(ETH_HDR_LEN + 48, 0);
    expect_silent_drop(&mut p, PortId::HOST, &v5, DropReason::HostBadPacket);
    // Shorter than an IPv4 header, or nothing at all.
    let own = Packet::udp(WAN_ADDR, OUTSIDE, 1, 2).frame();
    for n in [0, ETH_HDR_LEN, ETH_HDR_LEN + 19] {
        expect_silent_drop(&mut p, PortId::HOST, &own[..n], DropReason::HostBadPacket);
    }
    // The same packet whole goes out of the wan.
    assert_eq!(run(&mut p, PortId::HOST, &own).verdict, Verdict::Tx(WAN));
}

// --- RFC 1812 corner cases ------------------------------------------------------

#[test]
fn link_layer_broadcast_is_not_forwarded() {
    // RFC 1812 5.3.4: a unicast packet received as a link-layer broadcast is
    // not forwarded; 4.3.2.7: and never answered with an ICMP error.
    let mut p = pipeline();
    let bcast = dataplane::addr::Mac::BROADCAST;
    let f = Packet::udp(OUTSIDE, INSIDE, 1, 2).dst_mac(bcast).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::IpNotUnicast);
    let f = Packet::udp(OUTSIDE, INSIDE, 1, 2)
        .dst_mac(bcast)
        .ttl(1)
        .frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::IpNotUnicast);
    assert_eq!(p.counters().icmp_errors_sent, 0);
    // To the router itself it is delivered (nothing is forwarded), and a
    // reject is silent.
    let f = Packet::ping(OUTSIDE, WAN_ADDR, 1).dst_mac(bcast).frame();
    assert_eq!(run(&mut p, WAN, &f).verdict, Verdict::Host);
    let f = Packet::udp(OUTSIDE, WAN_ADDR, 1, 69).dst_mac(bcast).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::FilterRejected);
    assert_eq!(p.counters().icmp_errors_sent, 0);
}

#[test]
fn no_icmp_error_to_a_directed_broadcast_source() {
    // RFC 1812 4.3.2.7: no ICMP error about a packet whose source does not
    // define a single host, such as a connected network's broadcast address.
    let mut p = pipeline();
    for (port, src) in [
        (WAN, ip(198, 18, 0, 255)),
        (LAN, ip(198, 19, 0, 255)),
        (WAN, ip(198, 19, 0, 255)),
    ] {
        let f = Packet::udp(src, OUTSIDE, 1, 2).on(port).ttl(1).frame();
        expect_silent_drop(&mut p, port, &f, DropReason::IpTtlExpired);
        let f = Packet::udp(src, UNREACHABLE, 1, 2).on(port).frame();
        expect_silent_drop(&mut p, port, &f, DropReason::RouteNoRoute);
    }
    assert_eq!(p.counters().icmp_errors_sent, 0);
}

#[test]
fn icmp_errors_to_the_router_are_related_only_to_tracked_flows() {
    let mut p = pipeline();
    // The router pings out; a router on the way answers time exceeded.
    let echo = Packet::ping(WAN_ADDR, OUTSIDE, 77).ttl(3);
    assert_eq!(
        run(&mut p, PortId::HOST, &echo.frame()).verdict,
        Verdict::Tx(WAN)
    );
    let hop = ip(198, 51, 100, 1);
    let quote = expected_quote(&echo.ip_bytes());
    let err = Packet::icmp(hop, WAN_ADDR, icmp::TIME_EXCEEDED, 0, 0).payload(&quote);
    let r = run(&mut p, WAN, &err.frame());
    assert_eq!(r.verdict, Verdict::Host);
    assert_eq!(r.ct_state(), Some(CtState::Related));
    // The same error about a ping the router never sent: INVALID, dropped.
    let other = Packet::ping(WAN_ADDR, OUTSIDE, 78).ip_bytes();
    let err =
        Packet::icmp(hop, WAN_ADDR, icmp::TIME_EXCEEDED, 0, 0).payload(&expected_quote(&other));
    let r = expect_drop(&mut p, WAN, &err.frame(), DropReason::FilterPolicy);
    assert_eq!(r.ct_state(), Some(CtState::Invalid));
    // A quote too short to hold a header is INVALID too.
    let err = Packet::icmp(hop, WAN_ADDR, icmp::TIME_EXCEEDED, 0, 0).payload(&quote[..12]);
    let r = expect_drop(&mut p, WAN, &err.frame(), DropReason::FilterPolicy);
    assert_eq!(r.ct_state(), Some(CtState::Invalid));
}

// --- ip6: RFC 8200, RFC 4291 ------------------------------------------------

use dataplane::wire::{icmpv6, ipv6};

/// An IPv6 packet to the router that the filter accepts (a ping6).
fn ping6() -> Packet6 {
    Packet6::ping(OUTSIDE6, WAN6, 7)
}

/// An IPv6 packet through the router (to the Internet, from the lan).
fn transit6() -> Packet6 {
    Packet6::udp(LAN6_HOST, OUTSIDE6, 4000, 53).on(LAN)
}

#[test]
fn ip6_truncated() {
    let mut p = pipeline6();
    let full = ping6().frame();
    for n in [0, 1, 20, 39] {
        expect_silent_drop(
            &mut p,
            WAN,
            &full[..ETH_HDR_LEN + n],
            DropReason::Ip6Truncated,
        );
    }
}

#[test]
fn ip6_bad_version() {
    let mut p = pipeline6();
    let mut f = ping6().frame();
    f[ETH_HDR_LEN] = 0x40;
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6BadVersion);
}

#[test]
fn ip6_bad_payload_length() {
    let mut p = pipeline6();
    let mut ping = ping6();
    ping.payload_len = Some(200);
    expect_silent_drop(&mut p, WAN, &ping.frame(), DropReason::Ip6BadPayloadLength);
    // Link-layer padding after a correct payload length is fine.
    let mut padded = ping6();
    padded.padding = 12;
    assert_eq!(run(&mut p, WAN, &padded.frame()).verdict, Verdict::Host);
}

#[test]
fn ip6_ext_truncated() {
    let mut p = pipeline6();
    // A destination options header claiming 3 units in a 1-unit payload.
    let mut f = Packet6::other(OUTSIDE6, WAN6, 59)
        .ext(Ext::dest_options())
        .frame();
    f[ETH_HDR_LEN + 41] = 2;
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6ExtTruncated);
}

#[test]
fn ip6_ext_too_many() {
    let mut p = pipeline6();
    let mut pk = transit6();
    for _ in 0..=ipv6::MAX_EXT_HEADERS {
        pk = pk.ext(Ext::dest_options());
    }
    expect_silent_drop(&mut p, LAN, &pk.frame(), DropReason::Ip6ExtTooMany);
}

#[test]
fn ip6_ext_too_long() {
    let mut p = pipeline6();
    // One destination options header of 66 units (528 bytes) before UDP.
    let pk = transit6().ext(Ext::options(60, 66));
    expect_silent_drop(&mut p, LAN, &pk.frame(), DropReason::Ip6ExtTooLong);
}

#[test]
fn ip6_ext_hbh_not_first() {
    let mut p = pipeline6();
    let pk = transit6().ext(Ext::dest_options()).ext(Ext::hop_by_hop());
    expect_silent_drop(&mut p, LAN, &pk.frame(), DropReason::Ip6ExtHbhNotFirst);
    // First, it is walked past.
    let ok = transit6().ext(Ext::hop_by_hop());
    assert_eq!(run(&mut p, LAN, &ok.frame()).verdict, Verdict::Tx(WAN));
}

#[test]
fn ip6_ext_rh0() {
    let mut p = pipeline6();
    expect_silent_drop(
        &mut p,
        LAN,
        &transit6().ext(Ext::routing(0, 1)).frame(),
        DropReason::Ip6ExtRh0,
    );
    // Type 0 with no segments left, or another type, passes.
    for e in [Ext::routing(0, 0), Ext::routing(4, 1)] {
        assert_eq!(
            run(&mut p, LAN, &transit6().ext(e).frame()).verdict,
            Verdict::Tx(WAN)
        );
    }
}

#[test]
fn ip6_frag_incomplete_chain() {
    let mut p = pipeline6();
    // A first fragment that ends inside the destination options after it.
    let mut f = transit6()
        .ext(Ext::fragment(0, true))
        .ext(Ext::options(60, 2))
        .frame();
    let cut = ETH_HDR_LEN + 40 + 8 + 8;
    f.truncate(cut);
    let len = (cut - ETH_HDR_LEN - 40) as u16;
    f[ETH_HDR_LEN + 4..ETH_HDR_LEN + 6].copy_from_slice(&len.to_be_bytes());
    expect_silent_drop(&mut p, LAN, &f, DropReason::Ip6FragIncompleteChain);
}

#[test]
fn ip6_frag_bad_length() {
    let mut p = pipeline6();
    // M=1 and 8 + 5 bytes of fragment data: not a multiple of 8.
    let pk = transit6()
        .ext(Ext::fragment(0, true))
        .payload(&[1, 2, 3, 4, 5]);
    expect_silent_drop(&mut p, LAN, &pk.frame(), DropReason::Ip6FragBadLength);
}

#[test]
fn ip6_src_multicast() {
    let mut p = pipeline6();
    let src = a6([0xff02, 0, 0, 0, 0, 0, 0, 1]);
    let f = Packet6::ping(src, WAN6, 1).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6SrcMulticast);
}

#[test]
fn ip6_src_unspecified() {
    let mut p = pipeline6();
    expect_silent_drop(
        &mut p,
        WAN,
        &Packet6::ping(0, WAN6, 1).frame(),
        DropReason::Ip6SrcUnspecified,
    );
    expect_silent_drop(
        &mut p,
        LAN,
        &Packet6::udp(0, OUTSIDE6, 1, 2).on(LAN).frame(),
        DropReason::Ip6SrcUnspecified,
    );
}

#[test]
fn ip6_src_loopback() {
    let mut p = pipeline6();
    let f = Packet6::ping(1, WAN6, 1).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6SrcLoopback);
}

#[test]
fn ip6_dst_loopback() {
    let mut p = pipeline6();
    let f = Packet6::ping(OUTSIDE6, 1, 1).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6DstLoopback);
}

#[test]
fn ip6_dst_unspecified() {
    let mut p = pipeline6();
    let f = Packet6::ping(OUTSIDE6, 0, 1).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::Ip6DstUnspecified);
}

#[test]
fn ip6_link_local() {
    let mut p = pipeline6();
    // To another node's link-local address: never routed.
    let f = Packet6::udp(LAN6_HOST, PEER6_LL, 1, 2).on(LAN).frame();
    expect_silent_drop(&mut p, LAN, &f, DropReason::Ip6LinkLocal);
    // From a link-local source to the Internet: not forwarded, and the
    // sender hears that the destination is beyond the source's scope.
    let orig = Packet6::udp(PEER6_LL, OUTSIDE6, 1, 2).on(LAN);
    let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::Ip6LinkLocal);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    let e = parse_icmp6_error(&r.out);
    assert_eq!(
        (e.ty, e.code),
        (icmpv6::DST_UNREACHABLE, icmpv6::BEYOND_SCOPE)
    );
    assert_eq!(
        e.src,
        link_local(LAN_MAC),
        "from the port's link-local address"
    );
    assert_eq!(e.dst, PEER6_LL);
    // To the router's own link-local address on the arrival port: local.
    let own = Packet6::ping(PEER6_LL, link_local(WAN_MAC), 3).frame();
    assert_eq!(run(&mut p, WAN, &own).verdict, Verdict::Host);
    // ... but not the other port's.
    let other = Packet6::ping(PEER6_LL, link_local(LAN_MAC), 3).frame();
    expect_silent_drop(&mut p, WAN, &other, DropReason::Ip6LinkLocal);
}

#[test]
fn ip6_ipv4_mapped() {
    let mut p = pipeline6();
    let mapped = 0xffff_c612_0002u128;
    for f in [
        Packet6::ping(mapped, WAN6, 1).frame(),
        Packet6::udp(LAN6_HOST, mapped, 1, 2).on(LAN).frame(),
    ] {
        let port = if f[..6] == LAN_MAC.0 { LAN } else { WAN };
        expect_silent_drop(&mut p, port, &f, DropReason::Ip6Ipv4Mapped);
    }
}

#[test]
fn ip6_hop_limit_exceeded() {
    let mut p = pipeline6();
    let orig = transit6().hop_limit(1);
    let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::Ip6HopLimitExceeded);
    assert_eq!(
        r.verdict,
        Verdict::Tx(LAN),
        "time exceeded back out of the lan"
    );
    let e = parse_icmp6_error(&r.out);
    assert_eq!(
        (e.ty, e.code),
        (icmpv6::TIME_EXCEEDED, icmpv6::HOP_LIMIT_EXCEEDED)
    );
    assert_eq!((e.src, e.dst), (LAN6, LAN6_HOST));
    assert_eq!(e.dst_mac, orig.src_mac);
    assert_eq!(e.src_mac, LAN_MAC);
    assert_eq!(
        e.quote,
        orig.ip_bytes(),
        "the whole packet fits in 1280 bytes"
    );
    // Hop limit 0 too; to the router itself hop limit 1 is fine.
    let zero = transit6().hop_limit(0).frame();
    expect_drop(&mut p, LAN, &zero, DropReason::Ip6HopLimitExceeded);
    let own = ping6().hop_limit(1).frame();
    assert_eq!(run(&mut p, WAN, &own).verdict, Verdict::Host);
}

#[test]
fn ip6_mtu_exceeded() {
    let mut p = pipeline6();
    // 40 + 8 + 1460 = 1508 bytes onto a 1500-byte link.
    let orig = transit6().payload_len(1460);
    let r = expect_drop(&mut p, LAN, &orig.frame(), DropReason::Ip6MtuExceeded);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    let e = parse_icmp6_error(&r.out);
    assert_eq!((e.ty, e.code, e.rest), (icmpv6::PACKET_TOO_BIG, 0, 1500));
    assert_eq!(e.dst, LAN6_HOST);
    assert_eq!(
        e.quote,
        orig.ip_bytes()[..1280 - 48].to_vec(),
        "as much as fits in 1280 bytes"
    );
    // Exactly the MTU is forwarded.
    let fits = transit6().payload_len(1452).frame();
    assert_eq!(run(&mut p, LAN, &fits).verdict, Verdict::Tx(WAN));
}

#[test]
fn ip6_multicast_not_routed() {
    let mut p = pipeline6();
    for group in [
        a6([0xff0e, 0, 0, 0, 0, 0, 0, 0x101]),
        a6([0xff02, 0, 0, 0, 0, 0, 0, 0x16]),
    ] {
        let f = Packet6::udp(LAN6_HOST, group, 1, 2)
            .dst_mac(ipv6::multicast_mac(group))
            .frame();
        expect_silent_drop(&mut p, LAN, &f, DropReason::Ip6MulticastNotRouted);
    }
    // A unicast packet in a multicast frame is not forwarded either.
    let f = transit6().dst_mac(dataplane::addr::Mac::BROADCAST).frame();
    expect_silent_drop(&mut p, LAN, &f, DropReason::Ip6MulticastNotRouted);
}

// --- ndp: RFC 4861 ----------------------------------------------------------------

/// A neighbour solicitation for `target` from `src`, to `dst`.
fn ns(src: u128, dst: u128, target: u128) -> Packet6 {
    let mut body = target.to_be_bytes().to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&PEER_MAC.0);
    Packet6::icmp(src, dst, icmpv6::NEIGHBOR_SOLICIT, 0, 0)
        .payload(&body)
        .hop_limit(255)
        .dst_mac(ipv6::multicast_mac(dst))
}

#[test]
fn ndp_bad_hop_limit() {
    let mut p = pipeline6();
    let f = ns(OUTSIDE6, ipv6::solicited_node(WAN6), WAN6)
        .hop_limit(254)
        .frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::NdpBadHopLimit);
}

#[test]
fn ndp_invalid() {
    let mut p = pipeline6();
    let mut bad_code = ns(WAN6_GW, ipv6::solicited_node(WAN6), WAN6);
    bad_code.l4 = L4::Icmp {
        ty: icmpv6::NEIGHBOR_SOLICIT,
        code: 1,
        rest: 0,
    };
    expect_silent_drop(&mut p, WAN, &bad_code.frame(), DropReason::NdpInvalid);
    // Too short for its target address.
    let short = ns(WAN6_GW, ipv6::solicited_node(WAN6), WAN6).payload(&[0; 8]);
    expect_silent_drop(&mut p, WAN, &short.frame(), DropReason::NdpInvalid);
}

#[test]
fn ndp_not_for_us() {
    let mut p = pipeline6();
    // 2001:db8:7::1 shares its solicited-node group with 2001:db8::1.
    let other = a6([0x2001, 0xdb8, 7, 0, 0, 0, 0, 1]);
    let f = ns(WAN6_GW, ipv6::solicited_node(other), other).frame();
    expect_silent_drop(&mut p, WAN, &f, DropReason::NdpNotForUs);
}

#[test]
fn icmp6_bad_checksum() {
    let mut p = pipeline6();
    let mut pk = ns(WAN6_GW, ipv6::solicited_node(WAN6), WAN6);
    pk.bad_checksum = true;
    expect_silent_drop(&mut p, WAN, &pk.frame(), DropReason::Icmp6BadChecksum);
}
