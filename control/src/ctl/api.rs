//! What the control socket serves: the [`ControlHandler`] trait that routerd
//! implements, the plain data it returns, and helpers that build that data
//! from dataplane types so that routerd only gathers counters.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use dataplane::conntrack::{CtCounters, FlowView};
use dataplane::counters::{Count, Counters};
use dataplane::drop::DropReason;
use dataplane::neighbour::NeighbourView;
use dataplane::packet::PortId;
use dataplane::rules::{ChainId, RawAction};
use dataplane::tables::Tables;
use dataplane::worker::{PhaseCycles, RuntimeCounters, WorkerSnapshot};
use dataplane::xsk::port::PortStats;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The router's side of the control socket. Every method is called from a
/// control thread (one per client), never from a worker.
pub trait ControlHandler: Send + Sync {
    /// Counters of everything (`routerctl stats`).
    fn stats(&self) -> StatsSnapshot;
    /// The connection table (`routerctl conntrack list`).
    fn conntrack(&self) -> Vec<FlowEntry>;
    /// Empty the connection table; returns the entries removed.
    fn conntrack_flush(&self) -> usize;
    /// Both neighbour tables (`routerctl neighbours`, like `ip neigh`).
    fn neighbours(&self) -> Vec<NeighbourEntry>;
    /// Load and apply a config. `Err` holds the precise error line, as
    /// `routerd --check` prints it.
    fn reload(&self, file: ConfigFile) -> Result<ReloadSummary, String>;
    /// What loading a config would change against the running one, without
    /// changing anything (`routerctl reload --dry-run`). `Err` as `reload`.
    fn reload_dry_run(&self, file: ConfigFile) -> Result<DryRunReport, String>;
    /// Arm a live trace; `Err` for a bad request (unknown interface, bad
    /// match words).
    fn trace_start(&self, req: TraceStart) -> Result<(), String>;
    /// Packets traced since the last poll.
    fn trace_poll(&self) -> TracePoll;
    /// Stop tracing.
    fn trace_stop(&self);
    /// Set every counter to zero.
    fn reset_counters(&self);
    /// The workers' runtime accounting (`routerctl stats runtime`).
    fn runtime(&self) -> RuntimeStats;
    /// Set the runtime accounting alone to zero.
    fn clear_runtime(&self);
    /// Arm a packet capture (`routerctl capture`); `Err` for a bad request
    /// or while another capture runs.
    fn capture_start(
        &self,
        _req: super::capture::CaptureStart,
    ) -> Result<super::capture::CaptureStarted, String> {
        Err("this router does not capture packets".into())
    }
    /// Frames captured since the last poll.
    fn capture_poll(&self, id: u64) -> Result<super::capture::CapturePoll, String> {
        Err(format!("capture {id} is not running here"))
    }
    /// Stop a capture.
    fn capture_stop(&self, _id: u64) {}
    /// `routerctl route`: the answer to a [`super::route::RouteRequest`].
    fn route(&self, req: super::route::RouteRequest) -> Result<serde_json::Value, String> {
        let _ = req;
        Err("this routerd does not answer route requests".into())
    }
}

/// Route counts for `stats` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// Routes in use by source: `connected`, `local`, `static`, `kernel`.
    pub by_source: BTreeMap<String, u64>,
    /// Kernel routes skipped, by reason (`kernel_routes` on).
    pub kernel_skipped: BTreeMap<String, u64>,
    /// Full resyncs of the kernel feed after lost notifications.
    pub kernel_resyncs: u64,
    /// Route and nexthop messages the kernel feed applied.
    pub kernel_messages: u64,
}

/// Packets and bytes in both directions of an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Kernel netdev (`r0`; `tun` for the host path).
    pub device: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames dropped before the pipeline saw them: the kernel's AF_XDP
    /// `rx_dropped` and `rx_ring_full` (0 for the host path).
    pub rx_dropped: u64,
    /// Frames not sent: TX ring full or bad frames.
    pub tx_dropped: u64,
}

/// One worker's loop counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: usize,
    /// The core it is pinned to.
    pub core: usize,
    /// Loop iterations.
    pub loops: u64,
    /// Iterations that found work (received or sent something).
    pub busy_loops: u64,
    /// `busy_loops / loops`, 0..=1.
    pub busy_share: f64,
    /// Packets this worker's pipeline took (from its queues, the host path
    /// and other workers' hand-offs; a packet it handed over is counted by
    /// the owner).
    pub rx_packets: u64,
    /// Packets it forwarded.
    pub forwarded: u64,
    /// Tracked packets it handed to the worker owning their flow.
    pub handed_off: u64,
    /// Packets other workers handed to it.
    pub handed_in: u64,
    /// Hand-offs dropped because the owner's queue was full.
    pub handoff_full: u64,
    /// Entries in its connection table (the flows it owns).
    pub conntrack_entries: u64,
}

/// What routerd knows of a worker's loop; input of [`snapshot_from`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    pub core: usize,
    pub loops: u64,
    pub busy_loops: u64,
    pub rx_packets: u64,
    pub forwarded: u64,
    pub handed_off: u64,
    pub handed_in: u64,
    pub handoff_full: u64,
    pub conntrack_entries: u64,
}

/// A rule's hits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStats {
    /// `raw` or `filter`.
    pub table: String,
    /// `prerouting`/`output` for raw, `input`/`forward`/`output` for filter.
    pub chain: String,
    /// Position in its chain, from 1 (as explain and trace number rules);
    /// `None` for the chain's policy.
    pub position: Option<usize>,
    /// `notrack`, `accept`, `drop`, `reject` (for the policy, the policy).
    pub action: String,
    /// The operator's comment.
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// The connection tables, summed over workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConntrackStats {
    /// Live flows.
    pub entries: u64,
    /// Entries allowed (per worker limit times workers).
    pub max_entries: u64,
    /// IP packets that went through connection tracking.
    pub tracked_packets: u64,
    /// IP packets marked NOTRACK in the raw stage.
    pub untracked_packets: u64,
    /// Flows by state (`ESTABLISHED`, `SYN_SENT`, ... for TCP; `REPLIED`,
    /// `UNREPLIED` for others).
    pub by_state: BTreeMap<String, u64>,
    /// Flows by protocol (`tcp`, `udp`, `icmp`, `proto 47`).
    pub by_protocol: BTreeMap<String, u64>,
    /// Flows inserted.
    pub inserted: u64,
    /// Flows expired.
    pub expired: u64,
    /// Flows evicted for room (early drop).
    pub early_dropped: u64,
    /// New flows refused, table full.
    pub table_full: u64,
}

/// AF_XDP ring counters of an interface, from the socket (`XDP_STATISTICS`)
/// and the worker, summed over the interface's queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingStats {
    /// Times the kernel found the fill ring empty.
    pub fill_ring_empty: u64,
    /// Frames that found the TX ring full.
    pub tx_ring_full: u64,
    /// Received frames the kernel dropped (not ring related).
    pub rx_dropped: u64,
    /// Frames the kernel dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the TX ring.
    pub tx_invalid_descs: u64,
    /// Refills that found too few free frames.
    pub rx_fill_starved: u64,
    /// TX wake-ups (`sendto`).
    pub tx_kicks: u64,
}

/// Other packet counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStats {
    pub forwarded: u64,
    pub to_host: u64,
    pub consumed: u64,
    pub generated: u64,
    pub icmp_errors_sent: u64,
    pub icmp_errors_rate_limited: u64,
    pub tcp_resets_sent: u64,
    pub arp_replies_sent: u64,
    pub arp_replies_received: u64,
    pub arp_requests_sent: u64,
}

/// Packets of one address family. The dataplane counts IPv6 on its own;
/// the `ipv4` block is the total less IPv6, so ARP and other non-IP
/// frames count there too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyStats {
    /// Packets the pipeline received (ports and host path).
    pub rx: u64,
    /// Forwarded out of a port.
    pub forwarded: u64,
    /// Delivered to the host path.
    pub to_host: u64,
    /// Dropped, all reasons.
    pub dropped: u64,
}

impl FamilyStats {
    /// IPv6's block and the `ipv4` one (the total less IPv6) from merged
    /// counters: `rx_total` is every frame the pipeline received.
    pub fn split(c: &Counters, rx_total: u64) -> (FamilyStats, FamilyStats) {
        let v6 = FamilyStats {
            rx: c.ipv6_rx,
            forwarded: c.ipv6_forwarded,
            to_host: c.ipv6_to_host,
            dropped: c.ipv6_dropped,
        };
        let v4 = FamilyStats {
            rx: rx_total.saturating_sub(v6.rx),
            forwarded: c.forwarded.saturating_sub(v6.forwarded),
            to_host: c.to_host.saturating_sub(v6.to_host),
            dropped: c.drops.iter().sum::<u64>().saturating_sub(v6.dropped),
        };
        (v4, v6)
    }
}

/// Neighbour discovery (RFC 4861) counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NdpStats {
    /// Neighbour solicitations for the router's addresses received.
    pub solicits_received: u64,
    /// Neighbour advertisements sent (answers to solicitations).
    pub adverts_sent: u64,
    /// Neighbour advertisements received.
    pub adverts_received: u64,
    /// Neighbour solicitations sent to resolve or probe next hops.
    pub solicits_sent: u64,
    /// IPv6 next hops that did not answer three solicitations.
    pub resolution_failures: u64,
    /// Router advertisements sent.
    pub ra_sent: u64,
    /// Router solicitations received.
    pub rs_received: u64,
}

impl NdpStats {
    /// From merged counters.
    pub fn of(c: &Counters) -> NdpStats {
        NdpStats {
            solicits_received: c.nd_solicits_received,
            adverts_sent: c.nd_adverts_sent,
            adverts_received: c.nd_adverts_received,
            solicits_sent: c.nd_solicits_sent,
            resolution_failures: c.nd_resolution_failures,
            ra_sent: c.ra_sent,
            rs_received: c.rs_received,
        }
    }
}

/// Cycles by phase of a worker's loop, from the TSC (see
/// [`dataplane::worker::runtime`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycles {
    /// Polling the RX rings, completions, fill-ring refills.
    pub rx: u64,
    /// The pipeline and the verdicts.
    pub pipeline: u64,
    /// Filling the TX rings and the kicks.
    pub tx: u64,
    /// The host path (TUN) both ways.
    pub host: u64,
    /// Hand-offs to and from other workers.
    pub handoff: u64,
    /// Housekeeping rounds.
    pub housekeeping: u64,
    /// Loops that moved nothing, and back-off sleeps.
    pub idle: u64,
}

impl From<PhaseCycles> for Cycles {
    fn from(c: PhaseCycles) -> Cycles {
        Cycles {
            rx: c.rx,
            pipeline: c.pipeline,
            tx: c.tx,
            host: c.host,
            handoff: c.handoff,
            housekeeping: c.housekeeping,
            idle: c.idle,
        }
    }
}

impl Cycles {
    /// `(name, cycles)` of every phase, idle last.
    pub fn phases(&self) -> [(&'static str, u64); 7] {
        [
            ("rx", self.rx),
            ("pipeline", self.pipeline),
            ("tx", self.tx),
            ("host", self.host),
            ("handoff", self.handoff),
            ("housekeeping", self.housekeeping),
            ("idle", self.idle),
        ]
    }
}

/// Runtime accounting of a worker or of all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTotals {
    /// Loop iterations.
    pub loops: u64,
    /// Iterations that received at least one packet.
    pub busy_loops: u64,
    /// Packets run through the pipeline (a packet handed to its flow's
    /// owner counts at both workers).
    pub packets: u64,
    /// Cycles by phase.
    pub cycles: Cycles,
    /// Loop time in cycles: the sum of `cycles`.
    pub total_cycles: u64,
}

impl From<RuntimeCounters> for RuntimeTotals {
    fn from(r: RuntimeCounters) -> RuntimeTotals {
        RuntimeTotals {
            loops: r.loops,
            busy_loops: r.busy_loops,
            packets: r.packets,
            cycles: r.cycles.into(),
            total_cycles: r.total_cycles,
        }
    }
}

/// One worker's runtime accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRuntime {
    pub worker: usize,
    /// The core it is pinned to (`null`: not pinned).
    pub core: Option<usize>,
    #[serde(flatten)]
    pub counts: RuntimeTotals,
}

/// `routerctl stats runtime`: every worker's loops, packets and cycles by
/// phase since start or the last clear, and their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStats {
    /// Cycles per second of the counter the cycles come from (the TSC).
    pub tsc_hz: u64,
    pub workers: Vec<WorkerRuntime>,
    /// Summed over workers.
    pub total: RuntimeTotals,
}

/// The runtime accounting of `snaps` (one per worker, in worker order).
pub fn runtime_stats(tsc_hz: u64, snaps: &[WorkerSnapshot]) -> RuntimeStats {
    use dataplane::worker::Tally;
    let workers: Vec<WorkerRuntime> = snaps
        .iter()
        .map(|s| WorkerRuntime {
            worker: s.index,
            core: s.core,
            counts: s.runtime.into(),
        })
        .collect();
    let total = (snaps.iter()).fold(RuntimeCounters::default(), |t, s| t.plus(s.runtime));
    RuntimeStats {
        tsc_hz,
        workers,
        total: total.into(),
    }
}

/// Everything `routerctl stats` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since the counters started (or were reset).
    pub uptime_secs: u64,
    /// By interface name; `host` is the host path.
    pub interfaces: BTreeMap<String, InterfaceStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Every drop reason by its stable name, zeros included.
    pub drops: BTreeMap<String, u64>,
    /// Raw and filter rules and chain policies in config order.
    pub rules: Vec<RuleStats>,
    /// Connection tracking.
    pub conntrack: ConntrackStats,
    /// AF_XDP ring counters by interface name.
    pub afxdp: BTreeMap<String, RingStats>,
    /// Where packets went.
    pub path: PathStats,
    /// The workers' runtime accounting (as `routerctl stats runtime`).
    #[serde(default)]
    pub runtime: RuntimeStats,
    /// Route counts by source, kernel feed counters.
    #[serde(default)]
    pub routes: RouteStats,
    /// IPv4 packets: the total less IPv6 (ARP and other frames included).
    #[serde(default)]
    pub ipv4: FamilyStats,
    /// IPv6 packets, as the dataplane counts them.
    #[serde(default)]
    pub ipv6: FamilyStats,
    /// Neighbour discovery.
    #[serde(default)]
    pub ndp: NdpStats,
}

/// Input of [`snapshot_from`]: what routerd gathers from its workers.
pub struct SnapshotInput<'a> {
    /// The tables in force (names, rules, comments).
    pub tables: &'a Tables,
    /// Counters of all workers merged ([`Counters::merge`]).
    pub counters: &'a Counters,
    /// One per worker, in worker order.
    pub workers: &'a [WorkerLoad],
    /// Per port in port order, summed over the workers' sockets; empty when
    /// there are no AF_XDP ports (tests).
    pub ports: &'a [PortStats],
    /// The connection tables' summary ([`conntrack_stats`]).
    pub conntrack: ConntrackStats,
    /// Seconds since the counters started.
    pub uptime_secs: u64,
    /// Name of the host path device (TUN), if there is one.
    pub host_device: Option<&'a str>,
    /// The workers' runtime accounting ([`runtime_stats`]).
    pub runtime: RuntimeStats,
}

fn raw_action(a: RawAction) -> &'static str {
    match a {
        RawAction::NoTrack => "notrack",
        RawAction::Accept => "accept",
    }
}

fn rule_count(v: &[Count], i: usize) -> Count {
    v.get(i).copied().unwrap_or_default()
}

/// Build the stats the socket serves from the dataplane's own types.
pub fn snapshot_from(input: SnapshotInput<'_>) -> StatsSnapshot {
    let t = input.tables;
    let c = input.counters;
    let mut interfaces = BTreeMap::new();
    let mut afxdp = BTreeMap::new();
    for (i, ifc) in t.interfaces.iter().enumerate() {
        let p = input.ports.get(i).copied().unwrap_or_default();
        let rx = c.rx[i];
        let tx = c.tx[i];
        interfaces.insert(
            ifc.name.clone(),
            InterfaceStats {
                device: ifc.device.clone(),
                rx_packets: rx.packets,
                rx_bytes: rx.bytes,
                tx_packets: tx.packets,
                tx_bytes: tx.bytes,
                rx_dropped: p.xdp.rx_dropped + p.xdp.rx_ring_full,
                tx_dropped: p.tx_ring_full + p.tx_bad_frames + p.tx_link_down,
            },
        );
        if !input.ports.is_empty() {
            afxdp.insert(
                ifc.name.clone(),
                RingStats {
                    fill_ring_empty: p.xdp.rx_fill_ring_empty_descs,
                    tx_ring_full: p.tx_ring_full,
                    rx_dropped: p.xdp.rx_dropped,
                    rx_ring_full: p.xdp.rx_ring_full,
                    rx_invalid_descs: p.xdp.rx_invalid_descs,
                    tx_invalid_descs: p.xdp.tx_invalid_descs,
                    rx_fill_starved: p.rx_fill_starved,
                    tx_kicks: p.tx_kicks,
                },
            );
        }
    }
    if let Some(dev) = input.host_device {
        let h = PortId::HOST.0 as usize;
        interfaces.insert(
            "host".to_string(),
            InterfaceStats {
                device: dev.to_string(),
                rx_packets: c.rx[h].packets,
                rx_bytes: c.rx[h].bytes,
                tx_packets: c.tx[h].packets,
                tx_bytes: c.tx[h].bytes,
                rx_dropped: 0,
                tx_dropped: 0,
            },
        );
    }
    let drops = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), c.drops[*r as usize]))
        .collect();
    let mut rules = Vec::new();
    for (h, (name, list)) in [("prerouting", &t.raw_prerouting), ("output", &t.raw_output)]
        .into_iter()
        .enumerate()
    {
        for (i, r) in list.iter().enumerate() {
            let n = rule_count(&c.raw_rules[h], i);
            rules.push(RuleStats {
                table: "raw".into(),
                chain: name.into(),
                position: Some(i + 1),
                action: raw_action(r.action).into(),
                comment: r.comment.clone(),
                packets: n.packets,
                bytes: n.bytes,
            });
        }
    }
    for chain in [ChainId::Input, ChainId::Forward, ChainId::Output] {
        let ch = &t.filter[chain as usize];
        for (i, r) in ch.rules.iter().enumerate() {
            let n = rule_count(&c.filter_rules[chain as usize], i);
            rules.push(RuleStats {
                table: "filter".into(),
                chain: chain.name().into(),
                position: Some(i + 1),
                action: r.action.name().into(),
                comment: r.comment.clone(),
                packets: n.packets,
                bytes: n.bytes,
            });
        }
        let n = c.filter_policy[chain as usize];
        rules.push(RuleStats {
            table: "filter".into(),
            chain: chain.name().into(),
            position: None,
            action: ch.policy.name().into(),
            comment: None,
            packets: n.packets,
            bytes: n.bytes,
        });
    }
    let workers = input
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| WorkerStats {
            worker: i,
            core: w.core,
            loops: w.loops,
            busy_loops: w.busy_loops,
            busy_share: if w.loops == 0 {
                0.0
            } else {
                w.busy_loops as f64 / w.loops as f64
            },
            rx_packets: w.rx_packets,
            forwarded: w.forwarded,
            handed_off: w.handed_off,
            handed_in: w.handed_in,
            handoff_full: w.handoff_full,
            conntrack_entries: w.conntrack_entries,
        })
        .collect();
    let rx_total = (0..t.interfaces.len())
        .map(|i| c.rx[i].packets)
        .sum::<u64>()
        + c.rx[PortId::HOST.0 as usize].packets;
    let (ipv4, ipv6) = FamilyStats::split(c, rx_total);
    let mut conntrack = input.conntrack;
    conntrack.tracked_packets = c.tracked;
    conntrack.untracked_packets = c.untracked;
    StatsSnapshot {
        uptime_secs: input.uptime_secs,
        interfaces,
        workers,
        drops,
        rules,
        conntrack,
        afxdp,
        path: PathStats {
            forwarded: c.forwarded,
            to_host: c.to_host,
            consumed: c.consumed,
            generated: c.generated,
            icmp_errors_sent: c.icmp_errors_sent,
            icmp_errors_rate_limited: c.icmp_errors_rate_limited,
            tcp_resets_sent: c.tcp_resets_sent,
            arp_replies_sent: c.arp_replies_sent,
            arp_replies_received: c.arp_replies_received,
            arp_requests_sent: c.arp_requests_sent,
        },
        runtime: input.runtime,
        routes: RouteStats::default(),
        ipv4,
        ipv6,
        ndp: NdpStats::of(c),
    }
}

/// Protocol name as `conntrack -L` prints it.
pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => format!("proto {n}"),
    }
}

/// A flow's state word: the TCP state, else `REPLIED`/`UNREPLIED`.
pub fn flow_state(f: &FlowView) -> String {
    match f.tcp_state {
        Some(s) => s.name().to_string(),
        None if f.seen_reply => "REPLIED".into(),
        None => "UNREPLIED".into(),
    }
}

/// Summarise the flows of all workers' tables. `counters` and `max_entries`
/// are summed by the caller over workers; tracked/untracked packets come
/// from [`Counters`] in [`snapshot_from`].
pub fn conntrack_stats(
    flows: impl IntoIterator<Item = FlowView>,
    counters: CtCounters,
    max_entries: u64,
) -> ConntrackStats {
    let mut s = ConntrackStats {
        max_entries,
        inserted: counters.inserted,
        expired: counters.expired,
        early_dropped: counters.early_dropped,
        table_full: counters.table_full,
        ..Default::default()
    };
    for f in flows {
        s.entries += 1;
        *s.by_state.entry(flow_state(&f)).or_default() += 1;
        *s.by_protocol.entry(protocol_name(f.key.proto)).or_default() += 1;
    }
    s
}

/// One tuple of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// One neighbour as `routerctl neighbours` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourEntry {
    /// IPv4 or IPv6.
    pub address: IpAddr,
    /// The interface it is on.
    pub interface: String,
    /// Its MAC, `02:00:00:00:00:02`.
    pub mac: String,
    /// `reachable`, `stale`, `probe`, `failed` or `permanent` (from the
    /// config), as `ip neigh` names them.
    pub state: String,
    /// Seconds until a learned entry expires; `null` for a static one.
    pub expires_secs: Option<u32>,
}

/// The neighbours the workers listed (`per_worker`, a list each), as the
/// operator sees them: one entry per address and interface (the workers
/// share what they learn; the first worker's entry wins), IPv4 first, by
/// address.
pub fn neighbour_entries(
    tables: &Tables,
    per_worker: impl IntoIterator<Item = Vec<NeighbourView>>,
) -> Vec<NeighbourEntry> {
    let mut seen = std::collections::BTreeSet::new();
    let mut all: Vec<NeighbourView> = per_worker
        .into_iter()
        .flatten()
        .filter(|n| seen.insert((n.addr, n.port.0)))
        .collect();
    // `IpAddr` orders every IPv4 address before the IPv6 ones.
    all.sort_by_key(|n| (n.addr, n.port.0));
    all.into_iter()
        .map(|n| NeighbourEntry {
            address: n.addr,
            interface: tables
                .interfaces
                .get(n.port.0 as usize)
                .map_or_else(|| format!("port{}", n.port.0), |i| i.name.clone()),
            mac: n.mac.to_string(),
            state: n.state.name().to_string(),
            expires_secs: n.expires_in,
        })
        .collect()
}

/// One flow as `routerctl conntrack list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEntry {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `proto N`.
    pub protocol: String,
    /// IP protocol number.
    pub protonum: u8,
    /// Original direction, IPv4 or IPv6 (ICMP: both ports hold the query id).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The reply direction's tuple.
    pub reply: Tuple,
    /// TCP state (`ESTABLISHED`), else `REPLIED`/`UNREPLIED`.
    pub state: String,
    /// Seconds left.
    pub timeout: u32,
    /// Seen traffic both ways (not evicted when the table is full).
    pub assured: bool,
    /// A reply was seen.
    pub seen_reply: bool,
    pub orig_packets: u64,
    pub orig_bytes: u64,
    pub reply_packets: u64,
    pub reply_bytes: u64,
    /// The worker whose table holds the flow (the flow's owner).
    #[serde(default)]
    pub worker: usize,
}

impl From<FlowView> for FlowEntry {
    fn from(f: FlowView) -> FlowEntry {
        let k = f.key;
        let r = k.reverse();
        let (orig, reply) = match f.key6 {
            Some(k6) => {
                let a = |x: u128| IpAddr::V6(Ipv6Addr::from(x));
                ((a(k6.src), a(k6.dst)), (a(k6.dst), a(k6.src)))
            }
            None => {
                let a = |x: u32| IpAddr::V4(Ipv4Addr::from(x));
                ((a(k.src), a(k.dst)), (a(r.src), a(r.dst)))
            }
        };
        FlowEntry {
            protocol: protocol_name(k.proto),
            protonum: k.proto,
            src: orig.0,
            dst: orig.1,
            sport: k.sport,
            dport: k.dport,
            reply: Tuple {
                src: reply.0,
                dst: reply.1,
                sport: r.sport,
                dport: r.dport,
            },
            state: flow_state(&f),
            timeout: f.timeout,
            assured: f.assured,
            seen_reply: f.seen_reply,
            orig_packets: f.packets[0],
            orig_bytes: f.bytes[0],
            reply_packets: f.packets[1],
            reply_bytes: f.bytes[1],
            worker: 0,
        }
    }
}

/// What a successful reload reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// The file loaded.
    pub path: PathBuf,
    pub interfaces: usize,
    /// Configured routes.
    pub routes: usize,
    /// Raw and filter rules.
    pub rules: usize,
    /// Connection table entries kept across the reload.
    pub conntrack_entries: u64,
}

impl ReloadSummary {
    /// The summary of a config; `conntrack_entries` is for the caller.
    pub fn of(cfg: &Config) -> ReloadSummary {
        ReloadSummary {
            path: cfg.path.clone(),
            interfaces: cfg.spec.interfaces.len(),
            routes: cfg.spec.routes.len(),
            rules: cfg.spec.raw_prerouting.len()
                + cfg.spec.raw_output.len()
                + cfg.spec.filter_input.rules.len()
                + cfg.spec.filter_forward.rules.len()
                + cfg.spec.filter_output.rules.len(),
            conntrack_entries: 0,
        }
    }
}

/// The config a reload or a dry run loads: routerd's own file, or one a
/// client named, already read for it by the protocol layer (only if the
/// client may read it: [`super::peer::Caller::read_file`]), so that no
/// handler opens a client's path itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigFile {
    /// The file routerd was started with (read by routerd, for itself).
    Started,
    /// A client's file: its path (for messages) and its text.
    Read { path: PathBuf, text: String },
}

impl ConfigFile {
    /// Validates the config; `started` is routerd's own file.
    pub fn load(&self, started: &Path) -> Result<Config, String> {
        match self {
            ConfigFile::Started => Config::load(started),
            ConfigFile::Read { path, text } => Config::from_str(text, path),
        }
        .map_err(|e| e.to_string())
    }

    /// The path, for messages.
    pub fn path<'a>(&'a self, started: &'a Path) -> &'a Path {
        match self {
            ConfigFile::Started => started,
            ConfigFile::Read { path, .. } => path,
        }
    }
}

/// What `reload --dry-run` reports: what a reload of `path` would change
/// against the config routerd runs (`running`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunReport {
    /// The file compared.
    pub path: PathBuf,
    /// The file of the running config.
    pub running: PathBuf,
    /// Whether a reload would be applied (nothing in `diff.restart`).
    pub reload_would_apply: bool,
    /// The changes.
    pub diff: crate::config::diff::ConfigDiff,
}

/// Arm a trace: `routerctl trace --count N --in IFACE match...`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStart {
    /// Packets to trace.
    pub count: u32,
    /// Arrival interface name (`host` for the host path).
    #[serde(rename = "in")]
    pub input: Option<String>,
    /// tcpdump-like match words ([`crate::ctl::trace::parse_match`]).
    #[serde(rename = "match")]
    pub matcher: Vec<String>,
}

/// One traced packet in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracedPacket {
    /// The worker that saw it.
    pub worker: usize,
    /// The packet, then one line per stage (explain's words).
    pub lines: Vec<String>,
    /// The same as explain's `--json` object.
    pub json: serde_json::Value,
}

/// The answer to a trace poll.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TracePoll {
    /// Packets traced since the last poll.
    pub packets: Vec<TracedPacket>,
    /// Packets the trace still waits for.
    pub remaining: u32,
    /// Records lost to a full queue (the client polls too slowly).
    pub lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::addr::Mac;
    use dataplane::neighbour::NeighbourState;

    #[test]
    fn neighbours_of_all_workers_are_listed_once_ipv4_first() {
        let cfg = crate::config::Config::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml"),
        )
        .expect("shipped config loads");
        let tables = Tables::build(cfg.tables_spec());
        let view = |addr: &str, port: u8, state, expires_in| NeighbourView {
            addr: addr.parse().unwrap(),
            port: PortId(port),
            mac: Mac([2, 0, 0, 0, 0, port]),
            state,
            expires_in,
        };
        let reachable = NeighbourState::Reachable;
        // Worker 1 heard of the gateway after worker 0 (stale there), and
        // alone of an IPv6 neighbour; fe80::1 is on both links.
        let w0 = vec![
            view("fe80::1", 0, reachable, Some(10)),
            view("198.18.0.2", 0, reachable, Some(250)),
        ];
        let w1 = vec![
            view("198.18.0.2", 0, NeighbourState::Stale, Some(90)),
            view("fe80::1", 1, reachable, Some(20)),
            view("198.19.0.2", 1, NeighbourState::Permanent, None),
        ];
        let e = neighbour_entries(&tables, [w0, w1]);
        let got: Vec<(String, &str, &str, Option<u32>)> = e
            .iter()
            .map(|n| {
                (
                    n.address.to_string(),
                    n.interface.as_str(),
                    n.state.as_str(),
                    n.expires_secs,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("198.18.0.2".to_string(), "wan", "reachable", Some(250)),
                ("198.19.0.2".to_string(), "lan", "permanent", None),
                ("fe80::1".to_string(), "wan", "reachable", Some(10)),
                ("fe80::1".to_string(), "lan", "reachable", Some(20)),
            ]
        );
        assert_eq!(e[0].mac, "02:00:00:00:00:00");
    }
}
