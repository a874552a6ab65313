//! What the router counted, summed over workers: the exit log, SIGUSR1's
//! log and `--stats-json FILE` are rendered from [`RouterStats`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dataplane::drop::DropReason;
use dataplane::worker::{aggregate, WorkerSnapshot};
use serde::{Deserialize, Serialize};

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

/// Everything routerd counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterStats {
    /// Per interface, in config order.
    pub interfaces: Vec<InterfaceStats>,
    /// Frames forwarded out of a port.
    pub forwarded: u64,
    /// Packets for the router itself.
    pub to_host: u64,
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
    /// Drops by reason, non-zero only.
    pub drops: BTreeMap<String, u64>,
    /// Connection-table entries, all workers.
    pub conntrack_entries: u64,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
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
        RouterStats {
            interfaces,
            forwarded: c.forwarded,
            to_host: c.to_host,
            consumed: c.consumed,
            generated: c.generated,
            tracked: c.tracked,
            untracked: c.untracked,
            arp_replies_sent: c.arp_replies_sent,
            arp_requests_sent: c.arp_requests_sent,
            icmp_errors_sent: c.icmp_errors_sent,
            drops,
            conntrack_entries: snaps.iter().map(|s| s.conntrack_entries as u64).sum(),
            workers,
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
        let _ = writeln!(
            s,
            "  tracked {}, untracked {}, conntrack entries {}; arp replies sent {}, arp requests sent {}",
            self.tracked,
            self.untracked,
            self.conntrack_entries,
            self.arp_replies_sent,
            self.arp_requests_sent
        );
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
        assert!(text.contains("drops: neighbour_unresolved 4"), "{text}");
        let json = serde_json::to_string(&st).unwrap();
        let back: RouterStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
    }
}
