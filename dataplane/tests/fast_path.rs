//! The transit fast path (taken by `process_burst`) must decide exactly as
//! the general path (taken by `process` with a tracer): same verdict, same
//! bytes out, same counters, for valid and damaged packets alike. So must
//! its path for packets to the router, and leave the same connection table.

mod support;

use dataplane::addr::{Ipv4Prefix, Mac};
use dataplane::conntrack::tcp::TcpState;
use dataplane::conntrack::CtState;
use dataplane::conntrack::FlowView;
use dataplane::dispatch::FastCode;
use dataplane::drop::DropReason;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::rules::{AddrMatch, ChainId, FilterAction, FilterRule, Match, RawAction, RawRule};
use dataplane::tables::{Tables, TablesSpec};
use dataplane::wire::{arp, icmp, icmpv6, ipv4, tcp};
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

/// IPv6 transit, to the router and through the fast path's limits
/// (extension headers, hop limit 1, too big, link-local, damaged bytes).
fn transit6() -> impl Strategy<Value = Arrival> {
    let dst = prop_oneof![
        Just(INSIDE6),
        Just(OUTSIDE6),
        Just(LAN6_HOST),
        Just(WAN6),
        Just(UNREACHABLE6),
        Just(BLACKHOLED6),
        Just(PEER6_LL),
        any::<u128>(),
    ];
    let src = prop_oneof![
        Just(OUTSIDE6),
        Just(LAN6_HOST),
        Just(PEER6_LL),
        any::<u128>(),
    ];
    (
        prop_oneof![Just(WAN), Just(LAN)],
        src,
        dst,
        0u8..4,
        any::<u16>(),
        prop_oneof![Just(22u16), Just(23), Just(2323), any::<u16>()],
        prop_oneof![Just(64u8), Just(1), Just(2), Just(0)],
        prop_oneof![Just(0usize), 0usize..64, Just(1460)],
        0u8..3,
        prop::option::of((0usize..80, any::<u8>())),
    )
        .prop_map(
            |(port, src, dst, kind, sport, dport, hop, plen, ext, damage)| {
                let p = match kind {
                    0 => Packet6::tcp(src, dst, sport, dport, tcp::ACK),
                    1 => Packet6::udp(src, dst, sport, dport),
                    2 => Packet6::ping(src, dst, sport),
                    _ => Packet6::other(src, dst, 47),
                };
                let mut p = p.on(port).hop_limit(hop).payload_len(plen);
                if ext == 1 {
                    p = p.ext(Ext::hop_by_hop());
                }
                let mut f = p.frame();
                if let Some((i, b)) = damage {
                    if i < f.len() {
                        f[i] ^= b;
                    }
                }
                (port, f)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn the_ipv6_fast_path_decides_as_the_general_path((port, frame) in transit6()) {
        let (mut a, mut b) = both();
        same(&mut a, &mut b, port, &frame)?;
        same(&mut a, &mut b, port, &frame)?;
    }
}

#[test]
fn the_ipv6_fast_path_is_taken_for_plain_transit() {
    let (mut a, _) = both();
    let f = Packet6::udp(OUTSIDE6, INSIDE6, 1000, 53).frame();
    let (v, out) = fast(&mut a, WAN, &f);
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(out[14 + 7], 63, "hop limit");
    let c = a.counters();
    assert_eq!((c.forwarded, c.ipv6_forwarded, c.ipv6_rx), (1, 1, 1));
    assert_eq!(c.untracked, 1);
}

fn mixed() -> impl Strategy<Value = Arrival> {
    prop_oneof![
        8 => transit_arrival(),
        3 => transit6(),
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

// Packets to the router. `process_burst` takes them through its local path
// (raw, conntrack, input by `LocalRules`, delivered packets counted in runs):
// it must decide, count and track exactly as the general path.

/// Clients of the router: address and the port they arrive on. The router
/// knows the MAC of `LAN_HOST` only: what it sends the other lan client
/// waits for ARP.
const CLIENTS: [(u32, PortId); 4] = [
    (OUTSIDE, WAN),
    (ip(198, 51, 100, 9), WAN),
    (LAN_HOST, LAN),
    (ip(198, 19, 0, 6), LAN),
];

/// A conversation's two ends: a client (its port, or ICMP identifier) and
/// one of the router's addresses.
#[derive(Clone, Copy, Debug)]
struct Ends {
    client: u32,
    port: PortId,
    router: u32,
    cport: u16,
    /// The client's packets: TTL and Ethernet padding.
    ttl: u8,
    pad: usize,
}

impl Ends {
    fn new(client: u32, port: PortId, router: u32, cport: u16) -> Ends {
        Ends {
            client,
            port,
            router,
            cport,
            ttl: 64,
            pad: 0,
        }
    }

    /// `p` from the client, arriving on its port.
    fn client(&self, p: Packet) -> Arrival {
        let p = p.on(self.port).ttl(self.ttl).padding(self.pad);
        (self.port, p.frame())
    }

    /// `p` from the router's host stack, on the host path.
    fn router(&self, p: Packet) -> Arrival {
        let f = p.dst_mac(Mac::ZERO).src_mac(Mac::ZERO).frame();
        (PortId::HOST, f)
    }
}

/// The two ends of a TCP conversation with the router, of either family
/// ([`tcp_script`]).
trait TcpEnds {
    /// A TCP segment from the client to `dport`, with `len` bytes of data.
    fn tcp_c(&self, dport: u16, flags: u8, len: usize) -> Arrival;
    /// A TCP segment from the router's `sport` back to the client.
    fn tcp_r(&self, sport: u16, flags: u8) -> Arrival;
}

impl TcpEnds for Ends {
    fn tcp_c(&self, dport: u16, flags: u8, len: usize) -> Arrival {
        let p = Packet::tcp(self.client, self.router, self.cport, dport, flags);
        self.client(p.payload_len(len))
    }

    fn tcp_r(&self, sport: u16, flags: u8) -> Arrival {
        self.router(Packet::tcp(
            self.router,
            self.client,
            sport,
            self.cport,
            flags,
        ))
    }
}

fn ends() -> impl Strategy<Value = Ends> {
    // Few of each: conversations meet on the same flows.
    (
        0usize..4,
        any::<bool>(),
        0u16..3,
        prop::sample::select(vec![64u8, 64, 64, 1, 0]),
        prop::sample::select(vec![0usize, 0, 0, 6, 30]),
    )
        .prop_map(|(c, wan, p, ttl, pad)| {
            let router = if wan { WAN_ADDR } else { LAN_ADDR };
            Ends {
                ttl,
                pad,
                ..Ends::new(CLIENTS[c].0, CLIENTS[c].1, router, 40000 + p)
            }
        })
}

/// TCP to `dport` through its life: handshake (SYN-ACK from the router),
/// `data` segments, close from the client, and a SYN reopening the flow
/// from TIME_WAIT; cut after `upto` packets and ended by `end` (1: client
/// RST, 2: router RST, 3: client RST then more data).
fn tcp_script(e: impl TcpEnds, dport: u16, data: usize, upto: usize, end: u8) -> Vec<Arrival> {
    use tcp::{ACK, FIN, PSH, RST, SYN};
    let mut s = vec![e.tcp_c(dport, SYN, 0), e.tcp_r(dport, SYN | ACK)];
    s.push(e.tcp_c(dport, ACK, 0));
    s.extend((0..data).map(|i| e.tcp_c(dport, ACK | PSH, 10 + 30 * i)));
    s.extend([
        e.tcp_c(dport, FIN | ACK, 0),
        e.tcp_r(dport, ACK),
        e.tcp_r(dport, FIN | ACK),
        e.tcp_c(dport, ACK, 0),
        e.tcp_c(dport, SYN, 0),
    ]);
    s.truncate(upto);
    match end {
        1 => s.push(e.tcp_c(dport, RST, 0)),
        2 => s.push(e.tcp_r(dport, RST | ACK)),
        3 => {
            s.push(e.tcp_c(dport, RST | ACK, 0));
            s.extend((0..data).map(|_| e.tcp_c(dport, ACK | PSH, 20)));
        }
        _ => {}
    }
    s
}

/// One conversation with the router, its packets in order: TCP to ssh
/// (accepted), telnet (rejected with a RST) or port 80 (dropped by the
/// policy), in order or with any flags; pings both ways with their
/// replies; UDP the router started (its answers are established, or an
/// ICMP error about it is related), or UDP to tftp (rejected with an ICMP
/// error) and another port (dropped); GRE (dropped).
fn conversation() -> impl Strategy<Value = Vec<Arrival>> {
    (
        ends(),
        0u8..10,
        prop_oneof![3 => Just(22u16), 1 => Just(23), 1 => Just(80)],
        1usize..5,
        1usize..16,
        0u8..4,
        prop::collection::vec((any::<u8>(), any::<bool>()), 1..6),
    )
        .prop_map(|(e, kind, dport, n, upto, end, flags)| match kind {
            0..=2 => tcp_script(e, dport, n, upto, end),
            8 => flags
                .into_iter()
                .map(|(f, from_router)| {
                    if from_router {
                        e.tcp_r(dport, f)
                    } else {
                        e.tcp_c(dport, f, usize::from(f % 8))
                    }
                })
                .collect(),
            9 => {
                // The client answers the router's UDP with port unreachable.
                let q = Packet::udp(e.router, e.client, e.cport, 5353).payload_len(8);
                let quote = q.ip_bytes()[..28].to_vec();
                let err = Packet::icmp(e.client, e.router, 3, 3, 0).payload(&quote);
                (0..n)
                    .flat_map(|_| [e.router(q.clone()), e.client(err.clone())])
                    .collect()
            }
            3 => (0..n)
                .flat_map(|_| {
                    let id = u32::from(e.cport) << 16 | 1;
                    let reply = Packet::icmp(e.router, e.client, icmp::ECHO_REPLY, 0, id);
                    [
                        e.client(Packet::ping(e.client, e.router, e.cport)),
                        e.router(reply),
                    ]
                })
                .collect(),
            4 => (0..n)
                .flat_map(|_| {
                    let id = u32::from(e.cport) << 16 | 1;
                    let reply = Packet::icmp(e.client, e.router, icmp::ECHO_REPLY, 0, id);
                    [
                        e.router(Packet::ping(e.router, e.client, e.cport)),
                        e.client(reply),
                    ]
                })
                .collect(),
            5 => {
                // The router asks (DNS), the client answers n times.
                let q = Packet::udp(e.router, e.client, e.cport, 53).payload_len(30);
                std::iter::once(e.router(q))
                    .chain((0..n).map(|i| {
                        let a = Packet::udp(e.client, e.router, 53, e.cport);
                        e.client(a.payload_len(60 + i))
                    }))
                    .collect()
            }
            6 => {
                let dport = [69, 5000, 53][usize::from(end % 3)];
                let p = Packet::udp(e.client, e.router, e.cport, dport);
                vec![e.client(p); n]
            }
            _ => vec![e.client(Packet::other(e.client, e.router, 47)); n],
        })
}

/// The packets of `convs` interleaved, each conversation's in its order:
/// `choices` picks the conversation the next packet comes from.
fn interleave(mut convs: Vec<Vec<Arrival>>, choices: &[u8]) -> Vec<Arrival> {
    for c in &mut convs {
        c.reverse();
    }
    let mut out = Vec::new();
    for k in 0.. {
        let live: Vec<usize> = (0..convs.len()).filter(|&i| !convs[i].is_empty()).collect();
        if live.is_empty() {
            break;
        }
        let pick = live[usize::from(choices.get(k).copied().unwrap_or(0)) % live.len()];
        out.extend(convs[pick].pop());
    }
    out
}

/// The test router with a conntrack table of 2 flows (`small`) or the
/// usual 1024, with or without TCP pick-up, and with `notrack` some
/// traffic to the router untracked: raw marks GRE (by protocol alone) and
/// UDP from port 53 (DNS answers, by port) NOTRACK, and input rule 5
/// accepts untracked packets. (Which flow early drop evicts from a full
/// table depends on each table's random hash seed: two pipelines agree on
/// it only when no flow may be evicted.)
fn local_tables(small: bool, loose: bool, notrack: bool) -> Arc<Tables> {
    static TABLES: [OnceLock<Arc<Tables>>; 8] = [const { OnceLock::new() }; 8];
    let i = usize::from(small) * 4 + usize::from(loose) * 2 + usize::from(notrack);
    TABLES[i]
        .get_or_init(|| {
            pipeline_with(|s| local_spec(s, small, loose, notrack))
                .tables()
                .clone()
        })
        .clone()
}

/// The changes of [`local_tables`] to the test router's spec.
fn local_spec(s: &mut TablesSpec, small: bool, loose: bool, notrack: bool) {
    if small {
        s.conntrack.max_entries = 2;
    }
    s.conntrack.tcp_loose = loose;
    if notrack {
        let gre = Match {
            protocol: Some(47),
            ..Match::default()
        };
        let dns = Match {
            protocol: Some(ipv4::PROTO_UDP),
            source_port: Some([(53, 53)].into_iter().collect()),
            ..Match::default()
        };
        s.raw_prerouting.splice(
            0..0,
            [raw(gre, RawAction::NoTrack), raw(dns, RawAction::NoTrack)],
        );
        let untracked = Match {
            state: Some(CtState::Untracked.bit()),
            ..Match::default()
        };
        s.filter_input
            .rules
            .push(forward(untracked, FilterAction::Accept));
    }
}

/// The same flows in both connection tables: count, table counters and
/// each flow (state, timeout, packets and bytes each way).
fn same_conntrack(a: &Pipeline, b: &Pipeline) -> Result<(), TestCaseError> {
    let flows = |p: &Pipeline| {
        let mut f: Vec<FlowView> = p.conntrack().flows(p.now()).collect();
        f.sort_by_key(|v| {
            let k6 = v.key6.map(|k| (k.src, k.dst));
            (
                k6,
                v.key.src,
                v.key.dst,
                v.key.sport,
                v.key.dport,
                v.key.proto,
            )
        });
        f
    };
    prop_assert_eq!(a.conntrack().len(), b.conntrack().len());
    prop_assert_eq!(a.conntrack().counters(), b.conntrack().counters());
    prop_assert_eq!(flows(a), flows(b));
    Ok(())
}

/// Pipelines over `t` that know `LAN_HOST`'s MAC.
fn both_over(t: &Arc<Tables>) -> (Pipeline, Pipeline) {
    let (mut a, mut b) = (Pipeline::new(t.clone()), Pipeline::new(t.clone()));
    for p in [&mut a, &mut b] {
        p.learn_neighbour(LAN_HOST, PEER_MAC, LAN);
    }
    (a, b)
}

/// `packets` cut into bursts of the sizes in `cuts` (the rest in a last
/// one), the clock moved by each cut's seconds before its burst: each
/// through `process_burst` on `a` and one by one on `b`, the same
/// verdicts, bytes, counters and connection table after each.
fn same_bursts(
    a: &mut Pipeline,
    b: &mut Pipeline,
    packets: &[Arrival],
    cuts: &[(usize, u32)],
) -> Result<(), TestCaseError> {
    let mut rest = packets;
    let mut cuts = cuts.iter().copied();
    while !rest.is_empty() {
        let (n, secs) = cuts.next().unwrap_or((rest.len(), 0));
        let (burst, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        let now = a.now() + secs;
        a.set_now(now);
        b.set_now(now);
        same_burst(a, b, burst)?;
        same_conntrack(a, b)?;
    }
    Ok(())
}

/// The conversations interleaved by `choices`, with the `noise` packets
/// put in at their places, cut into bursts at `cuts`, through the fast
/// and the general path over `t`: the same decisions, counters and
/// connection table ([`same_bursts`]).
fn mixed_bursts(
    t: &Arc<Tables>,
    convs: Vec<Vec<Arrival>>,
    choices: &[u8],
    noise: Vec<(prop::sample::Index, Arrival)>,
    cuts: &[(usize, u32)],
) -> Result<(), TestCaseError> {
    let mut packets = interleave(convs, choices);
    for (at, p) in noise {
        packets.insert(at.index(packets.len() + 1), p);
    }
    let (mut a, mut b) = both_over(t);
    same_bursts(&mut a, &mut b, &packets, cuts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn bursts_to_the_router_decide_count_and_track_as_the_general_path(
        loose in prop::bool::weighted(0.75),
        notrack in any::<bool>(),
        convs in prop::collection::vec(conversation(), 1..8),
        choices in prop::collection::vec(any::<u8>(), 0..100),
        noise in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![
                3 => transit_arrival(),
                2 => to_router(),
                1 => lan_arp(),
            ]),
            0..10,
        ),
        // Timeouts: ICMP and UDP 30 s, SYN_SENT and TIME_WAIT 120 s.
        cuts in prop::collection::vec(
            (1usize..24, prop::sample::select(vec![0u32, 0, 0, 1, 11, 31, 121])),
            1..8,
        ),
    ) {
        mixed_bursts(&local_tables(false, loose, notrack), convs, &choices, noise, &cuts)?;
    }
}

#[test]
fn ssh_lives_and_closes_across_bursts_as_on_the_general_path() {
    use tcp::{ACK, FIN, PSH, SYN};
    let (mut a, mut b) = both_over(&local_tables(false, true, false));
    let e = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40000);
    let flow = |p: &Pipeline| {
        let f: Vec<FlowView> = p.conntrack().flows(p.now()).collect();
        assert_eq!(f.len(), 1, "{f:?}");
        f[0]
    };
    // Each burst a second after the last, the last when TIME_WAIT (120 s)
    // is over: a SYN then opens the flow anew.
    let bursts: [(Vec<Arrival>, u32, TcpState); 4] = [
        (vec![e.tcp_c(22, SYN, 0)], 1, TcpState::SynSent),
        (
            vec![
                e.tcp_r(22, SYN | ACK),
                e.tcp_c(22, ACK, 0),
                e.tcp_c(22, ACK | PSH, 100),
                e.tcp_c(22, ACK | PSH, 200),
            ],
            1,
            TcpState::Established,
        ),
        (
            vec![
                e.tcp_c(22, FIN | ACK, 0),
                e.tcp_r(22, ACK),
                e.tcp_r(22, FIN | ACK),
                e.tcp_c(22, ACK, 0),
            ],
            1,
            TcpState::TimeWait,
        ),
        (vec![e.tcp_c(22, SYN, 0)], 121, TcpState::SynSent),
    ];
    for (i, (burst, secs, state)) in bursts.iter().enumerate() {
        same_bursts(&mut a, &mut b, burst, &[(burst.len(), *secs)]).unwrap();
        assert_eq!(flow(&a).tcp_state, Some(*state), "burst {i}");
    }
    assert_eq!(flow(&a).packets, [1, 0], "a new flow");
    assert_eq!(a.conntrack().counters().expired, 1);
    let c = a.counters();
    let input = ChainId::Input as usize;
    // Two SYNs by the ssh rule, five established packets from the client.
    assert_eq!(c.filter_rules[input][IN_SSH].packets, 2);
    assert_eq!(c.filter_rules[input][IN_ESTABLISHED].packets, 5);
    assert_eq!(c.to_host, 7);
}

#[test]
fn a_run_of_delivered_packets_resumes_after_a_drop() {
    use tcp::{ACK, PSH, SYN};
    let (mut a, mut b) = both_over(&local_tables(false, true, false));
    let e = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40000);
    let open = [
        e.tcp_c(22, SYN, 0),
        e.tcp_r(22, SYN | ACK),
        e.tcp_c(22, ACK, 0),
    ];
    same_burst(&mut a, &mut b, &open).unwrap();
    let data = |n: usize| e.tcp_c(22, ACK | PSH, 10 * n);
    // Dropped by the input policy; rejected with a RST; a new ping flow
    // (counted at once); transit between two runs.
    let udp = e.client(Packet::udp(OUTSIDE, WAN_ADDR, 40000, 5000));
    let telnet = e.tcp_c(23, SYN, 0);
    let ping = e.client(Packet::ping(OUTSIDE, WAN_ADDR, 7));
    let transit = (WAN, Packet::udp(OUTSIDE, INSIDE, 1000, 53).on(WAN).frame());
    let burst = vec![
        data(1),
        data(2),
        data(3),
        udp.clone(),
        data(4),
        data(5),
        telnet,
        data(6),
        ping,
        data(7),
        transit,
        data(8),
        data(9),
        udp,
    ];
    let before = a.counters().clone();
    same_burst(&mut a, &mut b, &burst).unwrap();
    same_conntrack(&a, &b).unwrap();
    let c = a.counters();
    let input = ChainId::Input as usize;
    let est = &c.filter_rules[input][IN_ESTABLISHED];
    let est0 = &before.filter_rules[input][IN_ESTABLISHED];
    assert_eq!(est.packets - est0.packets, 9);
    let ip_bytes: u64 = (1..=9).map(|n| 40 + 10 * n).sum();
    assert_eq!(est.bytes - est0.bytes, ip_bytes);
    // Nine data segments and the ping.
    assert_eq!(c.to_host - before.to_host, 10);
    assert_eq!(
        c.filter_policy[input].packets - before.filter_policy[input].packets,
        2
    );
    assert_eq!(c.tcp_resets_sent - before.tcp_resets_sent, 1);
    assert_eq!(c.forwarded - before.forwarded, 1);
    assert_eq!(c.rx_of(WAN).packets - before.rx_of(WAN).packets, 14);
}

#[test]
fn a_new_flow_to_a_full_table_of_assured_flows_is_dropped_as_on_the_general_path() {
    use tcp::{ACK, SYN};
    let (mut a, mut b) = both_over(&local_tables(true, true, false));
    let ssh = |cport| Ends::new(OUTSIDE, WAN, WAN_ADDR, cport);
    // Two assured ssh flows fill the table: nothing may be evicted.
    let mut burst = Vec::new();
    for e in [ssh(40000), ssh(40001)] {
        burst.extend([
            e.tcp_c(22, SYN, 0),
            e.tcp_r(22, SYN | ACK),
            e.tcp_c(22, ACK, 0),
        ]);
    }
    // A third SYN and a ping find no room; the flows carry on.
    let e = ssh(40002);
    burst.extend([
        e.tcp_c(22, SYN, 0),
        ssh(40000).tcp_c(22, ACK, 20),
        e.client(Packet::ping(OUTSIDE, WAN_ADDR, 9)),
        ssh(40001).tcp_c(22, ACK, 30),
    ]);
    same_burst(&mut a, &mut b, &burst).unwrap();
    same_conntrack(&a, &b).unwrap();
    let c = a.counters();
    assert_eq!(c.drops[DropReason::ConntrackTableFull as usize], 2);
    assert_eq!(a.conntrack().counters().table_full, 2);
    assert_eq!(a.conntrack().len(), 2);
    assert_eq!(c.to_host, 6);
}

#[test]
fn raw_and_input_rules_at_the_code_limit_are_counted_on_their_rules() {
    // 65,535 is the code of no rule: rule 65,534 is the last a run names,
    // rule 65,535 must be counted out of line, on itself, not the policy.
    let udp_dport = |p: u16, action| {
        forward(
            Match {
                protocol: Some(ipv4::PROTO_UDP),
                destination_port: Some([(p, p)].into_iter().collect()),
                ..Match::default()
            },
            action,
        )
    };
    for last in [65_534usize, 65_535] {
        let t = pipeline_with(|s| {
            // Only a port condition: quick to build tables for.
            let filler = forward(
                Match {
                    destination_port: Some([(9, 9)].into_iter().collect()),
                    ..Match::default()
                },
                FilterAction::Drop,
            );
            let raw_filler = raw(filler.matches.clone(), RawAction::NoTrack);
            s.raw_prerouting
                .splice(0..0, std::iter::repeat_n(raw_filler, last));
            s.filter_input.rules = vec![filler; last];
            s.filter_input
                .rules
                .push(udp_dport(5000, FilterAction::Accept));
        })
        .tables()
        .clone();
        let (mut a, mut b) = both_over(&t);
        let e = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40000);
        let p = e.client(Packet::udp(OUTSIDE, WAN_ADDR, 40000, 5000));
        // A new flow, then two packets of it (NEW until the router answers).
        same_burst(&mut a, &mut b, &[p.clone(), p.clone(), p]).unwrap();
        same_conntrack(&a, &b).unwrap();
        for (path, q) in [("general", &b), ("burst", &a)] {
            let c = q.counters();
            let input = ChainId::Input as usize;
            assert_eq!(c.raw_rules[0][last].packets, 3, "{path} path, {last}");
            assert_eq!(
                c.filter_rules[input][last].packets, 3,
                "{path} path, {last}"
            );
            assert_eq!(c.filter_policy[input].packets, 0, "{path} path, {last}");
            assert_eq!(c.to_host, 3, "{path} path, {last}");
        }
    }
}

/// The test router with port 2222 open to NEW TCP and rejected once
/// established (input rules 0 and 1, before the others).
fn reject_established_tables() -> Arc<Tables> {
    static T: OnceLock<Arc<Tables>> = OnceLock::new();
    T.get_or_init(|| {
        pipeline_with(|s| {
            let m = |state: CtState| Match {
                protocol: Some(ipv4::PROTO_TCP),
                destination_port: Some([(2222, 2222)].into_iter().collect()),
                state: Some(state.bit()),
                ..Match::default()
            };
            s.filter_input.rules.splice(
                0..0,
                [
                    forward(m(CtState::Established), FilterAction::Reject),
                    forward(m(CtState::New), FilterAction::Accept),
                ],
            );
        })
        .tables()
        .clone()
    })
    .clone()
}

#[test]
fn netfilters_conntrack_rules_hold_on_the_path_to_the_router() {
    // Issue 18, on the fast path for packets to the router (each packet in
    // its own burst, and all in one): reopening after RST and FIN, the
    // server's SYN in TIME_WAIT, a RST before any reply, ICMP queries by
    // type, and a reject's RST closing the flow.
    use tcp::{ACK, FIN, RST, SYN};
    let e = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40100);
    let f = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40101);
    let g = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40102);
    let h = Ends::new(OUTSIDE, WAN, WAN_ADDR, 40103);
    let hs = |e: &Ends, port: u16| {
        vec![
            e.tcp_c(port, SYN, 0),
            e.tcp_r(port, SYN | ACK),
            e.tcp_c(port, ACK, 0),
        ]
    };
    type Step = (Vec<Arrival>, Vec<((u16, u16), Option<TcpState>)>);
    let steps: Vec<Step> = vec![
        // Client RST, then its SYN: reopened.
        (hs(&e, 22), vec![((40100, 22), Some(TcpState::Established))]),
        (
            vec![e.tcp_c(22, RST, 0)],
            vec![((40100, 22), Some(TcpState::Close))],
        ),
        (
            vec![e.tcp_c(22, SYN, 0)],
            vec![((40100, 22), Some(TcpState::SynSent))],
        ),
        // Router RST, then the client's SYN: ignored, the flow in CLOSE.
        (hs(&f, 22), vec![((40101, 22), Some(TcpState::Established))]),
        (
            vec![f.tcp_r(22, RST | ACK)],
            vec![((40101, 22), Some(TcpState::Close))],
        ),
        (
            vec![f.tcp_c(22, SYN, 0)],
            vec![((40101, 22), Some(TcpState::Close))],
        ),
        // A FIN close, then the router's SYN (the server's) in TIME_WAIT:
        // the entry goes, the SYN is a new flow from the router.
        (
            [
                hs(&g, 22),
                vec![
                    g.tcp_c(22, FIN | ACK, 0),
                    g.tcp_r(22, ACK),
                    g.tcp_r(22, FIN | ACK),
                    g.tcp_c(22, ACK, 0),
                ],
            ]
            .concat(),
            vec![((40102, 22), Some(TcpState::TimeWait))],
        ),
        (
            vec![g.tcp_r(22, SYN)],
            vec![((22, 40102), Some(TcpState::SynSent))],
        ),
        // A RST answering a SYN: no entry left.
        (
            vec![h.tcp_c(22, SYN, 0), h.tcp_r(22, RST | ACK)],
            vec![((40103, 22), None)],
        ),
        // A reject's RST: the flow moves to CLOSE.
        (hs(&e, 2222), vec![((40100, 2222), Some(TcpState::Close))]),
    ];
    for split in [false, true] {
        let (mut a, mut b) = both_over(&reject_established_tables());
        for (i, (packets, want)) in steps.iter().enumerate() {
            let cuts: Vec<(usize, u32)> = if split {
                packets.iter().map(|_| (1, 0)).collect()
            } else {
                vec![(packets.len(), 0)]
            };
            same_bursts(&mut a, &mut b, packets, &cuts).unwrap();
            let flows: Vec<FlowView> = a.conntrack().flows(a.now()).collect();
            for ((sport, dport), state) in want {
                let got = flows
                    .iter()
                    .find(|v| (v.key.sport, v.key.dport) == (*sport, *dport))
                    .map(|v| v.tcp_state.unwrap());
                assert_eq!(got, *state, "step {i} split {split}: {flows:?}");
            }
        }
    }

    // ICMP queries by type: the router's echo request with the id of one
    // it received is a second flow, and its reply is established.
    let (mut a, mut b) = both_over(&local_tables(false, true, false));
    let id = 77u16;
    let seq_id = u32::from(id) << 16 | 1;
    let pings = vec![
        e.client(Packet::ping(e.client, e.router, id)),
        e.router(Packet::ping(e.router, e.client, id)),
        e.client(Packet::icmp(
            e.client,
            e.router,
            icmp::ECHO_REPLY,
            0,
            seq_id,
        )),
        e.router(Packet::icmp(
            e.router,
            e.client,
            icmp::ECHO_REPLY,
            0,
            seq_id,
        )),
    ];
    same_bursts(&mut a, &mut b, &pings, &[(1, 0), (1, 0), (1, 0), (1, 0)]).unwrap();
    assert_eq!(a.conntrack().len(), 2);
    let c = a.counters();
    assert_eq!(
        c.filter_rules[ChainId::Input as usize][IN_ESTABLISHED].packets,
        1
    );
    assert_eq!(c.to_host, 2, "the request and the reply from the client");
}

/// IPv6 clients of the router and the port each arrives on; the lan host
/// is on-link (its replies wait for NDP), the others behind the gateways.
const CLIENTS6: [(u128, PortId); 3] = [
    (OUTSIDE6, WAN),
    (a6([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 9]), WAN),
    (LAN6_HOST, LAN),
];

/// [`Ends`] over IPv6: a client and one of the router's global addresses.
#[derive(Clone, Copy, Debug)]
struct Ends6 {
    client: u128,
    port: PortId,
    router: u128,
    cport: u16,
    /// The client's packets: hop limit and Ethernet padding.
    hop: u8,
    pad: usize,
}

impl Ends6 {
    fn new(client: u128, port: PortId, router: u128, cport: u16) -> Ends6 {
        Ends6 {
            client,
            port,
            router,
            cport,
            hop: 64,
            pad: 0,
        }
    }

    /// `p` from the client, arriving on its port.
    fn client(&self, p: Packet6) -> Arrival {
        let mut p = p.on(self.port).hop_limit(self.hop);
        p.padding = self.pad;
        (self.port, p.frame())
    }

    /// `p` from the router's host stack, on the host path.
    fn router(&self, mut p: Packet6) -> Arrival {
        p.src_mac = Mac::ZERO;
        (PortId::HOST, p.dst_mac(Mac::ZERO).frame())
    }
}

impl TcpEnds for Ends6 {
    fn tcp_c(&self, dport: u16, flags: u8, len: usize) -> Arrival {
        let p = Packet6::tcp(self.client, self.router, self.cport, dport, flags);
        self.client(p.payload_len(len))
    }

    fn tcp_r(&self, sport: u16, flags: u8) -> Arrival {
        self.router(Packet6::tcp(
            self.router,
            self.client,
            sport,
            self.cport,
            flags,
        ))
    }
}

fn ends6() -> impl Strategy<Value = Ends6> {
    (
        0usize..3,
        any::<bool>(),
        0u16..3,
        prop::sample::select(vec![64u8, 64, 64, 1, 0]),
        prop::sample::select(vec![0usize, 0, 0, 6, 30]),
    )
        .prop_map(|(c, wan, p, hop, pad)| {
            let router = if wan { WAN6 } else { LAN6 };
            Ends6 {
                hop,
                pad,
                ..Ends6::new(CLIENTS6[c].0, CLIENTS6[c].1, router, 40000 + p)
            }
        })
}

/// [`conversation`] over IPv6: TCP to ssh (accepted), telnet (rejected
/// with a RST), 8080 (accepted from 2001:db8:ffff::/48 only, an address
/// rule) or 80 (the policy drops it), in order or with any flags; pings
/// with their replies; UDP the router started (answered, or an ICMPv6
/// error about it), UDP to tftp (rejected), 7777 (NOTRACK from the lan
/// with `notrack`, an address rule in raw) and other ports; GRE.
fn conversation6() -> impl Strategy<Value = Vec<Arrival>> {
    (
        ends6(),
        0u8..10,
        prop_oneof![3 => Just(22u16), 1 => Just(23), 1 => Just(80), 1 => Just(8080)],
        1usize..5,
        1usize..16,
        0u8..4,
        prop::collection::vec((any::<u8>(), any::<bool>()), 1..6),
    )
        .prop_map(|(e, kind, dport, n, upto, end, flags)| match kind {
            0..=2 => tcp_script(e, dport, n, upto, end),
            8 => flags
                .into_iter()
                .map(|(f, from_router)| {
                    if from_router {
                        e.tcp_r(dport, f)
                    } else {
                        e.tcp_c(dport, f, usize::from(f % 8))
                    }
                })
                .collect(),
            9 => {
                // The client answers the router's UDP with port unreachable.
                let q = Packet6::udp(e.router, e.client, e.cport, 5353).payload_len(8);
                let quote = q.ip_bytes();
                let err = Packet6::icmp(e.client, e.router, 1, 4, 0).payload(&quote);
                (0..n)
                    .flat_map(|_| [e.router(q.clone()), e.client(err.clone())])
                    .collect()
            }
            3 => (0..n)
                .flat_map(|_| {
                    let id = u32::from(e.cport) << 16 | 1;
                    let reply = Packet6::icmp(e.router, e.client, icmpv6::ECHO_REPLY, 0, id);
                    [
                        e.client(Packet6::ping(e.client, e.router, e.cport)),
                        e.router(reply),
                    ]
                })
                .collect(),
            5 => {
                // The router asks (DNS), the client answers n times.
                let q = Packet6::udp(e.router, e.client, e.cport, 53).payload_len(30);
                std::iter::once(e.router(q))
                    .chain((0..n).map(|i| {
                        let a = Packet6::udp(e.client, e.router, 53, e.cport);
                        e.client(a.payload_len(60 + i))
                    }))
                    .collect()
            }
            6 | 7 => {
                let dport = [69, 5000, 53, 7777][usize::from(end)];
                let p = Packet6::udp(e.client, e.router, e.cport, dport);
                vec![e.client(p); n]
            }
            _ => vec![e.client(Packet6::other(e.client, e.router, 47)); n],
        })
}

/// The test router as [`local_tables`], with IPv6 address rules: input
/// accepts NEW TCP to 8080 from 2001:db8:ffff::/48, and with `notrack`
/// raw marks UDP to 7777 from the lan's /64 NOTRACK.
fn local6_tables(small: bool, loose: bool, notrack: bool) -> Arc<Tables> {
    use dataplane::addr::Ipv6Prefix;
    static TABLES: [OnceLock<Arc<Tables>>; 8] = [const { OnceLock::new() }; 8];
    let i = usize::from(small) * 4 + usize::from(loose) * 2 + usize::from(notrack);
    let p6 = |a, len| Ipv6Prefix::new(a, len).expect("prefix length");
    TABLES[i]
        .get_or_init(|| {
            pipeline_with(|s| {
                local_spec(s, small, loose, notrack);
                let from_outside = Match {
                    protocol: Some(ipv4::PROTO_TCP),
                    destination_port: Some([(8080, 8080)].into_iter().collect()),
                    source6: Some([p6(OUTSIDE6, 48)].into_iter().collect()),
                    state: Some(CtState::New.bit()),
                    ..Match::default()
                };
                s.filter_input
                    .rules
                    .push(forward(from_outside, FilterAction::Accept));
                if notrack {
                    let lan_7777 = Match {
                        protocol: Some(ipv4::PROTO_UDP),
                        destination_port: Some([(7777, 7777)].into_iter().collect()),
                        source6: Some([p6(LAN6, 64)].into_iter().collect()),
                        ..Match::default()
                    };
                    s.raw_prerouting
                        .insert(0, raw(lan_7777, RawAction::NoTrack));
                }
            })
            .tables()
            .clone()
        })
        .clone()
}

/// IPv6 packets for the router, one-offs: TCP with any flags to ssh,
/// telnet and 8080, UDP to tftp and another port, pings, from global and
/// link-local sources, and some damaged.
fn to_router6() -> impl Strategy<Value = Arrival> {
    (
        prop_oneof![Just(WAN), Just(LAN)],
        prop_oneof![Just(WAN6), Just(LAN6)],
        prop_oneof![
            Just(OUTSIDE6),
            Just(LAN6_HOST),
            Just(PEER6_LL),
            any::<u128>()
        ],
        0u8..5,
        any::<u8>(),
        1024u16..1100,
        prop::option::of((14usize..80, any::<u8>())),
    )
        .prop_map(|(port, dst, src, kind, flags, sport, damage)| {
            let p = match kind {
                0 => Packet6::ping(src, dst, sport),
                1 => Packet6::tcp(src, dst, sport, 22, flags),
                2 => Packet6::tcp(src, dst, sport, [23, 8080][usize::from(flags & 1)], flags),
                3 => Packet6::udp(src, dst, sport, 69),
                _ => Packet6::udp(src, dst, sport, 5000),
            };
            let mut f = p.on(port).frame();
            if let Some((i, b)) = damage {
                if i < f.len() {
                    f[i] ^= b;
                }
            }
            (port, f)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn ipv6_bursts_to_the_router_decide_count_and_track_as_the_general_path(
        loose in prop::bool::weighted(0.75),
        notrack in any::<bool>(),
        convs in prop::collection::vec(conversation6(), 1..8),
        choices in prop::collection::vec(any::<u8>(), 0..100),
        noise in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![
                2 => transit6(),
                3 => to_router6(),
                1 => to_router(),
            ]),
            0..10,
        ),
        // Timeouts: ICMP and UDP 30 s, SYN_SENT and TIME_WAIT 120 s.
        cuts in prop::collection::vec(
            (1usize..24, prop::sample::select(vec![0u32, 0, 0, 1, 11, 31, 121])),
            1..8,
        ),
    ) {
        mixed_bursts(&local6_tables(false, loose, notrack), convs, &choices, noise, &cuts)?;
    }
}

#[test]
fn established_ipv6_to_the_router_is_counted_in_runs_as_on_the_general_path() {
    use tcp::{ACK, PSH, SYN};
    let (mut a, mut b) = both_over(&local6_tables(false, true, false));
    let e = Ends6::new(OUTSIDE6, WAN, WAN6, 40000);
    let open = [
        e.tcp_c(22, SYN, 0),
        e.tcp_r(22, SYN | ACK),
        e.tcp_c(22, ACK, 0),
    ];
    same_burst(&mut a, &mut b, &open).unwrap();
    let data = |n: usize| e.tcp_c(22, ACK | PSH, 10 * n);
    // Dropped by the input policy, rejected with a RST, a ping (the
    // general path) and IPv6 transit between the runs.
    let udp = e.client(Packet6::udp(OUTSIDE6, WAN6, 40000, 5000));
    let telnet = e.tcp_c(23, SYN, 0);
    let ping = e.client(Packet6::ping(OUTSIDE6, WAN6, 7));
    let transit = (WAN, Packet6::udp(OUTSIDE6, INSIDE6, 1000, 53).frame());
    let burst = vec![
        data(1),
        data(2),
        data(3),
        udp.clone(),
        data(4),
        telnet,
        data(5),
        ping,
        data(6),
        transit,
        data(7),
        data(8),
        udp,
    ];
    let before = a.counters().clone();
    same_burst(&mut a, &mut b, &burst).unwrap();
    same_conntrack(&a, &b).unwrap();
    let c = a.counters();
    let input = ChainId::Input as usize;
    let est = &c.filter_rules[input][IN_ESTABLISHED];
    let est0 = &before.filter_rules[input][IN_ESTABLISHED];
    assert_eq!(est.packets - est0.packets, 8);
    let ip_bytes: u64 = (1..=8).map(|n| 60 + 10 * n).sum();
    assert_eq!(est.bytes - est0.bytes, ip_bytes);
    // Eight data segments and the ping.
    assert_eq!(c.to_host - before.to_host, 9);
    assert_eq!(c.ipv6_to_host - before.ipv6_to_host, 9);
    assert_eq!(c.ipv6_rx - before.ipv6_rx, 13);
    assert_eq!(c.ipv6_dropped - before.ipv6_dropped, 3);
    assert_eq!(c.tcp_resets_sent - before.tcp_resets_sent, 1);
    assert_eq!(c.ipv6_forwarded - before.ipv6_forwarded, 1);
    assert_eq!(c.rx_of(WAN).packets - before.rx_of(WAN).packets, 13);
}

#[test]
fn a_new_ipv6_flow_to_a_full_table_of_assured_flows_is_dropped_as_on_the_general_path() {
    use tcp::{ACK, SYN};
    let (mut a, mut b) = both_over(&local6_tables(true, true, false));
    let ssh = |cport| Ends6::new(OUTSIDE6, WAN, WAN6, cport);
    // Two assured ssh flows fill the table: nothing may be evicted.
    let mut burst = Vec::new();
    for e in [ssh(40000), ssh(40001)] {
        burst.extend([
            e.tcp_c(22, SYN, 0),
            e.tcp_r(22, SYN | ACK),
            e.tcp_c(22, ACK, 0),
        ]);
    }
    // A third SYN and a UDP flow find no room; the flows carry on.
    let e = ssh(40002);
    burst.extend([
        e.tcp_c(22, SYN, 0),
        ssh(40000).tcp_c(22, ACK, 20),
        e.client(Packet6::udp(OUTSIDE6, WAN6, 40002, 5000)),
        ssh(40001).tcp_c(22, ACK, 30),
    ]);
    same_burst(&mut a, &mut b, &burst).unwrap();
    same_conntrack(&a, &b).unwrap();
    let c = a.counters();
    // The UDP packet is dropped by the input policy before it is confirmed.
    assert_eq!(c.drops[DropReason::ConntrackTableFull as usize], 1);
    assert_eq!(a.conntrack().counters().table_full, 1);
    assert_eq!(a.conntrack().len(), 2);
    assert_eq!(c.to_host, 6);
    assert_eq!(c.ipv6_to_host, 6);
}
