//! The transit fast path (taken by `process_burst`) must decide exactly as
//! the general path (taken by `process` with a tracer): same verdict, same
//! bytes out, same counters, for valid and damaged packets alike.

mod support;

use dataplane::addr::{Ipv4Prefix, Mac};
use dataplane::dispatch::FastCode;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::tables::{
    AddrMatch, ChainId, FilterAction, FilterRule, Match, RawAction, RawRule, Tables, TablesSpec,
};
use dataplane::wire::{arp, ipv4, tcp};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};
use support::*;

fn both() -> (Pipeline, Pipeline) {
    static TABLES: std::sync::OnceLock<std::sync::Arc<dataplane::tables::Tables>> =
        std::sync::OnceLock::new();
    let t = TABLES.get_or_init(tables);
    let mut a = Pipeline::new(t.clone());
    let mut b = Pipeline::new(t.clone());
    for p in [&mut a, &mut b] {
        // A host on lan that answered ARP, for connected-route forwarding.
        p.learn_neighbour(LAN_HOST, PEER_MAC, LAN);
    }
    (a, b)
}

fn fast(p: &mut Pipeline, port: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; BUF_LEN.max(frame.len())];
    buf[..frame.len()].copy_from_slice(frame);
    let mut pkts = [Pkt {
        buf: &mut buf,
        len: frame.len(),
        port,
    }];
    let mut out = [Verdict::Consumed];
    p.process_burst(&mut pkts, &mut out);
    let len = pkts[0].len;
    (out[0], buf[..len].to_vec())
}

fn same(
    a: &mut Pipeline,
    b: &mut Pipeline,
    port: PortId,
    frame: &[u8],
) -> Result<(), TestCaseError> {
    let (va, oa) = fast(a, port, frame);
    let rb = run(b, port, frame);
    prop_assert_eq!(va, rb.verdict, "general path trace {:?}", rb.trace);
    prop_assert_eq!(oa, rb.out);
    prop_assert_eq!(format!("{:?}", a.counters()), format!("{:?}", b.counters()));
    Ok(())
}

fn transit() -> impl Strategy<Value = (PortId, Vec<u8>, Option<(usize, u8)>)> {
    let dst = prop_oneof![
        Just(INSIDE),
        Just(OUTSIDE),
        Just(LAN_HOST),
        Just(LAN_GW),
        Just(WAN_GW),
        Just(ip(198, 19, 0, 200)),
        Just(ip(198, 19, 0, 255)),
        Just(LAN_ADDR),
        Just(UNREACHABLE),
        Just(BLACKHOLED),
        any::<u32>(),
    ];
    let src = prop_oneof![
        (0u32..256).prop_map(|h| ip(198, 51, 100, h as u8)),
        (0u32..256).prop_map(|h| ip(198, 19, 0, h as u8)),
        any::<u32>(),
    ];
    (
        prop_oneof![Just(WAN), Just(LAN)],
        src,
        dst,
        0u8..4,
        any::<u16>(),
        prop_oneof![Just(22u16), Just(23), Just(2323), Just(80), any::<u16>()],
        any::<u8>(),
        prop_oneof![Just(64u8), Just(1), Just(2), Just(0), any::<u8>()],
        0usize..64,
        any::<bool>(),
        prop::option::of((0usize..80, any::<u8>())),
    )
        .prop_map(
            |(port, src, dst, kind, sport, dport, flags, ttl, plen, df, damage)| {
                let p = match kind {
                    0 => Packet::tcp(src, dst, sport, dport, flags),
                    1 => Packet::udp(src, dst, sport, dport),
                    2 => Packet::ping(src, dst, sport),
                    _ => Packet::other(src, dst, 47),
                };
                let mut p = p.on(port).ttl(ttl).payload_len(plen);
                if df {
                    p = p.df();
                }
                (port, p.frame(), damage)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_decides_as_the_general_path((port, mut frame, damage) in transit()) {
        if let Some((i, b)) = damage {
            if i < frame.len() {
                frame[i] ^= b;
            }
        }
        let (mut a, mut b) = both();
        same(&mut a, &mut b, port, &frame)?;
        // Twice: state (neighbours, counters) carries over.
        same(&mut a, &mut b, port, &frame)?;
    }
}

#[test]
fn the_fast_path_is_taken_for_plain_transit() {
    // Not a semantic check: make sure the differential test above compares
    // two different code paths, by showing `process_burst` forwards plain
    // transit without recording trace events (the fast path has none).
    let (mut a, _) = both();
    let f = Packet::udp(ip(198, 51, 100, 7), INSIDE, 1000, 53)
        .on(WAN)
        .frame();
    let (v, out) = fast(&mut a, WAN, &f);
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(out[14 + 8], 63);
    assert_eq!(a.counters().forwarded, 1);
}

/// A frame and the port it arrives on.
type Arrival = (PortId, Vec<u8>);

/// Run `burst` through `process_burst` on `a` and frame by frame through
/// the general path on `b`: same verdicts, same bytes out, and after the
/// burst the same counters and the same packets waiting for ARP.
fn same_burst(a: &mut Pipeline, b: &mut Pipeline, burst: &[Arrival]) -> Result<(), TestCaseError> {
    let mut bufs: Vec<Vec<u8>> = burst
        .iter()
        .map(|(_, f)| {
            let mut buf = vec![0u8; BUF_LEN.max(f.len())];
            buf[..f.len()].copy_from_slice(f);
            buf
        })
        .collect();
    let mut pkts: Vec<Pkt<'_>> = bufs
        .iter_mut()
        .zip(burst)
        .map(|(buf, (port, f))| Pkt {
            buf,
            len: f.len(),
            port: *port,
        })
        .collect();
    let mut out = vec![Verdict::Consumed; burst.len()];
    a.process_burst(&mut pkts, &mut out);
    let lens: Vec<usize> = pkts.iter().map(|p| p.len).collect();
    drop(pkts);
    for (i, (port, f)) in burst.iter().enumerate() {
        let rb = run(b, *port, f);
        prop_assert_eq!(
            out[i],
            rb.verdict,
            "packet {} of {}: general path trace {:?}",
            i,
            burst.len(),
            rb.trace
        );
        prop_assert_eq!(&bufs[i][..lens[i]], &rb.out[..], "packet {}", i);
    }
    prop_assert_eq!(format!("{:?}", a.counters()), format!("{:?}", b.counters()));
    prop_assert_eq!(a.pending_packets(), b.pending_packets());
    Ok(())
}

/// Transit from `transit`, damaged or not.
fn transit_arrival() -> impl Strategy<Value = Arrival> {
    transit().prop_map(|(port, mut frame, damage)| {
        if let Some((i, b)) = damage {
            if i < frame.len() {
                frame[i] ^= b;
            }
        }
        (port, frame)
    })
}

/// Packets for the router: pings, ssh, telnet and tftp (rejected by the
/// input chain), another UDP port (the input policy drops it).
fn to_router() -> impl Strategy<Value = Arrival> {
    (
        prop_oneof![Just(WAN), Just(LAN)],
        prop_oneof![Just(WAN_ADDR), Just(LAN_ADDR)],
        prop_oneof![
            (0u32..256).prop_map(|h| ip(198, 51, 100, h as u8)),
            (2u32..255).prop_map(|h| ip(198, 19, 0, h as u8)),
        ],
        0u8..5,
        1024u16..1100,
    )
        .prop_map(|(port, dst, src, kind, sport)| {
            let p = match kind {
                0 => Packet::ping(src, dst, sport),
                1 => Packet::tcp(src, dst, sport, 22, tcp::SYN),
                2 => Packet::tcp(src, dst, sport, 23, tcp::SYN),
                3 => Packet::udp(src, dst, sport, 69),
                _ => Packet::udp(src, dst, sport, 5000),
            };
            (port, p.on(port).frame())
        })
}

/// ARP from hosts on lan: requests for the router (which teach it the
/// sender, so later transit to it can take the fast path) and replies.
fn lan_arp() -> impl Strategy<Value = Arrival> {
    (5u8..8, any::<bool>(), 0u8..3).prop_map(|(h, request, mac)| {
        let sender = Mac([0x02, 0x00, 0x5e, 0x10, 0x0f, 0x10 + mac]);
        let f = if request {
            arp_frame(
                Mac::BROADCAST,
                arp::OP_REQUEST,
                sender,
                ip(198, 19, 0, h),
                LAN_ADDR,
            )
        } else {
            arp_frame(LAN_MAC, arp::OP_REPLY, sender, ip(198, 19, 0, h), LAN_ADDR)
        };
        (LAN, f)
    })
}

/// Packets the router sends, from the host path.
fn from_host() -> impl Strategy<Value = Arrival> {
    (
        prop_oneof![Just(OUTSIDE), Just(INSIDE), Just(LAN_HOST)],
        any::<u16>(),
    )
        .prop_map(|(dst, sport)| {
            let f = Packet::udp(WAN_ADDR, dst, sport, 123)
                .dst_mac(Mac::ZERO)
                .src_mac(Mac::ZERO)
                .payload_len(48)
                .frame();
            (PortId::HOST, f)
        })
}

/// Transit to the lan hosts `lan_arp` teaches, plain and over the fast
/// path's limits (TTL 1, too big).
fn to_lan_hosts() -> impl Strategy<Value = Arrival> {
    (5u8..8, 0u8..4, any::<u16>()).prop_map(|(h, kind, sport)| {
        let p = Packet::udp(OUTSIDE, ip(198, 19, 0, h), sport, 53);
        let p = match kind {
            0 => p.ttl(1),
            1 => p.payload_len(1480).df(),
            _ => p,
        };
        (WAN, p.on(WAN).frame())
    })
}

/// Up to 40 packets, each repeated 1 to 3 times so runs of the same
/// decision form.
fn burst_of(arrival: impl Strategy<Value = Arrival>) -> impl Strategy<Value = Vec<Arrival>> {
    prop::collection::vec((arrival, 1usize..4), 1..40).prop_map(|v| {
        v.into_iter()
            .flat_map(|(a, n)| std::iter::repeat_n(a, n))
            .take(40)
            .collect()
    })
}

fn mixed() -> impl Strategy<Value = Arrival> {
    prop_oneof![
        8 => transit_arrival(),
        2 => to_lan_hosts(),
        2 => to_router(),
        1 => lan_arp(),
        1 => from_host(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_burst_decides_as_the_general_path_one_by_one(
        burst in burst_of(mixed()),
        second in burst_of(mixed()),
    ) {
        let (mut a, mut b) = both();
        same_burst(&mut a, &mut b, &burst)?;
        // A second burst over the state the first left.
        same_burst(&mut a, &mut b, &second)?;
    }
}

#[test]
fn a_burst_counts_runs_and_the_packets_between_them() {
    let (mut a, mut b) = both();
    let udp = |dport| {
        Packet::udp(ip(198, 51, 100, 7), INSIDE, 1000, dport)
            .on(WAN)
            .payload_len(usize::from(dport % 50))
            .frame()
    };
    let lan_udp = Packet::udp(LAN_HOST, OUTSIDE, 1000, 53).on(LAN).frame();
    let dropped = Packet::tcp(OUTSIDE, INSIDE, 1000, 2323, tcp::SYN)
        .on(WAN)
        .frame();
    let ping = Packet::ping(OUTSIDE, WAN_ADDR, 9).frame();
    let mut burst: Vec<Arrival> = Vec::new();
    for dport in [53, 54, 55] {
        burst.push((WAN, udp(dport)));
    }
    burst.push((LAN, lan_udp.clone()));
    burst.push((WAN, udp(56)));
    burst.push((WAN, dropped.clone()));
    burst.push((WAN, udp(57)));
    burst.push((WAN, ping));
    burst.push((WAN, dropped));
    burst.push((LAN, lan_udp.clone()));
    burst.push((LAN, lan_udp));
    same_burst(&mut a, &mut b, &burst).unwrap();
    let c = a.counters();
    assert_eq!(c.forwarded, 8);
    assert_eq!(
        c.filter_rules[ChainId::Forward as usize][FWD_DROP_2323].packets,
        2
    );
    assert_eq!(c.filter_policy[ChainId::Forward as usize].packets, 8);
    assert_eq!(c.rx_of(WAN).packets, 8);
    assert_eq!(c.tx[LAN.0 as usize].packets, 5);
}

fn raw(matches: Match, action: RawAction) -> RawRule {
    RawRule {
        matches,
        action,
        comment: None,
    }
}

fn forward(matches: Match, action: FilterAction) -> FilterRule {
    FilterRule {
        matches,
        action,
        comment: None,
    }
}

fn from(a: u32, len: u8) -> Option<AddrMatch> {
    let p = Ipv4Prefix::new(a, len).expect("prefix length");
    Some(AddrMatch::Prefixes([p].into_iter().collect()))
}

/// The test router with rules on source addresses: raw tracks
/// 198.51.100.0/26; forward drops UDP from 198.51.100.64/26, rejects
/// 198.51.100.128/25 to port 80, accepts TCP from 198.19.0.0/24 and from
/// the router's addresses, with the given policy.
fn source_rules(policy: FilterAction) -> impl FnOnce(&mut TablesSpec) {
    move |s: &mut TablesSpec| {
        s.raw_prerouting.insert(
            1,
            raw(
                Match {
                    source: from(ip(198, 51, 100, 0), 26),
                    ..Match::default()
                },
                RawAction::Accept,
            ),
        );
        s.filter_forward.policy = policy;
        s.filter_forward.rules.extend([
            forward(
                Match {
                    source: from(ip(198, 51, 100, 64), 26),
                    protocol: Some(ipv4::PROTO_UDP),
                    ..Match::default()
                },
                FilterAction::Drop,
            ),
            forward(
                Match {
                    source: from(ip(198, 51, 100, 128), 25),
                    destination_port: Some([(80, 80)].into_iter().collect()),
                    ..Match::default()
                },
                FilterAction::Reject,
            ),
            forward(
                Match {
                    source: from(ip(198, 19, 0, 0), 24),
                    protocol: Some(ipv4::PROTO_TCP),
                    ..Match::default()
                },
                FilterAction::Accept,
            ),
            forward(
                Match {
                    source: Some(AddrMatch::Local),
                    ..Match::default()
                },
                FilterAction::Accept,
            ),
        ]);
    }
}

/// The tables of [`source_rules`], built once per policy (a build fills
/// the whole route table).
fn source_tables(policy: FilterAction) -> Arc<Tables> {
    static TABLES: [OnceLock<Arc<Tables>>; 2] = [OnceLock::new(), OnceLock::new()];
    TABLES[usize::from(policy == FilterAction::Drop)]
        .get_or_init(|| pipeline_with(source_rules(policy)).tables().clone())
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_burst_under_source_rules_decides_as_the_general_path(
        policy in prop_oneof![Just(FilterAction::Accept), Just(FilterAction::Drop)],
        burst in burst_of(prop_oneof![
            6 => transit_arrival(),
            2 => to_lan_hosts(),
            1 => to_router(),
            1 => lan_arp(),
            1 => (0u8..4, 0u8..3).prop_map(|(h, kind)| {
                // Spoofing one of the router's addresses.
                let src = [WAN_ADDR, LAN_ADDR, ip(198, 18, 0, 9), ip(198, 19, 0, 9)][h as usize];
                let p = match kind {
                    0 => Packet::tcp(src, INSIDE, 1000, 80, tcp::SYN),
                    1 => Packet::udp(src, INSIDE, 1000, 80),
                    _ => Packet::ping(src, INSIDE, 3),
                };
                (WAN, p.on(WAN).frame())
            }),
        ]),
    ) {
        let t = source_tables(policy);
        let (mut a, mut b) = (Pipeline::new(t.clone()), Pipeline::new(t));
        // Source conditions: the fast path must try the rules.
        let f = &a.tables().fast_rules;
        for proto in [ipv4::PROTO_UDP, ipv4::PROTO_TCP, ipv4::PROTO_ICMP, 47] {
            prop_assert_eq!(f.get(WAN, LAN, proto), FastCode::Search);
            prop_assert_eq!(f.get(LAN, WAN, proto), FastCode::Search);
        }
        for p in [&mut a, &mut b] {
            p.learn_neighbour(LAN_HOST, PEER_MAC, LAN);
        }
        same_burst(&mut a, &mut b, &burst)?;
    }
}

#[test]
fn forward_rule_32767_is_counted_on_that_rule_not_the_policy() {
    // Enough forward rules that the fast path searches them all: its code
    // for rule 32767 must still name that rule.
    let last = 32767;
    let mut a = pipeline_with(|s| {
        let filler = forward(
            Match {
                protocol: Some(ipv4::PROTO_UDP),
                destination_port: Some([(9, 9)].into_iter().collect()),
                ..Match::default()
            },
            FilterAction::Drop,
        );
        s.filter_forward.rules = vec![filler; last];
        s.filter_forward.rules.push(forward(
            Match {
                protocol: Some(ipv4::PROTO_UDP),
                destination_port: Some([(53, 53)].into_iter().collect()),
                ..Match::default()
            },
            FilterAction::Accept,
        ));
    });
    let mut b = Pipeline::new(a.tables().clone());
    let f = Packet::udp(ip(198, 51, 100, 7), INSIDE, 1000, 53)
        .on(WAN)
        .frame();
    let (va, oa) = fast(&mut a, WAN, &f);
    let rb = run(&mut b, WAN, &f);
    assert_eq!(va, Verdict::Tx(LAN));
    assert_eq!(
        rb.filter(),
        Some((ChainId::Forward, Some(last), FilterAction::Accept))
    );
    assert_eq!((va, oa), (rb.verdict, rb.out));
    let fwd = ChainId::Forward as usize;
    for (path, p) in [("general", &b), ("fast", &a)] {
        let c = p.counters();
        assert_eq!(c.filter_rules[fwd][last].packets, 1, "{path} path");
        assert_eq!(c.filter_policy[fwd].packets, 0, "{path} path");
    }
}
