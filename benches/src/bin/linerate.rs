//! `linerate`: AF_XDP traffic generator, sink and RFC 2544 throughput
//! search (see `benches/src/linerate/`). Needs root (AF_XDP, XDP programs,
//! network namespaces).
//!
//! ```text
//! linerate gen  --netns A --dev a0 --dst-mac MAC --rate 500000 --size 64 --duration 2
//! linerate sink --netns B --dev b0 --kind afxdp --duration 5 --json
//! linerate rfc2544 --gen-netns A --gen-dev a0 --sink-netns B --sink-dev b0 --dst-mac MAC --sizes 64,imix
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use benches::linerate::chart;
use benches::linerate::compare::{compare, csv, summarize, table, CompareOptions, System};
use benches::linerate::frame::{FlowSet, Mac, SizeMix};
use benches::linerate::gen::{GenConfig, GenReport, RunSpec};
use benches::linerate::handles::{GenHandle, Placement, SinkHandle};
use benches::linerate::rfc2544::{search, trial, SearchParams, SearchResult};
use benches::linerate::sink::{SinkConfig, SinkKind, SinkReport};
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
    #[command(subcommand)]
    cmd: Cmd,
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
    /// rounds, medians, ratios; writes a CSV and a PNG chart.
    Compare(CompareArgs),
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
        default_value = "generator,routerd-untracked,routerd-tracked,linux,linux-conntrack,linux-notrack"
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
    /// Directory for compare.csv, compare-SIZE.png and the routerd configs.
    #[arg(long, default_value = "linerate-out")]
    out: std::path::PathBuf,
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

fn cmd_compare(a: CompareArgs) -> Result<(), LinerateError> {
    let routerd = match a.routerd {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| LinerateError::Setup(format!("own path: {e}")))?
            .with_file_name("routerd"),
    };
    let opts = CompareOptions {
        routerd,
        systems: a.systems.clone(),
        sizes: a.sizes.clone(),
        repeats: a.repeats.max(1),
        trial: secs(a.trial_secs)?,
        flows: a.flows,
        resolution: a.resolution,
        max_trials: a.max_trials,
        gen_cpu: a.gen_cpu,
        router_cpu: a.router_cpu,
        out_dir: a.out.clone(),
        routerd_xdp: a.routerd_xdp.into(),
    };
    println!(
        "placement: generator thread pinned to CPU {g} (with routerd, r0's XDP redirect and the \
         copy into routerd's RX ring also run there: veth runs the peer's XDP in the sender's \
         NAPI); router on CPU {r}: routerd's worker (config `workers: [{r}]`) and its TX, or \
         Linux forwarding steered by RPS on r0 (rps_cpus mask {m:x}); the sink's XDP \
         count-and-drop runs in the NAPI of whoever transmits into s0 (the router's CPU).",
        g = opts.gen_cpu,
        r = opts.router_cpu,
        m = 1u32 << opts.router_cpu
    );
    let runs = compare(&opts, |line| println!("{line}"))?;
    let sums = summarize(&runs, &opts.systems, &opts.sizes);
    println!();
    println!(
        "no-loss throughput (RFC 2544, {} s trials, {} flows, {} rounds interleaved, medians):",
        a.trial_secs, a.flows, opts.repeats
    );
    print!("{}", table(&sums));
    let csv_path = opts.out_dir.join("compare.csv");
    std::fs::write(&csv_path, csv(&runs))
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", csv_path.display())))?;
    println!("wrote {}", csv_path.display());
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
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Gen(a) => cmd_gen(a),
        Cmd::Sink(a) => cmd_sink(a),
        Cmd::Rfc2544(a) => cmd_search(a),
        Cmd::Compare(a) => cmd_compare(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linerate: {e}");
            ExitCode::FAILURE
        }
    }
}
