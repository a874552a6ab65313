//! IPv6 through the whole pipeline: transit forwarded untracked with only
//! the hop limit and the MACs changed, the router's own IPv6 flows tracked
//! (NEW, ESTABLISHED, RELATED), the filter's answers (reject as TCP RST or
//! ICMPv6 port unreachable), routes (unreachable, blackhole, a link-local
//! gateway), one rule list for both families, and the per-family counters.

mod support;

use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::conntrack::CtState;
use dataplane::drop::DropReason;
use dataplane::packet::{PortId, Verdict, ETH_HDR_LEN};
use dataplane::rules::{AddrMatch, ChainId, Family, FilterAction, FilterRule, Match};
use dataplane::wire::{ethernet, icmpv6, ipv6, tcp};
use proptest::prelude::*;
use support::*;

/// The frame a packet leaves as when forwarded to `next_mac` out of a port
/// with `port_mac`: the same bytes but the MACs and the hop limit.
fn forwarded(
    frame: &[u8],
    next_mac: dataplane::addr::Mac,
    port_mac: dataplane::addr::Mac,
) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&next_mac.0);
    f[6..12].copy_from_slice(&port_mac.0);
    f[ETH_HDR_LEN + 7] -= 1;
    f
}

/// A frame from the router's own stack (the host path's placeholder
/// Ethernet header says IPv4, as the worker writes it).
fn from_host(pk: &Packet6) -> Vec<u8> {
    let mut f = eth_header(
        dataplane::addr::Mac::ZERO,
        dataplane::addr::Mac::ZERO,
        ethernet::ETHERTYPE_IPV4,
    );
    f.extend_from_slice(&pk.ip_bytes());
    f
}

#[test]
fn transit_is_forwarded_untracked_with_hop_limit_and_macs_rewritten() {
    let mut p = pipeline6();
    // lan host -> the Internet (default via the wan gateway).
    let out = Packet6::tcp(LAN6_HOST, OUTSIDE6, 40000, 443, tcp::SYN).on(LAN);
    let r = run(&mut p, LAN, &out.frame());
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    assert_eq!(r.out, forwarded(&out.frame(), WAN_GW_MAC, WAN_MAC));
    assert_eq!(r.ct_state(), Some(CtState::Untracked));
    // Internet -> behind the lan's link-local gateway.
    let inb = Packet6::udp(OUTSIDE6, INSIDE6, 53, 4000).payload_len(100);
    let r = run(&mut p, WAN, &inb.frame());
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(r.out, forwarded(&inb.frame(), LAN_GW_MAC, LAN_MAC));
    assert_eq!(p.conntrack().len(), 0, "transit leaves no entries");
    let c = p.counters();
    assert_eq!((c.ipv6_rx, c.ipv6_forwarded, c.forwarded), (2, 2, 2));
    assert_eq!(c.untracked, 2);
    assert_counters_balance(&p);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the ports, payload, hop limit and extension headers, a
    /// forwarded packet changes in its hop limit and MACs only.
    #[test]
    fn forwarded_packets_change_only_hop_limit_and_macs(
        kind in 0u8..3,
        sport in any::<u16>(),
        dport in any::<u16>(),
        hop in 2u8..=255,
        len in 0usize..1200,
        hbh in any::<bool>(),
        dest_opts in any::<bool>(),
    ) {
        let mut p = pipeline6();
        let mut pk = match kind {
            0 => Packet6::tcp(OUTSIDE6, INSIDE6, sport, dport, tcp::ACK),
            1 => Packet6::udp(OUTSIDE6, INSIDE6, sport, dport),
            _ => Packet6::icmp(OUTSIDE6, INSIDE6, icmpv6::ECHO_REQUEST, 0, u32::from(sport)),
        }
        .hop_limit(hop)
        .payload_len(len);
        if hbh {
            pk = pk.ext(Ext::hop_by_hop());
        }
        if dest_opts {
            pk = pk.ext(Ext::dest_options());
        }
        // The forward chain drops tcp dport 2323.
        prop_assume!(!(kind == 0 && dport == 2323));
        let r = run(&mut p, WAN, &pk.frame());
        prop_assert_eq!(r.verdict, Verdict::Tx(LAN));
        prop_assert_eq!(r.out, forwarded(&pk.frame(), LAN_GW_MAC, LAN_MAC));
    }
}

#[test]
fn ping6_to_the_router_goes_to_the_host_and_its_reply_goes_out() {
    let mut p = pipeline6();
    let r = run(&mut p, WAN, &Packet6::ping(OUTSIDE6, WAN6, 9).frame());
    assert_eq!(r.verdict, Verdict::Host);
    assert_eq!(r.ct_state(), Some(CtState::New));
    assert_eq!(
        r.filter(),
        Some((ChainId::Input, Some(IN_ECHO6), FilterAction::Accept))
    );
    assert_eq!(p.conntrack().len(), 1, "the router's own flow is tracked");
    // The kernel's echo reply.
    let reply = Packet6::icmp(WAN6, OUTSIDE6, icmpv6::ECHO_REPLY, 0, 9 << 16 | 1);
    let r = run(&mut p, PortId::HOST, &from_host(&reply));
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    assert_eq!(r.ct_state(), Some(CtState::Established));
    let eth = ethernet::Frame::new_checked(&r.out[..]).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (WAN_GW_MAC, WAN_MAC, ethernet::ETHERTYPE_IPV6)
    );
    assert_eq!(
        &r.out[ETH_HDR_LEN..],
        &reply.ip_bytes()[..],
        "sent as the host wrote it"
    );
    let c = p.counters();
    assert_eq!((c.ipv6_rx, c.ipv6_to_host, c.ipv6_forwarded), (2, 1, 1));
}

#[test]
fn ssh_over_ipv6_is_tracked_and_closed_ports_are_dropped() {
    let mut p = pipeline6();
    let syn = Packet6::tcp(OUTSIDE6, WAN6, 40000, 22, tcp::SYN);
    let r = run(&mut p, WAN, &syn.frame());
    assert_eq!(
        (r.verdict, r.ct_state()),
        (Verdict::Host, Some(CtState::New))
    );
    let synack = Packet6::tcp(WAN6, OUTSIDE6, 22, 40000, tcp::SYN | tcp::ACK);
    let r = run(&mut p, PortId::HOST, &from_host(&synack));
    assert_eq!(
        (r.verdict, r.ct_state()),
        (Verdict::Tx(WAN), Some(CtState::Established))
    );
    let ack = Packet6::tcp(OUTSIDE6, WAN6, 40000, 22, tcp::ACK);
    let r = run(&mut p, WAN, &ack.frame());
    assert_eq!(
        (r.verdict, r.ct_state()),
        (Verdict::Host, Some(CtState::Established))
    );
    assert_eq!(
        r.filter(),
        Some((ChainId::Input, Some(IN_ESTABLISHED), FilterAction::Accept))
    );
    let flows: Vec<_> = p.conntrack().flows(p.now()).collect();
    assert_eq!(flows.len(), 1);
    let k6 = flows[0].key6.expect("an IPv6 flow");
    assert_eq!(
        (k6.src, k6.dst, k6.sport, k6.dport),
        (OUTSIDE6, WAN6, 40000, 22)
    );
    // A closed port: dropped by the input policy, no entry.
    let web = Packet6::tcp(OUTSIDE6, WAN6, 40001, 80, tcp::SYN).frame();
    expect_silent_drop(&mut p, WAN, &web, DropReason::FilterPolicy);
    assert_eq!(
        p.conntrack().len(),
        1,
        "a dropped NEW packet leaves no entry"
    );
}

#[test]
fn reject_answers_tcp_with_a_reset_and_udp_with_port_unreachable() {
    let mut p = pipeline6();
    let telnet = Packet6::tcp(OUTSIDE6, WAN6, 40000, 23, tcp::SYN);
    let r = expect_drop(&mut p, WAN, &telnet.frame(), DropReason::FilterRejected);
    assert_eq!(r.verdict, Verdict::Tx(WAN));
    let ip = ipv6::Packet::new_checked(&r.out[ETH_HDR_LEN..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (WAN6, OUTSIDE6));
    assert_eq!(ip.next_header(), ipv6::NH_TCP);
    let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((seg.src_port(), seg.dst_port()), (23, 40000));
    assert_eq!(seg.flags() & (tcp::RST | tcp::ACK), tcp::RST | tcp::ACK);
    assert_eq!(
        seg.ack_number(),
        0x0100_0001,
        "the SYN's sequence number plus one"
    );
    assert!(dataplane::wire::checksum::verify6(
        WAN6,
        OUTSIDE6,
        ipv6::NH_TCP,
        ip.payload()
    ));
    let tftp = Packet6::udp(OUTSIDE6, WAN6, 5000, 69);
    let r = expect_drop(&mut p, WAN, &tftp.frame(), DropReason::FilterRejected);
    let e = parse_icmp6_error(&r.out);
    assert_eq!(
        (e.ty, e.code, e.src, e.dst),
        (
            icmpv6::DST_UNREACHABLE,
            icmpv6::PORT_UNREACHABLE,
            WAN6,
            OUTSIDE6
        )
    );
    assert_eq!(e.quote, tftp.ip_bytes());
}

#[test]
fn unreachable_routes_answer_and_blackholes_are_silent() {
    let mut p = pipeline6();
    let orig = Packet6::udp(OUTSIDE6, UNREACHABLE6, 1, 2);
    let r = expect_drop(&mut p, WAN, &orig.frame(), DropReason::RouteNoRoute);
    let e = parse_icmp6_error(&r.out);
    assert_eq!((e.ty, e.code), (icmpv6::DST_UNREACHABLE, icmpv6::NO_ROUTE));
    assert_eq!((e.src, e.dst, e.hop_limit), (WAN6, OUTSIDE6, 64));
    let bh = Packet6::udp(OUTSIDE6, BLACKHOLED6, 1, 2).frame();
    expect_silent_drop(&mut p, WAN, &bh, DropReason::RouteNoRoute);
    // No route at all: a table without the default route.
    let mut q = pipeline6_with(|s| s.v6.routes.retain(|r| r.prefix != Ipv6Prefix::DEFAULT));
    let r = expect_drop(
        &mut q,
        LAN,
        &Packet6::udp(LAN6_HOST, OUTSIDE6, 1, 2).on(LAN).frame(),
        DropReason::RouteNoRoute,
    );
    assert_eq!(parse_icmp6_error(&r.out).code, icmpv6::NO_ROUTE);
}

#[test]
fn an_icmpv6_error_about_a_tracked_flow_is_related() {
    let mut p = pipeline6();
    // The router opens a TCP connection out (filter output accepts).
    let syn = Packet6::tcp(WAN6, OUTSIDE6, 33000, 443, tcp::SYN);
    assert_eq!(
        run(&mut p, PortId::HOST, &from_host(&syn)).verdict,
        Verdict::Tx(WAN)
    );
    // A router on the way says the packet was too big.
    let mut ptb =
        Packet6::icmp(OUTSIDE6, WAN6, icmpv6::PACKET_TOO_BIG, 0, 1280).payload(&syn.ip_bytes());
    let r = run(&mut p, WAN, &ptb.frame());
    assert_eq!(
        (r.verdict, r.ct_state()),
        (Verdict::Host, Some(CtState::Related))
    );
    // About a flow nobody tracks: INVALID, dropped by the input policy.
    let stray = Packet6::tcp(WAN6, OUTSIDE6, 33001, 443, tcp::SYN);
    ptb.payload = stray.ip_bytes();
    let r = expect_drop(&mut p, WAN, &ptb.frame(), DropReason::FilterPolicy);
    assert_eq!(r.ct_state(), Some(CtState::Invalid));
}

#[test]
fn tracked_fragments_are_dropped_untracked_ones_forwarded() {
    let mut p = pipeline6();
    let to_us = Packet6::udp(OUTSIDE6, WAN6, 1, 53)
        .ext(Ext::fragment(0, true))
        .payload_len(8);
    expect_silent_drop(&mut p, WAN, &to_us.frame(), DropReason::ConntrackFragment);
    // A later fragment through the router: no ports, forwarded whole.
    let later = Packet6::udp(OUTSIDE6, INSIDE6, 1, 53)
        .ext(Ext::fragment(1232, false))
        .payload_len(16);
    let r = run(&mut p, WAN, &later.frame());
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(r.out, forwarded(&later.frame(), LAN_GW_MAC, LAN_MAC));
}

#[test]
fn one_rule_list_for_both_families() {
    let drop_rule = |m: Match| FilterRule {
        matches: m,
        action: FilterAction::Drop,
        comment: None,
    };
    let v4_only = Match {
        source: Some(AddrMatch::Prefixes(
            [Ipv4Prefix::new(ip(198, 51, 100, 0), 24).unwrap()]
                .into_iter()
                .collect(),
        )),
        ..Match::default()
    };
    let v6_only = Match {
        destination6: Some(
            [Ipv6Prefix::new(INSIDE6, 64).unwrap()]
                .into_iter()
                .collect(),
        ),
        ..Match::default()
    };
    let family6 = Match {
        family: Some(Family::Ipv6),
        protocol: Some(ipv6::NH_UDP),
        destination_port: Some([(9999, 9999)].into_iter().collect()),
        ..Match::default()
    };
    let mut p = pipeline6_with(|s| {
        s.filter_forward.rules = vec![drop_rule(v4_only), drop_rule(v6_only), drop_rule(family6)];
    });
    // The IPv4-prefix rule never matches IPv6; the IPv6 one does.
    let r = run(&mut p, WAN, &Packet6::udp(OUTSIDE6, INSIDE6, 1, 2).frame());
    assert_eq!(
        r.filter(),
        Some((ChainId::Forward, Some(1), FilterAction::Drop))
    );
    let other = Packet6::udp(OUTSIDE6, a6([0x2001, 0xdb8, 5, 1, 0, 0, 0, 9]), 1, 2);
    assert_eq!(run(&mut p, WAN, &other.frame()).verdict, Verdict::Tx(LAN));
    // `family: ipv6` matches IPv6 only.
    let r = run(
        &mut p,
        WAN,
        &Packet6::udp(OUTSIDE6, other.dst, 1, 9999).frame(),
    );
    assert_eq!(
        r.filter(),
        Some((ChainId::Forward, Some(2), FilterAction::Drop))
    );
    let v4 = Packet::udp(ip(198, 18, 0, 9), INSIDE, 1, 9999).frame();
    assert_eq!(run(&mut p, WAN, &v4).verdict, Verdict::Tx(LAN));
    // The IPv4 rule still matches IPv4 (and the IPv6 one does not).
    let r = run(
        &mut p,
        WAN,
        &Packet::udp(ip(198, 51, 100, 9), INSIDE, 1, 2).frame(),
    );
    assert_eq!(
        r.filter(),
        Some((ChainId::Forward, Some(0), FilterAction::Drop))
    );
}
