//! `linerate compare`: one namespace lab, one generator, one sink, one CPU
//! placement, and the RFC 2544 no-loss throughput of five routers in it,
//! interleaved and repeated:
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
//!   `veth_xmit`). With routerd, also r0's XDP redirect and the copy into
//!   routerd's RX ring (veth runs the peer's XDP in the sender's NAPI).
//! - CPU `router_cpu` (1): routerd's worker (pinned by its config) and its
//!   TX `sendto`, and routerd's other threads (started with that CPU mask);
//!   for Linux, the whole forwarding path, steered there by
//!   RPS on r0 (`rps_cpus`). In both cases the sink's XDP count-and-drop
//!   program runs in the NAPI of whoever transmits into s0: this CPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lab::{Lab, LabError, RouterdProc};
use serde::Serialize;

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
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 6] = [
        System::Generator,
        System::RouterdUntracked,
        System::RouterdTracked,
        System::Linux,
        System::LinuxConntrack,
        System::LinuxNotrack,
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
        }
    }

    fn is_routerd(self) -> bool {
        matches!(self, System::RouterdUntracked | System::RouterdTracked)
    }
}

/// How to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The routerd binary.
    pub routerd: PathBuf,
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

/// Builds the lab, measures every system `repeats` times (rotating the
/// order each round), writes the routerd configs into `out_dir`, and
/// returns every run. `say` gets progress lines.
pub fn compare(
    opts: &CompareOptions,
    mut say: impl FnMut(&str),
) -> Result<Vec<Run>, LinerateError> {
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
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", opts.out_dir.display())))?;
    let cfg_untracked = opts.out_dir.join("routerd-untracked.yaml");
    let cfg_tracked = opts.out_dir.join("routerd-tracked.yaml");
    for (path, tracked) in [(&cfg_untracked, false), (&cfg_tracked, true)] {
        std::fs::write(
            path,
            routerd_config(tracked, opts.router_cpu, opts.routerd_xdp),
        )
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

    let mut runs = Vec::new();
    for round in 0..opts.repeats {
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
                |rate| trial(&direct_gen, &mut direct_sink, size, rate, opts.trial),
            )?;
            let gen_max = g.trials.first().map_or(1e6, |t| t.outcome.offered_pps);
            if opts.systems.contains(&System::Generator) {
                say(&format!(
                    "round {} size {size}: generator alone offers {:.0} pps, sink received {}",
                    round + 1,
                    gen_max,
                    g.trials.first().map_or(0, |t| t.outcome.received)
                ));
                runs.push(Run {
                    system: System::Generator,
                    size: size.label(),
                    repeat: round,
                    result: g,
                });
            }
            for &system in order.iter().filter(|s| **s != System::Generator) {
                let result = measure(
                    &t,
                    opts,
                    system,
                    &gen,
                    &mut sink,
                    size,
                    gen_max,
                    &cfg_untracked,
                    &cfg_tracked,
                )?;
                say(&format!(
                    "round {} size {size}: {:<22} {} ({} trials)",
                    round + 1,
                    system.name(),
                    result.describe(),
                    result.trials.len()
                ));
                runs.push(Run {
                    system,
                    size: size.label(),
                    repeat: round,
                    result,
                });
            }
        }
    }
    t.nft(None).ok();
    drop(t);
    Ok(runs)
}

#[allow(clippy::too_many_arguments)]
fn measure(
    t: &Topo,
    opts: &CompareOptions,
    system: System,
    gen: &GenHandle,
    sink: &mut SinkHandle,
    size: &SizeMix,
    gen_max: f64,
    cfg_untracked: &Path,
    cfg_tracked: &Path,
) -> Result<SearchResult, LinerateError> {
    let params = SearchParams {
        max_pps: gen_max,
        resolution: opts.resolution,
        loss_tolerance: 0.0,
        max_trials: opts.max_trials,
    };
    let mut routerd = None;
    if system.is_routerd() {
        t.routerd_router(opts.routerd_xdp, opts.router_cpu)?;
        let cfg = if system == System::RouterdTracked {
            cfg_tracked
        } else {
            cfg_untracked
        };
        // Every routerd thread on the router's CPU (the worker pins itself
        // there; the main thread would otherwise share the generator's).
        let mut r = RouterdProc::spawn_on(&opts.routerd, &[], &t.rtr, cfg, Some(opts.router_cpu))
            .map_err(setup_err)?;
        r.wait_ready(Duration::from_secs(20)).map_err(setup_err)?;
        routerd = Some(r);
    } else {
        t.linux_router(system, opts.router_cpu)?;
    }
    let result = probe(gen, sink)
        .and_then(|()| search(&params, |rate| trial(gen, sink, size, rate, opts.trial)));
    if let Some(mut r) = routerd {
        let st = r.terminate(Duration::from_secs(10)).map_err(setup_err)?;
        if !st.success() {
            return Err(LinerateError::Setup(format!(
                "routerd exited with {st}: {}",
                r.log().join(" | ")
            )));
        }
    }
    result
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
