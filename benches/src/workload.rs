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
