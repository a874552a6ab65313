//! Workloads shared by the criterion benches and the callgrind script: the
//! transit-router config with extra routes, and bursts of frames for it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use control::config::Config;
use control::explain::{peer_mac, port_mac};
use control::packet_spec::PacketSpec;
use dataplane::addr::Ipv4Prefix;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::tables::{NextHop, RouteSpec, Tables};

/// Frames in a burst.
pub const BURST: usize = 64;
/// Bytes restored per frame between runs of a forwarding burst (the
/// Ethernet and IP headers the pipeline rewrote).
pub const RESTORE: usize = 34;

/// `configs/transit-router.yaml` from the workspace.
pub fn transit_config() -> Config {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    Config::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Base of the extra routes: 100.64.0.0/10 split into /24s (in-memory only;
/// nothing is ever sent to them).
const EXTRA_BASE: u32 = 0x6440_0000;

/// The transit-router tables with `extra` more /24 routes via the lan
/// gateway, and made-up MACs on the ports (as `explain` uses).
pub fn transit_tables(extra: usize) -> Arc<Tables> {
    let cfg = transit_config();
    let mut spec = cfg.tables_spec();
    for (i, ifc) in spec.interfaces.iter_mut().enumerate() {
        ifc.mac = port_mac(i);
    }
    let lan = spec
        .interfaces
        .iter()
        .position(|i| i.name == "lan")
        .expect("transit-router has a lan interface");
    let gateway = u32::from(Ipv4Addr::new(198, 19, 0, 2));
    for i in 0..extra as u32 {
        spec.routes.push(RouteSpec::new(
            Ipv4Prefix::new(EXTRA_BASE + (i << 8), 24).expect("valid prefix"),
            NextHop::Via {
                port: PortId(lan as u8),
                gateway,
            },
        ));
    }
    Arc::new(Tables::build(spec))
}

/// A burst of frames and the headers to restore after each run.
pub struct Burst {
    pub frames: Vec<Vec<u8>>,
    pub lens: Vec<usize>,
    pub port: PortId,
    templates: Vec<[u8; RESTORE]>,
}

impl Burst {
    fn new(port: PortId, specs: &[PacketSpec]) -> Burst {
        let mut frames = Vec::new();
        let mut lens = Vec::new();
        let mut templates = Vec::new();
        for s in specs {
            let mut f = s.frame(port_mac(port.0 as usize), peer_mac(port.0 as usize));
            // 64-byte frames on the wire: pad to 60 bytes before the FCS.
            if f.len() < 60 {
                f.resize(60, 0);
            }
            lens.push(f.len());
            let mut t = [0u8; RESTORE];
            t.copy_from_slice(&f[..RESTORE]);
            templates.push(t);
            f.resize(2048, 0);
            frames.push(f);
        }
        Burst {
            frames,
            lens,
            port,
            templates,
        }
    }

    /// Put back the headers a forwarding run rewrote (MACs, TTL, checksum).
    #[inline]
    pub fn restore(&mut self) {
        for (f, t) in self.frames.iter_mut().zip(&self.templates) {
            f[..RESTORE].copy_from_slice(t);
        }
    }

    /// Run the burst through the pipeline.
    #[inline]
    pub fn run(&mut self, p: &mut Pipeline, out: &mut [Verdict; BURST]) {
        let port = self.port;
        let mut pkts: [Pkt<'_>; BURST] = {
            let mut it = self.frames.iter_mut().zip(self.lens.iter());
            std::array::from_fn(|_| {
                let (f, l) = it.next().expect("BURST frames");
                Pkt {
                    buf: f.as_mut_slice(),
                    len: *l,
                    port,
                }
            })
        };
        p.process_burst(&mut pkts, out);
    }
}

/// 64 UDP frames of 64 bytes from wan to 64 of the extra routes (transit,
/// NOTRACK in the transit-router config).
pub fn untracked_transit_burst(extra_routes: usize) -> Burst {
    let specs: Vec<PacketSpec> = (0..BURST)
        .map(|i| {
            let route = (i * 15) % extra_routes.max(1);
            let dst = Ipv4Addr::from(EXTRA_BASE + ((route as u32) << 8) + 9);
            PacketSpec::parse(&format!(
                "in=wan udp 198.18.0.2:{} > {dst}:4791 len=18",
                10000 + i
            ))
            .expect("valid spec")
        })
        .collect();
    Burst::new(PortId(0), &specs)
}

/// A pipeline with 64 established TCP flows from wan to the router's SSH
/// port, and a burst of 64-byte ACKs of those flows (tracked, ESTABLISHED,
/// accepted by the `established, related` rule, delivered to the host).
pub fn established_host_burst(p: &mut Pipeline) -> Burst {
    established_host_burst_where(p, |_| true)
}

/// [`established_host_burst`] for the client ports (from 40000 up) that
/// `keep` takes, e.g. the flows one worker of several owns.
pub fn established_host_burst_where(p: &mut Pipeline, keep: impl Fn(u16) -> bool) -> Burst {
    let ports: Vec<u16> = (40000..u16::MAX).filter(|&p| keep(p)).take(BURST).collect();
    assert_eq!(ports.len(), BURST, "not enough client ports");
    // The client is on wan's network: as if ARP had resolved it.
    p.learn_neighbour(
        u32::from(Ipv4Addr::new(198, 18, 0, 2)),
        peer_mac(0),
        PortId(0),
    );
    let spec = |s: String| PacketSpec::parse(&s).expect("valid spec");
    let mut verdicts = [Verdict::Consumed; BURST];
    let mut setup = |pkts: Vec<PacketSpec>, port: PortId| {
        let mut b = Burst::new(port, &pkts);
        b.run(p, &mut verdicts);
        verdicts
    };
    let syn: Vec<_> = ports
        .iter()
        .map(|p| spec(format!("in=wan tcp 198.18.0.2:{p} > 198.18.0.1:22 flags=S")))
        .collect();
    let v = setup(syn, PortId(0));
    assert!(
        v.iter().all(|v| *v == Verdict::Host),
        "SYN not accepted: {v:?}"
    );
    let synack: Vec<_> = ports
        .iter()
        .map(|p| {
            spec(format!(
                "in=host tcp 198.18.0.1:22 > 198.18.0.2:{p} flags=SA"
            ))
        })
        .collect();
    let v = setup(synack, PortId::HOST);
    assert!(
        v.iter().all(|v| matches!(v, Verdict::Tx(_))),
        "SYN-ACK not sent: {v:?}"
    );
    let ack: Vec<_> = ports
        .iter()
        .map(|p| {
            spec(format!(
                "in=wan tcp 198.18.0.2:{p} > 198.18.0.1:22 flags=A len=6"
            ))
        })
        .collect();
    Burst::new(PortId(0), &ack)
}

/// The router's IPv6 addresses on wan and lan in the IPv6 workloads.
pub const WAN6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
pub const LAN6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0001;
/// The wan peer and the lan gateway.
pub const WAN6_PEER: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0002;
pub const LAN6_GW: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0002;
/// Base of the extra IPv6 routes: /48s from 2001:db8:100::/40 (in-memory
/// only; nothing is ever sent to them).
const EXTRA6_BASE: u128 = 0x2001_0db8_0100_0000_0000_0000_0000_0000;

/// [`transit_tables`] made dual stack: 2001:db8::1/64 on wan,
/// 2001:db8:1::1/64 on lan, `extra` /48 routes via the lan gateway (whose
/// neighbour entry is static, as the IPv4 one is), so that the IPv6 cases
/// meet the same raw and filter rules as the IPv4 ones.
pub fn transit_tables6(extra: usize) -> Arc<Tables> {
    transit_tables6_via(extra, 1)
}

/// [`transit_tables6`] with the `extra` routes spread over `gateways` lan
/// gateways in turn (LAN6_GW, LAN6_GW + 1, ...; each a static neighbour):
/// next to each other, the /48s have other next hops, as in a full table.
pub fn transit_tables6_via(extra: usize, gateways: usize) -> Arc<Tables> {
    use dataplane::addr::{IfAddr6, Ipv6Prefix};
    use dataplane::tables6::{NextHop6, RouteSpec6, StaticNeighbour6};
    let cfg = transit_config();
    let mut spec = cfg.tables_spec();
    for (i, ifc) in spec.interfaces.iter_mut().enumerate() {
        ifc.mac = port_mac(i);
    }
    let lan = PortId(
        spec.interfaces
            .iter()
            .position(|i| i.name == "lan")
            .expect("transit-router has a lan interface") as u8,
    );
    for (ifc, a) in spec.interfaces.iter_mut().zip([WAN6, LAN6]) {
        let net = Ipv6Prefix::new(a, 64).expect("valid prefix");
        ifc.addresses6 = vec![IfAddr6 { addr: a, net }];
    }
    spec.v6.routes.clear();
    let gateways = gateways.max(1) as u128;
    for i in 0..extra as u128 {
        spec.v6.routes.push(RouteSpec6::new(
            Ipv6Prefix::new(EXTRA6_BASE + (i << 80), 48).expect("valid prefix"),
            NextHop6::Via {
                port: lan,
                gateway: LAN6_GW + i % gateways,
            },
        ));
    }
    spec.v6.neighbours = (0..gateways)
        .map(|g| {
            let mut mac = peer_mac(lan.0 as usize);
            mac.0[4] ^= g as u8;
            StaticNeighbour6 {
                addr: LAN6_GW + g,
                mac,
                port: lan,
            }
        })
        .collect();
    Arc::new(Tables::build(spec))
}

/// An Ethernet + IPv6 frame to `port` from its peer: `l4` (TCP or UDP
/// header and payload, checksum field zero) gets its checksum here.
fn frame6(port: PortId, src: u128, dst: u128, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    use dataplane::wire::checksum;
    let at = if proto == 6 { 16 } else { 6 };
    let c = checksum::upper6(src, dst, proto, &l4);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(2048);
    f.extend_from_slice(&port_mac(port.0 as usize).0);
    f.extend_from_slice(&peer_mac(port.0 as usize).0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[proto, 64]);
    f.extend_from_slice(&src.to_be_bytes());
    f.extend_from_slice(&dst.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

fn udp6(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    u
}

fn tcp6(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t
}

impl Burst {
    fn from_frames(port: PortId, frames: Vec<Vec<u8>>) -> Burst {
        let mut b = Burst {
            frames: Vec::new(),
            lens: Vec::new(),
            port,
            templates: Vec::new(),
        };
        for mut f in frames {
            b.lens.push(f.len());
            let mut t = [0u8; RESTORE];
            t.copy_from_slice(&f[..RESTORE]);
            b.templates.push(t);
            f.resize(2048, 0);
            b.frames.push(f);
        }
        b
    }
}

/// 64 UDP frames over IPv6 from wan to 64 of the extra /48 routes (transit,
/// NOTRACK), the smallest IPv6 UDP frame: 62 bytes before the FCS.
pub fn untracked_transit_burst6(extra_routes: usize) -> Burst {
    let frames = (0..BURST)
        .map(|i| {
            let route = ((i * 15) % extra_routes.max(1)) as u128;
            let dst = EXTRA6_BASE + (route << 80) + 9;
            frame6(
                PortId(0),
                WAN6_PEER,
                dst,
                17,
                udp6(10000 + i as u16, 4791, 0),
            )
        })
        .collect();
    Burst::from_frames(PortId(0), frames)
}

/// [`established_host_burst`] over IPv6: 64 established TCP flows from the
/// wan peer to the router's SSH port and a burst of their ACKs (66-byte
/// frames: 74 bytes on the wire with the FCS).
pub fn established_host_burst6(p: &mut Pipeline) -> Burst {
    let ports: Vec<u16> = (40000..40000 + BURST as u16).collect();
    p.learn_neighbour6(WAN6_PEER, peer_mac(0), PortId(0));
    let mut verdicts = [Verdict::Consumed; BURST];
    let mut setup = |frames: Vec<Vec<u8>>, port: PortId| {
        let mut b = Burst::from_frames(port, frames);
        b.run(p, &mut verdicts);
        verdicts
    };
    let syn = ports
        .iter()
        .map(|&s| frame6(PortId(0), WAN6_PEER, WAN6, 6, tcp6(s, 22, 0x02, 1, 0, 0)))
        .collect();
    let v = setup(syn, PortId(0));
    assert!(
        v.iter().all(|v| *v == Verdict::Host),
        "SYN not accepted: {v:?}"
    );
    let synack = ports
        .iter()
        .map(|&s| {
            let mut f = frame6(PortId::HOST, WAN6, WAN6_PEER, 6, tcp6(22, s, 0x12, 7, 2, 0));
            f[..12].fill(0);
            f
        })
        .collect();
    let v = setup(synack, PortId::HOST);
    assert!(
        v.iter().all(|v| matches!(v, Verdict::Tx(_))),
        "SYN-ACK not sent: {v:?}"
    );
    let ack = ports
        .iter()
        .map(|&s| frame6(PortId(0), WAN6_PEER, WAN6, 6, tcp6(s, 22, 0x10, 2, 8, 0)))
        .collect();
    Burst::from_frames(PortId(0), ack)
}
