//! `linerate`: AF_XDP traffic generator, sink and RFC 2544 throughput
//! search (see `benches/src/linerate/`). Needs root (AF_XDP, XDP programs,
//! network namespaces).
//!
//! ```text
//! linerate gen  --netns A --dev a0 --dst-mac MAC --rate 500000 --size 64 --duration 2
//! linerate sink --netns B --dev b0 --kind afxdp --duration 5 --json
//! linerate rfc2544 --gen-netns A --gen-dev a0 --sink-netns B --sink-dev b0 --dst-mac MAC --sizes 64,imix
//! linerate compare                       # the lab, the search, the fixed-rate cost phase
//! linerate tcp --streams 1,4             # bulk TCP, routerd against Linux
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use benches::linerate::chart;
use benches::linerate::chart::Bar;
use benches::linerate::compare::{
    compare, cost_csv, cost_table, csv, summarize, summarize_costs, table, CompareOptions,
    FixedOptions, System,
};
use benches::linerate::frame::{FlowSet, Mac, SizeMix};
use benches::linerate::gen::{GenConfig, GenReport, RunSpec};
use benches::linerate::handles::{GenHandle, Placement, SinkHandle};
use benches::linerate::rfc2544::{search, trial, SearchParams, SearchResult};
use benches::linerate::sink::{SinkConfig, SinkKind, SinkReport};
use benches::linerate::tcp::{run_tcp, tcp_table, TcpOptions, TcpSystem};
use benches::linerate::LinerateError;
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataplane::xsk::XdpMode;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "linerate",
    about = "AF_XDP traffic generator, sink and RFC 2544 search"
)]
struct Cli {
    #[command(flatten)]
    builtin: lab::BuiltinRouterd,
    /// Internal, with --as-routerd: routerd's config.
    #[arg(long, hide = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send test frames on an interface.
    Gen(GenArgs),
    /// Receive and check (or count) test frames on an interface.
    Sink(SinkArgs),
    /// RFC 2544 throughput search from a generator interface to a sink
    /// interface, per frame size.
    Rfc2544(SearchArgs),
    /// Build a namespace lab and compare routerd (untracked, tracked) with
    /// Linux forwarding (no netfilter, conntrack, raw notrack): interleaved
    /// rounds, medians, ratios; then every system at one fixed rate with
    /// CPU time per forwarded packet; writes CSVs and PNG charts.
    Compare(CompareArgs),
    /// Bulk TCP through the lab (client - router - server), routerd and
    /// Linux forwarding in the same run: throughput, retransmits, and
    /// routerd's wan ring counters.
    Tcp(TcpArgs),
}

#[derive(Args)]
struct TcpArgs {
    /// The routerd binary (default: `routerd` next to this program, else
    /// this program's built-in copy).
    #[arg(long)]
    routerd: Option<std::path::PathBuf>,
    /// routerd's config (devices r0 and r1; default: configs/transit-router.yaml
    /// as built in).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Stream counts.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    streams: Vec<u32>,
    /// Seconds per run (at most 60).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Rounds (each runs every system and stream count; order alternates).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "routerd,linux"
    )]
    systems: Vec<TcpSystem>,
    /// CPU of the client's threads (default: unpinned, as iperf3 runs).
    #[arg(long)]
    client_cpu: Option<usize>,
    /// CPU of the server's threads.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Directory for tcp.json and routerd's config.
    #[arg(long, default_value = "linerate-out")]
    out: std::path::PathBuf,
}

#[derive(Args)]
struct CompareArgs {
    /// The routerd binary (default: `routerd` next to this program).
    #[arg(long)]
    routerd: Option<std::path::PathBuf>,
    /// Systems to measure, in table order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "generator,routerd-untracked,routerd-tracked,linux,linux-conntrack,linux-notrack,ovs,ovs-tracked"
    )]
    systems: Vec<System>,
    /// Frame sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    sizes: Vec<SizeMix>,
    /// Rounds (each measures every system once, order rotated).
    #[arg(long, default_value_t = 3)]
    repeats: u32,
    /// Seconds per trial.
    #[arg(long, default_value_t = 1.0)]
    trial_secs: f64,
    #[arg(long, default_value_t = 256)]
    flows: u32,
    #[arg(long, default_value_t = 0.03)]
    resolution: f64,
    #[arg(long, default_value_t = 8)]
    max_trials: u32,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// CPU of the router (routerd worker; RPS target for Linux).
    #[arg(long, default_value_t = 1)]
    router_cpu: usize,
    /// routerd's XDP mode: `native` (on veth, r0's XDP and the copy into
    /// routerd's RX ring run on the generator's CPU) or `generic` (after
    /// RPS, on the router CPU; measured much slower here).
    #[arg(long, value_enum, default_value = "native")]
    routerd_xdp: Mode,
    /// Directory for compare.csv, compare-SIZE.png, cost.csv, cost-SIZE.png
    /// and the routerd configs.
    #[arg(long, default_value = "linerate-out")]
    out: std::path::PathBuf,
    /// `routerctl`, for routerd's runtime accounting (default: next to
    /// routerd).
    #[arg(long)]
    routerctl: Option<std::path::PathBuf>,
    /// Skip the no-loss search (needs --fixed-rate).
    #[arg(long)]
    skip_search: bool,
    /// Skip the fixed-rate phase.
    #[arg(long)]
    no_fixed: bool,
    /// Offered rate of the fixed-rate phase (default: --fixed-share of the
    /// slowest system's median no-loss rate).
    #[arg(long)]
    fixed_rate: Option<f64>,
    #[arg(long, default_value_t = 0.8)]
    fixed_share: f64,
    /// Seconds each system gets the fixed rate.
    #[arg(long, default_value_t = 5.0)]
    fixed_secs: f64,
    /// Rounds of the fixed-rate phase (default: --repeats).
    #[arg(long)]
    fixed_repeats: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Native,
    Generic,
}

impl From<Mode> for XdpMode {
    fn from(m: Mode) -> XdpMode {
        match m {
            Mode::Native => XdpMode::Native,
            Mode::Generic => XdpMode::Generic,
        }
    }
}

#[derive(Args, Clone)]
struct FlowArgs {
    /// Number of flows.
    #[arg(long, default_value_t = 16)]
    flows: u32,
    /// First source address (flows use up to 64 from here).
    #[arg(long, default_value = "198.18.0.10")]
    src: Ipv4Addr,
    /// First destination address (flows use up to 64 from here).
    #[arg(long, default_value = "198.19.0.10")]
    dst: Ipv4Addr,
    /// Source MAC (default: the interface's).
    #[arg(long)]
    src_mac: Option<Mac>,
    /// Destination MAC: the router's ingress, or the sink's interface.
    #[arg(long)]
    dst_mac: Mac,
}

#[derive(Args)]
struct GenArgs {
    /// Network namespace to run in (default: the current one).
    #[arg(long)]
    netns: Option<String>,
    /// Interface to send on.
    #[arg(long)]
    dev: String,
    /// CPU to pin the generator to.
    #[arg(long)]
    cpu: Option<usize>,
    #[command(flatten)]
    flows: FlowArgs,
    /// Frame size with FCS (64..=1518), `imix` (7x64/4x594/1x1518) or `imix576`.
    #[arg(long, default_value = "64")]
    size: SizeMix,
    /// Frames a second (0: as fast as possible).
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Seconds to send (at most 300).
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Stop after this many frames.
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: Mode,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SinkArgs {
    /// Network namespace to run in.
    #[arg(long)]
    netns: Option<String>,
    /// Interface to receive on.
    #[arg(long)]
    dev: String,
    /// CPU to pin the sink to.
    #[arg(long)]
    cpu: Option<usize>,
    /// `afxdp` checks every frame; `count` counts and drops in XDP.
    #[arg(long, value_enum, default_value = "afxdp")]
    kind: SinkKind,
    /// Flows the generator sends.
    #[arg(long, default_value_t = 16)]
    flows: u32,
    /// Seconds to measure (at most 300).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: Mode,
    /// Print JSON (with per-flow figures).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SearchArgs {
    #[arg(long)]
    gen_netns: Option<String>,
    #[arg(long)]
    gen_dev: String,
    #[arg(long)]
    sink_netns: Option<String>,
    #[arg(long)]
    sink_dev: String,
    /// CPU for the generator (and an AF_XDP sink).
    #[arg(long)]
    cpu: Option<usize>,
    #[command(flatten)]
    flows: FlowArgs,
    /// Frame sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    sizes: Vec<SizeMix>,
    /// Seconds per trial.
    #[arg(long, default_value_t = 1.0)]
    trial_secs: f64,
    /// First (highest) rate tried.
    #[arg(long, default_value_t = 2_000_000.0)]
    max_pps: f64,
    /// Accepted loss ratio (0: RFC 2544 no-drop throughput; e.g. 0.001 for PDR).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Stop when the bracket is narrower than this share of the rate.
    #[arg(long, default_value_t = 0.02)]
    resolution: f64,
    #[arg(long, default_value_t = 12)]
    max_trials: u32,
    /// The sink: `count` (cheapest) or `afxdp`.
    #[arg(long, value_enum, default_value = "count")]
    sink: SinkKind,
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: Mode,
    #[arg(long)]
    json: bool,
}

fn secs(s: f64) -> Result<Duration, LinerateError> {
    if !(s > 0.0 && s <= 300.0) {
        return Err(LinerateError::Config(format!(
            "duration {s} s out of range (0, 300]"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// The MAC of `dev` (in `netns`), from `ip -br link`.
fn iface_mac(netns: Option<&str>, dev: &str) -> Result<Mac, LinerateError> {
    let mut cmd = std::process::Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-br", "link", "show", "dev", dev])
        .output()
        .map_err(|e| LinerateError::Setup(format!("cannot run ip: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            LinerateError::Setup(format!(
                "no MAC for {dev}: `ip -br link show dev {dev}` said {:?}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
}

fn gen_config(
    netns: Option<&str>,
    dev: &str,
    f: &FlowArgs,
    mode: Mode,
) -> Result<GenConfig, LinerateError> {
    let src_mac = match f.src_mac {
        Some(m) => m,
        None => iface_mac(netns, dev)?,
    };
    let flows = FlowSet {
        count: f.flows,
        src: f.src,
        dst: f.dst,
    };
    flows.validate().map_err(LinerateError::Config)?;
    Ok(GenConfig {
        ifname: dev.to_string(),
        mode: mode.into(),
        src_mac,
        dst_mac: f.dst_mac,
        flows,
    })
}

fn print_json<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("reports serialise")
    );
}

fn gen_line(g: &GenReport) -> String {
    format!(
        "sent {} frames ({} bytes) in {:.3} s: offered {:.0} pps (target {:.0}){}",
        g.sent,
        g.bytes,
        g.seconds,
        g.offered_pps,
        g.target_pps,
        if g.reached(0.97) {
            String::new()
        } else {
            format!(
                "; the generator fell short of the target ({} frames behind, TX ring full {} times)",
                g.behind, g.tx_ring_full
            )
        }
    )
}

fn sink_lines(s: &SinkReport) -> String {
    let mut out = format!(
        "received {} test frames in {:.3} s ({} other frames, {} dropped by the sink's own rings)",
        s.received, s.seconds, s.foreign, s.sink_dropped
    );
    if let Some(t) = s.totals {
        out += &format!(
            "\nflows seen {}; distinct {}; missing (by sequence) {}; reordered {}; duplicates {}",
            t.flows_seen, t.unique, t.missing, t.reordered, t.duplicates
        );
        let l = t.latency;
        out += &format!(
            "\nlatency (µs): min {:.1}, median {:.1}, p99 {:.1}, max {:.1} over {} frames",
            l.min_us, l.median_us, l.p99_us, l.max_us, l.samples
        );
    }
    out
}

fn cmd_gen(a: GenArgs) -> Result<(), LinerateError> {
    let cfg = gen_config(a.netns.as_deref(), &a.dev, &a.flows, a.xdp_mode)?;
    let spec = RunSpec {
        rate_pps: a.rate,
        sizes: a.size.clone(),
        duration: secs(a.duration)?,
        count: a.count,
        whole_bursts: false,
    };
    let place = Placement {
        netns: a.netns,
        cpu: a.cpu,
    };
    let gen = GenHandle::open(cfg, place)?;
    let report = gen.run(&spec)?;
    if a.json {
        print_json(&report);
    } else {
        println!("{}", gen_line(&report));
    }
    Ok(())
}

fn cmd_sink(a: SinkArgs) -> Result<(), LinerateError> {
    let cfg = SinkConfig {
        ifname: a.dev.clone(),
        mode: a.xdp_mode.into(),
        kind: a.kind,
        flows: a.flows,
    };
    let d = secs(a.duration)?;
    let place = Placement {
        netns: a.netns,
        cpu: a.cpu,
    };
    let mut sink = SinkHandle::open(cfg, place)?;
    sink.start(d)?;
    std::thread::sleep(d);
    let report = sink.finish()?;
    if a.json {
        print_json(&report);
    } else {
        println!("{}", sink_lines(&report));
    }
    Ok(())
}

#[derive(Serialize)]
struct SizeResult {
    size: String,
    result: SearchResult,
}

fn cmd_search(a: SearchArgs) -> Result<(), LinerateError> {
    let cfg = gen_config(a.gen_netns.as_deref(), &a.gen_dev, &a.flows, a.xdp_mode)?;
    let trial_len = secs(a.trial_secs)?;
    let mut sink = SinkHandle::open(
        SinkConfig {
            ifname: a.sink_dev.clone(),
            mode: a.xdp_mode.into(),
            kind: a.sink,
            flows: a.flows.flows,
        },
        Placement {
            netns: a.sink_netns.clone(),
            cpu: a.cpu,
        },
    )?;
    let gen = GenHandle::open(
        cfg,
        Placement {
            netns: a.gen_netns.clone(),
            cpu: a.cpu,
        },
    )?;
    let params = SearchParams {
        max_pps: a.max_pps,
        resolution: a.resolution,
        loss_tolerance: a.loss,
        max_trials: a.max_trials,
    };
    let mut results = Vec::new();
    for size in &a.sizes {
        let r = search(&params, |rate| {
            let o = trial(&gen, &mut sink, size, rate, trial_len)?;
            if !a.json {
                eprintln!(
                    "  {size:>7} target {rate:>10.0} offered {:>10.0} sent {:>9} received {:>9}",
                    o.offered_pps, o.sent, o.received
                );
            }
            Ok(o)
        })?;
        if !a.json {
            println!("{size:>7}: {}", r.describe());
        }
        results.push(SizeResult {
            size: size.label(),
            result: r,
        });
    }
    if a.json {
        print_json(&results);
    }
    Ok(())
}

/// routerd to run: `--routerd PATH`, else `routerd` next to this program,
/// else this program's built-in copy (`linerate --as-routerd`).
fn routerd_program(
    arg: Option<std::path::PathBuf>,
) -> Result<(std::path::PathBuf, Vec<String>), LinerateError> {
    if let Some(p) = arg {
        return Ok((p, Vec::new()));
    }
    let me = std::env::current_exe().map_err(|e| LinerateError::Setup(format!("own path: {e}")))?;
    let sibling = me.with_file_name("routerd");
    if sibling.is_file() {
        return Ok((sibling, Vec::new()));
    }
    Ok((me, vec!["--as-routerd".to_string()]))
}

fn cmd_compare(a: CompareArgs) -> Result<(), LinerateError> {
    let (routerd, routerd_args) = routerd_program(a.routerd)?;
    let routerctl = a
        .routerctl
        .or_else(|| Some(routerd.with_file_name("routerctl")))
        .filter(|p| p.is_file());
    let repeats = a.repeats.max(1);
    let opts = CompareOptions {
        routerd,
        routerd_args,
        routerctl,
        systems: a.systems.clone(),
        sizes: a.sizes.clone(),
        repeats,
        trial: secs(a.trial_secs)?,
        flows: a.flows,
        resolution: a.resolution,
        max_trials: a.max_trials,
        gen_cpu: a.gen_cpu,
        router_cpu: a.router_cpu,
        out_dir: a.out.clone(),
        routerd_xdp: a.routerd_xdp.into(),
        search: !a.skip_search,
        fixed: (!a.no_fixed)
            .then(|| -> Result<FixedOptions, LinerateError> {
                if !(a.fixed_share > 0.0 && a.fixed_share <= 1.0) {
                    return Err(LinerateError::Config(format!(
                        "--fixed-share {} out of range (0, 1]",
                        a.fixed_share
                    )));
                }
                if a.fixed_rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                    return Err(LinerateError::Config("--fixed-rate must be > 0".into()));
                }
                Ok(FixedOptions {
                    rate_pps: a.fixed_rate,
                    share: a.fixed_share,
                    duration: secs(a.fixed_secs)?,
                    repeats: a.fixed_repeats.unwrap_or(repeats).max(1),
                })
            })
            .transpose()?,
    };
    println!(
        "placement: generator thread pinned to CPU {g} (with routerd or OVS, r0's XDP redirect \
         and the copy into the AF_XDP RX ring also run there: veth runs the peer's XDP in the \
         sender's NAPI); router on CPU {r}: routerd's worker (config `workers: [{r}]`) and its \
         TX, OVS's PMD thread (pmd-cpu-mask {m:x}), or Linux forwarding steered by RPS on r0 \
         (rps_cpus mask {m:x}); the sink's XDP count-and-drop runs in the NAPI of whoever \
         transmits into s0 (the router's CPU).",
        g = opts.gen_cpu,
        r = opts.router_cpu,
        m = 1u32 << opts.router_cpu
    );
    println!(
        "routerd: {} {}; runtime accounting from {}",
        opts.routerd.display(),
        opts.routerd_args.join(" "),
        opts.routerctl
            .as_ref()
            .map_or("(no routerctl found)".to_string(), |p| format!(
                "{} stats runtime --json",
                p.display()
            ))
    );
    let report = compare(&opts, |line| println!("{line}"))?;
    if let Some(types) = &report.ovs_iface_types {
        println!("ovs-vswitchd iface_types: {types}");
    }
    let sums = summarize(&report.runs, &opts.systems, &opts.sizes);
    let write = |name: &str, text: String| -> Result<(), LinerateError> {
        let path = opts.out_dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| LinerateError::Setup(format!("{}: {e}", path.display())))?;
        println!("wrote {}", path.display());
        Ok(())
    };
    if opts.search {
        println!();
        println!(
            "no-loss throughput (RFC 2544, {} s trials, {} flows, {} rounds interleaved, medians):",
            a.trial_secs, a.flows, opts.repeats
        );
        print!("{}", table(&sums));
        write("compare.csv", csv(&report.runs))?;
        for size in &opts.sizes {
            let rows: Vec<_> = sums
                .iter()
                .filter(|s| s.size == size.label())
                .cloned()
                .collect();
            let png = opts.out_dir.join(format!("compare-{}.png", size.label()));
            let title = format!("NO-LOSS THROUGHPUT, {} BYTE FRAMES, VETH", size.label());
            chart::draw(&png, &title, &rows)?;
            println!("wrote {}", png.display());
        }
    }
    if let Some(fixed) = &opts.fixed {
        let costs = summarize_costs(&report.costs, &opts.systems, &opts.sizes);
        println!();
        println!(
            "CPU time per forwarded packet at one offered rate ({} s per system, {} rounds, \
             medians; busy = wall time minus idle+iowait of /proc/stat; router = all CPUs \
             minus the baseline of the same round):",
            a.fixed_secs, fixed.repeats
        );
        print!("{}", cost_table(&costs));
        write("cost.csv", cost_csv(&report.costs))?;
        write(
            "compare.json",
            serde_json::to_string_pretty(&report).expect("reports serialise"),
        )?;
        for size in &opts.sizes {
            let bars: Vec<Bar> = costs
                .iter()
                .filter(|s| s.size == size.label() && s.router_ns.is_some())
                .map(|s| Bar {
                    label: s.system.name().to_string(),
                    system: s.system,
                    median: s.router_ns.unwrap_or(0.0).max(0.0),
                    runs: s.router_runs.iter().map(|v| v.max(0.0)).collect(),
                })
                .collect();
            let png = opts.out_dir.join(format!("cost-{}.png", size.label()));
            let rate = costs
                .iter()
                .find(|s| s.size == size.label())
                .map_or(0.0, |s| s.offered_pps);
            let title = format!(
                "CPU NS PER FORWARDED {} BYTE PACKET AT {:.0} KPPS, VETH, MINUS BASELINE",
                size.label(),
                rate / 1e3
            );
            chart::draw_bars(
                &png,
                &title,
                "NS OF CPU PER PACKET (/PROC/STAT, ALL CPUS). BAR: MEDIAN, LINE: MIN-MAX",
                &bars,
                0,
            )?;
            println!("wrote {}", png.display());
        }
    }
    Ok(())
}

fn cmd_tcp(a: TcpArgs) -> Result<(), LinerateError> {
    let (routerd, routerd_args) = routerd_program(a.routerd)?;
    let config = match &a.config {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| LinerateError::Setup(format!("{}: {e}", p.display())))?,
        None => benches::linerate::tcp::LAB_CONFIG.to_string(),
    };
    if !(a.duration > 0.0 && a.duration <= 60.0) {
        return Err(LinerateError::Config(format!(
            "--duration {} out of range (0, 60]",
            a.duration
        )));
    }
    let opts = TcpOptions {
        routerd,
        routerd_args,
        config,
        streams: a.streams.clone(),
        duration: Duration::from_secs_f64(a.duration),
        rounds: a.rounds.max(1),
        systems: a.systems.clone(),
        client_cpu: a.client_cpu,
        server_cpu: a.server_cpu,
        out_dir: a.out.clone(),
    };
    println!(
        "bulk TCP client -> server, {} s per run, streams {:?}, {} rounds; client threads on {}, \
         server threads on {}; routerd: {} {}",
        a.duration,
        opts.streams,
        opts.rounds,
        a.client_cpu
            .map_or("any CPU".into(), |c| format!("CPU {c}")),
        a.server_cpu
            .map_or("any CPU".into(), |c| format!("CPU {c}")),
        opts.routerd.display(),
        opts.routerd_args.join(" ")
    );
    let report = run_tcp(&opts, |line| println!("{line}"))?;
    for c in &report.census {
        let [total, free, fill, rx, held, tx] = c.census;
        println!(
            "round {} routerd census at exit: total {total} free {free} fill {fill} rx {rx} \
             held {held} tx {tx}",
            c.round + 1
        );
    }
    println!();
    print!("{}", tcp_table(&report, &opts.systems, &opts.streams));
    let path = opts.out_dir.join("tcp.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("reports serialise"),
    )
    .map_err(|e| LinerateError::Setup(format!("{}: {e}", path.display())))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.builtin.as_routerd {
        let Some(config) = cli.config else {
            eprintln!("linerate --as-routerd needs --config FILE");
            return ExitCode::from(2);
        };
        return control::run::main_run(&control::run::RunOptions {
            config,
            stats_json: cli.builtin.stats_json,
        });
    }
    let Some(cmd) = cli.cmd else {
        eprintln!("linerate: give a command (gen, sink, rfc2544, compare, tcp); see --help");
        return ExitCode::from(2);
    };
    let res = match cmd {
        Cmd::Gen(a) => cmd_gen(a),
        Cmd::Sink(a) => cmd_sink(a),
        Cmd::Rfc2544(a) => cmd_search(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Tcp(a) => cmd_tcp(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linerate: {e}");
            ExitCode::FAILURE
        }
    }
}
