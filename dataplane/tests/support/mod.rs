//! Shared helpers for the pipeline integration tests (and the fuzz target,
//! which includes this file by path): the test router's tables, a frame
//! builder with correct checksums and knobs for every field a malformed
//! packet gets wrong, and a runner that returns the verdict, the frame as it
//! leaves and the stage trace.
//!
//! The test router:
//! - `wan` (port 0) 198.18.0.1/24, MAC 02:00:5e:10:00:01; `lan` (port 1)
//!   198.19.0.1/24, MAC 02:00:5e:10:00:02; MTU 1500;
//! - default via 198.18.0.2, 203.0.113.0/24 via 198.19.0.2, 192.0.2.0/25
//!   unreachable, 192.0.2.128/25 blackhole; static neighbours for both
//!   gateways;
//! - raw prerouting: `destination: local -> accept`, then `notrack`;
//! - filter input (policy drop): [0] established/related accept, [1] icmp
//!   echo-request accept, [2] tcp dport 22 state new accept, [3] tcp dport
//!   23 reject, [4] udp dport 69 reject;
//! - filter forward (policy accept): [0] tcp dport 2323 drop;
//! - filter output: accept.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod v6;
pub use v6::*;

use std::sync::Arc;

use dataplane::addr::{IfAddr, Ipv4Prefix, Mac};
use dataplane::conntrack::{ConntrackConfig, CtState};
use dataplane::drop::DropReason;
use dataplane::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use dataplane::pipeline::Pipeline;
use dataplane::rules::{
    AddrMatch, Chain, ChainId, FilterAction, FilterRule, Match, RawAction, RawRule,
};
use dataplane::tables::{Interface, NextHop, RouteSpec, StaticNeighbour, Tables, TablesSpec};
use dataplane::trace::Event;
use dataplane::wire::{arp, checksum, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp};

pub const WAN: PortId = PortId(0);
pub const LAN: PortId = PortId(1);
/// A port index with no interface behind it.
pub const NO_SUCH_PORT: PortId = PortId(2);

pub const WAN_MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
pub const LAN_MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]);
/// The upstream gateway 198.18.0.2.
pub const WAN_GW_MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x01, 0x02]);
/// The downstream gateway 198.19.0.2.
pub const LAN_GW_MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x02, 0x02]);
/// Some host on either link that sent the frame.
pub const PEER_MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x0f, 0x07]);

pub const fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

pub const WAN_ADDR: u32 = ip(198, 18, 0, 1);
pub const WAN_GW: u32 = ip(198, 18, 0, 2);
pub const LAN_ADDR: u32 = ip(198, 19, 0, 1);
pub const LAN_GW: u32 = ip(198, 19, 0, 2);
/// A host behind the downstream gateway.
pub const INSIDE: u32 = ip(203, 0, 113, 9);
/// A host on the Internet (reached through the default route).
pub const OUTSIDE: u32 = ip(198, 51, 100, 7);
/// A host on the lan link (connected, no neighbour entry).
pub const LAN_HOST: u32 = ip(198, 19, 0, 5);
/// Covered by an `unreachable` route.
pub const UNREACHABLE: u32 = ip(192, 0, 2, 5);
/// Covered by a `blackhole` route.
pub const BLACKHOLED: u32 = ip(192, 0, 2, 200);

pub const MTU: u16 = 1500;
/// Frame buffers are this big: room for any reply built in place.
pub const BUF_LEN: usize = 2048;

/// Filter input rule indexes.
pub const IN_ESTABLISHED: usize = 0;
pub const IN_ECHO: usize = 1;
pub const IN_SSH: usize = 2;
pub const IN_REJECT_TELNET: usize = 3;
pub const IN_REJECT_TFTP: usize = 4;
/// Filter forward rule index.
pub const FWD_DROP_2323: usize = 0;

fn prefix(a: u32, len: u8) -> Ipv4Prefix {
    Ipv4Prefix::new(a, len).expect("prefix length")
}

fn ifc(name: &str, mac: Mac, addr: u32) -> Interface {
    Interface {
        name: name.into(),
        device: format!("r-{name}"),
        mac,
        addresses: vec![IfAddr {
            addr,
            net: prefix(addr, 24),
        }],
        addresses6: Vec::new(),
        mtu: MTU,
        ra: None,
    }
}

fn rule(matches: Match, action: FilterAction) -> FilterRule {
    FilterRule {
        matches,
        action,
        comment: None,
    }
}

fn tcp_dport(p: u16) -> Match {
    Match {
        protocol: Some(ipv4::PROTO_TCP),
        destination_port: Some([(p, p)].into_iter().collect()),
        ..Match::default()
    }
}

/// The test router's configuration, to adjust before [`pipeline_with`].
pub fn spec() -> TablesSpec {
    let mut s = TablesSpec {
        interfaces: vec![ifc("wan", WAN_MAC, WAN_ADDR), ifc("lan", LAN_MAC, LAN_ADDR)],
        routes: vec![
            RouteSpec::new(
                Ipv4Prefix::DEFAULT,
                NextHop::Via {
                    port: WAN,
                    gateway: WAN_GW,
                },
            ),
            RouteSpec::new(
                prefix(ip(203, 0, 113, 0), 24),
                NextHop::Via {
                    port: LAN,
                    gateway: LAN_GW,
                },
            ),
            RouteSpec::new(prefix(ip(192, 0, 2, 0), 25), NextHop::Unreachable),
            RouteSpec::new(prefix(ip(192, 0, 2, 128), 25), NextHop::Blackhole),
        ],
        kernel_routes: Vec::new(),
        neighbours: vec![
            StaticNeighbour {
                addr: WAN_GW,
                mac: WAN_GW_MAC,
                port: WAN,
            },
            StaticNeighbour {
                addr: LAN_GW,
                mac: LAN_GW_MAC,
                port: LAN,
            },
        ],
        raw_prerouting: vec![
            RawRule {
                matches: Match {
                    destination: Some(AddrMatch::Local),
                    ..Match::default()
                },
                action: RawAction::Accept,
                comment: Some("track traffic to the router".into()),
            },
            RawRule {
                matches: Match::default(),
                action: RawAction::NoTrack,
                comment: Some("stateless transit".into()),
            },
        ],
        raw_output: Vec::new(),
        filter_input: Chain {
            policy: FilterAction::Drop,
            rules: vec![
                rule(
                    Match {
                        state: Some(CtState::Established.bit() | CtState::Related.bit()),
                        ..Match::default()
                    },
                    FilterAction::Accept,
                ),
                rule(
                    Match {
                        protocol: Some(ipv4::PROTO_ICMP),
                        icmp_type: Some(icmp::ECHO_REQUEST),
                        ..Match::default()
                    },
                    FilterAction::Accept,
                ),
                rule(
                    Match {
                        state: Some(CtState::New.bit()),
                        ..tcp_dport(22)
                    },
                    FilterAction::Accept,
                ),
                rule(tcp_dport(23), FilterAction::Reject),
                rule(
                    Match {
                        protocol: Some(ipv4::PROTO_UDP),
                        destination_port: Some([(69, 69)].into_iter().collect()),
                        ..Match::default()
                    },
                    FilterAction::Reject,
                ),
            ],
        },
        filter_forward: Chain {
            policy: FilterAction::Accept,
            rules: vec![rule(tcp_dport(2323), FilterAction::Drop)],
        },
        filter_output: Chain::default(),
        conntrack: ConntrackConfig {
            // Small: tests build many pipelines.
            max_entries: 1024,
            ..ConntrackConfig::default()
        },
        ip_options: Default::default(),
        icmp_errors: Default::default(),
        v6: Default::default(),
    };
    v6::add_v6(&mut s);
    s
}

/// The test router's tables.
pub fn tables() -> Arc<Tables> {
    Arc::new(Tables::build(spec()))
}

/// A pipeline over the test router's tables.
pub fn pipeline() -> Pipeline {
    Pipeline::new(tables())
}

/// A pipeline over the test router's tables, changed by `f` first.
pub fn pipeline_with(f: impl FnOnce(&mut TablesSpec)) -> Pipeline {
    let mut s = spec();
    f(&mut s);
    Pipeline::new(Arc::new(Tables::build(s)))
}

/// The transport part of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// Type, code and the rest-of-header word (echo id/seq, MTU, ...).
    Icmp {
        ty: u8,
        code: u8,
        rest: u32,
    },
    /// Another protocol: the payload is all there is.
    Other(u8),
}

impl L4 {
    pub fn proto(&self) -> u8 {
        match self {
            L4::Tcp { .. } => ipv4::PROTO_TCP,
            L4::Udp { .. } => ipv4::PROTO_UDP,
            L4::Icmp { .. } => ipv4::PROTO_ICMP,
            L4::Other(p) => *p,
        }
    }
}

/// An Ethernet + IPv4 packet description; [`Packet::frame`] writes it with
/// correct checksums, and the `bad_*`/`raw` knobs break what a test needs.
#[derive(Clone, Debug)]
pub struct Packet {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: u32,
    pub dst: u32,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub df: bool,
    pub mf: bool,
    /// Fragment offset in bytes (a multiple of 8). Non-zero: the IP payload
    /// is `payload` only, no L4 header.
    pub frag_offset: u16,
    /// IP options, padded to a multiple of 4 with EOL.
    pub options: Vec<u8>,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// Link-layer padding after the IP packet.
    pub padding: usize,
}

impl Packet {
    fn new(src: u32, dst: u32, l4: L4) -> Packet {
        Packet {
            dst_mac: WAN_MAC,
            src_mac: PEER_MAC,
            src,
            dst,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            df: false,
            mf: false,
            frag_offset: 0,
            options: Vec::new(),
            l4,
            payload: Vec::new(),
            padding: 0,
        }
    }

    pub fn tcp(src: u32, dst: u32, sport: u16, dport: u16, flags: u8) -> Packet {
        Packet::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
                seq: 0x0100_0000,
                ack: if flags & tcp::ACK != 0 {
                    0x0200_0000
                } else {
                    0
                },
            },
        )
    }

    pub fn udp(src: u32, dst: u32, sport: u16, dport: u16) -> Packet {
        Packet::new(src, dst, L4::Udp { sport, dport })
    }

    pub fn icmp(src: u32, dst: u32, ty: u8, code: u8, rest: u32) -> Packet {
        Packet::new(src, dst, L4::Icmp { ty, code, rest })
    }

    /// An echo request with identifier `id`, sequence 1.
    pub fn ping(src: u32, dst: u32, id: u16) -> Packet {
        Packet::icmp(src, dst, icmp::ECHO_REQUEST, 0, (u32::from(id) << 16) | 1)
    }

    pub fn other(src: u32, dst: u32, proto: u8) -> Packet {
        Packet::new(src, dst, L4::Other(proto))
    }

    /// Arriving on `port`: addressed to that port's MAC.
    pub fn on(mut self, port: PortId) -> Packet {
        self.dst_mac = if port == LAN { LAN_MAC } else { WAN_MAC };
        self
    }

    pub fn dst_mac(mut self, m: Mac) -> Packet {
        self.dst_mac = m;
        self
    }

    pub fn src_mac(mut self, m: Mac) -> Packet {
        self.src_mac = m;
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Packet {
        self.ttl = ttl;
        self
    }

    pub fn df(mut self) -> Packet {
        self.df = true;
        self
    }

    pub fn fragment(mut self, more: bool, offset: u16) -> Packet {
        self.mf = more;
        self.frag_offset = offset;
        self
    }

    pub fn options(mut self, opts: &[u8]) -> Packet {
        self.options = opts.to_vec();
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Packet {
        self.payload = p.to_vec();
        self
    }

    /// `n` bytes of a recognisable pattern as payload.
    pub fn payload_len(mut self, n: usize) -> Packet {
        self.payload = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        self
    }

    pub fn padding(mut self, n: usize) -> Packet {
        self.padding = n;
        self
    }

    /// IP header length in bytes.
    pub fn ihl(&self) -> usize {
        20 + self.options.len().div_ceil(4) * 4
    }

    /// The IP payload: the L4 header with its checksum, then the payload.
    fn l4_bytes(&self) -> Vec<u8> {
        if self.frag_offset != 0 {
            return self.payload.clone();
        }
        let mut b = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
            } => {
                let mut b = vec![0u8; tcp::HEADER_LEN];
                let mut s = tcp::Packet::new_unchecked(&mut b[..]);
                s.set_src_port(sport);
                s.set_dst_port(dport);
                s.set_seq_number(seq);
                s.set_ack_number(ack);
                s.set_header_len(tcp::HEADER_LEN);
                s.set_flags(flags);
                s.set_window(0xffff);
                b
            }
            L4::Udp { sport, dport } => {
                let mut b = vec![0u8; udp::HEADER_LEN];
                let mut d = udp::Packet::new_unchecked(&mut b[..]);
                d.set_src_port(sport);
                d.set_dst_port(dport);
                d.set_len((udp::HEADER_LEN + self.payload.len()) as u16);
                b
            }
            L4::Icmp { ty, code, rest } => {
                let mut b = vec![0u8; icmp::HEADER_LEN];
                let mut c = icmp::Packet::new_unchecked(&mut b[..]);
                c.set_msg_type(ty);
                c.set_code(code);
                c.set_rest_of_header(rest);
                b
            }
            L4::Other(_) => Vec::new(),
        };
        b.extend_from_slice(&self.payload);
        match self.l4 {
            L4::Tcp { .. } => {
                tcp::Packet::new_unchecked(&mut b[..]).fill_checksum(self.src, self.dst)
            }
            L4::Udp { .. } => {
                udp::Packet::new_unchecked(&mut b[..]).fill_checksum(self.src, self.dst)
            }
            L4::Icmp { .. } => icmp::Packet::new_unchecked(&mut b[..]).fill_checksum(),
            L4::Other(_) => {}
        }
        b
    }

    /// The IPv4 packet.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let ihl = self.ihl();
        let l4 = self.l4_bytes();
        let mut b = vec![0u8; ihl];
        b[20..20 + self.options.len()].copy_from_slice(&self.options);
        b.extend_from_slice(&l4);
        let total = b.len() as u16;
        let mut p = ipv4::Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(ihl);
        p.set_dscp_ecn(self.tos);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_flags_and_frag(self.df, self.mf, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.l4.proto());
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        b
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut f = eth_header(self.dst_mac, self.src_mac, ethernet::ETHERTYPE_IPV4);
        f.extend_from_slice(&self.ip_bytes());
        f.resize(f.len() + self.padding, 0);
        f
    }
}

/// An Ethernet header.
pub fn eth_header(dst: Mac, src: Mac, ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; ETH_HDR_LEN];
    let mut e = ethernet::Frame::new_unchecked(&mut f[..]);
    e.set_dst_addr(dst);
    e.set_src_addr(src);
    e.set_ethertype(ethertype);
    f
}

/// An ARP frame, padded to the 60-byte Ethernet minimum.
pub fn arp_frame(
    dst_mac: Mac,
    op: u16,
    sender_mac: Mac,
    sender_ip: u32,
    target_ip: u32,
) -> Vec<u8> {
    let mut f = eth_header(dst_mac, sender_mac, ethernet::ETHERTYPE_ARP);
    let mut body = vec![0u8; arp::Repr::BUFFER_LEN];
    arp::Repr {
        operation: op,
        sender_mac,
        sender_ip,
        target_mac: if op == arp::OP_REPLY {
            dst_mac
        } else {
            Mac::ZERO
        },
        target_ip,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut body[..]));
    f.extend_from_slice(&body);
    f.resize(60, 0);
    f
}

/// Recompute the IP header checksum of a frame after a test changed a field.
pub fn refill_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[ETH_HDR_LEN] & 0x0f) * 4;
    let h = &mut frame[ETH_HDR_LEN..ETH_HDR_LEN + ihl.max(20)];
    h[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::data(&h[..ihl.max(20)]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// What became of a frame.
pub struct Run {
    pub verdict: Verdict,
    /// The frame as the pipeline left it (`buf[..len]`): forwarded,
    /// rewritten into a reply, or untouched.
    pub out: Vec<u8>,
    pub trace: Vec<Event>,
}

impl Run {
    /// The connection tracking state the trace recorded.
    pub fn ct_state(&self) -> Option<CtState> {
        self.trace.iter().find_map(|e| match e {
            Event::Conntrack { state, .. } => Some(*state),
            _ => None,
        })
    }

    /// The filter chain and deciding rule the trace recorded.
    pub fn filter(&self) -> Option<(ChainId, Option<usize>, FilterAction)> {
        self.trace.iter().find_map(|e| match e {
            Event::Filter {
                chain,
                rule,
                action,
            } => Some((*chain, *rule, *action)),
            _ => None,
        })
    }
}

/// Run one frame through `p` as arriving on `port`.
pub fn run(p: &mut Pipeline, port: PortId, frame: &[u8]) -> Run {
    let mut buf = vec![0u8; BUF_LEN.max(frame.len())];
    buf[..frame.len()].copy_from_slice(frame);
    let mut pkt = Pkt {
        buf: &mut buf,
        len: frame.len(),
        port,
    };
    let mut trace = Vec::new();
    let verdict = p.process(&mut pkt, &mut trace);
    let len = pkt.len;
    Run {
        verdict,
        out: buf[..len].to_vec(),
        trace,
    }
}

/// `rx = forwarded + to_host + consumed + sum(drops) + waiting for ARP`,
/// over all ports.
pub fn assert_counters_balance(p: &Pipeline) {
    let c = p.counters();
    let rx: u64 = c.rx.iter().map(|r| r.packets).sum();
    assert_eq!(
        rx,
        c.forwarded + c.to_host + c.consumed + c.total_drops() + p.pending_packets() as u64,
        "every frame ends in exactly one counter (or waits for ARP): {c:?}"
    );
}

/// Run a frame that must be dropped for `reason`, counted exactly once
/// (and no other reason counted). Returns the run: a generated reply (ICMP
/// error, RST) leaves as `Tx`, anything else as `Drop(reason)`.
pub fn expect_drop(p: &mut Pipeline, port: PortId, frame: &[u8], reason: DropReason) -> Run {
    let before = p.counters().drops;
    let r = run(p, port, frame);
    let after = p.counters().drops;
    for d in DropReason::ALL {
        let want = u64::from(d == reason);
        assert_eq!(
            after[d as usize] - before[d as usize],
            want,
            "drops[{d}] moved by {} (expected {reason} once); verdict {:?}, trace {:?}",
            after[d as usize] - before[d as usize],
            r.verdict,
            r.trace
        );
    }
    match r.verdict {
        Verdict::Drop(got) => assert_eq!(got, reason),
        Verdict::Tx(_) => {}
        v => panic!("expected a drop for {reason}, got {v:?}"),
    }
    assert_counters_balance(p);
    r
}

/// Like [`expect_drop`], and the frame is dropped without a reply.
pub fn expect_silent_drop(p: &mut Pipeline, port: PortId, frame: &[u8], reason: DropReason) {
    let r = expect_drop(p, port, frame, reason);
    assert_eq!(r.verdict, Verdict::Drop(reason), "trace {:?}", r.trace);
}

/// A parsed ICMP error as it leaves the router.
#[derive(Debug)]
pub struct IcmpError {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: u32,
    pub dst: u32,
    pub ttl: u8,
    pub ty: u8,
    pub code: u8,
    pub rest: u32,
    /// The quoted datagram.
    pub quote: Vec<u8>,
}

/// Parse `frame` as an ICMP error and check what every one must satisfy:
/// IPv4 without options, correct IP and ICMP checksums, lengths consistent.
pub fn parse_icmp_error(frame: &[u8]) -> IcmpError {
    let eth = ethernet::Frame::new_checked(frame).expect("ethernet");
    assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV4);
    let ip = ipv4::Packet::new_checked(&frame[ETH_HDR_LEN..]).expect("valid IPv4");
    assert!(ip.verify_checksum(), "IP header checksum");
    assert_eq!(ip.header_len(), 20);
    assert_eq!(usize::from(ip.total_len()), frame.len() - ETH_HDR_LEN);
    assert_eq!(ip.protocol(), ipv4::PROTO_ICMP);
    let c = icmp::Packet::new_checked(ip.payload()).expect("ICMP header");
    assert!(c.verify_checksum(), "ICMP checksum");
    assert!(icmp::is_error(c.msg_type()));
    IcmpError {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.ttl(),
        ty: c.msg_type(),
        code: c.code(),
        rest: c.rest_of_header(),
        quote: c.payload().to_vec(),
    }
}

/// The RFC 792 quote of an IP packet: its header and 8 bytes of data.
pub fn expected_quote(ip_packet: &[u8]) -> Vec<u8> {
    let ihl = usize::from(ip_packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip_packet[2], ip_packet[3]]));
    ip_packet[..(ihl + 8).min(total)].to_vec()
}

/// Run `frame` arriving on `port` and check what must hold for any input
/// whatever its bytes: no panic, exactly one outcome counter moved and it
/// agrees with the verdict, and anything sent is a well-formed frame from
/// the output port (IPv4 with a correct header checksum; a generated ICMP
/// error or TCP RST with correct checksums too).
pub fn check_frame(p: &mut Pipeline, port: PortId, frame: &[u8]) -> Verdict {
    let before = p.counters().clone();
    // Garbage after the frame: the pipeline must not read it as packet.
    let mut buf = vec![0xa5u8; BUF_LEN.max(frame.len())];
    buf[..frame.len()].copy_from_slice(frame);
    let cap = buf.len();
    let mut pkt = Pkt {
        buf: &mut buf,
        len: frame.len(),
        port,
    };
    let pending_before = p.pending_packets() as u64;
    let verdict = p.process(&mut pkt, &mut ());
    let out_len = pkt.len;
    // Queued for ARP: counted when it leaves the queue.
    let deferred = (p.pending_packets() as u64).saturating_sub(pending_before);
    let c = p.counters();
    let rx = c.rx_of(port);
    let rx0 = before.rx_of(port);
    assert_eq!(rx.packets, rx0.packets + 1);
    assert_eq!(rx.bytes, rx0.bytes + frame.len() as u64);
    let moved = |a: u64, b: u64| a - b;
    let drops: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|r| c.drops[*r as usize] != before.drops[*r as usize])
        .collect();
    for r in &drops {
        assert_eq!(
            moved(c.drops[*r as usize], before.drops[*r as usize]),
            1,
            "{r}"
        );
    }
    let fwd = moved(c.forwarded, before.forwarded);
    let host = moved(c.to_host, before.to_host);
    let consumed = moved(c.consumed, before.consumed);
    let generated = moved(c.generated, before.generated);
    let outcomes = fwd + host + consumed + deferred + drops.len() as u64;
    assert_eq!(
        outcomes, 1,
        "exactly one outcome for {verdict:?}: drops {drops:?}"
    );
    match verdict {
        Verdict::Tx(out) => {
            assert!(
                (out.0 as usize) < p.tables().interfaces.len(),
                "sent to {out:?}"
            );
            assert_eq!(generated + fwd, 1);
            assert_eq!(
                generated,
                drops.len() as u64 + consumed + deferred,
                "a reply stands for a dropped, answered or queued packet"
            );
            assert!(out_len >= ETH_HDR_LEN && out_len <= cap);
            check_sent_frame(p, port, out, &buf[..out_len], generated == 1);
        }
        // A reply to the router's own stack stands for a dropped packet.
        Verdict::Host => assert_eq!(host + generated, 1),
        Verdict::Consumed => assert_eq!(consumed + deferred, 1),
        Verdict::Drop(r) => assert_eq!(drops, [r]),
        Verdict::HandOff(w) => panic!("a lone pipeline owns every flow, yet handed to {w}"),
    }
    assert_counters_balance(p);
    verdict
}

fn check_sent_frame(p: &Pipeline, in_port: PortId, out: PortId, f: &[u8], generated: bool) {
    let eth = ethernet::Frame::new_checked(f).expect("Ethernet header");
    assert_eq!(eth.src_addr(), p.tables().interfaces[out.0 as usize].mac);
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => {
            let a = arp::Packet::new_checked(&f[ETH_HDR_LEN..]).expect("ARP body");
            if a.operation() == arp::OP_REQUEST {
                // Resolving a next hop: broadcast, padded to the minimum.
                assert_eq!(eth.dst_addr(), Mac::BROADCAST);
                assert_eq!(f.len(), 60);
            } else {
                assert_eq!(a.operation(), arp::OP_REPLY);
                assert_eq!(f.len(), ETH_HDR_LEN + arp::Repr::BUFFER_LEN);
            }
        }
        ethernet::ETHERTYPE_IPV4 => {
            let ip = ipv4::Packet::new_checked(&f[ETH_HDR_LEN..]).expect("IPv4 sent");
            assert!(ip.verify_checksum(), "IP checksum of a sent packet");
            assert_eq!(
                usize::from(ip.total_len()),
                f.len() - ETH_HDR_LEN,
                "no padding sent"
            );
            if !in_port.is_host() {
                assert!(ip.ttl() > 0, "RFC 1812 5.3.1: never sent with TTL 0");
            }
            if generated {
                match ip.protocol() {
                    ipv4::PROTO_ICMP => {
                        let c = icmp::Packet::new_checked(ip.payload()).expect("ICMP");
                        assert!(c.verify_checksum(), "ICMP checksum");
                        assert!(icmp::is_error(c.msg_type()));
                    }
                    ipv4::PROTO_TCP => {
                        let s = tcp::Packet::new_checked(ip.payload()).expect("TCP");
                        assert!(s.verify_checksum(ip.src_addr(), ip.dst_addr()));
                        assert_ne!(s.flags() & tcp::RST, 0);
                    }
                    other => panic!("generated protocol {other}"),
                }
            }
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = ipv6::Packet::new_checked(&f[ETH_HDR_LEN..]).expect("IPv6 sent");
            assert_eq!(
                usize::from(ip.payload_len()) + 40,
                f.len() - ETH_HDR_LEN,
                "no padding sent"
            );
            if !in_port.is_host() {
                assert!(ip.hop_limit() > 0, "never sent with hop limit 0");
            }
            if generated {
                let body = ip.payload();
                match ip.next_header() {
                    ipv6::NH_ICMPV6 => {
                        assert!(
                            checksum::verify6(ip.src_addr(), ip.dst_addr(), ipv6::NH_ICMPV6, body),
                            "ICMPv6 checksum"
                        );
                        let c = icmpv6::Packet::new_checked(body).expect("ICMPv6");
                        // Errors, and NDP (NA, NS, RA) the router sends.
                        assert!(
                            icmpv6::is_error(c.msg_type()) || (133..=136).contains(&c.msg_type()),
                            "generated ICMPv6 type {}",
                            c.msg_type()
                        );
                        assert!(f.len() - ETH_HDR_LEN <= 1280, "RFC 4443 2.4(c)");
                    }
                    ipv6::NH_TCP => {
                        assert!(
                            checksum::verify6(ip.src_addr(), ip.dst_addr(), ipv6::NH_TCP, body),
                            "TCP checksum"
                        );
                        let s = tcp::Packet::new_checked(body).expect("TCP");
                        assert_ne!(s.flags() & tcp::RST, 0);
                    }
                    other => panic!("generated IPv6 next header {other}"),
                }
            }
        }
        other => panic!("sent ethertype {other:#x}"),
    }
}

/// The fuzz target: `data` as a frame on each port in turn (wan, lan, a
/// port with no interface, the host path) through one fresh pipeline.
pub fn fuzz_one(tables: &Arc<Tables>, data: &[u8]) {
    let mut p = Pipeline::new(tables.clone());
    for port in [WAN, LAN, NO_SUCH_PORT, PortId::HOST] {
        check_frame(&mut p, port, data);
    }
}

/// The fuzz seed corpus: valid frames of each kind, by file name.
pub fn seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let quoted = Packet::udp(LAN_HOST, OUTSIDE, 40000, 33434).ip_bytes();
    vec![
        (
            "tcp_syn_transit",
            Packet::tcp(OUTSIDE, INSIDE, 40000, 443, tcp::SYN).frame(),
        ),
        (
            "udp_transit_lan",
            Packet::udp(LAN_HOST, OUTSIDE, 5353, 53)
                .on(LAN)
                .payload_len(24)
                .frame(),
        ),
        (
            "icmp_echo_to_router",
            Packet::ping(OUTSIDE, WAN_ADDR, 7).payload_len(16).frame(),
        ),
        (
            "tcp_syn_to_ssh",
            Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::SYN).frame(),
        ),
        (
            "tcp_to_telnet_reject",
            Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 23, tcp::SYN).frame(),
        ),
        (
            "udp_to_tftp_reject",
            Packet::udp(OUTSIDE, WAN_ADDR, 40000, 69).frame(),
        ),
        (
            "arp_request",
            arp_frame(Mac::BROADCAST, arp::OP_REQUEST, PEER_MAC, WAN_GW, WAN_ADDR),
        ),
        (
            "arp_reply",
            arp_frame(
                WAN_MAC,
                arp::OP_REPLY,
                PEER_MAC,
                ip(198, 18, 0, 9),
                WAN_ADDR,
            ),
        ),
        (
            "ttl1_transit",
            Packet::udp(OUTSIDE, INSIDE, 40000, 33434).ttl(1).frame(),
        ),
        (
            "ip_options_transit",
            Packet::udp(OUTSIDE, INSIDE, 1, 2)
                .options(&[7, 7, 4, 0, 0, 0, 0, 0])
                .frame(),
        ),
        (
            "first_fragment",
            Packet::udp(OUTSIDE, INSIDE, 1, 2)
                .fragment(true, 0)
                .payload_len(32)
                .frame(),
        ),
        (
            "nonfirst_fragment",
            Packet::udp(OUTSIDE, INSIDE, 1, 2)
                .fragment(false, 40)
                .payload_len(12)
                .frame(),
        ),
        (
            "icmp_time_exceeded",
            Packet::icmp(OUTSIDE, WAN_ADDR, icmp::TIME_EXCEEDED, 0, 0)
                .payload(&quoted[..28])
                .frame(),
        ),
        (
            "big_df_transit",
            Packet::udp(LAN_HOST, OUTSIDE, 1, 2)
                .on(LAN)
                .df()
                .payload_len(1400)
                .frame(),
        ),
        (
            "host_udp_out",
            Packet::udp(WAN_ADDR, OUTSIDE, 123, 123)
                .dst_mac(Mac::ZERO)
                .src_mac(Mac::ZERO)
                .payload_len(48)
                .frame(),
        ),
        (
            "ip6_tcp_syn_transit",
            Packet6::tcp(OUTSIDE6, INSIDE6, 40000, 443, tcp::SYN).frame(),
        ),
        (
            "ip6_udp_transit_lan",
            Packet6::udp(LAN6_HOST, OUTSIDE6, 5353, 53)
                .on(LAN)
                .payload_len(24)
                .frame(),
        ),
        (
            "ip6_ping_to_router",
            Packet6::ping(OUTSIDE6, WAN6, 7).payload_len(16).frame(),
        ),
        (
            "ip6_tcp_syn_to_ssh",
            Packet6::tcp(OUTSIDE6, WAN6, 40000, 22, tcp::SYN).frame(),
        ),
        (
            "ip6_ext_chain_transit",
            Packet6::udp(OUTSIDE6, INSIDE6, 1, 2)
                .ext(Ext::hop_by_hop())
                .ext(Ext::routing(4, 1))
                .ext(Ext::dest_options())
                .frame(),
        ),
        (
            "ip6_fragments_transit",
            Packet6::udp(OUTSIDE6, INSIDE6, 1, 2)
                .ext(Ext::fragment(0, true))
                .payload_len(32)
                .frame(),
        ),
        (
            "ip6_hop_limit1_transit",
            Packet6::udp(OUTSIDE6, INSIDE6, 1, 2).hop_limit(1).frame(),
        ),
        ("ip6_neighbor_solicit", {
            let mut body = WAN6.to_be_bytes().to_vec();
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&PEER_MAC.0);
            let dst = ipv6::solicited_node(WAN6);
            Packet6::icmp(WAN6_GW, dst, icmpv6::NEIGHBOR_SOLICIT, 0, 0)
                .payload(&body)
                .hop_limit(255)
                .dst_mac(ipv6::multicast_mac(dst))
                .frame()
        }),
        ("ip6_neighbor_advert", {
            let mut body = LAN6_HOST.to_be_bytes().to_vec();
            body.extend_from_slice(&[2, 1]);
            body.extend_from_slice(&PEER_MAC.0);
            Packet6::icmp(LAN6_HOST, LAN6, icmpv6::NEIGHBOR_ADVERT, 0, 0x6000_0000)
                .payload(&body)
                .hop_limit(255)
                .on(LAN)
                .frame()
        }),
        (
            "ip6_big_transit",
            Packet6::udp(LAN6_HOST, OUTSIDE6, 1, 2)
                .on(LAN)
                .payload_len(1460)
                .frame(),
        ),
        ("ip6_host_udp_out", {
            let mut f = Packet6::udp(WAN6, OUTSIDE6, 123, 123).frame();
            f[..12].fill(0);
            f
        }),
    ]
}
