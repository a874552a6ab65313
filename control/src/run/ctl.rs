//! routerd's side of the control socket: a [`ControlHandler`] over the
//! running workers. It reads what the workers publish, asks them (list or
//! flush the connection table, reset counters: answered at their
//! housekeeping, [`WorkerShared::ask`]), swaps tables for a reload and arms
//! live traces and captures.
//!
//! Never touches a worker's state itself and takes no lock a worker takes
//! on its packet path; every wait for a worker is bounded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::conntrack::{CtCounters, FlowView};
use dataplane::worker::runtime::tsc_hz;
use dataplane::worker::{
    aggregate, TablesSlot, Tally, WorkerReply, WorkerRequest, WorkerShared, WorkerSnapshot,
};
use tracing::{info, warn};

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::kernel_routes::{self, RoutePublisher, SkipReason};
use super::{build_spec, build_tables, Router};
use crate::config::diff::diff;
use crate::config::Config;
use crate::config::KernelRoutesConfig;
use crate::ctl::api::RouteStats;
use crate::ctl::api::{
    conntrack_stats, neighbour_entries, runtime_stats, snapshot_from, ConfigFile, ControlHandler,
    DryRunReport, FlowEntry, NeighbourEntry, ReloadSummary, RuntimeStats, SnapshotInput,
    StatsSnapshot, TracePoll, TraceStart, WorkerLoad,
};
use crate::ctl::capture::{CapturePoll, CaptureService, CaptureStart, CaptureStarted};
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
    capture: CaptureService,
    host_device: Option<String>,
    /// The file routerd was started with (`reload` without a file, SIGHUP).
    config_path: PathBuf,
    /// Held for the whole of a reload: reloads run one at a time.
    running: Mutex<Running>,
    /// Connection table entries per worker allocated at start: a reload
    /// can lower `conntrack.max_entries`, not raise it above this.
    table_capacity: u32,
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
            capture: CaptureService::new(router.trace.hub()),
            host_device: router.host.as_ref().map(|(name, _)| name.clone()),
            config_path: cfg.path.clone(),
            running: Mutex::new(Running {
                cfg: cfg.clone(),
                since: Instant::now(),
            }),
            table_capacity: cfg.spec.conntrack.max_entries,
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
    pub fn reload_config(&self, file: &ConfigFile) -> Result<ReloadSummary, String> {
        let path = file.path(&self.config_path);
        let cfg = file.load(&self.config_path).inspect_err(|line| {
            warn!("reload refused, the running config stays: {line}");
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
        for later in diff(&running.cfg, &cfg, self.table_capacity).next_start {
            warn!(
                "reload: {}: {} -> {} takes effect at the next start only{}",
                later.key,
                later.old,
                later.new,
                later.why.map(|w| format!(" ({w})")).unwrap_or_default()
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

impl RouterCtl {
    /// What reloading `file` would change, changing nothing: the same
    /// checks as a reload (the file validates, its tables build), then the
    /// differences against the running config.
    pub fn dry_run(&self, file: &ConfigFile) -> Result<DryRunReport, String> {
        let path = file.path(&self.config_path);
        let cfg = file.load(&self.config_path)?;
        build_tables(&cfg).map_err(|e| format!("{}: {e}", path.display()))?;
        let running = self.running();
        let d = diff(&running.cfg, &cfg, self.table_capacity);
        info!(
            "dry run of {}: {}",
            path.display(),
            if d.is_empty() {
                "no change"
            } else if d.restart.is_empty() {
                "a reload would apply it"
            } else {
                "a reload would be refused"
            }
        );
        Ok(DryRunReport {
            path: path.to_path_buf(),
            running: running.cfg.path.clone(),
            reload_would_apply: d.restart.is_empty(),
            diff: d,
        })
    }
}

/// Whether `new` can replace `old` without restarting: the ports, the
/// workers and the host path are set up at start and stay. The refusal
/// names the first change [`crate::config::diff::ConfigDiff::restart`]
/// lists, so that `reload --dry-run` and a reload agree.
fn live_changeable(old: &Config, new: &Config) -> Result<(), String> {
    let d = crate::config::diff::diff(old, new, old.spec.conntrack.max_entries);
    match d.restart.first() {
        Some(c) => Err(c.refusal()),
        None => Ok(()),
    }
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
            runtime: runtime_stats(tsc_hz(), &snaps),
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

    fn neighbours(&self) -> Vec<NeighbourEntry> {
        let (_, tables) = self.tables.load();
        let lists = self
            .ask_all(WorkerRequest::ListNeighbours)
            .into_iter()
            .filter_map(|r| match r {
                Some(WorkerReply::Neighbours(n)) => Some(n),
                _ => None,
            });
        neighbour_entries(&tables, lists)
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

    fn reload(&self, file: ConfigFile) -> Result<ReloadSummary, String> {
        self.reload_config(&file)
    }

    fn reload_dry_run(&self, file: ConfigFile) -> Result<DryRunReport, String> {
        self.dry_run(&file)
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

    fn runtime(&self) -> RuntimeStats {
        runtime_stats(tsc_hz(), &self.snapshots())
    }

    fn clear_runtime(&self) {
        self.ask_all(WorkerRequest::ClearRuntime);
        info!("runtime accounting cleared");
    }

    fn capture_start(&self, req: CaptureStart) -> Result<CaptureStarted, String> {
        let (_, tables) = self.tables.load();
        self.capture
            .start(&tables, self.host_device.as_deref(), &req)
    }

    fn capture_poll(&self, id: u64) -> Result<CapturePoll, String> {
        let (_, tables) = self.tables.load();
        self.capture.poll(&tables, id)
    }

    fn capture_stop(&self, id: u64) {
        self.capture.stop(id);
    }

    fn route(&self, req: RouteRequest) -> Result<serde_json::Value, String> {
        match req {
            RouteRequest::Show { prefix, summary } => {
                let within = prefix.as_deref().map(route::parse_within).transpose()?;
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
    use std::path::Path;

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
