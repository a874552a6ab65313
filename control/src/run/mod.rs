//! routerd's run mode: load the config, take the ports over with AF_XDP,
//! start one pinned poll-mode worker per configured core, wait for a
//! signal, stop, detach, give the ports back to the kernel.
//!
//! Start-up order is chosen so that a failure leaves the machine as it was:
//! config and devices are checked first, then the XDP programs are attached
//! and the sockets opened (dropped again on any error, which detaches), and
//! only then are the kernel's addresses taken off the ports ([`kernel`]).
//! Signal handlers are installed before any of it, so a SIGTERM during
//! start-up still ends in a clean exit.
//!
//! With `host.tun` set, the TUN device is created after the XDP attach and
//! before the ports' addresses are taken (a name clash changes nothing),
//! given the router's addresses and routes once the ports' kernel addresses
//! are off ([`host`]), and served by the host thread ([`dataplane::host`]);
//! worker 0 receives what the kernel sends.
//!
//! [`run`] serves the control socket (`routerctl`) and, when configured,
//! the metrics listener over [`ctl::RouterCtl`]; SIGHUP reloads the config.

pub mod ctl;
pub mod host;
pub mod kernel;
pub mod kernel_routes;
pub mod netlink;
pub mod stats;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use dataplane::host::HostThread;
use dataplane::tables::Tables;
use dataplane::worker::{
    check_core, Handoff, TablesSlot, Worker, WorkerConfig, WorkerError, WorkerShared,
    WorkerSnapshot,
};
use dataplane::xsk::tun::Tun;
use dataplane::xsk::{PortConfig, WorkerPorts, XdpMode, XdpProgram, XskError};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError};
use crate::ctl::trace::TraceService;
use crate::ctl::{metrics, server, CtlError};
use host::HostKernel;
use kernel::{KernelError, NapiTuning, Takeover};
use kernel_routes::{KernelFeed, RoutePublisher};
use stats::{HostPathStats, RouterStats};

/// Bytes per UMEM frame.
pub const FRAME_SIZE: u32 = 2048;
/// Bytes the kernel keeps in front of a received frame (XDP headroom).
pub const RX_HEADROOM: u32 = 256;
/// Ethernet header with one 802.1Q tag.
const L2_OVERHEAD: u32 = 18;

/// Why routerd could not run. Each is one line naming the fix.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A device is missing or the kernel state could not be changed.
    #[error("{0}")]
    Kernel(#[from] KernelError),
    /// An AF_XDP port could not be opened.
    #[error("{0}")]
    Xsk(#[from] XskError),
    /// A worker could not start (e.g. its core does not exist).
    #[error("{0}")]
    Worker(#[from] WorkerError),
    /// A device's MTU does not fit a frame.
    #[error(
        "{device}: MTU {mtu} does not fit a {FRAME_SIZE}-byte AF_XDP frame (at most {max}): \
         `ip link set dev {device} mtu {max}`"
    )]
    Mtu { device: String, mtu: u32, max: u32 },
    /// A port has fewer receive queues than there are workers.
    #[error(
        "{device}: {have} receive queue(s) for {want} workers (worker i serves queue i of every \
         port): add queues (`ethtool -L {device} combined {want}`; a veth needs \
         `numrxqueues {want} numtxqueues {want}` when it is created) or list fewer cores in \
         dataplane.workers"
    )]
    Queues {
        device: String,
        have: u32,
        want: usize,
    },
    /// The kernel route feed could not start.
    #[error("kernel_routes: cannot follow the kernel's routing table: {0}")]
    KernelRoutes(std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The TUN device of the host path could not be created.
    #[error("host path: cannot create TUN device {name}: {err} (fix host.tun, or set host.enabled: false)")]
    Tun { name: String, err: std::io::Error },
    /// A worker ended while the router was running.
    #[error("worker {index} stopped: {why}")]
    WorkerDied { index: usize, why: String },
    /// A port's device went away while the router was running.
    #[error("{0}")]
    PortGone(watch::PortGone),
    /// The stats file could not be written.
    #[error("cannot write {path}: {err}")]
    StatsFile { path: PathBuf, err: std::io::Error },
    /// The metrics listener could not start.
    #[error("{0} (fix metrics.listen)")]
    Metrics(CtlError),
}

/// What `routerd --config` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Where to write the final counters as JSON at exit.
    pub stats_json: Option<PathBuf>,
}

/// A worker thread and how it ended.
type WorkerThread = JoinHandle<Result<(), WorkerError>>;

/// A running router: workers, programs and the ports taken from the kernel.
pub struct Router {
    names: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
    tables: Arc<TablesSlot>,
    workers: Vec<(Arc<WorkerShared>, Option<WorkerThread>)>,
    /// Live traces: the hub all workers watch.
    trace: TraceService,
    /// Publishes tables (config and kernel routes) to the workers.
    publisher: Arc<RoutePublisher>,
    /// Follows the kernel's table (`kernel_routes`); stops on drop.
    feed: Option<KernelFeed>,
    // Fields drop in this order: the TUN's kernel state and the TUN go
    // before the ports' kernel state is restored.
    /// The kernel addresses and routes of the TUN.
    host_kernel: Option<HostKernel>,
    /// The host thread (owns the TUN) and its name.
    host: Option<(String, HostThread)>,
    programs: Vec<Arc<XdpProgram>>,
    takeover: Takeover,
    /// NAPI settings changed for `dataplane.busy_poll` (put back at stop).
    napi: Option<NapiTuning>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("ports", &self.names)
            .field("workers", &self.workers.len())
            .finish()
    }
}

fn xdp_mode(m: config::XdpMode) -> XdpMode {
    match m {
        config::XdpMode::Native => XdpMode::Native,
        config::XdpMode::Generic => XdpMode::Generic,
    }
}

/// Compiles `cfg` with the interface MACs read from the devices; checks that
/// every device exists and its MTU fits a frame.
pub fn build_tables(cfg: &Config) -> Result<Tables, RunError> {
    build_spec(cfg).map(Tables::build)
}

/// The tables input of `cfg` with the interface MACs read from the
/// devices (see [`build_tables`]).
pub fn build_spec(cfg: &Config) -> Result<dataplane::tables::TablesSpec, RunError> {
    let mut spec = cfg.tables_spec();
    let max = FRAME_SIZE - RX_HEADROOM - L2_OVERHEAD;
    for ifc in &mut spec.interfaces {
        ifc.mac = kernel::device_mac(&ifc.device)?;
        let mtu = kernel::device_mtu(&ifc.device)?;
        if mtu > max {
            return Err(RunError::Mtu {
                device: ifc.device.clone(),
                mtu,
                max,
            });
        }
    }
    Ok(spec)
}

impl Router {
    /// Starts the router described by `cfg` (in the calling thread's network
    /// namespace).
    pub fn start(cfg: &Config) -> Result<Router, RunError> {
        let d = &cfg.dataplane;
        for &core in &d.workers {
            check_core(core)?;
        }
        let base = build_spec(cfg)?;
        let tables = Tables::build(base.clone());
        let devices: Vec<String> = cfg
            .spec
            .interfaces
            .iter()
            .map(|i| i.device.clone())
            .collect();
        let names: Vec<(String, String)> = cfg
            .spec
            .interfaces
            .iter()
            .map(|i| (i.name.clone(), i.device.clone()))
            .collect();
        log_summary(cfg, &tables);

        check_queues(&devices, d.workers.len())?;
        let mode = xdp_mode(d.xdp_mode);
        let mut programs = Vec::with_capacity(devices.len());
        for dev in &devices {
            programs.push(Arc::new(XdpProgram::attach(dev, mode)?));
        }
        let mut all_ports = Vec::with_capacity(d.workers.len());
        for i in 0..d.workers.len() {
            let pcs: Vec<PortConfig> = devices
                .iter()
                .map(|dev| PortConfig {
                    ifname: dev.clone(),
                    queue: i as u32,
                    mode,
                })
                .collect();
            all_ports.push(WorkerPorts::open_with_bind(
                &pcs,
                &programs,
                d.umem_frames,
                FRAME_SIZE,
                d.xdp_bind,
            )?);
        }
        info!(
            "attached XDP ({}) to {}; {} AF_XDP sockets, {} frames of {} bytes per worker",
            mode_name(mode),
            devices.join(", "),
            devices.len() * d.workers.len(),
            d.umem_frames,
            FRAME_SIZE
        );
        for (w, ports) in all_ports.iter().enumerate() {
            for (p, dev) in devices.iter().enumerate() {
                let bound = match ports.zero_copy(p) {
                    Some(true) => "zero-copy",
                    Some(false) => "copy",
                    None => "unknown (the kernel does not say)",
                };
                info!("AF_XDP socket {dev} queue {w}: bound {bound}");
                if d.busy_poll {
                    match ports.busy_poll(p, BUSY_POLL_USECS, u32::from(d.burst)) {
                        Ok(0) => warn!(
                            "AF_XDP socket {dev} queue {w}: busy polling set, but the kernel gave \
                             the socket no NAPI id (veth since 6.13): it has no effect here"
                        ),
                        Ok(id) => info!(
                            "AF_XDP socket {dev} queue {w}: preferred busy polling on NAPI {id}"
                        ),
                        Err(e) => warn!(
                            "AF_XDP socket {dev} queue {w}: busy polling refused: {}",
                            std::io::Error::from_raw_os_error(e)
                        ),
                    }
                }
            }
        }
        let napi = if d.busy_poll {
            let n = NapiTuning::apply(&devices)?;
            info!(
                "busy polling: {} on {} while routerd runs",
                n.describe(),
                devices.join(", ")
            );
            Some(n)
        } else {
            None
        };

        // Before the ports' kernel state changes: a name clash (or no
        // /dev/net/tun) fails with nothing to put back. Closing the
        // descriptor removes the device.
        let tun = match &cfg.tun {
            Some(name) => Some(Tun::open(name).map_err(|err| RunError::Tun {
                name: name.clone(),
                err,
            })?),
            None => None,
        };
        let takeover = Takeover::take(&devices)?;
        for p in takeover.ports() {
            let v6 = p.addresses6.iter().map(|(a, l)| format!("{a}/{l}"));
            let all: Vec<String> = p
                .addresses
                .iter()
                .map(kernel::addr_text)
                .chain(v6)
                .collect();
            let addrs = if all.is_empty() {
                "none".to_string()
            } else {
                all.join(" ")
            };
            info!(
                "kernel addresses of {} taken off while routerd runs (restored at exit): {}; \
                 {} other kernel route(s) saved; IPv6 off",
                p.device,
                addrs,
                p.routes.len()
            );
        }

        let (host, host_kernel) = match tun {
            Some(tun) => {
                let name = tun.name().to_string();
                let hk = HostKernel::setup(&name, cfg)?;
                let thread = HostThread::start(tun, d.workers.len()).map_err(RunError::Thread)?;
                (Some((name, thread)), Some(hk))
            }
            None => (None, None),
        };

        let stop = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(TablesSlot::new(Arc::new(tables)));
        let publisher = Arc::new(RoutePublisher::new(
            slot.clone(),
            base,
            cfg.kernel_routes.clone(),
        ));
        // After the host path's own kernel routes are in (they are never
        // mirrored), before the workers start: they start with the routes.
        let feed = match cfg.kernel_routes {
            Some(_) => Some(KernelFeed::start(publisher.clone()).map_err(RunError::KernelRoutes)?),
            None => None,
        };
        let mut router = Router {
            names,
            stop: stop.clone(),
            tables: slot.clone(),
            workers: Vec::new(),
            trace: TraceService::new(),
            publisher,
            feed,
            host_kernel,
            host,
            programs,
            takeover,
            napi,
        };
        // Several workers: tracked flows have one owner each, and a packet
        // that reaches another worker is handed over (dataplane::owner).
        let handoff = (d.workers.len() > 1).then(|| Arc::new(Handoff::new(d.workers.len())));
        for (i, (ports, &core)) in all_ports.into_iter().zip(&d.workers).enumerate() {
            let shared = Arc::new(
                WorkerShared::new(stop.clone(), slot.clone()).with_trace_hub(router.trace.hub()),
            );
            let wc = WorkerConfig {
                index: i,
                core: Some(core),
                burst: usize::from(d.burst),
                busy_poll: d.busy_poll,
            };
            let mut worker = Worker::new(wc, ports, shared.clone())?;
            if let Some(h) = &handoff {
                worker.set_handoff(h.clone());
            }
            if let Some((_, h)) = &router.host {
                // Each worker receives the kernel's packets of its own flows.
                worker.set_host_path(Box::new(h.port(i)));
            }
            let handle = std::thread::Builder::new()
                .name(format!("worker{i}"))
                .spawn(move || worker.run())
                .map_err(RunError::Thread)?;
            router.workers.push((shared, Some(handle)));
        }
        Ok(router)
    }

    /// The tables slot (to swap tables while running).
    pub fn tables(&self) -> &Arc<TablesSlot> {
        &self.tables
    }

    /// A worker that ended on its own, with why.
    pub fn dead_worker(&mut self) -> Option<(usize, String)> {
        for (i, (_, h)) in self.workers.iter_mut().enumerate() {
            if h.as_ref().is_some_and(|h| h.is_finished()) {
                let why = match h.take().map(JoinHandle::join) {
                    Some(Ok(Err(e))) => e.to_string(),
                    Some(Err(_)) => "panicked".to_string(),
                    _ => "ended".to_string(),
                };
                return Some((i, why));
            }
        }
        None
    }

    /// A watch over the ports' devices (see [`watch`]).
    pub fn port_watch(&self) -> watch::PortWatch {
        watch::PortWatch::new(
            self.names
                .iter()
                .zip(&self.programs)
                .map(|((name, dev), p)| (name.clone(), dev.clone(), p.ifindex()))
                .collect(),
        )
    }

    /// The counters as last published by the workers.
    pub fn stats(&self) -> RouterStats {
        let snaps: Vec<WorkerSnapshot> = self.workers.iter().map(|(s, _)| s.snapshot()).collect();
        let mut st = RouterStats::from_snapshots(&self.names, &snaps);
        st.host = self
            .host
            .as_ref()
            .map(|(name, h)| HostPathStats::new(name, &h.stats()));
        st
    }

    /// Stops the workers, detaches the programs, gives the ports back to the
    /// kernel; returns the final counters.
    pub fn stop(mut self) -> RouterStats {
        if let Some(mut f) = self.feed.take() {
            f.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        for (i, (_, h)) in self.workers.iter_mut().enumerate() {
            if let Some(h) = h.take() {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!("worker {i}: {e}"),
                    Err(_) => warn!("worker {i} panicked"),
                }
            }
        }
        let stats = self.stats();
        if let Some(mut hk) = self.host_kernel.take() {
            for p in hk.remove() {
                warn!("removing the host path's kernel state: {p}");
            }
        }
        if let Some((name, h)) = self.host.take() {
            // The host thread drops the TUN: the device goes away.
            h.stop();
            info!("host path: TUN {name} removed with its kernel addresses and routes");
        }
        // The workers' sockets are closed (their threads ended); dropping
        // the programs closes the links, which detaches XDP.
        self.programs.clear();
        info!("detached XDP from {}", self.device_list());
        for p in self.takeover.restore() {
            warn!("restoring kernel state: {p}");
        }
        if let Some(mut n) = self.napi.take() {
            for p in n.restore() {
                warn!("restoring NAPI settings: {p}");
            }
        }
        info!("kernel addresses and routes of the ports restored");
        stats
    }

    fn device_list(&self) -> String {
        let devs: Vec<&str> = self.names.iter().map(|(_, d)| d.as_str()).collect();
        devs.join(", ")
    }
}

fn mode_name(m: XdpMode) -> &'static str {
    match m {
        XdpMode::Native => "native",
        XdpMode::Generic => "generic",
    }
}

fn log_summary(cfg: &Config, t: &Tables) {
    info!(
        "routerd {}: config {}",
        env!("CARGO_PKG_VERSION"),
        cfg.path.display()
    );
    for ifc in &t.interfaces {
        let addrs: Vec<String> = ifc.addresses.iter().map(|a| a.to_string()).collect();
        info!(
            "port {} = device {} mac {} mtu {}: {}",
            ifc.name,
            ifc.device,
            ifc.mac,
            ifc.mtu,
            if addrs.is_empty() {
                "no addresses".to_string()
            } else {
                addrs.join(" ")
            }
        );
    }
    info!(
        "{} routes ({} configured), {} static neighbours, raw {}+{} rules, filter {}/{}/{} rules",
        t.route_specs.len(),
        cfg.spec.routes.len(),
        t.neighbours.len(),
        t.raw_prerouting.len(),
        t.raw_output.len(),
        t.filter[0].rules.len(),
        t.filter[1].rules.len(),
        t.filter[2].rules.len()
    );
    let d = &cfg.dataplane;
    info!(
        "workers on cores {:?}, burst {}, {} UMEM frames each, xdp {}, {}",
        d.workers,
        d.burst,
        d.umem_frames,
        d.xdp_mode.name(),
        if d.busy_poll {
            "busy polling"
        } else {
            "idle back-off"
        }
    );
    // Measured once here (20 ms), not at the first `stats runtime`.
    info!(
        "runtime accounting: TSC at {:.3} GHz (routerctl stats runtime)",
        dataplane::worker::runtime::tsc_hz() as f64 / 1e9
    );
    match &cfg.tun {
        Some(tun) => {
            info!("host path: TUN {tun} carries the router's own traffic to and from the kernel")
        }
        None => {
            info!("host path off: packets for the router itself are dropped (host_unavailable)")
        }
    }
}

/// `routerd --config`: runs until SIGINT or SIGTERM; logs the counters at
/// SIGUSR1 and at exit, and writes them to `stats_json` if asked.
pub fn run(opts: &RunOptions) -> Result<RouterStats, RunError> {
    run_on(opts, None)
}

/// [`run`] with the control socket at `socket` instead of the config's
/// `control.socket`.
pub fn run_on(opts: &RunOptions, socket: Option<&Path>) -> Result<RouterStats, RunError> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP])
        .map_err(RunError::Signal)?;
    let cfg = Config::load(&opts.config)?;
    let mut router = Router::start(&cfg)?;
    let handler = ctl::RouterCtl::new(&router, &cfg);
    let socket = socket.unwrap_or(&cfg.control_socket);
    // Without its socket the router still forwards: say so and go on (two
    // routers on one machine may share a config).
    let control = match server::serve(socket, handler.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("control socket off, routerctl cannot reach this routerd: {e} (set control.socket or routerd --socket PATH)");
            None
        }
    };
    let metrics = match cfg.metrics_listen {
        Some(addr) => match metrics::serve(addr, handler.clone()) {
            Ok(m) => Some(m),
            Err(e) => {
                drop(control);
                router.stop();
                return Err(RunError::Metrics(e));
            }
        },
        None => None,
    };
    info!(
        "ready: forwarding on {} with {} worker(s); SIGINT/SIGTERM stop, SIGHUP reloads {}, \
         SIGUSR1 logs counters",
        router.device_list(),
        router.workers.len(),
        cfg.path.display()
    );
    let watch = router.port_watch();
    let mut died = None;
    let mut gone = None;
    'wait: loop {
        for sig in signals.pending() {
            match sig {
                SIGUSR1 => info!("counters:\n{}", router.stats().render().trim_end()),
                SIGHUP => {
                    info!("SIGHUP: reloading {}", cfg.path.display());
                    // The outcome is logged by the reload itself.
                    let _ = handler.reload_config(&crate::ctl::api::ConfigFile::Started);
                }
                _ => {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    info!("{name}: stopping");
                    break 'wait;
                }
            }
        }
        if let Some(d) = router.dead_worker() {
            died = Some(d);
            break;
        }
        if let Some(g) = watch.check() {
            error!("{g}");
            gone = Some(g);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // No control client may wait on a worker that is stopping.
    drop(metrics);
    drop(control);
    let stats = router.stop();
    info!("what the router counted:\n{}", stats.render().trim_end());
    if let Some(path) = &opts.stats_json {
        write_stats(path, &stats)?;
    }
    if let Some((index, why)) = died {
        return Err(RunError::WorkerDied { index, why });
    }
    if let Some(g) = gone {
        return Err(RunError::PortGone(g));
    }
    Ok(stats)
}

/// Writes `stats` as JSON (through a temporary file, then renamed).
pub fn write_stats(path: &Path, stats: &RouterStats) -> Result<(), RunError> {
    let err = |err| RunError::StatsFile {
        path: path.to_path_buf(),
        err,
    };
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(stats).map_err(|e| err(e.into()))?;
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// `routerd --config`'s main: logs, runs, and maps an error to one line on
/// stderr and exit status 1.
pub fn main_run(opts: &RunOptions) -> std::process::ExitCode {
    main_run_on(opts, None)
}

/// [`main_run`] with the control socket at `socket` (`routerd --socket`).
pub fn main_run_on(opts: &RunOptions, socket: Option<&Path>) -> std::process::ExitCode {
    init_logging();
    match run_on(opts, socket) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("routerd: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `SO_BUSY_POLL` with `dataplane.busy_poll`: microseconds a socket polls.
const BUSY_POLL_USECS: u32 = 20;

/// Refuses to start when a port has fewer receive queues than workers
/// (`ETHTOOL_GCHANNELS`; a driver that does not answer is left to the
/// AF_XDP bind, which names the missing queue).
fn check_queues(devices: &[String], workers: usize) -> Result<(), RunError> {
    for dev in devices {
        let Ok((rx, _, combined)) = dataplane::xsk::ethtool::channels(dev) else {
            continue;
        };
        let have = rx + combined;
        if (have as usize) < workers {
            return Err(RunError::Queues {
                device: dev.clone(),
                have,
                want: workers,
            });
        }
    }
    Ok(())
}
