//! `linerate compare`: one namespace lab, one generator, one sink, one CPU
//! placement, and in it, interleaved and repeated, the RFC 2544 no-loss
//! throughput of seven routers (routerd untracked and tracked; Linux plain,
//! with conntrack, with raw notrack; Open vSwitch over AF_XDP without and
//! with `ct(commit)`), then a fixed-rate phase that gives every router the
//! same offered rate and reads the CPU time each forwarded packet took:
//!
//! ```text
//!  ns <tag>-gen              ns <tag>-rtr                       ns <tag>-snk
//!  g0 ------------------- r0 198.18.0.1  [router]  198.19.0.1 r1 --------- s0
//!  g1 ------------------------------ (direct, no router) ------------------ s1
//! ```
//! Flows go from 198.18.0.10+ to 198.19.1.10+, routed via 198.19.0.2 (the
//! sink, a static neighbour: the sink answers no ARP).
//!
//! Where the work runs (veth, AF_XDP copy mode):
//! - CPU `gen_cpu` (0): the generator thread and its `sendto` (skb build,
//!   `veth_xmit`). With routerd or OVS, also r0's XDP redirect and the copy
//!   into the AF_XDP RX ring (veth runs the peer's XDP in the sender's NAPI).
//! - CPU `router_cpu` (1): routerd's worker (pinned by its config) and its
//!   TX `sendto`, and routerd's other threads (started with that CPU mask);
//!   OVS's PMD thread (`pmd-cpu-mask`) and its other threads; for Linux,
//!   the whole forwarding path, steered there by RPS on r0 (`rps_cpus`).
//!   In every case the sink's XDP count-and-drop program runs in the NAPI
//!   of whoever transmits into s0: this CPU.
//!
//! The fixed-rate phase ([`FixedOptions`]): the rate is given or a share
//! (0.8) of the lowest median no-loss rate of the search; each round first
//! measures the baseline, the generator straight into the sink over the
//! direct pair `g1 - s1` (same generator thread and CPU, same sink program,
//! same rate: no router namespace, no router work), then every router in a
//! rotated order. The generator sends whole bursts and sleeps between them
//! so that its CPU is idle when it has nothing to send. CPU time per CPU
//! comes from `/proc/stat` around the sending ([`super::cpu`]); the
//! router's figure is all CPUs minus the same round's baseline, per
//! forwarded packet. For routerd the runtime accounting of `routerctl
//! stats runtime --json` is read around the trial ([`super::runtime`]); for
//! OVS its `pmd-stats-show`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use lab::{Lab, LabError, RouterdProc};
use serde::Serialize;

use super::cpu::CpuTicks;
use super::ovs::Ovs;
use super::runtime::RuntimeDelta;

use super::frame::{FlowSet, Mac, SizeMix};
use super::gen::{GenConfig, RunSpec};
use super::handles::{GenHandle, Placement, SinkHandle};
use super::rfc2544::{search, trial, SearchParams, SearchResult};
use super::sink::{SinkConfig, SinkKind};
use super::LinerateError;
use dataplane::xsk::XdpMode;

const MAC_G0: Mac = Mac([0x02, 0x4c, 0x52, 0, 0, 0x01]);
const MAC_R0: Mac = Mac([0x02, 0x4c, 0x52, 0, 0, 0x02]);
const MAC_R1: Mac = Mac([0x02, 0x4c, 0x52, 0, 0, 0x03]);
const MAC_S0: Mac = Mac([0x02, 0x4c, 0x52, 0, 0, 0x04]);
const MAC_G1: Mac = Mac([0x02, 0x4c, 0x52, 0, 1, 0x01]);
const MAC_S1: Mac = Mac([0x02, 0x4c, 0x52, 0, 1, 0x04]);

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// The generator straight into the sink (no router): what it can offer.
    Generator,
    /// routerd, transit marked NOTRACK in raw (configs/transit-router.yaml).
    RouterdUntracked,
    /// routerd, every flow tracked (raw accepts all).
    RouterdTracked,
    /// Linux forwarding, no netfilter rules.
    Linux,
    /// Linux forwarding with an nftables stateful forward chain (conntrack).
    LinuxConntrack,
    /// Linux forwarding with conntrack loaded and a raw-table `notrack`.
    LinuxNotrack,
    /// Open vSwitch, userspace datapath over AF_XDP ports, one PMD thread.
    Ovs,
    /// The same with `ct(commit)` on the routing flow (every packet tracked).
    OvsTracked,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 8] = [
        System::Generator,
        System::RouterdUntracked,
        System::RouterdTracked,
        System::Linux,
        System::LinuxConntrack,
        System::LinuxNotrack,
        System::Ovs,
        System::OvsTracked,
    ];

    /// The name in tables and CSV.
    pub fn name(self) -> &'static str {
        match self {
            System::Generator => "generator alone",
            System::RouterdUntracked => "routerd untracked",
            System::RouterdTracked => "routerd tracked",
            System::Linux => "linux",
            System::LinuxConntrack => "linux + conntrack",
            System::LinuxNotrack => "linux + raw notrack",
            System::Ovs => "ovs afxdp",
            System::OvsTracked => "ovs afxdp + ct",
        }
    }

    /// Whether this is routerd.
    pub fn is_routerd(self) -> bool {
        matches!(self, System::RouterdUntracked | System::RouterdTracked)
    }

    /// Whether this is Open vSwitch.
    pub fn is_ovs(self) -> bool {
        matches!(self, System::Ovs | System::OvsTracked)
    }
}

/// How to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The routerd binary.
    pub routerd: PathBuf,
    /// Arguments before routerd's own (`--as-routerd` for a built-in copy).
    pub routerd_args: Vec<String>,
    /// `routerctl`, for routerd's runtime accounting (`None`: not read).
    pub routerctl: Option<PathBuf>,
    /// Systems, in table order.
    pub systems: Vec<System>,
    /// Frame sizes.
    pub sizes: Vec<SizeMix>,
    /// Rounds; each runs every system once, in a rotated order.
    pub repeats: u32,
    /// Seconds per trial.
    pub trial: Duration,
    /// Flows.
    pub flows: u32,
    /// Search resolution (share of the rate).
    pub resolution: f64,
    /// Most trials per search.
    pub max_trials: u32,
    /// CPU of the generator.
    pub gen_cpu: usize,
    /// CPU of the router (routerd worker, RPS target).
    pub router_cpu: usize,
    /// Where the CSV, the chart and the routerd configs go.
    pub out_dir: PathBuf,
    /// routerd's XDP mode on the lab's veths. `Generic` (with RPS to the
    /// router's CPU) puts routerd's receive work on the router's CPU like
    /// Linux's; `Native` runs it in the generator's CPU (veth runs the
    /// peer's XDP in the sender's NAPI).
    pub routerd_xdp: XdpMode,
    /// Run the no-loss search.
    pub search: bool,
    /// The fixed-rate phase, when wanted.
    pub fixed: Option<FixedOptions>,
}

/// The fixed-rate cost phase.
#[derive(Clone, Debug)]
pub struct FixedOptions {
    /// Offered rate; `None`: `share` of the slowest system's median no-loss
    /// rate from the search.
    pub rate_pps: Option<f64>,
    /// Share of the slowest no-loss rate.
    pub share: f64,
    /// How long each system gets the rate.
    pub duration: Duration,
    /// Rounds (each measures the baseline and every system once).
    pub repeats: u32,
}

/// One search of one system at one size in one round.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// The system.
    pub system: System,
    /// Frame size label.
    pub size: String,
    /// Round, from 0.
    pub repeat: u32,
    /// The search.
    pub result: SearchResult,
}

const UNTRACKED_RAW: &str = "\
raw:
  prerouting:
    - match: { destination: local }
      action: accept
      comment: host traffic is tracked
    - action: notrack
      comment: transit is untracked
  output: []
";

const TRACKED_RAW: &str = "\
raw:
  prerouting:
    - action: accept
      comment: every flow is tracked
  output: []
";

/// A routerd config for the lab; `tracked` tracks every flow.
pub fn routerd_config(tracked: bool, worker_cpu: usize, xdp: XdpMode) -> String {
    let (label, raw, forward_state) = if tracked {
        (
            "every flow tracked (raw accepts all), stateful forward chain",
            TRACKED_RAW,
            "      - match: { state: [established, related] }\n        action: accept\n      \
             - match: { state: [new] }\n        action: accept\n",
        )
    } else {
        (
            "transit untracked, as configs/transit-router.yaml",
            UNTRACKED_RAW,
            "",
        )
    };
    let mode = match xdp {
        XdpMode::Native => "native",
        XdpMode::Generic => "generic",
    };
    format!(
        "# linerate compare: routerd, {label}.\n\
         dataplane:\n  workers: [{worker_cpu}]\n  burst: 64\n  umem_frames: 16384\n  xdp_mode: {mode}\n\
         interfaces:\n  - name: wan\n    device: r0\n    addresses: [198.18.0.1/24]\n  \
         - name: lan\n    device: r1\n    addresses: [198.19.0.1/24]\n\
         host:\n  tun: lrtun0\n\
         routes:\n  - to: 198.19.1.0/24\n    via: 198.19.0.2\n\
         neighbors:\n  - address: 198.19.0.2\n    mac: \"{MAC_S0}\"\n\
         {raw}\
         filter:\n  input:\n    policy: drop\n    rules:\n      \
         - match: {{ state: [established, related] }}\n        action: accept\n  \
         forward:\n    policy: accept\n    rules:\n      \
         - match: {{ in: wan, protocol: tcp, destination_port: [23, 2323] }}\n        action: drop\n\
         {forward_state}  output:\n    policy: accept\n"
    )
}

/// The nftables ruleset of a Linux system (`None`: no rules).
pub fn nft_ruleset(system: System) -> Option<&'static str> {
    match system {
        System::LinuxConntrack => Some(
            "table inet linerate {\n\
             \x20 chain forward {\n\
             \x20   type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"r0\" tcp dport { 23, 2323 } drop\n\
             \x20   ct state established,related accept\n\
             \x20   ct state new accept\n\
             \x20 }\n\
             }\n",
        ),
        System::LinuxNotrack => Some(
            "table inet linerate {\n\
             \x20 chain raw {\n\
             \x20   type filter hook prerouting priority raw; policy accept;\n\
             \x20   notrack\n\
             \x20 }\n\
             \x20 chain forward {\n\
             \x20   type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"r0\" tcp dport { 23, 2323 } drop\n\
             \x20   ct state established,related accept\n\
             \x20 }\n\
             }\n",
        ),
        _ => None,
    }
}

fn setup_err(e: LabError) -> LinerateError {
    LinerateError::Setup(e.to_string())
}

/// Runs `cmd` (outside any namespace); its stdout. Only for `nft` and its
/// installation: the lab itself needs nothing but `ip`.
fn host(cmd: &[&str]) -> Result<String, LinerateError> {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| LinerateError::Setup(format!("cannot run {}: {e}", cmd[0])))?;
    if !out.status.success() {
        return Err(LinerateError::Setup(format!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs nftables when `nft` is missing (Debian/Ubuntu).
pub fn ensure_nft() -> Result<(), LinerateError> {
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!("linerate: installing nftables (apt-get install -y nftables)");
    host(&["apt-get", "install", "-y", "-qq", "nftables"])
        .or_else(|_| {
            host(&["apt-get", "update", "-qq"])?;
            host(&["apt-get", "install", "-y", "-qq", "nftables"])
        })
        .map(drop)
}

struct Topo {
    lab: Lab,
    gen: String,
    rtr: String,
    snk: String,
    /// Whether an nftables ruleset was loaded in the router namespace.
    nft_loaded: std::cell::Cell<bool>,
}

fn build_lab() -> Result<Topo, LinerateError> {
    let mut lab = Lab::new("lrc").map_err(setup_err)?;
    let gen = lab.add_ns("gen").map_err(setup_err)?;
    let rtr = lab.add_ns("rtr").map_err(setup_err)?;
    let snk = lab.add_ns("snk").map_err(setup_err)?;
    let pairs = [
        (&gen, "g0", MAC_G0, &rtr, "r0", MAC_R0),
        (&rtr, "r1", MAC_R1, &snk, "s0", MAC_S0),
        (&gen, "g1", MAC_G1, &snk, "s1", MAC_S1),
    ];
    for (ns1, if1, mac1, ns2, if2, mac2) in pairs {
        lab::ns::run(&[
            "ip",
            "-n",
            ns1,
            "link",
            "add",
            if1,
            "address",
            &mac1.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            if2,
            "address",
            &mac2.to_string(),
            "netns",
            ns2,
        ])
        .map_err(setup_err)?;
        lab::ns::run(&["ip", "-n", ns1, "link", "set", if1, "up"]).map_err(setup_err)?;
        lab::ns::run(&["ip", "-n", ns2, "link", "set", if2, "up"]).map_err(setup_err)?;
    }
    Ok(Topo {
        lab,
        gen,
        rtr,
        snk,
        nft_loaded: std::cell::Cell::new(false),
    })
}

impl Topo {
    fn rtr(&self, cmd: &[&str]) -> Result<String, LinerateError> {
        self.lab.exec(&self.rtr, cmd).map_err(setup_err)
    }

    /// Kernel state of a Linux router (idempotent; routerd takes the
    /// addresses while it runs and gives them back at exit).
    fn linux_router(&self, system: System, router_cpu: usize) -> Result<(), LinerateError> {
        self.rtr(&["ip", "addr", "replace", "198.18.0.1/24", "dev", "r0"])?;
        self.rtr(&["ip", "addr", "replace", "198.19.0.1/24", "dev", "r1"])?;
        self.rtr(&[
            "ip",
            "route",
            "replace",
            "198.19.1.0/24",
            "via",
            "198.19.0.2",
        ])?;
        self.rtr(&[
            "ip",
            "neigh",
            "replace",
            "198.19.0.2",
            "lladdr",
            &MAC_S0.to_string(),
            "dev",
            "r1",
            "nud",
            "permanent",
        ])?;
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.r0.rp_filter", "0"),
        ] {
            self.lab.set_sysctl(&self.rtr, k, v).map_err(setup_err)?;
        }
        self.rps(1 << router_cpu)?;
        self.nft(nft_ruleset(system))
    }

    fn routerd_router(&self, xdp: XdpMode, router_cpu: usize) -> Result<(), LinerateError> {
        self.lab
            .set_sysctl(&self.rtr, "net.ipv4.ip_forward", "0")
            .map_err(setup_err)?;
        // Generic XDP runs after RPS: the router's receive work lands on
        // the router's CPU, as Linux forwarding's does.
        self.rps(match xdp {
            XdpMode::Generic => 1 << router_cpu,
            XdpMode::Native => 0,
        })?;
        self.nft(None)
    }

    fn rps(&self, mask: u32) -> Result<(), LinerateError> {
        self.rtr(&[
            "sh",
            "-c",
            &format!("echo {mask:x} > /sys/class/net/r0/queues/rx-0/rps_cpus"),
        ])
        .map(drop)
    }

    /// Loads `ruleset` in the router namespace, replacing any before it
    /// (`nft` runs only when some ruleset is or was loaded).
    fn nft(&self, ruleset: Option<&str>) -> Result<(), LinerateError> {
        if self.nft_loaded.get() {
            self.rtr(&["nft", "flush", "ruleset"])?;
            self.nft_loaded.set(false);
        }
        if let Some(rules) = ruleset {
            self.nft_loaded.set(true);
            let file = std::env::temp_dir().join(format!("linerate-{}.nft", std::process::id()));
            std::fs::write(&file, rules)
                .map_err(|e| LinerateError::Setup(format!("write {}: {e}", file.display())))?;
            let r = self.rtr(&["nft", "-f", &file.to_string_lossy()]);
            let _ = std::fs::remove_file(&file);
            r?;
        }
        Ok(())
    }
}

fn flows(count: u32) -> FlowSet {
    FlowSet {
        count,
        src: std::net::Ipv4Addr::new(198, 18, 0, 10),
        dst: std::net::Ipv4Addr::new(198, 19, 1, 10),
    }
}

/// Frames sent and counted before a measurement: the path must carry
/// them all (neighbours resolved, routerd forwarding).
fn probe(gen: &GenHandle, sink: &mut SinkHandle) -> Result<(), LinerateError> {
    let mut last = String::new();
    for _ in 0..25 {
        sink.start(Duration::from_secs(5))?;
        let g = gen.run(&RunSpec {
            rate_pps: 20_000.0,
            sizes: SizeMix::Fixed(64),
            duration: Duration::from_secs(1),
            count: Some(1000),
            whole_bursts: false,
        });
        std::thread::sleep(Duration::from_millis(50));
        let s = sink.finish()?;
        let g = g?;
        if g.sent == 1000 && s.received == 1000 {
            return Ok(());
        }
        last = format!("sent {}, received {}", g.sent, s.received);
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(LinerateError::Setup(format!(
        "the path does not carry the probe frames ({last})"
    )))
}

/// What a `compare` measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompareReport {
    /// The searches.
    pub runs: Vec<Run>,
    /// The fixed-rate phase.
    pub costs: Vec<CostRun>,
    /// OVS's `iface_types`, when OVS ran.
    pub ovs_iface_types: Option<String>,
}

/// A router running in the router namespace while it is measured.
enum Active {
    /// Linux forwarding (the kernel's state), or nothing.
    Kernel,
    Routerd(Box<RouterdProc>),
    Ovs(Box<Ovs>),
}

impl Active {
    /// The process whose CPU time is read (routerd, ovs-vswitchd).
    fn pid(&self) -> Option<u32> {
        match self {
            Active::Kernel => None,
            Active::Routerd(r) => Some(r.pid()),
            Active::Ovs(o) => o.vswitchd_pid(),
        }
    }
}

/// The files every routerd run uses.
struct RouterdFiles {
    untracked: PathBuf,
    tracked: PathBuf,
    socket: PathBuf,
}

/// Builds the lab, measures every system `repeats` times (rotating the
/// order each round), then the fixed-rate phase if asked; writes the
/// routerd configs into `out_dir`. `say` gets progress lines.
pub fn compare(
    opts: &CompareOptions,
    mut say: impl FnMut(&str),
) -> Result<CompareReport, LinerateError> {
    if opts.systems.iter().any(|s| s.is_routerd()) && !opts.routerd.is_file() {
        return Err(LinerateError::Setup(format!(
            "no routerd at {}: build it (cargo build --release -p control) or pass --routerd PATH",
            opts.routerd.display()
        )));
    }
    if opts
        .systems
        .iter()
        .any(|s| matches!(s, System::LinuxConntrack | System::LinuxNotrack))
    {
        ensure_nft()?;
    }
    if opts.systems.iter().any(|s| s.is_ovs()) && !super::ovs::installed() {
        return Err(LinerateError::Setup(
            "the ovs systems need Open vSwitch: apt-get install openvswitch-switch".into(),
        ));
    }
    if !opts.search && opts.fixed.as_ref().is_none_or(|f| f.rate_pps.is_none()) {
        return Err(LinerateError::Config(
            "without the search the fixed-rate phase needs --fixed-rate PPS".into(),
        ));
    }
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", opts.out_dir.display())))?;
    let out_dir = std::fs::canonicalize(&opts.out_dir)
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", opts.out_dir.display())))?;
    let files = RouterdFiles {
        untracked: out_dir.join("routerd-untracked.yaml"),
        tracked: out_dir.join("routerd-tracked.yaml"),
        socket: out_dir.join(format!("routerd-{}.sock", std::process::id())),
    };
    for (path, tracked) in [(&files.untracked, false), (&files.tracked, true)] {
        let text = super::tcp::with_socket(
            &routerd_config(tracked, opts.router_cpu, opts.routerd_xdp),
            &files.socket,
        );
        std::fs::write(path, text)
            .map_err(|e| LinerateError::Setup(format!("{}: {e}", path.display())))?;
    }

    let t = build_lab()?;
    say(&format!(
        "lab: {} (g0) -> {} (r0 [router] r1) -> {} (s0); direct g1 -> s1",
        t.gen, t.rtr, t.snk
    ));
    let fl = flows(opts.flows);
    fl.validate().map_err(LinerateError::Config)?;
    let gen_place = Placement {
        netns: Some(t.gen.clone()),
        cpu: Some(opts.gen_cpu),
    };
    let sink_cfg = |dev: &str| SinkConfig {
        ifname: dev.into(),
        mode: XdpMode::Native,
        kind: SinkKind::Count,
        flows: opts.flows,
    };
    let sink_place = Placement {
        netns: Some(t.snk.clone()),
        cpu: None,
    };
    let gen = GenHandle::open(
        GenConfig {
            ifname: "g0".into(),
            mode: XdpMode::Native,
            src_mac: MAC_G0,
            dst_mac: MAC_R0,
            flows: fl.clone(),
        },
        gen_place.clone(),
    )?;
    let mut sink = SinkHandle::open(sink_cfg("s0"), sink_place.clone())?;
    let direct_gen = GenHandle::open(
        GenConfig {
            ifname: "g1".into(),
            mode: XdpMode::Native,
            src_mac: MAC_G1,
            dst_mac: MAC_S1,
            flows: fl.clone(),
        },
        gen_place,
    )?;
    let mut direct_sink = SinkHandle::open(sink_cfg("s1"), sink_place)?;
    let mut lab = LabRig {
        t: &t,
        opts,
        files: &files,
        gen: &gen,
        sink: &mut sink,
        direct_gen: &direct_gen,
        direct_sink: &mut direct_sink,
        ovs_types: None,
    };

    let mut report = CompareReport::default();
    let search_rounds = if opts.search { opts.repeats } else { 0 };
    for round in 0..search_rounds {
        let n = opts.systems.len();
        let order: Vec<System> = (0..n)
            .map(|i| opts.systems[(i + round as usize) % n])
            .collect();
        for size in &opts.sizes {
            // What the generator offers alone bounds every search.
            let g = search(
                &SearchParams {
                    max_pps: 20_000_000.0,
                    max_trials: 1,
                    ..SearchParams::default()
                },
                |rate| trial(lab.direct_gen, lab.direct_sink, size, rate, opts.trial),
            )?;
            let gen_max = g.trials.first().map_or(1e6, |t| t.outcome.offered_pps);
            if opts.systems.contains(&System::Generator) {
                say(&format!(
                    "round {} size {size}: generator alone offers {:.0} pps, sink received {}",
                    round + 1,
                    gen_max,
                    g.trials.first().map_or(0, |t| t.outcome.received)
                ));
                report.runs.push(Run {
                    system: System::Generator,
                    size: size.label(),
                    repeat: round,
                    result: g,
                });
            }
            for &system in order.iter().filter(|s| **s != System::Generator) {
                let result = lab.search_one(system, size, gen_max)?;
                say(&format!(
                    "round {} size {size}: {:<22} {} ({} trials)",
                    round + 1,
                    system.name(),
                    result.describe(),
                    result.trials.len()
                ));
                report.runs.push(Run {
                    system,
                    size: size.label(),
                    repeat: round,
                    result,
                });
            }
        }
    }
    if let Some(fixed) = &opts.fixed {
        let sums = summarize(&report.runs, &opts.systems, &opts.sizes);
        for size in &opts.sizes {
            let rate = fixed_rate(fixed, &sums, &size.label()).ok_or_else(|| {
                LinerateError::Setup(format!(
                    "size {size}: no system passed any rate in the search; give --fixed-rate"
                ))
            })?;
            say(&format!(
                "fixed rate, size {size}: {rate:.0} pps for {:?} per system, {} rounds",
                fixed.duration, fixed.repeats
            ));
            for round in 0..fixed.repeats {
                let mut order: Vec<System> = opts
                    .systems
                    .iter()
                    .copied()
                    .filter(|s| *s != System::Generator)
                    .collect();
                let n = order.len().max(1);
                order.rotate_left(round as usize % n);
                // The baseline first in every round, so each system's
                // figure is taken against the same round's baseline.
                order.insert(0, System::Generator);
                for system in order {
                    let c = lab.fixed_one(system, size, rate, fixed.duration, round)?;
                    say(&format!(
                        "round {} fixed {size}: {:<22} {}",
                        round + 1,
                        system.name(),
                        c.describe()
                    ));
                    report.costs.push(c);
                }
            }
        }
    }
    report.ovs_iface_types = lab.ovs_types.take();
    t.nft(None).ok();
    drop(t);
    let _ = std::fs::remove_file(&files.socket);
    Ok(report)
}

/// The fixed phase's rate for `size`: the rate asked for, or `share` of
/// the lowest median no-loss rate of the routers (the generator's row
/// excluded, systems that passed nothing ignored).
pub fn fixed_rate(fixed: &FixedOptions, sums: &[Summary], size: &str) -> Option<f64> {
    if let Some(r) = fixed.rate_pps {
        return Some(r);
    }
    sums.iter()
        .filter(|s| s.size == size && s.system != System::Generator && s.median_pps > 0.0)
        .map(|s| s.median_pps)
        .min_by(|a, b| a.total_cmp(b))
        .map(|m| m * fixed.share)
}

/// The lab with its generators and sinks open.
struct LabRig<'a> {
    t: &'a Topo,
    opts: &'a CompareOptions,
    files: &'a RouterdFiles,
    gen: &'a GenHandle,
    sink: &'a mut SinkHandle,
    direct_gen: &'a GenHandle,
    direct_sink: &'a mut SinkHandle,
    ovs_types: Option<String>,
}

impl LabRig<'_> {
    /// Puts `system` in place in the router namespace.
    fn start(&mut self, system: System) -> Result<Active, LinerateError> {
        let (t, opts) = (self.t, self.opts);
        if system.is_routerd() {
            t.routerd_router(opts.routerd_xdp, opts.router_cpu)?;
            let cfg = if system == System::RouterdTracked {
                &self.files.tracked
            } else {
                &self.files.untracked
            };
            let pre: Vec<&str> = opts.routerd_args.iter().map(String::as_str).collect();
            // Every routerd thread on the router's CPU (the worker pins itself
            // there; the main thread would otherwise share the generator's).
            let mut r =
                RouterdProc::spawn_on(&opts.routerd, &pre, &t.rtr, cfg, Some(opts.router_cpu))
                    .map_err(setup_err)?;
            r.wait_ready(Duration::from_secs(20)).map_err(setup_err)?;
            Ok(Active::Routerd(Box::new(r)))
        } else if system.is_ovs() {
            // No kernel forwarding, no RPS: OVS's XDP program takes every
            // frame on r0 (native mode: in the generator's NAPI, as routerd's).
            t.routerd_router(XdpMode::Native, opts.router_cpu)?;
            let o = Ovs::start(
                &t.rtr,
                opts.router_cpu,
                system == System::OvsTracked,
                MAC_R1,
                MAC_S0,
            )?;
            if self.ovs_types.is_none() {
                self.ovs_types = o.iface_types().ok();
            }
            Ok(Active::Ovs(Box::new(o)))
        } else {
            t.linux_router(system, opts.router_cpu)?;
            Ok(Active::Kernel)
        }
    }

    /// Stops what [`LabRig::start`] started.
    fn stop(&mut self, active: Active) -> Result<(), LinerateError> {
        match active {
            Active::Kernel => Ok(()),
            Active::Ovs(o) => {
                drop(o);
                // ovs-vswitchd took its XDP programs off on SIGTERM; a
                // just-closed AF_XDP socket keeps the queue busy a moment.
                std::thread::sleep(Duration::from_millis(200));
                Ok(())
            }
            Active::Routerd(mut r) => {
                let st = r.terminate(Duration::from_secs(10)).map_err(setup_err)?;
                if !st.success() {
                    return Err(LinerateError::Setup(format!(
                        "routerd exited with {st}: {}",
                        r.log().join(" | ")
                    )));
                }
                Ok(())
            }
        }
    }

    fn search_one(
        &mut self,
        system: System,
        size: &SizeMix,
        gen_max: f64,
    ) -> Result<SearchResult, LinerateError> {
        let params = SearchParams {
            max_pps: gen_max,
            resolution: self.opts.resolution,
            loss_tolerance: 0.0,
            max_trials: self.opts.max_trials,
        };
        let active = self.start(system)?;
        let trial_len = self.opts.trial;
        let (gen, sink) = (self.gen, &mut *self.sink);
        let result = probe(gen, sink)
            .and_then(|()| search(&params, |rate| trial(gen, sink, size, rate, trial_len)));
        self.stop(active)?;
        result
    }

    /// One system (or, for [`System::Generator`], the baseline over the
    /// direct pair) at `rate` for `duration`, with CPU time read around it.
    fn fixed_one(
        &mut self,
        system: System,
        size: &SizeMix,
        rate: f64,
        duration: Duration,
        round: u32,
    ) -> Result<CostRun, LinerateError> {
        if system == System::Generator {
            let m = fixed_trial(
                self.direct_gen,
                self.direct_sink,
                size,
                rate,
                duration,
                None,
            )?;
            return Ok(CostRun::new(system, size, round, m, None));
        }
        let active = self.start(system)?;
        let (gen, sink) = (self.gen, &mut *self.sink);
        let pid = active.pid();
        let routerctl = self.opts.routerctl.clone();
        let socket = self.files.socket.clone();
        let is_routerd = system.is_routerd();
        let read_runtime = move || {
            if !is_routerd {
                return None;
            }
            routerctl
                .as_ref()
                .and_then(|c| super::runtime::read(c, &socket))
        };
        let res = probe(gen, sink).and_then(|()| {
            if let Active::Ovs(o) = &active {
                o.pmd_clear()?;
            }
            let before = read_runtime();
            let m = fixed_trial(gen, sink, size, rate, duration, pid)?;
            let after = read_runtime();
            let runtime = match (before, after) {
                (Some(b), Some(a)) => RuntimeCell::Delta(a.delta(&b)),
                _ if is_routerd => RuntimeCell::Unavailable,
                _ => RuntimeCell::NotApplicable,
            };
            let mut c = CostRun::new(system, size, round, m, Some(runtime));
            if let Active::Ovs(o) = &active {
                c.ovs_pmd_stats = o.pmd_stats().ok();
                c.own_cycles_per_packet = c
                    .ovs_pmd_stats
                    .as_deref()
                    .and_then(super::ovs::processing_cycles_per_packet);
            }
            if let Some(RuntimeCell::Delta(d)) = &c.runtime {
                c.own_cycles_per_packet = Some(d.busy_per_packet);
            }
            Ok(c)
        });
        self.stop(active)?;
        res
    }
}

/// What CPU time one fixed-rate trial took.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FixedMeasure {
    /// Rate asked for.
    pub target_pps: f64,
    /// Rate the generator achieved.
    pub offered_pps: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames the sink counted.
    pub forwarded: u64,
    /// Seconds the generator sent.
    pub secs: f64,
    /// Busy seconds per CPU while the generator sent (wall time minus
    /// idle, see [`super::cpu`]).
    pub cpu_secs: Vec<f64>,
    /// The same from the tick-sampled busy fields, for comparison.
    pub cpu_sampled_secs: Vec<f64>,
    /// CPU seconds of the router's process (routerd, ovs-vswitchd).
    pub process_secs: Option<f64>,
}

/// One fixed-rate trial: CPU time per CPU (and of process `pid`) from just
/// before the generator starts to just after it stops; the sink counts
/// for [`super::rfc2544::DRAIN`] more.
pub fn fixed_trial(
    gen: &GenHandle,
    sink: &mut SinkHandle,
    sizes: &SizeMix,
    rate_pps: f64,
    duration: Duration,
    pid: Option<u32>,
) -> Result<FixedMeasure, LinerateError> {
    sink.start(duration + super::rfc2544::DRAIN + Duration::from_secs(5))?;
    let p0 = pid.and_then(super::cpu::process_ticks);
    let c0 = CpuTicks::read()?;
    let g = gen.run(&super::gen::RunSpec {
        rate_pps,
        sizes: sizes.clone(),
        duration,
        count: None,
        whole_bursts: true,
    });
    let c1 = CpuTicks::read()?;
    let p1 = pid.and_then(super::cpu::process_ticks);
    std::thread::sleep(super::rfc2544::DRAIN);
    let s = sink.finish()?;
    let g = g?;
    let loss = s.loss(&g);
    Ok(FixedMeasure {
        target_pps: rate_pps,
        offered_pps: g.offered_pps,
        sent: g.sent,
        forwarded: loss.received,
        secs: g.seconds,
        cpu_secs: c1.secs_since(&c0),
        cpu_sampled_secs: c1.sampled_secs_since(&c0),
        process_secs: match (p0, p1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / super::cpu::USER_HZ),
            _ => None,
        },
    })
}

/// routerd's runtime accounting over a fixed-rate trial.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeCell {
    /// Not routerd.
    NotApplicable,
    /// routerctl has no `stats runtime` (or routerd no accounting).
    Unavailable,
    /// Cycles per packet by phase.
    Delta(RuntimeDelta),
}

/// One system's fixed-rate trial in one round.
#[derive(Clone, Debug, Serialize)]
pub struct CostRun {
    /// The system; [`System::Generator`] is the baseline (the direct pair).
    pub system: System,
    /// Frame size label.
    pub size: String,
    /// Round, from 0.
    pub repeat: u32,
    /// What was measured.
    pub m: FixedMeasure,
    /// routerd's accounting.
    pub runtime: Option<RuntimeCell>,
    /// `ovs-appctl dpif-netdev/pmd-stats-show` after the trial.
    pub ovs_pmd_stats: Option<String>,
    /// The poller's own accounting: TSC cycles per packet it spent on
    /// packets (its idle polling left out): routerd's runtime accounting
    /// without `idle`, OVS's `avg processing cycles per packet`.
    pub own_cycles_per_packet: Option<f64>,
}

impl CostRun {
    fn new(
        system: System,
        size: &SizeMix,
        repeat: u32,
        m: FixedMeasure,
        runtime: Option<RuntimeCell>,
    ) -> CostRun {
        CostRun {
            system,
            size: size.label(),
            repeat,
            m,
            runtime,
            ovs_pmd_stats: None,
            own_cycles_per_packet: None,
        }
    }

    /// Nanoseconds of CPU per forwarded frame, per CPU.
    pub fn ns_per_packet(&self) -> Vec<f64> {
        let f = self.m.forwarded.max(1) as f64;
        self.m.cpu_secs.iter().map(|s| s * 1e9 / f).collect()
    }

    /// All CPUs together.
    pub fn total_ns_per_packet(&self) -> f64 {
        self.ns_per_packet().iter().sum()
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let per: Vec<String> = self
            .ns_per_packet()
            .iter()
            .enumerate()
            .map(|(i, v)| format!("cpu{i} {v:.0}"))
            .collect();
        let mut s = format!(
            "offered {:.0} pps, sent {}, forwarded {} (loss {:.4}%), CPU ns/pkt: {} = {:.0}",
            self.m.offered_pps,
            self.m.sent,
            self.m.forwarded,
            loss_pct(&self.m),
            per.join(" "),
            self.total_ns_per_packet()
        );
        if let Some(p) = self.m.process_secs {
            let _ = write!(
                s,
                "; process {:.0} ns/pkt",
                p * 1e9 / self.m.forwarded.max(1) as f64
            );
        }
        match &self.runtime {
            Some(RuntimeCell::Delta(d)) => {
                let _ = write!(s, "; runtime: {}", d.describe());
            }
            Some(RuntimeCell::Unavailable) => s.push_str("; runtime accounting unavailable"),
            _ => {}
        }
        s
    }
}

fn loss_pct(m: &FixedMeasure) -> f64 {
    if m.sent == 0 {
        return 100.0;
    }
    m.sent.saturating_sub(m.forwarded) as f64 * 100.0 / m.sent as f64
}

/// Median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// Per system and size: the median no-loss throughput and each run's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The system.
    pub system: System,
    /// Frame size label.
    pub size: String,
    /// Median throughput, pps (runs where nothing passed count as 0).
    pub median_pps: f64,
    /// Each round's throughput.
    pub runs_pps: Vec<f64>,
    /// Some run was bounded by the generator.
    pub generator_limited: bool,
}

/// Medians per system and size, in the order of `systems`.
pub fn summarize(runs: &[Run], systems: &[System], sizes: &[SizeMix]) -> Vec<Summary> {
    let mut out = Vec::new();
    for size in sizes {
        for &system in systems {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.system == system && r.size == size.label())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let pps: Vec<f64> = mine
                .iter()
                .map(|r| r.result.throughput_pps.unwrap_or(0.0))
                .collect();
            out.push(Summary {
                system,
                size: size.label(),
                median_pps: median(&pps).unwrap_or(0.0),
                runs_pps: pps,
                generator_limited: mine.iter().any(|r| r.result.generator_limited),
            });
        }
    }
    out
}

/// The table, with ratios against the Linux rows of the same size.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| system | frame | no-loss Mpps (median) | runs (Mpps) | x linux | x linux+conntrack | x linux+notrack |"
    );
    let _ = writeln!(out, "|---|---|---:|---|---:|---:|---:|");
    for s in summaries {
        let base = |sys: System| {
            summaries
                .iter()
                .find(|b| b.system == sys && b.size == s.size)
                .map(|b| b.median_pps)
        };
        let ratio = |sys: System| match base(sys) {
            Some(b) if b > 0.0 && s.system != System::Generator => {
                format!("{:.2}", s.median_pps / b)
            }
            _ => String::new(),
        };
        let runs: Vec<String> = s
            .runs_pps
            .iter()
            .map(|p| format!("{:.3}", p / 1e6))
            .collect();
        let _ = writeln!(
            out,
            "| {}{} | {} | {:.3} | {} | {} | {} | {} |",
            s.system.name(),
            if s.generator_limited {
                " (gen-limited)"
            } else {
                ""
            },
            s.size,
            s.median_pps / 1e6,
            runs.join(" "),
            ratio(System::Linux),
            ratio(System::LinuxConntrack),
            ratio(System::LinuxNotrack),
        );
    }
    out
}

/// Per system and size: medians of the fixed-rate trials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostSummary {
    /// The system ([`System::Generator`]: the baseline).
    pub system: System,
    /// Frame size label.
    pub size: String,
    /// Median rate the generator achieved.
    pub offered_pps: f64,
    /// Median frames the sink counted.
    pub forwarded: f64,
    /// Median loss, percent of sent.
    pub loss_pct: f64,
    /// Median CPU nanoseconds per forwarded frame, per CPU.
    pub cpu_ns: Vec<f64>,
    /// Median over all CPUs.
    pub total_ns: f64,
    /// Median of (this system's all-CPU figure minus the same round's
    /// baseline): the router's cost per packet. `None` for the baseline.
    pub router_ns: Option<f64>,
    /// Each round's router figure.
    pub router_runs: Vec<f64>,
    /// Median CPU nanoseconds per forwarded frame of the router's process.
    pub process_ns: Option<f64>,
    /// routerd's accounting of the run with the median busy cycles, or
    /// why there is none (empty for other systems).
    pub runtime: String,
    /// Median nanoseconds per packet of routerd's non-idle cycles.
    pub runtime_busy_ns: Option<f64>,
    /// Median of the poller's own busy cycles per packet
    /// ([`CostRun::own_cycles_per_packet`]).
    pub own_cycles: Option<f64>,
}

/// Medians of the fixed-rate phase per system and size, in `systems` order
/// with the baseline first.
pub fn summarize_costs(
    costs: &[CostRun],
    systems: &[System],
    sizes: &[SizeMix],
) -> Vec<CostSummary> {
    let mut order = vec![System::Generator];
    order.extend(systems.iter().copied().filter(|s| *s != System::Generator));
    let mut out = Vec::new();
    for size in sizes {
        let label = size.label();
        let base = |round: u32| {
            costs
                .iter()
                .find(|c| c.system == System::Generator && c.size == label && c.repeat == round)
                .map(CostRun::total_ns_per_packet)
        };
        for &system in &order {
            let mine: Vec<&CostRun> = costs
                .iter()
                .filter(|c| c.system == system && c.size == label)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&CostRun) -> f64| {
                median(&mine.iter().map(|c| f(c)).collect::<Vec<_>>()).unwrap_or(0.0)
            };
            let ncpu = mine.iter().map(|c| c.m.cpu_secs.len()).max().unwrap_or(0);
            let cpu_ns = (0..ncpu)
                .map(|i| med(&|c| c.ns_per_packet().get(i).copied().unwrap_or(0.0)))
                .collect();
            let router_runs: Vec<f64> = if system == System::Generator {
                Vec::new()
            } else {
                mine.iter()
                    .filter_map(|c| base(c.repeat).map(|b| c.total_ns_per_packet() - b))
                    .collect()
            };
            let procs: Vec<f64> = mine
                .iter()
                .filter_map(|c| {
                    c.m.process_secs
                        .map(|p| p * 1e9 / c.m.forwarded.max(1) as f64)
                })
                .collect();
            let deltas: Vec<&RuntimeDelta> = mine
                .iter()
                .filter_map(|c| match &c.runtime {
                    Some(RuntimeCell::Delta(d)) => Some(d),
                    _ => None,
                })
                .collect();
            let busy: Vec<f64> = deltas.iter().map(|d| d.busy_ns_per_packet).collect();
            let runtime = if !system.is_routerd() {
                String::new()
            } else if deltas.is_empty() {
                "runtime accounting unavailable".to_string()
            } else {
                let mut sorted = deltas.clone();
                sorted.sort_by(|a, b| a.busy_ns_per_packet.total_cmp(&b.busy_ns_per_packet));
                sorted[sorted.len() / 2].describe()
            };
            out.push(CostSummary {
                system,
                size: label.clone(),
                offered_pps: med(&|c| c.m.offered_pps),
                forwarded: med(&|c| c.m.forwarded as f64),
                loss_pct: med(&|c| loss_pct(&c.m)),
                cpu_ns,
                total_ns: med(&|c| c.total_ns_per_packet()),
                router_ns: (system != System::Generator)
                    .then(|| median(&router_runs))
                    .flatten(),
                router_runs,
                process_ns: median(&procs),
                runtime,
                runtime_busy_ns: median(&busy),
                own_cycles: median(
                    &mine
                        .iter()
                        .filter_map(|c| c.own_cycles_per_packet)
                        .collect::<Vec<_>>(),
                ),
            });
        }
    }
    out
}

/// The cost table, with the router figure's ratios against Linux with
/// conntrack, Linux with raw notrack and OVS (untracked rows against
/// `ovs afxdp`, tracked rows against `ovs afxdp + ct`).
pub fn cost_table(sums: &[CostSummary]) -> String {
    let ncpu = sums.iter().map(|s| s.cpu_ns.len()).max().unwrap_or(0);
    let mut out = String::from("| system | frame | offered kpps | forwarded | loss % |");
    for i in 0..ncpu {
        let _ = write!(out, " CPU{i} ns/pkt |");
    }
    out.push_str(
        " all CPUs ns/pkt | router ns/pkt (minus baseline) | runs | x linux+conntrack | \
         x linux+notrack | x ovs | process ns/pkt | own accounting: busy cycles/pkt | \
         routerd runtime (cycles/pkt by phase) |\n|---|---|---:|---:|---:|",
    );
    for _ in 0..ncpu {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|---|---:|---:|---:|---:|---:|---|\n");
    for s in sums {
        let router_of = |sys: System| {
            sums.iter()
                .find(|b| b.system == sys && b.size == s.size)
                .and_then(|b| b.router_ns)
        };
        let ratio = |sys: System| match (s.router_ns, router_of(sys)) {
            (Some(a), Some(b)) if b > 0.0 && s.system != sys => format!("{:.2}", a / b),
            _ => String::new(),
        };
        let ovs = match s.system {
            System::RouterdTracked | System::LinuxConntrack => ratio(System::OvsTracked),
            _ => ratio(System::Ovs),
        };
        let name = if s.system == System::Generator {
            "baseline: generator -> sink, no router".to_string()
        } else {
            s.system.name().to_string()
        };
        let _ = write!(
            out,
            "| {name} | {} | {:.1} | {:.0} | {:.3} |",
            s.size,
            s.offered_pps / 1e3,
            s.forwarded,
            s.loss_pct
        );
        for i in 0..ncpu {
            let _ = write!(out, " {:.0} |", s.cpu_ns.get(i).copied().unwrap_or(0.0));
        }
        let runs: Vec<String> = s.router_runs.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            out,
            " {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.total_ns,
            s.router_ns.map_or(String::new(), |v| format!("{v:.0}")),
            runs.join(" "),
            ratio(System::LinuxConntrack),
            ratio(System::LinuxNotrack),
            ovs,
            s.process_ns.map_or(String::new(), |v| format!("{v:.0}")),
            s.own_cycles.map_or(String::new(), |v| format!("{v:.0}")),
            s.runtime,
        );
    }
    out
}

/// Every fixed-rate trial as CSV.
pub fn cost_csv(costs: &[CostRun]) -> String {
    let mut out = String::from(
        "system,frame_size,repeat,target_pps,offered_pps,sent,forwarded,secs,cpu_busy_secs,\
         process_secs,runtime_busy_ns_per_packet\n",
    );
    for c in costs {
        let cpus: Vec<String> = c.m.cpu_secs.iter().map(|v| format!("{v:.2}")).collect();
        let rt = match &c.runtime {
            Some(RuntimeCell::Delta(d)) => format!("{:.1}", d.busy_ns_per_packet),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{},{},{},{:.0},{:.0},{},{},{:.3},{},{},{}",
            c.system.name(),
            c.size,
            c.repeat,
            c.m.target_pps,
            c.m.offered_pps,
            c.m.sent,
            c.m.forwarded,
            c.m.secs,
            cpus.join(" "),
            c.m.process_secs
                .map_or(String::new(), |v| format!("{v:.2}")),
            rt
        );
    }
    out
}

/// Every run as CSV.
pub fn csv(runs: &[Run]) -> String {
    let mut out = String::from(
        "system,frame_size,repeat,throughput_pps,target_pps,failed_at_pps,generator_limited,trials\n",
    );
    for r in runs {
        let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.0}"));
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.system.name(),
            r.size,
            r.repeat,
            f(r.result.throughput_pps),
            f(r.result.target_pps),
            f(r.result.failed_at_pps),
            r.result.generator_limited,
            r.result.trials.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn run(system: System, repeat: u32, pps: Option<f64>) -> Run {
        Run {
            system,
            size: "64".into(),
            repeat,
            result: SearchResult {
                throughput_pps: pps,
                ..SearchResult::default()
            },
        }
    }

    #[test]
    fn medians_and_ratios() {
        let runs = vec![
            run(System::Linux, 0, Some(400_000.0)),
            run(System::Linux, 1, Some(500_000.0)),
            run(System::Linux, 2, Some(300_000.0)),
            run(System::RouterdUntracked, 0, Some(1_000_000.0)),
            run(System::RouterdUntracked, 1, None),
            run(System::RouterdUntracked, 2, Some(900_000.0)),
        ];
        let s = summarize(
            &runs,
            &[System::RouterdUntracked, System::Linux],
            &[SizeMix::Fixed(64)],
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].median_pps, 900_000.0, "a failed run counts as 0");
        assert_eq!(s[1].median_pps, 400_000.0);
        let t = table(&s);
        assert!(
            t.contains("| routerd untracked | 64 | 0.900 | 1.000 0.000 0.900 | 2.25 |"),
            "{t}"
        );
        assert!(
            t.contains("| linux | 64 | 0.400 | 0.400 0.500 0.300 | 1.00 |"),
            "{t}"
        );
        let c = csv(&runs);
        assert_eq!(c.lines().count(), 7);
        assert!(c.contains("\nrouterd untracked,64,1,,,,false,0\n"), "{c}");
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn configs_differ_only_where_tracking_does() {
        let u = routerd_config(false, 1, XdpMode::Generic);
        let t = routerd_config(true, 1, XdpMode::Generic);
        assert!(u.contains("action: notrack") && !t.contains("notrack"));
        assert!(t.contains("state: [new]") && !u.contains("state: [new]"));
        assert!(
            u.contains("xdp_mode: generic")
                && u.contains("workers: [1]")
                && u.contains("mac: \"02:4c:52:00:00:04\"")
        );
        assert!(nft_ruleset(System::LinuxNotrack)
            .unwrap()
            .contains("notrack"));
        assert!(nft_ruleset(System::LinuxConntrack)
            .unwrap()
            .contains("ct state new accept"));
        assert_eq!(nft_ruleset(System::Linux), None);
        for (text, name) in [(u, "untracked.yaml"), (t, "tracked.yaml")] {
            if let Err(e) = control::config::Config::from_str(&text, Path::new(name)) {
                panic!("routerd refuses the {name} config: {e}\n{text}");
            }
        }
    }
}
