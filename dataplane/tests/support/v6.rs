//! The test router's IPv6 side and an IPv6 frame builder.
//!
//! - `wan` 2001:db8::1/64 (link-local fe80::ff:fe10:1 from its MAC),
//!   `lan` 2001:db8:1::1/64;
//! - default via 2001:db8::2 (wan), 2001:db8:5::/48 via fe80::2 on lan (a
//!   link-local gateway), 2001:db8:dead::/48 unreachable,
//!   2001:db8:bad::/48 blackhole; static neighbours for both gateways;
//! - filter input gets one rule for IPv6, [`IN_ECHO6`]: icmpv6
//!   echo-request accept (the IPv4 rules serve both families otherwise).
//!
//! [`super::spec`] adds all of it: every test router is dual stack.

use dataplane::addr::{IfAddr6, Ipv6Prefix, Mac};
use dataplane::rules::{FilterAction, Match};
use dataplane::tables::TablesSpec;
use dataplane::tables6::{NextHop6, RouteSpec6, Spec6, StaticNeighbour6};
use dataplane::wire::{checksum, ethernet, icmpv6, ipv6, tcp};

use super::*;

pub const fn a6(s: [u16; 8]) -> u128 {
    let mut x = 0u128;
    let mut i = 0;
    while i < 8 {
        x = x << 16 | s[i] as u128;
        i += 1;
    }
    x
}

pub const WAN6: u128 = a6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
pub const WAN6_GW: u128 = a6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]);
pub const LAN6: u128 = a6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 1]);
/// A host on the lan link (on-link, no neighbour entry).
pub const LAN6_HOST: u128 = a6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 5]);
/// The lan's link-local gateway to 2001:db8:5::/48.
pub const LAN6_GW_LL: u128 = a6([0xfe80, 0, 0, 0, 0, 0, 0, 2]);
/// A host behind the lan gateway.
pub const INSIDE6: u128 = a6([0x2001, 0xdb8, 5, 0, 0, 0, 0, 9]);
/// A host on the Internet (default route).
pub const OUTSIDE6: u128 = a6([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 7]);
pub const UNREACHABLE6: u128 = a6([0x2001, 0xdb8, 0xdead, 0, 0, 0, 0, 1]);
pub const BLACKHOLED6: u128 = a6([0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 1]);
/// A link-local address of a peer on the wan link.
pub const PEER6_LL: u128 = a6([0xfe80, 0, 0, 0, 0, 0, 0, 0x77]);

/// Filter input rule index of the icmpv6 echo-request accept.
pub const IN_ECHO6: usize = 5;

/// The router's link-local address on a port, from its MAC.
pub fn link_local(mac: Mac) -> u128 {
    ipv6::link_local_from_mac(mac)
}

fn p6(a: u128, len: u8) -> Ipv6Prefix {
    Ipv6Prefix::new(a, len).expect("prefix length")
}

/// Adds the IPv6 side to the test router's spec.
pub fn add_v6(s: &mut TablesSpec) {
    s.interfaces[0].addresses6 = vec![IfAddr6 {
        addr: WAN6,
        net: p6(WAN6, 64),
    }];
    s.interfaces[1].addresses6 = vec![IfAddr6 {
        addr: LAN6,
        net: p6(LAN6, 64),
    }];
    s.v6 = Spec6 {
        routes: vec![
            RouteSpec6::new(
                Ipv6Prefix::DEFAULT,
                NextHop6::Via {
                    port: WAN,
                    gateway: WAN6_GW,
                },
            ),
            RouteSpec6::new(
                p6(INSIDE6, 48),
                NextHop6::Via {
                    port: LAN,
                    gateway: LAN6_GW_LL,
                },
            ),
            RouteSpec6::new(p6(UNREACHABLE6, 48), NextHop6::Unreachable),
            RouteSpec6::new(p6(BLACKHOLED6, 48), NextHop6::Blackhole),
        ],
        kernel_routes: Vec::new(),
        neighbours: vec![
            StaticNeighbour6 {
                addr: WAN6_GW,
                mac: WAN_GW_MAC,
                port: WAN,
            },
            StaticNeighbour6 {
                addr: LAN6_GW_LL,
                mac: LAN_GW_MAC,
                port: LAN,
            },
        ],
    };
    s.filter_input.rules.push(FilterRule {
        matches: Match {
            protocol: Some(ipv6::NH_ICMPV6),
            icmp_type: Some(icmpv6::ECHO_REQUEST),
            ..Match::default()
        },
        action: FilterAction::Accept,
        comment: Some("ping6".into()),
    });
}

/// The test router (its spec has the IPv6 side).
pub fn pipeline6() -> Pipeline {
    pipeline()
}

/// The test router, changed by `f`.
pub fn pipeline6_with(f: impl FnOnce(&mut TablesSpec)) -> Pipeline {
    pipeline_with(f)
}

/// An extension header in a [`Packet6`]'s chain: its type and its bytes
/// after the next-header byte (the builder writes that byte).
#[derive(Clone, Debug)]
pub struct Ext {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Ext {
    /// Hop-by-hop or destination options of `units` 8-byte units (PadN).
    pub fn options(kind: u8, units: usize) -> Ext {
        let mut body = vec![0u8; units * 8 - 1];
        body[0] = (units - 1) as u8;
        // PadN over the rest.
        body[1] = 1;
        body[2] = (units * 8 - 4) as u8;
        Ext { kind, body }
    }
    pub fn hop_by_hop() -> Ext {
        Ext::options(ipv6::NH_HOP_BY_HOP, 1)
    }
    pub fn dest_options() -> Ext {
        Ext::options(60, 1)
    }
    /// A routing header of `rtype` with `left` segments left (one address).
    pub fn routing(rtype: u8, left: u8) -> Ext {
        let mut body = vec![0u8; 23];
        body[0] = 2;
        body[1] = rtype;
        body[2] = left;
        Ext {
            kind: ipv6::NH_ROUTING,
            body,
        }
    }
    /// A fragment header: offset in bytes (multiple of 8), M flag.
    pub fn fragment(offset: u16, more: bool) -> Ext {
        let mut body = vec![0u8; 7];
        let v = offset | u16::from(more);
        body[1..3].copy_from_slice(&v.to_be_bytes());
        body[3..7].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        Ext {
            kind: ipv6::NH_FRAGMENT,
            body,
        }
    }
}

/// An Ethernet + IPv6 packet description; [`Packet6::frame`] writes it
/// with a correct upper-layer checksum.
#[derive(Clone, Debug)]
pub struct Packet6 {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: u128,
    pub dst: u128,
    pub hop_limit: u8,
    pub exts: Vec<Ext>,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// Written as the payload length instead of the real one.
    pub payload_len: Option<u16>,
    /// The upper-layer checksum is made wrong.
    pub bad_checksum: bool,
    /// Link-layer padding after the packet.
    pub padding: usize,
}

impl Packet6 {
    fn new(src: u128, dst: u128, l4: L4) -> Packet6 {
        Packet6 {
            dst_mac: WAN_MAC,
            src_mac: PEER_MAC,
            src,
            dst,
            hop_limit: 64,
            exts: Vec::new(),
            l4,
            payload: Vec::new(),
            payload_len: None,
            bad_checksum: false,
            padding: 0,
        }
    }

    pub fn tcp(src: u128, dst: u128, sport: u16, dport: u16, flags: u8) -> Packet6 {
        Packet6::new(
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
    pub fn udp(src: u128, dst: u128, sport: u16, dport: u16) -> Packet6 {
        Packet6::new(src, dst, L4::Udp { sport, dport })
    }
    pub fn icmp(src: u128, dst: u128, ty: u8, code: u8, rest: u32) -> Packet6 {
        Packet6::new(src, dst, L4::Icmp { ty, code, rest })
    }
    pub fn ping(src: u128, dst: u128, id: u16) -> Packet6 {
        Packet6::icmp(src, dst, icmpv6::ECHO_REQUEST, 0, u32::from(id) << 16 | 1)
    }
    pub fn other(src: u128, dst: u128, proto: u8) -> Packet6 {
        Packet6::new(src, dst, L4::Other(proto))
    }
    pub fn on(mut self, port: PortId) -> Packet6 {
        self.dst_mac = if port == LAN { LAN_MAC } else { WAN_MAC };
        self
    }
    pub fn dst_mac(mut self, m: Mac) -> Packet6 {
        self.dst_mac = m;
        self
    }
    pub fn hop_limit(mut self, h: u8) -> Packet6 {
        self.hop_limit = h;
        self
    }
    pub fn ext(mut self, e: Ext) -> Packet6 {
        self.exts.push(e);
        self
    }
    pub fn payload(mut self, p: &[u8]) -> Packet6 {
        self.payload = p.to_vec();
        self
    }
    pub fn payload_len(mut self, n: usize) -> Packet6 {
        self.payload = (0..n).map(|i| i as u8).collect();
        self
    }

    /// The upper-layer protocol number.
    pub fn proto(&self) -> u8 {
        match self.l4 {
            L4::Icmp { .. } => ipv6::NH_ICMPV6,
            ref l => l.proto(),
        }
    }

    /// The upper-layer message (header, payload) with its checksum.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let mut b = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&seq.to_be_bytes());
                h[8..12].copy_from_slice(&ack.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code, rest } => {
                let mut h = vec![0u8; 8];
                h[0] = ty;
                h[1] = code;
                h[4..8].copy_from_slice(&rest.to_be_bytes());
                h
            }
            L4::Other(_) => Vec::new(),
        };
        b.extend_from_slice(&self.payload);
        let off = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Icmp { .. } => Some(2),
            L4::Other(_) => None,
        };
        if let Some(off) = off {
            let mut c = checksum::upper6(self.src, self.dst, self.proto(), &b);
            if matches!(self.l4, L4::Udp { .. }) && c == 0 {
                c = 0xffff;
            }
            if self.bad_checksum {
                c ^= 0x5a5a;
            }
            b[off..off + 2].copy_from_slice(&c.to_be_bytes());
        }
        b
    }

    /// The IPv6 packet: fixed header, extension headers, upper layer.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let mut chain = Vec::new();
        for (i, e) in self.exts.iter().enumerate() {
            let next = self.exts.get(i + 1).map_or(self.proto(), |n| n.kind);
            chain.push(next);
            chain.extend_from_slice(&e.body);
        }
        // A later fragment carries no upper-layer header, only data.
        let later_fragment = self.exts.iter().any(|e| {
            e.kind == ipv6::NH_FRAGMENT && (u16::from_be_bytes([e.body[1], e.body[2]]) & !7) != 0
        });
        if later_fragment {
            chain.extend_from_slice(&self.payload);
        } else {
            chain.extend_from_slice(&self.l4_bytes());
        }
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        let len = self.payload_len.unwrap_or(chain.len() as u16);
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6] = self.exts.first().map_or(self.proto(), |e| e.kind);
        p[7] = self.hop_limit;
        p[8..24].copy_from_slice(&self.src.to_be_bytes());
        p[24..40].copy_from_slice(&self.dst.to_be_bytes());
        p.extend_from_slice(&chain);
        p
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut f = eth_header(self.dst_mac, self.src_mac, ethernet::ETHERTYPE_IPV6);
        f.extend_from_slice(&self.ip_bytes());
        f.extend(std::iter::repeat(0).take(self.padding));
        f
    }
}

/// A parsed ICMPv6 error as it leaves the router.
#[derive(Debug)]
pub struct Icmp6Error {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: u128,
    pub dst: u128,
    pub hop_limit: u8,
    pub ty: u8,
    pub code: u8,
    pub rest: u32,
    pub quote: Vec<u8>,
}

/// Parse `frame` as an ICMPv6 error and check what every one must
/// satisfy: a correct checksum, at most 1280 bytes (RFC 4443 2.4(c)).
pub fn parse_icmp6_error(frame: &[u8]) -> Icmp6Error {
    let eth = ethernet::Frame::new_checked(frame).expect("ethernet");
    assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV6);
    let ip = ipv6::Packet::new_checked(&frame[ETH_HDR_LEN..]).expect("valid IPv6");
    assert_eq!(ip.next_header(), ipv6::NH_ICMPV6);
    assert_eq!(
        usize::from(ip.payload_len()) + 40,
        frame.len() - ETH_HDR_LEN
    );
    assert!(frame.len() - ETH_HDR_LEN <= 1280, "RFC 4443 2.4(c)");
    let body = ip.payload();
    assert!(
        checksum::verify6(ip.src_addr(), ip.dst_addr(), ipv6::NH_ICMPV6, body),
        "ICMPv6 checksum"
    );
    let c = icmpv6::Packet::new_checked(body).expect("ICMPv6 header");
    assert!(icmpv6::is_error(c.msg_type()));
    Icmp6Error {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        hop_limit: ip.hop_limit(),
        ty: c.msg_type(),
        code: c.code(),
        rest: c.rest_of_header(),
        quote: body[8..].to_vec(),
    }
}
