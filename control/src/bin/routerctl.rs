//! `routerctl`: the router's control CLI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use control::config::Config;
use control::ctl::api::{FlowEntry, ReloadSummary, StatsSnapshot, TracePoll, TraceStart};
use control::ctl::client::Client;
use control::ctl::proto::Request;
use control::ctl::{text, CtlError};
use control::explain::Explainer;
use control::packet_spec::PacketSpec;

#[derive(Parser)]
#[command(
    name = "routerctl",
    version,
    about = "Control and inspect afxdp-router"
)]
struct Cli {
    /// Control socket of the running routerd.
    #[arg(long, global = true, default_value = "/run/afxdp-router/routerd.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the config's raw and filter chains in another firewall's
    /// language, with the same semantics (see the README for what it
    /// cannot express).
    Export {
        /// The language: `nft` (an nftables ruleset for `nft -f`).
        #[arg(value_enum)]
        format: ExportFormat,
        /// The YAML config to export.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run packets through the pipeline built from a config, offline, and
    /// print every stage's decision. Packets share one connection table.
    ///
    /// PACKET examples:
    ///   "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S"
    ///   "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA"
    ///   "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1"
    ///   "in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request"
    #[command(verbatim_doc_comment)]
    Explain {
        /// The YAML config to build the pipeline from.
        #[arg(long)]
        config: PathBuf,
        /// One JSON object per packet, one per line.
        #[arg(long)]
        json: bool,
        /// Packet descriptions, run in order.
        #[arg(required = true)]
        packets: Vec<String>,
    },
    /// Counters of the running router: interfaces, workers, drops by
    /// reason, rules, connection tracking, AF_XDP rings.
    Stats {
        /// Print the counters as one JSON object.
        #[arg(long)]
        json: bool,
        /// Set every counter to zero (after printing nothing).
        #[arg(long, conflicts_with = "json")]
        reset: bool,
    },
    /// The connection table, like `conntrack -L` and `conntrack -F`.
    Conntrack {
        /// `list` the flows (default) or `flush` the table.
        #[arg(value_enum, default_value_t = CtAction::List)]
        action: CtAction,
        /// JSON: a list of flows, or `{"flushed": N}`.
        #[arg(long)]
        json: bool,
    },
    /// Load a config into the running router without stopping traffic. A
    /// config that does not validate is refused and the old one keeps
    /// running.
    Reload {
        /// The config to load (default: the file routerd runs).
        file: Option<PathBuf>,
    },
    /// Show every stage's decision for the next matching packets of the
    /// live router, in `explain`'s words.
    ///
    /// MATCH words (all must hold), as in tcpdump:
    ///   tcp | udp | icmp | proto N
    ///   src|dst|host ADDRESS[/LEN]
    ///   sport|dport|port PORT
    /// e.g. `routerctl trace --count 5 --in wan tcp dport 22`
    #[command(verbatim_doc_comment)]
    Trace {
        /// Packets to trace.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Only packets arriving on this interface (`host`: the router's own).
        #[arg(long = "in", value_name = "IFACE")]
        input: Option<String>,
        /// Stop waiting after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// One JSON object per packet (as `explain --json`).
        #[arg(long)]
        json: bool,
        /// Match words.
        #[arg(value_name = "MATCH")]
        matcher: Vec<String>,
    },
    /// The route table of the running router: show, lookup, verify
    /// against the kernel's table.
    Route {
        #[command(subcommand)]
        cmd: RouteCmd,
    },
}

/// `routerctl route ...`.
#[derive(Subcommand)]
enum RouteCmd {
    /// The dataplane's routes with their source (connected, static, kernel
    /// and its protocol), those equal to or inside PREFIX; then the kernel
    /// feed's counters and the kernel routes skipped, with why.
    Show {
        /// A prefix (`203.0.113.0/24`, `default`); all routes without.
        prefix: Option<String>,
        /// Only the counts by source.
        #[arg(long)]
        summary: bool,
        #[arg(long)]
        json: bool,
    },
    /// The route the dataplane uses for ADDRESS (longest prefix match).
    Lookup {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Compare the kernel's table (the kernel_routes protocols) with the
    /// dataplane's kernel routes; exit status 1 if they differ.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Nft,
}

#[derive(Clone, Copy, ValueEnum)]
enum CtAction {
    List,
    Flush,
}

/// A failed command: what to print and how.
enum Failure {
    /// `routerctl: ` and the message.
    Ctl(CtlError),
    /// The message as it is (config errors keep `routerd --check`'s form).
    Plain(String),
}

impl From<CtlError> for Failure {
    fn from(e: CtlError) -> Self {
        Failure::Ctl(e)
    }
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
    println!("{s}");
    Ok(())
}

fn stats(socket: &Path, json: bool, reset: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    if reset {
        c.call_value(Request::ResetCounters)?;
        println!("counters reset");
        return Ok(());
    }
    if json {
        let v = c.call_value(Request::Stats)?;
        return json_out(&v);
    }
    let s: StatsSnapshot = c.call(Request::Stats)?;
    print!("{}", text::stats(&s));
    Ok(())
}

fn conntrack(socket: &Path, action: CtAction, json: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    match action {
        CtAction::List => {
            let flows: Vec<FlowEntry> = c.call(Request::ConntrackList)?;
            if json {
                return json_out(&flows);
            }
            for f in &flows {
                println!("{}", text::conntrack_line(f));
            }
            eprintln!("routerctl: {} flow entries have been shown.", flows.len());
        }
        CtAction::Flush => {
            let v = c.call_value(Request::ConntrackFlush)?;
            if json {
                return json_out(&v);
            }
            println!(
                "connection tracking table has been emptied: {} entries removed",
                v["flushed"].as_u64().unwrap_or(0)
            );
        }
    }
    Ok(())
}

fn reload(socket: &Path, file: Option<&Path>) -> Result<(), Failure> {
    // routerd's working directory is not ours.
    let path = match file {
        Some(f) if f.is_relative() => Some(
            std::env::current_dir()
                .map(|d| d.join(f))
                .unwrap_or_else(|_| f.to_path_buf()),
        ),
        other => other.map(Path::to_path_buf),
    };
    let mut c = Client::connect(socket)?;
    match c.call::<ReloadSummary>(Request::Reload { path }) {
        Ok(r) => {
            println!("{}", text::reload_ok(&r));
            Ok(())
        }
        Err(CtlError::Server(e)) => Err(Failure::Plain(e)),
        Err(e) => Err(e.into()),
    }
}

fn trace(
    socket: &Path,
    count: u32,
    input: Option<String>,
    timeout: Option<u64>,
    json: bool,
    matcher: Vec<String>,
) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    c.call_value(Request::TraceStart(TraceStart {
        count,
        input,
        matcher,
    }))?;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut shown = 0u32;
    // Polls that found nothing after the router claimed every packet: a
    // claimed packet reaches the queue a moment after its claim.
    let mut idle_after_done = 0;
    while shown < count {
        let p: TracePoll = c.call(Request::TracePoll)?;
        for pkt in &p.packets {
            shown += 1;
            if json {
                println!("{}", pkt.json);
            } else {
                if shown > 1 {
                    println!();
                }
                println!("packet {shown}: {}", pkt.lines[0]);
                for l in &pkt.lines[1..] {
                    println!("{l}");
                }
            }
        }
        if p.packets.is_empty() && p.remaining == 0 {
            idle_after_done += 1;
            if idle_after_done > 20 {
                eprintln!("routerctl: trace ended: {shown} of {count} packets received");
                break;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            c.call_value(Request::TraceStop)?;
            eprintln!("routerctl: trace timed out: {shown} of {count} packets seen");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn route_cmd(socket: &Path, cmd: RouteCmd) -> Result<(), Failure> {
    use control::ctl::route::{self, RouteLookup, RouteRequest, RouteShow, RouteVerify};
    let mut c = Client::connect(socket)?;
    match cmd {
        RouteCmd::Show {
            prefix,
            summary,
            json,
        } => {
            let v = c.call_value(Request::Route(RouteRequest::Show { prefix, summary }))?;
            if json {
                return json_out(&v);
            }
            let s: RouteShow = serde_json::from_value(v)
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            print!("{}", route::show_text(&s));
        }
        RouteCmd::Lookup { address, json } => {
            let v = c.call_value(Request::Route(RouteRequest::Lookup { address }))?;
            let l: RouteLookup = serde_json::from_value(v.clone())
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            if json {
                json_out(&v)?;
            } else {
                match &l.route {
                    Some(r) => println!("{}", route::route_line(r)),
                    None => println!("{}: no route", l.address),
                }
            }
            if l.route.is_none() {
                std::process::exit(1);
            }
        }
        RouteCmd::Verify { json } => {
            let v = c.call_value(Request::Route(RouteRequest::Verify))?;
            let r: RouteVerify = serde_json::from_value(v.clone())
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            if json {
                json_out(&v)?;
            } else {
                print!("{}", route::verify_text(&r));
            }
            if !r.clean {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn export(format: ExportFormat, config: &Path) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    match format {
        ExportFormat::Nft => {
            let rs = control::nft::ruleset(&cfg.tables_spec());
            print!(
                "{}",
                control::nft::ruleset_text(&rs, &config.display().to_string())
            );
        }
    }
    Ok(())
}

fn explain(config: &std::path::Path, json: bool, packets: &[String]) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let specs = packets
        .iter()
        .map(|p| PacketSpec::parse(p).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ex = Explainer::new(cfg.tables_spec());
    for (n, spec) in specs.iter().enumerate() {
        let e = ex.explain(spec).map_err(|e| e.to_string())?;
        if json {
            println!("{}", e.json);
        } else {
            if n > 0 {
                println!();
            }
            println!("packet {}: {}", n + 1, e.lines[0]);
            for l in &e.lines[1..] {
                println!("{l}");
            }
        }
    }
    if !json {
        println!("\nconnection table: {} entries", ex.conntrack_entries());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.as_path();
    let r = match cli.cmd {
        Cmd::Explain {
            config,
            json,
            packets,
        } => explain(&config, json, &packets).map_err(Failure::Plain),
        Cmd::Export { format, config } => export(format, &config).map_err(Failure::Plain),
        Cmd::Stats { json, reset } => stats(socket, json, reset),
        Cmd::Conntrack { action, json } => conntrack(socket, action, json),
        Cmd::Reload { file } => reload(socket, file.as_deref()),
        Cmd::Trace {
            count,
            input,
            timeout,
            json,
            matcher,
        } => trace(socket, count, input, timeout, json, matcher),
        Cmd::Route { cmd } => route_cmd(socket, cmd),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Plain(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(Failure::Ctl(e)) => {
            eprintln!("routerctl: {e}");
            ExitCode::FAILURE
        }
    }
}
