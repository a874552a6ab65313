//! What the router counted, summed over workers: the exit log, SIGUSR1's
//! log and `--stats-json FILE` are rendered from [`RouterStats`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::conntrack::FlowView;
use dataplane::drop::DropReason;
use dataplane::host::HostStats;
use dataplane::worker::runtime::tsc_hz;
use dataplane::worker::{aggregate, WorkerSnapshot};
use serde::{Deserialize, Serialize};

use crate::ctl::api::{runtime_stats, FamilyStats, NdpStats, RuntimeStats};

/// Counters of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Config name (`wan`).
    pub name: String,
    /// Kernel device (`r0`).
    pub device: String,
    /// Frames received from the AF_XDP sockets.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames handed to the kernel for sending.
    pub tx_packets: u64,
    /// Bytes handed to the kernel for sending.
    pub tx_bytes: u64,
    /// Frames the TX ring did not take (dropped).
    pub tx_ring_full: u64,
    /// Frames the kernel dropped because the RX ring was full.
    pub xdp_rx_ring_full: u64,
    /// Frames the kernel dropped for other reasons (e.g. an empty fill ring).
    pub xdp_rx_dropped: u64,
    /// Frames of this port the pipeline processed (equals `rx_packets`).
    #[serde(default)]
    pub pipeline_rx_packets: u64,
    /// Frames the pipeline sent out of this port, forwarded or generated
    /// (equals `tx_packets + tx_ring_full`).
    #[serde(default)]
    pub pipeline_tx_packets: u64,
}

/// Frame census of one worker's UMEM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    pub total: u32,
    pub free: u32,
    pub fill: u32,
    pub rx: u32,
    pub held: u32,
    pub tx: u32,
    /// Every frame is in exactly one place.
    pub balanced: bool,
}

/// Counters of one worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub index: usize,
    pub core: Option<usize>,
    pub loops: u64,
    pub busy_loops: u64,
    /// Share of loops that received something.
    pub busy_share: f64,
    pub idle_waits: u64,
    pub rx_packets: u64,
    pub census: Census,
    pub conntrack_entries: u64,
}

/// One connection-table entry (listed at exit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// `tcp`, `udp`, `icmp`, `icmpv6` or the protocol number.
    pub protocol: String,
    /// Original direction: source address (IPv4 or IPv6) and port (ICMP:
    /// the query id).
    pub src: String,
    pub sport: u16,
    /// Original direction: destination address and port.
    pub dst: String,
    pub dport: u16,
    /// TCP state as `conntrack -L` names it; empty for other protocols.
    pub state: String,
    /// A reply was seen.
    pub seen_reply: bool,
    /// Seconds left.
    pub timeout: u32,
    /// Packets original, reply.
    pub packets: [u64; 2],
}

impl ConnectionStats {
    fn of(f: &FlowView) -> ConnectionStats {
        let k = f.key;
        ConnectionStats {
            protocol: match k.proto {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                1 => "icmp".to_string(),
                58 => "icmpv6".to_string(),
                n => n.to_string(),
            },
            src: match f.key6 {
                Some(k6) => Ipv6Addr::from(k6.src).to_string(),
                None => Ipv4Addr::from(k.src).to_string(),
            },
            sport: k.sport,
            dst: match f.key6 {
                Some(k6) => Ipv6Addr::from(k6.dst).to_string(),
                None => Ipv4Addr::from(k.dst).to_string(),
            },
            dport: k.dport,
            state: f.tcp_state.map_or(String::new(), |t| t.name().to_string()),
            seen_reply: f.seen_reply,
            timeout: f.timeout,
            packets: f.packets,
        }
    }

    /// Whether `port` is the entry's source or destination port.
    pub fn has_port(&self, port: u16) -> bool {
        self.sport == port || self.dport == port
    }
}

/// What the host path (TUN) counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPathStats {
    /// The TUN device.
    pub tun: String,
    /// Packets and bytes written to the kernel.
    pub to_kernel_packets: u64,
    pub to_kernel_bytes: u64,
    /// Packets and bytes the kernel sent, handed to the worker.
    pub from_kernel_packets: u64,
    pub from_kernel_bytes: u64,
    /// Drops of the host path by reason (all reasons, zero or not).
    pub drops: BTreeMap<String, u64>,
    /// Errors reading the TUN.
    pub read_errors: u64,
}

impl HostPathStats {
    /// From the host thread's counters.
    pub fn new(tun: &str, h: &HostStats) -> HostPathStats {
        HostPathStats {
            tun: tun.to_string(),
            to_kernel_packets: h.to_kernel_packets,
            to_kernel_bytes: h.to_kernel_bytes,
            from_kernel_packets: h.from_kernel_packets,
            from_kernel_bytes: h.from_kernel_bytes,
            drops: h
                .named_drops()
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect(),
            read_errors: h.read_errors,
        }
    }
}

/// Everything routerd counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterStats {
    /// Per interface, in config order.
    pub interfaces: Vec<InterfaceStats>,
    /// Frames forwarded out of a port.
    pub forwarded: u64,
    /// Packets for the router itself.
    pub to_host: u64,
    /// Packets from the router's kernel (host path) the pipeline processed:
    /// with the ports' `rx_packets`, what `forwarded + to_host + consumed +
    /// drops` adds up to.
    #[serde(default)]
    pub from_host_packets: u64,
    /// Frames handled without a reply (ARP replies learned).
    pub consumed: u64,
    /// Replies generated in place of dropped packets (ICMP errors, RST).
    pub generated: u64,
    /// IP packets that went through connection tracking.
    pub tracked: u64,
    /// IP packets marked NOTRACK.
    pub untracked: u64,
    /// ARP requests for our addresses answered.
    pub arp_replies_sent: u64,
    /// ARP requests sent to resolve next hops.
    pub arp_requests_sent: u64,
    /// ICMP errors sent.
    pub icmp_errors_sent: u64,
    /// ARP replies to our requests received.
    #[serde(default)]
    pub arp_replies_received: u64,
    /// Next hops that did not answer three ARP requests (resolutions and
    /// refreshes).
    #[serde(default)]
    pub arp_resolution_failures: u64,
    /// ICMP errors not sent because of the rate limit.
    #[serde(default)]
    pub icmp_errors_rate_limited: u64,
    /// TCP resets sent for `reject`.
    #[serde(default)]
    pub tcp_resets_sent: u64,
    /// Drops by reason, non-zero only.
    pub drops: BTreeMap<String, u64>,
    /// IPv4 packets: the total less IPv6 (ARP and other frames included).
    #[serde(default)]
    pub ipv4: FamilyStats,
    /// IPv6 packets, as the dataplane counts them.
    #[serde(default)]
    pub ipv6: FamilyStats,
    /// Neighbour discovery.
    #[serde(default)]
    pub ndp: NdpStats,
    /// Connection-table entries, all workers.
    pub conntrack_entries: u64,
    /// Flows evicted to make room for new ones (early drop), all workers.
    #[serde(default)]
    pub conntrack_early_dropped: u64,
    /// The entries themselves, listed from the workers' final snapshots
    /// (empty while routerd runs).
    #[serde(default)]
    pub connections: Vec<ConnectionStats>,
    /// The host path, when it is on.
    #[serde(default)]
    pub host: Option<HostPathStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// The workers' runtime accounting (`routerctl stats runtime`).
    #[serde(default)]
    pub runtime: RuntimeStats,
}

impl RouterStats {
    /// Sums worker snapshots; `names[i]` = (config name, device) of port i.
    pub fn from_snapshots(names: &[(String, String)], snaps: &[WorkerSnapshot]) -> RouterStats {
        let (c, ports, _) = aggregate(snaps);
        let interfaces = names
            .iter()
            .enumerate()
            .map(|(i, (name, device))| {
                let p = ports.get(i).copied().unwrap_or_default();
                InterfaceStats {
                    name: name.clone(),
                    device: device.clone(),
                    rx_packets: p.rx_packets,
                    rx_bytes: p.rx_bytes,
                    tx_packets: p.tx_packets,
                    tx_bytes: p.tx_bytes,
                    tx_ring_full: p.tx_ring_full,
                    xdp_rx_ring_full: p.xdp.rx_ring_full,
                    xdp_rx_dropped: p.xdp.rx_dropped,
                    pipeline_rx_packets: c.rx[i & 63].packets,
                    pipeline_tx_packets: c.tx[i & 63].packets,
                }
            })
            .collect();
        let drops = DropReason::ALL
            .iter()
            .filter(|r| c.drops[**r as usize] > 0)
            .map(|r| (r.name().to_string(), c.drops[*r as usize]))
            .collect();
        let workers = snaps
            .iter()
            .map(|s| WorkerStats {
                index: s.index,
                core: s.core,
                loops: s.loops.loops,
                busy_loops: s.loops.busy_loops,
                busy_share: if s.loops.loops == 0 {
                    0.0
                } else {
                    s.loops.busy_loops as f64 / s.loops.loops as f64
                },
                idle_waits: s.loops.idle_waits,
                rx_packets: s.ports.iter().map(|p| p.rx_packets).sum(),
                census: Census {
                    total: s.census.total,
                    free: s.census.free,
                    fill: s.census.fill,
                    rx: s.census.rx,
                    held: s.census.held,
                    tx: s.census.tx,
                    balanced: s.census.balanced(),
                },
                conntrack_entries: s.conntrack_entries as u64,
            })
            .collect();
        let rx_total = (0..names.len()).map(|i| c.rx[i & 63].packets).sum::<u64>()
            + c.rx_of(dataplane::packet::PortId::HOST).packets;
        let (ipv4, ipv6) = FamilyStats::split(&c, rx_total);
        RouterStats {
            interfaces,
            forwarded: c.forwarded,
            to_host: c.to_host,
            from_host_packets: c.rx_of(dataplane::packet::PortId::HOST).packets,
            consumed: c.consumed,
            generated: c.generated,
            tracked: c.tracked,
            untracked: c.untracked,
            arp_replies_sent: c.arp_replies_sent,
            arp_requests_sent: c.arp_requests_sent,
            icmp_errors_sent: c.icmp_errors_sent,
            arp_replies_received: c.arp_replies_received,
            arp_resolution_failures: c.arp_resolution_failures,
            icmp_errors_rate_limited: c.icmp_errors_rate_limited,
            tcp_resets_sent: c.tcp_resets_sent,
            drops,
            ipv4,
            ipv6,
            ndp: NdpStats::of(&c),
            conntrack_entries: snaps.iter().map(|s| s.conntrack_entries as u64).sum(),
            conntrack_early_dropped: snaps.iter().map(|s| s.conntrack.early_dropped).sum(),
            connections: snaps
                .iter()
                .flat_map(|s| s.flows.iter().map(ConnectionStats::of))
                .collect(),
            host: None,
            workers,
            runtime: runtime_stats(tsc_hz(), snaps),
        }
    }

    /// Frames dropped, all reasons.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// A few lines for people: per interface, the outcome counts, drops by
    /// reason, tracking and the workers' frame census.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for i in &self.interfaces {
            let _ = writeln!(
                s,
                "  {} ({}): rx {} pkts {} bytes, tx {} pkts {} bytes{}",
                i.name,
                i.device,
                i.rx_packets,
                i.rx_bytes,
                i.tx_packets,
                i.tx_bytes,
                if i.tx_ring_full + i.xdp_rx_ring_full + i.xdp_rx_dropped > 0 {
                    format!(
                        ", tx_ring_full {}, xdp rx_ring_full {}, xdp rx_dropped {}",
                        i.tx_ring_full, i.xdp_rx_ring_full, i.xdp_rx_dropped
                    )
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            s,
            "  forwarded {}, to_host {}, consumed {}, generated {}, dropped {}",
            self.forwarded,
            self.to_host,
            self.consumed,
            self.generated,
            self.total_drops()
        );
        if !self.drops.is_empty() {
            let list: Vec<String> = self.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  drops: {}", list.join(", "));
        }
        for (name, f) in [("ipv4 (total less ipv6)", &self.ipv4), ("ipv6", &self.ipv6)] {
            let _ = writeln!(
                s,
                "  {name}: rx {}, forwarded {}, to_host {}, dropped {}",
                f.rx, f.forwarded, f.to_host, f.dropped
            );
        }
        let _ = writeln!(
            s,
            "  tracked {}, untracked {}, conntrack entries {}, early drops {}",
            self.tracked, self.untracked, self.conntrack_entries, self.conntrack_early_dropped,
        );
        let _ = writeln!(
            s,
            "  arp: replies sent {}, requests sent {}, replies received {}, resolution failures {}; \
             icmp errors sent {} (rate limited {}), tcp resets sent {}",
            self.arp_replies_sent,
            self.arp_requests_sent,
            self.arp_replies_received,
            self.arp_resolution_failures,
            self.icmp_errors_sent,
            self.icmp_errors_rate_limited,
            self.tcp_resets_sent
        );
        let n = &self.ndp;
        let _ = writeln!(
            s,
            "  ndp: solicits received {}, adverts sent {}, adverts received {}, solicits sent {}, \
             resolution failures {}; router adverts sent {}, router solicits received {}",
            n.solicits_received,
            n.adverts_sent,
            n.adverts_received,
            n.solicits_sent,
            n.resolution_failures,
            n.ra_sent,
            n.rs_received
        );
        if let Some(h) = &self.host {
            let drops: Vec<String> = h
                .drops
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "  host path ({}): to kernel {} pkts {} bytes, from kernel {} pkts {} bytes, drops: {}",
                h.tun,
                h.to_kernel_packets,
                h.to_kernel_bytes,
                h.from_kernel_packets,
                h.from_kernel_bytes,
                if drops.is_empty() {
                    "none".to_string()
                } else {
                    drops.join(", ")
                }
            );
        }
        const SHOWN: usize = 20;
        for c in self.connections.iter().take(SHOWN) {
            let _ = writeln!(
                s,
                "  conn {} {}:{} > {}:{} {}{} timeout {}s packets {}/{}",
                c.protocol,
                c.src,
                c.sport,
                c.dst,
                c.dport,
                c.state,
                if c.seen_reply { "" } else { " [UNREPLIED]" },
                c.timeout,
                c.packets[0],
                c.packets[1]
            );
        }
        if self.connections.len() > SHOWN {
            let _ = writeln!(
                s,
                "  ... {} more connections",
                self.connections.len() - SHOWN
            );
        }
        for w in &self.workers {
            let c = &w.census;
            let _ = writeln!(
                s,
                "  worker {} (core {}): {} loops, busy {:.1}%, {} idle waits; frames {} = free {} + fill {} + rx {} + held {} + tx {} ({})",
                w.index,
                w.core.map_or("-".to_string(), |c| c.to_string()),
                w.loops,
                w.busy_share * 100.0,
                w.idle_waits,
                c.total,
                c.free,
                c.fill,
                c.rx,
                c.held,
                c.tx,
                if c.balanced { "balanced" } else { "NOT BALANCED" }
            );
        }
        if !self.runtime.workers.is_empty() {
            for l in crate::ctl::text::runtime(&self.runtime).lines() {
                let _ = writeln!(s, "{}", format!("  {l}").trim_end());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::xsk::{FrameCensus, PortStats};

    #[test]
    fn sums_workers_and_lists_nonzero_drops() {
        let mut a = WorkerSnapshot::default();
        a.counters.forwarded = 5;
        a.counters.untracked = 5;
        a.counters.drops[DropReason::NeighbourUnresolved as usize] = 2;
        a.ports = vec![
            PortStats {
                rx_packets: 7,
                ..Default::default()
            },
            PortStats::default(),
        ];
        a.census = FrameCensus {
            total: 10,
            free: 10,
            ..Default::default()
        };
        let b = a.clone();
        let names = [
            ("wan".to_string(), "r0".to_string()),
            ("lan".to_string(), "r1".to_string()),
        ];
        let st = RouterStats::from_snapshots(&names, &[a, b]);
        assert_eq!(st.forwarded, 10);
        assert_eq!(st.interfaces[0].rx_packets, 14);
        assert_eq!(st.drops.len(), 1);
        assert_eq!(st.drops["neighbour_unresolved"], 4);
        assert!(st.workers[0].census.balanced);
        let text = st.render();
        assert!(text.contains("wan (r0): rx 14 pkts"), "{text}");
        assert!(
            text.contains("ipv4 (total less ipv6): rx 0, forwarded 10, to_host 0, dropped 4"),
            "{text}"
        );
        assert!(text.contains("drops: neighbour_unresolved 4"), "{text}");
        let json = serde_json::to_string(&st).unwrap();
        let back: RouterStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
    }

    #[test]
    fn splits_packets_by_family_and_sums_ndp() {
        let mut a = WorkerSnapshot::default();
        a.counters.rx[0].packets = 10;
        a.counters.rx[dataplane::packet::PortId::HOST.0 as usize].packets = 2;
        a.counters.forwarded = 7;
        a.counters.to_host = 3;
        a.counters.drops[DropReason::RouteNoRoute as usize] = 2;
        a.counters.ipv6_rx = 5;
        a.counters.ipv6_forwarded = 3;
        a.counters.ipv6_to_host = 1;
        a.counters.ipv6_dropped = 1;
        a.counters.nd_solicits_received = 4;
        a.counters.nd_adverts_sent = 4;
        a.counters.ra_sent = 1;
        let b = a.clone();
        let names = [("wan".to_string(), "r0".to_string())];
        let st = RouterStats::from_snapshots(&names, &[a, b]);
        let fam = |rx, forwarded, to_host, dropped| FamilyStats {
            rx,
            forwarded,
            to_host,
            dropped,
        };
        assert_eq!(st.ipv6, fam(10, 6, 2, 2));
        assert_eq!(st.ipv4, fam(14, 8, 4, 2));
        assert_eq!(
            (
                st.ndp.solicits_received,
                st.ndp.adverts_sent,
                st.ndp.ra_sent
            ),
            (8, 8, 2)
        );
        let text = st.render();
        assert!(
            text.contains("  ipv6: rx 10, forwarded 6, to_host 2, dropped 2"),
            "{text}"
        );
        assert!(
            text.contains("ndp: solicits received 8, adverts sent 8"),
            "{text}"
        );
        let j = serde_json::to_value(&st).unwrap();
        assert_eq!(j["ipv6"]["forwarded"], 6);
        assert_eq!(j["ipv4"]["rx"], 14);
        assert_eq!(j["ndp"]["ra_sent"], 2);
    }
}
