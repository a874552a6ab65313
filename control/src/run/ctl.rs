//! routerd's side of the control socket: a [`ControlHandler`] over the
//! running workers. It reads what the workers publish, asks them (list or
//! flush the connection table, reset counters: answered at their
//! housekeeping, [`WorkerShared::ask`]), swaps tables for a reload and arms
//! live traces.
//!
//! Never touches a worker's state itself and takes no lock a worker takes
//! on its packet path; every wait for a worker is bounded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::conntrack::{CtCounters, FlowView};
use dataplane::worker::{
    aggregate, TablesSlot, Tally, WorkerReply, WorkerRequest, WorkerShared, WorkerSnapshot,
};
use tracing::{info, warn};

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::kernel_routes::{self, RoutePublisher, SkipReason};
use super::{build_spec, Router};
use crate::config::Config;
use crate::config::KernelRoutesConfig;
use crate::ctl::api::RouteStats;
use crate::ctl::api::{
    conntrack_stats, snapshot_from, ControlHandler, FlowEntry, ReloadSummary, SnapshotInput,
    StatsSnapshot, TracePoll, TraceStart, WorkerLoad,
};
use crate::ctl::route::{self, KernelFeedStatus, RouteRequest, RouteVerify, SkippedEntry};
use crate::ctl::trace::TraceService;

/// Longest wait for a worker's answer to a listing, flush or reset.
pub const WORKER_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for the connection-table listing behind `stats` (its
/// per-state counts); a worker that does not answer in time counts its
/// entries without states.
const STATS_WAIT: Duration = Duration::from_millis(500);
/// Longest wait for the workers to adopt reloaded tables.
const ADOPT_WAIT: Duration = Duration::from_secs(2);

/// The config in force and when the counters started.
struct Running {
    /// The config in force.
    cfg: Config,
    /// When the counters started (or were reset).
    since: Instant,
}

/// The control handler of a running routerd.
pub struct RouterCtl {
    workers: Vec<Arc<WorkerShared>>,
    tables: Arc<TablesSlot>,
    publisher: Arc<RoutePublisher>,
    trace: TraceService,
    host_device: Option<String>,
    /// The file routerd was started with (`reload` without a file, SIGHUP).
    config_path: PathBuf,
    /// Held for the whole of a reload: reloads run one at a time.
    running: Mutex<Running>,
}

impl std::fmt::Debug for RouterCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterCtl")
            .field("workers", &self.workers.len())
            .field("config", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl RouterCtl {
    /// The handler of `router`, started with `cfg`.
    pub fn new(router: &Router, cfg: &Config) -> Arc<RouterCtl> {
        Arc::new(RouterCtl {
            workers: router.workers.iter().map(|(s, _)| Arc::clone(s)).collect(),
            tables: Arc::clone(&router.tables),
            publisher: Arc::clone(&router.publisher),
            trace: router.trace.clone(),
            host_device: router.host.as_ref().map(|(name, _)| name.clone()),
            config_path: cfg.path.clone(),
            running: Mutex::new(Running {
                cfg: cfg.clone(),
                since: Instant::now(),
            }),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshots(&self) -> Vec<WorkerSnapshot> {
        self.workers.iter().map(|w| w.snapshot()).collect()
    }

    /// Every worker's flows; `None` for a worker that did not answer.
    fn flows(&self, limit: Duration) -> Vec<Option<Vec<FlowView>>> {
        self.workers
            .iter()
            .map(|w| match w.ask(WorkerRequest::ListFlows, limit) {
                Some(WorkerReply::Flows(f)) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn ask_all(&self, req: WorkerRequest) -> Vec<Option<WorkerReply>> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let r = w.ask(req, WORKER_WAIT);
                if r.is_none() {
                    warn!("worker {i} did not answer {req:?} within {WORKER_WAIT:?}");
                }
                r
            })
            .collect()
    }

    /// Waits (bounded) until every worker's snapshot shows tables
    /// generation `g`; false if one did not in time.
    fn wait_adopted(&self, g: u64) -> bool {
        let deadline = Instant::now() + ADOPT_WAIT;
        loop {
            let snaps = self.snapshots();
            if snaps.iter().all(|s| s.tables_generation >= g || s.stopped) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Loads and applies a config (`None`: the file routerd was started
    /// with); logs the outcome. The line of an `Err` is what
    /// `routerd --check` prints for the same file, or why a valid config
    /// cannot be applied live.
    pub fn reload_config(&self, path: Option<&Path>) -> Result<ReloadSummary, String> {
        let path = path.unwrap_or(&self.config_path);
        let cfg = Config::load(path).map_err(|e| {
            let line = e.to_string();
            warn!("reload refused, the running config stays: {line}");
            line
        })?;
        let mut running = self.running();
        if let Err(why) = live_changeable(&running.cfg, &cfg) {
            let line = format!(
                "{}: {why}: restart routerd to apply it (the running config stays)",
                path.display()
            );
            warn!("reload refused: {line}");
            return Err(line);
        }
        // Off the packet path: compiles routes and rules, reads the MACs.
        let spec = build_spec(&cfg).map_err(|e| {
            let line = format!("{}: {e}", path.display());
            warn!("reload refused, the running config stays: {line}");
            line
        })?;
        if cfg.control_socket != running.cfg.control_socket
            || cfg.metrics_listen != running.cfg.metrics_listen
        {
            warn!(
                "reload: control.socket and metrics.listen take effect at the next start \
                 (still {} and {:?})",
                running.cfg.control_socket.display(),
                running.cfg.metrics_listen
            );
        }
        // The kernel's routes stay: they are mapped again onto the new
        // interfaces.
        let generation = {
            self.publisher.set_base(spec);
            self.tables.generation()
        };
        let adopted = self.wait_adopted(generation);
        running.cfg = cfg;
        let mut s = ReloadSummary::of(&running.cfg);
        s.conntrack_entries = self
            .snapshots()
            .iter()
            .map(|w| w.conntrack_entries as u64)
            .sum();
        info!(
            "reloaded {}: {} routes, {} rules; {} connection entries kept{}",
            path.display(),
            s.routes,
            s.rules,
            s.conntrack_entries,
            if adopted {
                ""
            } else {
                " (a worker has not picked the new tables up yet)"
            }
        );
        Ok(s)
    }
}

/// Whether `new` can replace `old` without restarting: the ports, the
/// workers and the host path are set up at start and stay.
fn live_changeable(old: &Config, new: &Config) -> Result<(), String> {
    let (a, b) = (&old.dataplane, &new.dataplane);
    let field = |name: &str, x: String, y: String| -> Result<(), String> {
        if x == y {
            Ok(())
        } else {
            Err(format!(
                "{name}: {x} -> {y} cannot change while routerd runs"
            ))
        }
    };
    field(
        "dataplane.workers",
        format!("{:?}", a.workers),
        format!("{:?}", b.workers),
    )?;
    field("dataplane.burst", a.burst.to_string(), b.burst.to_string())?;
    field(
        "kernel_routes",
        format!("{:?}", old.kernel_routes),
        format!("{:?}", new.kernel_routes),
    )?;
    field(
        "dataplane.umem_frames",
        a.umem_frames.to_string(),
        b.umem_frames.to_string(),
    )?;
    field(
        "dataplane.xdp_mode",
        a.xdp_mode.name().into(),
        b.xdp_mode.name().into(),
    )?;
    field(
        "dataplane.xdp_bind",
        crate::config::bind_name(a.xdp_bind).into(),
        crate::config::bind_name(b.xdp_bind).into(),
    )?;
    field(
        "dataplane.busy_poll",
        a.busy_poll.to_string(),
        b.busy_poll.to_string(),
    )?;
    let (old_ifs, new_ifs) = (&old.spec.interfaces, &new.spec.interfaces);
    let names = |v: &[dataplane::tables::Interface]| {
        v.iter()
            .map(|i| format!("{}={}", i.name, i.device))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if old_ifs.len() != new_ifs.len()
        || old_ifs
            .iter()
            .zip(new_ifs)
            .any(|(x, y)| x.name != y.name || x.device != y.device)
    {
        return Err(format!(
            "interfaces: [{}] -> [{}]: ports cannot be added, removed, renamed or moved \
             while routerd runs",
            names(old_ifs),
            names(new_ifs)
        ));
    }
    for (i, (x, y)) in old_ifs.iter().zip(new_ifs).enumerate() {
        let addrs = |v: &[dataplane::addr::IfAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        field(
            &format!("interfaces[{i}].addresses ({})", x.name),
            format!("[{}]", addrs(&x.addresses)),
            format!("[{}]", addrs(&y.addresses)),
        )?;
        field(
            &format!("interfaces[{i}].mtu ({})", x.name),
            x.mtu.to_string(),
            y.mtu.to_string(),
        )?;
    }
    let tun = |c: &Config| c.tun.clone().unwrap_or_else(|| "off".into());
    field("host.tun", tun(old), tun(new))
}

impl ControlHandler for RouterCtl {
    fn stats(&self) -> StatsSnapshot {
        let snaps = self.snapshots();
        let (counters, ports, _) = aggregate(&snaps);
        let loads: Vec<WorkerLoad> = snaps
            .iter()
            .map(|s| WorkerLoad {
                core: s.core.unwrap_or(0),
                loops: s.loops.loops,
                busy_loops: s.loops.busy_loops,
                rx_packets: s.counters.rx.iter().map(|c| c.packets).sum(),
                forwarded: s.counters.forwarded,
                handed_off: s.loops.handed_off,
                handed_in: s.loops.handed_in,
                handoff_full: s.loops.handoff_full,
                conntrack_entries: s.conntrack_entries as u64,
            })
            .collect();
        let ct = (snaps.iter()).fold(CtCounters::default(), |ct, s| ct.plus(s.conntrack));
        let (_, tables) = self.tables.load();
        let listed = self.flows(STATS_WAIT);
        let unanswered: u64 = listed
            .iter()
            .zip(&snaps)
            .filter(|(l, _)| l.is_none())
            .map(|(_, s)| s.conntrack_entries as u64)
            .sum();
        let mut conntrack = conntrack_stats(
            listed.into_iter().flatten().flatten(),
            ct,
            tables.conntrack.max_entries as u64 * self.workers.len() as u64,
        );
        conntrack.entries += unanswered;
        let since = self.running().since;
        let mut snap = snapshot_from(SnapshotInput {
            tables: &tables,
            counters: &counters,
            workers: &loads,
            ports: &ports,
            conntrack,
            uptime_secs: since.elapsed().as_secs(),
            host_device: self.host_device.as_deref(),
        });
        snap.routes = self.route_stats(&tables);
        snap
    }

    fn conntrack(&self) -> Vec<FlowEntry> {
        let per_worker = self.flows(WORKER_WAIT).into_iter().enumerate();
        per_worker
            .flat_map(|(worker, flows)| {
                (flows.into_iter().flatten()).map(move |f| FlowEntry {
                    worker,
                    ..FlowEntry::from(f)
                })
            })
            .collect()
    }

    fn conntrack_flush(&self) -> usize {
        let n = self
            .ask_all(WorkerRequest::FlushFlows)
            .into_iter()
            .map(|r| match r {
                Some(WorkerReply::Flushed(n)) => n,
                _ => 0,
            })
            .sum();
        info!("connection table flushed: {n} entries removed");
        n
    }

    fn reload(&self, path: Option<PathBuf>) -> Result<ReloadSummary, String> {
        self.reload_config(path.as_deref())
    }

    fn trace_start(&self, req: TraceStart) -> Result<(), String> {
        let (_, tables) = self.tables.load();
        self.trace.start(&tables, &req)
    }

    fn trace_poll(&self) -> TracePoll {
        self.trace.poll()
    }

    fn trace_stop(&self) {
        self.trace.stop();
    }

    fn reset_counters(&self) {
        self.ask_all(WorkerRequest::ResetCounters);
        self.running().since = Instant::now();
        info!("counters reset");
    }

    fn route(&self, req: RouteRequest) -> Result<serde_json::Value, String> {
        match req {
            RouteRequest::Show { prefix, summary } => {
                let within = prefix.as_deref().map(route::parse_prefix).transpose()?;
                let (_, t) = self.tables.load();
                let mut s = route::show(&t, within, summary);
                s.kernel = self.kernel_status();
                json(&s)
            }
            RouteRequest::Lookup { address } => {
                let (_, t) = self.tables.load();
                json(&route::lookup(&t, &address)?)
            }
            RouteRequest::Verify => json(&self.verify_routes()?),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the answer: {e}"))
}

/// Tries of `route verify` before it reports a difference: one that a
/// batch in flight explains is gone by the next.
const VERIFY_TRIES: usize = 5;

impl RouterCtl {
    fn kernel_status(&self) -> Option<KernelFeedStatus> {
        let cfg = self.publisher.config()?;
        let c = &self.publisher.counters;
        let skipped = skipped_entries(self.publisher.skipped());
        let mut by_reason = BTreeMap::new();
        for r in SkipReason::ALL {
            by_reason.insert(r.name().to_string(), 0);
        }
        for s in &skipped {
            *by_reason.entry(s.reason.clone()).or_default() += 1;
        }
        Some(KernelFeedStatus {
            table: cfg.table,
            protocols: match &cfg.protocols {
                Some(p) => p
                    .iter()
                    .map(|&x| KernelRoutesConfig::protocol_name(x))
                    .collect(),
                None => vec!["all but kernel".into()],
            },
            kernel_routes: self.publisher.state_routes() as u64,
            messages: c.messages.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            publishes: c.publishes.load(Ordering::Relaxed),
            last_build_us: c.last_build_us.load(Ordering::Relaxed),
            skipped_by_reason: by_reason,
            skipped,
        })
    }

    /// The kernel's table now (a fresh dump, mapped as the feed maps it)
    /// against the kernel routes of the dataplane's tables.
    fn verify_routes(&self) -> Result<RouteVerify, String> {
        let cfg = self
            .publisher
            .config()
            .ok_or("kernel_routes is off in the config: there is no kernel table to compare")?;
        let mut last = RouteVerify::default();
        for i in 0..VERIFY_TRIES {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            let st = kernel_routes::dump(cfg)
                .map_err(|e| format!("cannot dump the kernel's routing table: {e}"))?;
            let (routes, skipped) = st.map(&self.publisher.base_interfaces());
            let (_, t) = self.tables.load();
            last = route::verify(&t, &routes, skipped_entries(skipped));
            if last.clean {
                break;
            }
        }
        Ok(last)
    }

    /// Route counts for `stats` and the metrics.
    fn route_stats(&self, t: &dataplane::tables::Tables) -> RouteStats {
        let mut s = RouteStats::default();
        for src in ["connected", "local", "static", "kernel"] {
            s.by_source.insert(src.into(), 0);
        }
        for r in &t.route_specs {
            *s.by_source.entry(r.source.name().into()).or_default() += 1;
        }
        if let Some(k) = self.kernel_status() {
            s.kernel_skipped = k.skipped_by_reason;
            s.kernel_resyncs = k.resyncs;
            s.kernel_messages = k.messages;
        }
        s
    }
}

fn skipped_entries(v: Vec<kernel_routes::Skipped>) -> Vec<SkippedEntry> {
    v.into_iter()
        .map(|s| SkippedEntry {
            prefix: s.prefix,
            protocol: s.protocol,
            reason: s.reason.name().into(),
            detail: s.detail,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_str(text, Path::new("t.yaml")).expect("valid")
    }

    const BASE: &str = "
dataplane: { workers: [1] }
interfaces:
  - { name: wan, device: r0, addresses: [198.18.0.1/24] }
  - { name: lan, device: r1, addresses: [198.19.0.1/24] }
";

    #[test]
    fn rules_and_routes_change_live_ports_and_workers_do_not() {
        let old = cfg(BASE);
        let rules = cfg(&format!(
            "{BASE}routes: [{{ to: 203.0.113.0/24, via: 198.19.0.2 }}]\n"
        ));
        assert_eq!(live_changeable(&old, &rules), Ok(()));

        let workers = cfg(&BASE.replace("[1]", "[0, 1]"));
        assert_eq!(
            live_changeable(&old, &workers).unwrap_err(),
            "dataplane.workers: [1] -> [0, 1] cannot change while routerd runs"
        );
        let device = cfg(&BASE.replace("device: r1", "device: r2"));
        let e = live_changeable(&old, &device).unwrap_err();
        assert!(
            e.starts_with("interfaces: [wan=r0, lan=r1] -> [wan=r0, lan=r2]: ports cannot"),
            "{e}"
        );
        let addr = cfg(&BASE.replace("198.19.0.1/24", "198.19.0.9/24"));
        let e = live_changeable(&old, &addr).unwrap_err();
        assert_eq!(
            e,
            "interfaces[1].addresses (lan): [198.19.0.1/24] -> [198.19.0.9/24] cannot change \
             while routerd runs"
        );
    }
}
