//! A fake routerd for the control socket tests: one in-memory "worker"
//! (a real `Pipeline` over the transit config) behind a `ControlHandler`,
//! fed packets in explain's packet language. It calls the trace hub exactly
//! as a real worker must (see `dataplane::trace_capture`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use control::config::Config;
use control::ctl::api::{
    conntrack_stats, neighbour_entries, snapshot_from, ConfigFile, ControlHandler, Cycles,
    DryRunReport, FlowEntry, NeighbourEntry, ReloadSummary, RuntimeStats, RuntimeTotals,
    SnapshotInput, StatsSnapshot, TracePoll, TraceStart, WorkerLoad, WorkerRuntime,
};
use control::ctl::trace::TraceService;
use control::explain::{peer_mac, port_mac};
use control::packet_spec::PacketSpec;
use dataplane::counters::Counters;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::tables::{NextHop, Tables, TablesSpec};
use dataplane::tables6::{NextHop6, RouteSpec6};
use dataplane::trace_capture::{PacketSummary, TraceRecord, TraceTap};
use dataplane::xsk::port::{PortStats, XdpStatistics};

pub fn config_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
}

fn build(cfg: &Config) -> Arc<Tables> {
    build_spec(cfg.tables_spec())
}

fn build_spec(mut spec: TablesSpec) -> Arc<Tables> {
    for (i, ifc) in spec.interfaces.iter_mut().enumerate() {
        ifc.mac = port_mac(i);
    }
    Arc::new(Tables::build(spec))
}

struct Worker {
    pipeline: Pipeline,
    tap: TraceTap,
}

pub struct Fake {
    cfg_path: PathBuf,
    worker: Mutex<Worker>,
    trace: TraceService,
    runtime: Mutex<RuntimeStats>,
}

/// The fake's runtime accounting: one worker on core 1, 1 GHz, 1000
/// packets in 40 busy loops of 100, 10 cycles per packet in the pipeline.
pub fn fake_runtime() -> RuntimeStats {
    let cycles = Cycles {
        rx: 3000,
        pipeline: 10_000,
        tx: 4000,
        host: 500,
        handoff: 0,
        housekeeping: 1500,
        idle: 981_000,
    };
    let counts = RuntimeTotals {
        loops: 100,
        busy_loops: 40,
        packets: 1000,
        cycles,
        total_cycles: 1_000_000,
    };
    RuntimeStats {
        tsc_hz: 1_000_000_000,
        workers: vec![WorkerRuntime {
            worker: 0,
            core: Some(1),
            counts,
        }],
        total: counts,
    }
}

impl Fake {
    pub fn transit() -> Arc<Fake> {
        Fake::with(|_| {})
    }

    /// The transit router, dual stack: wan 2001:db8::1/64, lan
    /// 2001:db8:1::1/64, IPv6 default via 2001:db8::2 on wan.
    pub fn dual_stack() -> Arc<Fake> {
        Fake::with(|spec| {
            spec.interfaces[0].addresses6 = vec!["2001:db8::1/64".parse().unwrap()];
            spec.interfaces[1].addresses6 = vec!["2001:db8:1::1/64".parse().unwrap()];
            spec.v6.routes = vec![RouteSpec6::new(
                dataplane::addr::Ipv6Prefix::DEFAULT,
                NextHop6::Via {
                    port: PortId(0),
                    gateway: 0x2001_0db8 << 96 | 2,
                },
            )];
        })
    }

    fn with(edit: impl FnOnce(&mut TablesSpec)) -> Arc<Fake> {
        let path = config_path("transit-router.yaml");
        let cfg = Config::load(&path).expect("shipped config loads");
        let mut spec = cfg.tables_spec();
        edit(&mut spec);
        let tables = build_spec(spec);
        let mut pipeline = Pipeline::new(Arc::clone(&tables));
        for nh in &tables.next_hops {
            if let NextHop::Via { port, gateway } = *nh {
                pipeline.learn_neighbour(gateway, peer_mac(port.0 as usize), port);
            }
        }
        Arc::new(Fake {
            cfg_path: path,
            worker: Mutex::new(Worker {
                pipeline,
                tap: TraceTap::default(),
            }),
            trace: TraceService::new(),
            runtime: Mutex::new(fake_runtime()),
        })
    }

    /// Run one packet as a worker does, tracing it when a trace wants it.
    pub fn feed(&self, packet: &str) -> Verdict {
        let spec = PacketSpec::parse(packet).unwrap_or_else(|e| panic!("{e}"));
        let mut w = self.worker.lock().unwrap();
        let Worker { pipeline, tap } = &mut *w;
        let tables = Arc::clone(pipeline.tables());
        let port = if spec.input == "host" {
            PortId::HOST
        } else {
            tables.port_by_name(&spec.input).expect("interface")
        };
        let mut frame = if port.is_host() {
            spec.frame(dataplane::addr::Mac::ZERO, dataplane::addr::Mac::ZERO)
        } else {
            spec.frame(port_mac(port.0 as usize), peer_mac(port.0 as usize))
        };
        let len = frame.len();
        frame.resize(2048, 0);
        let mut pkt = Pkt {
            buf: &mut frame,
            len,
            port,
        };
        let hub = self.trace.hub();
        let mut v = [Verdict::Consumed];
        match tap.poll(&hub) {
            None => pipeline.process_burst(std::slice::from_mut(&mut pkt), &mut v),
            Some(req) => {
                let summary = PacketSummary::parse(&pkt.buf[..pkt.len], pkt.port);
                if req.matches(&summary) && hub.claim() {
                    let mut events = Vec::new();
                    v[0] = pipeline.process(&mut pkt, &mut events);
                    hub.push(TraceRecord::capture(
                        0,
                        summary,
                        events,
                        pipeline,
                        &pkt.buf[..pkt.len],
                    ));
                } else {
                    pipeline.process_burst(std::slice::from_mut(&mut pkt), &mut v);
                }
            }
        }
        v[0]
    }
}

impl ControlHandler for Fake {
    fn stats(&self) -> StatsSnapshot {
        let w = self.worker.lock().unwrap();
        let p = &w.pipeline;
        let mut counters = Counters::default();
        counters.merge(p.counters());
        let tables = Arc::clone(p.tables());
        let ports: Vec<PortStats> = (0..tables.interfaces.len())
            .map(|i| PortStats {
                tx_ring_full: 2 + i as u64,
                xdp: XdpStatistics {
                    rx_fill_ring_empty_descs: 7 + i as u64,
                    rx_dropped: 1,
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect();
        snapshot_from(SnapshotInput {
            tables: &tables,
            counters: &counters,
            workers: &[WorkerLoad {
                core: 1,
                loops: 1000,
                busy_loops: 250,
                rx_packets: counters.rx.iter().map(|c| c.packets).sum(),
                forwarded: counters.forwarded,
                conntrack_entries: p.conntrack().len() as u64,
                ..WorkerLoad::default()
            }],
            ports: &ports,
            conntrack: conntrack_stats(
                p.conntrack().flows(p.now()),
                p.conntrack().counters(),
                tables.conntrack.max_entries as u64,
            ),
            uptime_secs: 42,
            host_device: Some("rtr0"),
            runtime: self.runtime(),
        })
    }

    fn conntrack(&self) -> Vec<FlowEntry> {
        let w = self.worker.lock().unwrap();
        let p = &w.pipeline;
        p.conntrack().flows(p.now()).map(FlowEntry::from).collect()
    }

    fn neighbours(&self) -> Vec<NeighbourEntry> {
        let w = self.worker.lock().unwrap();
        let p = &w.pipeline;
        neighbour_entries(p.tables(), [p.neighbour_views()])
    }

    fn conntrack_flush(&self) -> usize {
        let mut w = self.worker.lock().unwrap();
        let n = w.pipeline.conntrack().len();
        w.pipeline.conntrack_mut().flush();
        n
    }

    fn reload(&self, file: ConfigFile) -> Result<ReloadSummary, String> {
        let cfg = file.load(&self.cfg_path)?;
        let tables = build(&cfg);
        let mut w = self.worker.lock().unwrap();
        w.pipeline.set_tables(tables);
        let mut s = ReloadSummary::of(&cfg);
        s.conntrack_entries = w.pipeline.conntrack().len() as u64;
        Ok(s)
    }

    fn reload_dry_run(&self, file: ConfigFile) -> Result<DryRunReport, String> {
        let cfg = file.load(&self.cfg_path)?;
        let running = Config::load(&self.cfg_path).map_err(|e| e.to_string())?;
        let diff = control::config::diff::diff(&running, &cfg, running.spec.conntrack.max_entries);
        Ok(DryRunReport {
            path: cfg.path.clone(),
            running: running.path.clone(),
            reload_would_apply: diff.restart.is_empty(),
            diff,
        })
    }

    fn trace_start(&self, req: TraceStart) -> Result<(), String> {
        let tables = Arc::clone(self.worker.lock().unwrap().pipeline.tables());
        self.trace.start(&tables, &req)
    }

    fn trace_poll(&self) -> TracePoll {
        self.trace.poll()
    }

    fn trace_stop(&self) {
        self.trace.stop();
    }

    fn reset_counters(&self) {
        *self.worker.lock().unwrap().pipeline.counters_mut() = Counters::default();
        self.clear_runtime();
    }

    fn runtime(&self) -> RuntimeStats {
        self.runtime.lock().unwrap().clone()
    }

    fn clear_runtime(&self) {
        let mut r = self.runtime.lock().unwrap();
        let zero = RuntimeTotals::default();
        r.total = zero;
        for w in &mut r.workers {
            w.counts = zero;
        }
    }
}

/// Packets of the tests.
pub const SSH_SYN: &str = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S";
pub const TRANSIT_UDP: &str = "in=wan udp 198.18.0.2:5000 > 198.19.0.2:53";
pub const TELNET: &str = "in=wan tcp 198.18.0.2:40001 > 198.19.0.2:23 flags=S";

/// A socket path in a fresh temporary directory (removed by the caller).
pub fn temp_socket(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "routerctl-test-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    (dir.join("sub/routerd.sock"), dir)
}

pub fn routerctl(socket: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run routerctl")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 0 and stdout.
pub fn ok_stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The one line on stderr of a failed run (exit 1, nothing on stdout).
pub fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    lines[0].to_string()
}
