//! `linerate tcp`: bulk TCP through the lab's client - router - server
//! namespaces ([`lab::Topology`], the README's lab), routerd against Linux
//! forwarding in the same run, as a user measures a router with
//! `iperf3 -P N`: throughput and the client's retransmits
//! ([`lab::bulk`]), and for routerd what its wan port counted meanwhile
//! (the kernel's `fill_ring_empty` and `rx_dropped`, routerd's
//! `rx_fill_starved`) and, at exit, where its frames were.
//!
//! Each round runs every system once (the order alternates), and each
//! system runs every stream count; routerd is started once per round and
//! its counters are read over the control socket before and after each
//! run. Linux forwarding is the router namespace's kernel with the same
//! addresses, `ip_forward=1` and no netfilter rules.
//!
//! Where the work runs (veth, 2 CPUs here): the client's TCP stack and its
//! `sendto` run on whatever CPU the scheduler gives the client's threads;
//! with routerd, r0's XDP redirect and the copy into routerd's RX ring run
//! there too (the sender's NAPI). routerd's worker runs on its configured
//! core, and its TX `sendto` carries the server's whole receive (veth
//! delivers into the sender's backlog): with 2 CPUs the worker shares its
//! core with an endpoint whatever is pinned.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use control::ctl::api::StatsSnapshot;
use control::ctl::client::Client;
use control::ctl::proto::Request;
use lab::bulk::{tcp_bulk, BulkOptions, BulkResult};
use lab::{LabError, RouterdProc, Topology};
use serde::Serialize;

use super::compare::median;
use super::LinerateError;

/// The README's lab config; `linerate tcp` runs it unless given another.
pub const LAB_CONFIG: &str = include_str!("../../../configs/transit-router.yaml");

/// How to run.
#[derive(Clone, Debug)]
pub struct TcpOptions {
    /// routerd (program and leading arguments).
    pub routerd: PathBuf,
    /// Leading arguments (`--as-routerd` for a built-in copy).
    pub routerd_args: Vec<String>,
    /// routerd's config text (its devices must be `r0` and `r1`).
    pub config: String,
    /// Stream counts, each run per system and round.
    pub streams: Vec<u32>,
    /// Seconds per run.
    pub duration: Duration,
    /// Rounds.
    pub rounds: u32,
    /// Systems: routerd and/or Linux.
    pub systems: Vec<TcpSystem>,
    /// CPU of the client's threads (`None`: unpinned, as a user runs iperf3).
    pub client_cpu: Option<usize>,
    /// CPU of the server's threads.
    pub server_cpu: Option<usize>,
    /// Where the config, socket and JSON go.
    pub out_dir: PathBuf,
}

/// A router under TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TcpSystem {
    /// routerd with the config given (default: configs/transit-router.yaml).
    Routerd,
    /// Linux forwarding, no netfilter rules.
    Linux,
}

impl TcpSystem {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            TcpSystem::Routerd => "routerd",
            TcpSystem::Linux => "linux",
        }
    }
}

/// routerd's wan port during one run (deltas of the control socket's
/// counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WanCounters {
    /// Times the kernel found the fill ring empty (`XDP_STATISTICS`).
    pub fill_ring_empty: u64,
    /// Frames the kernel dropped before routerd saw them.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Refills that found fewer free frames than the fill ring wanted.
    pub rx_fill_starved: u64,
    /// Frames routerd received on wan.
    pub rx_packets: u64,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct TcpRun {
    /// The system.
    pub system: TcpSystem,
    /// Round, from 0.
    pub round: u32,
    /// What the endpoints measured.
    pub result: BulkResult,
    /// routerd's wan counters (routerd only).
    pub wan: Option<WanCounters>,
}

/// routerd's frame census at exit (one line per worker).
#[derive(Clone, Debug, Serialize)]
pub struct CensusLine {
    /// Round, from 0.
    pub round: u32,
    /// `total free fill rx held tx`.
    pub census: [u32; 6],
}

/// Everything a `linerate tcp` measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TcpReport {
    /// Every run.
    pub runs: Vec<TcpRun>,
    /// routerd's census at each exit.
    pub census: Vec<CensusLine>,
}

fn setup_err(e: LabError) -> LinerateError {
    LinerateError::Setup(e.to_string())
}

/// `config` with its control socket moved to `socket`.
pub fn with_socket(config: &str, socket: &Path) -> String {
    let s = socket.display().to_string();
    if config.contains("/run/afxdp-router/routerd.sock") {
        config.replace("/run/afxdp-router/routerd.sock", &s)
    } else if config.lines().any(|l| l.starts_with("control:")) {
        config.to_string()
    } else {
        format!("{config}\ncontrol:\n  socket: {s}\n")
    }
}

fn wan_now(socket: &Path) -> Result<WanCounters, LinerateError> {
    let mut c = Client::connect(socket)
        .map_err(|e| LinerateError::Setup(format!("routerd's control socket: {e}")))?;
    let s: StatsSnapshot = c
        .call(Request::Stats)
        .map_err(|e| LinerateError::Setup(format!("routerd stats: {e}")))?;
    let ring = s.afxdp.get("wan").cloned().unwrap_or_default();
    Ok(WanCounters {
        fill_ring_empty: ring.fill_ring_empty,
        rx_dropped: ring.rx_dropped,
        rx_ring_full: ring.rx_ring_full,
        rx_fill_starved: ring.rx_fill_starved,
        rx_packets: s.interfaces.get("wan").map_or(0, |i| i.rx_packets),
    })
}

impl WanCounters {
    fn since(self, b: WanCounters) -> WanCounters {
        WanCounters {
            fill_ring_empty: self.fill_ring_empty.saturating_sub(b.fill_ring_empty),
            rx_dropped: self.rx_dropped.saturating_sub(b.rx_dropped),
            rx_ring_full: self.rx_ring_full.saturating_sub(b.rx_ring_full),
            rx_fill_starved: self.rx_fill_starved.saturating_sub(b.rx_fill_starved),
            rx_packets: self.rx_packets.saturating_sub(b.rx_packets),
        }
    }
}

/// Builds the lab, runs every system, stream count and round, removes the
/// lab. `say` gets a line per run.
pub fn run_tcp(opts: &TcpOptions, mut say: impl FnMut(&str)) -> Result<TcpReport, LinerateError> {
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", opts.out_dir.display())))?;
    let out_dir = std::fs::canonicalize(&opts.out_dir)
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", opts.out_dir.display())))?;
    let socket = out_dir.join(format!("routerd-tcp-{}.sock", std::process::id()));
    let cfg = out_dir.join("routerd-tcp.yaml");
    std::fs::write(&cfg, with_socket(&opts.config, &socket))
        .map_err(|e| LinerateError::Setup(format!("{}: {e}", cfg.display())))?;
    let t = Topology::build("lrt").map_err(setup_err)?;
    say(&format!(
        "lab: {} (cli0 198.18.0.2) -> {} (r0 [router] r1) -> {} (srv0 198.19.0.2)",
        t.cli, t.rtr, t.srv
    ));
    let server: std::net::SocketAddr = format!("{}:5201", lab::SERVER_IP)
        .parse()
        .expect("valid address");
    let mut report = TcpReport::default();
    let pre: Vec<&str> = opts.routerd_args.iter().map(String::as_str).collect();
    for round in 0..opts.rounds {
        let n = opts.systems.len();
        for i in 0..n {
            let system = opts.systems[(i + round as usize) % n];
            let mut routerd = None;
            match system {
                TcpSystem::Routerd => {
                    t.lab
                        .set_sysctl(&t.rtr, "net.ipv4.ip_forward", "0")
                        .map_err(setup_err)?;
                    let mut r =
                        RouterdProc::spawn(&opts.routerd, &pre, &t.rtr, &cfg).map_err(setup_err)?;
                    r.wait_ready(Duration::from_secs(20)).map_err(setup_err)?;
                    routerd = Some(r);
                }
                TcpSystem::Linux => {
                    t.kernel_router_addresses().map_err(setup_err)?;
                    t.lab
                        .set_sysctl(&t.rtr, "net.ipv4.ip_forward", "1")
                        .map_err(setup_err)?;
                }
            }
            let mut res = Ok(());
            for &streams in &opts.streams {
                let before = routerd.as_ref().map(|_| wan_now(&socket)).transpose();
                let r = before.and_then(|before| {
                    let b = tcp_bulk(
                        &t.cli,
                        &t.srv,
                        &BulkOptions {
                            streams,
                            duration: opts.duration,
                            server,
                            client_cpu: opts.client_cpu,
                            server_cpu: opts.server_cpu,
                        },
                    )
                    .map_err(setup_err)?;
                    let wan = match before {
                        Some(b0) => Some(wan_now(&socket)?.since(b0)),
                        None => None,
                    };
                    Ok((b, wan))
                });
                match r {
                    Ok((result, wan)) => {
                        say(&run_line(system, round, &result, wan.as_ref()));
                        report.runs.push(TcpRun {
                            system,
                            round,
                            result,
                            wan,
                        });
                    }
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
                // Let TIME_WAIT and the queues settle between runs.
                std::thread::sleep(Duration::from_millis(300));
            }
            if let Some(mut r) = routerd {
                let st = r.terminate(Duration::from_secs(10)).map_err(setup_err)?;
                if let Ok(s) = r.final_stats() {
                    for w in &s.workers {
                        let c = w.census;
                        report.census.push(CensusLine {
                            round,
                            census: [c.total, c.free, c.fill, c.rx, c.held, c.tx],
                        });
                    }
                }
                if !st.success() {
                    return Err(LinerateError::Setup(format!(
                        "routerd exited with {st}: {}",
                        r.log().join(" | ")
                    )));
                }
            } else {
                t.lab
                    .set_sysctl(&t.rtr, "net.ipv4.ip_forward", "0")
                    .map_err(setup_err)?;
            }
            res?;
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(report)
}

fn run_line(system: TcpSystem, round: u32, r: &BulkResult, wan: Option<&WanCounters>) -> String {
    let mut s = format!(
        "round {} {:8} {} stream(s): {:.3} Gbit/s, {} retransmits of {} segments",
        round + 1,
        system.name(),
        r.streams,
        r.gbit_s,
        r.retransmits,
        r.segments_out
    );
    if let Some(w) = wan {
        let _ = write!(
            s,
            "; wan: rx {} fill_ring_empty {} rx_dropped {} rx_ring_full {} rx_fill_starved {}",
            w.rx_packets, w.fill_ring_empty, w.rx_dropped, w.rx_ring_full, w.rx_fill_starved
        );
    }
    s
}

/// Medians per system and stream count.
pub fn tcp_table(report: &TcpReport, systems: &[TcpSystem], streams: &[u32]) -> String {
    let mut out = String::from(
        "| system | streams | Gbit/s (median) | runs (Gbit/s) | retransmits (median) | runs | \
         wan fill_ring_empty | wan rx_dropped | rx_fill_starved |\n\
         |---|---:|---:|---|---:|---|---:|---:|---:|\n",
    );
    for &n in streams {
        for &sys in systems {
            let mine: Vec<&TcpRun> = report
                .runs
                .iter()
                .filter(|r| r.system == sys && r.result.streams == n)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let g: Vec<f64> = mine.iter().map(|r| r.result.gbit_s).collect();
            let rt: Vec<f64> = mine.iter().map(|r| r.result.retransmits as f64).collect();
            let wan = |f: fn(&WanCounters) -> u64| -> String {
                let v: Vec<String> = mine
                    .iter()
                    .filter_map(|r| r.wan.as_ref().map(f))
                    .map(|x| x.to_string())
                    .collect();
                v.join(" ")
            };
            let _ = writeln!(
                out,
                "| {} | {n} | {:.3} | {} | {:.0} | {} | {} | {} | {} |",
                sys.name(),
                median(&g).unwrap_or(0.0),
                g.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                median(&rt).unwrap_or(0.0),
                rt.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                wan(|w| w.fill_ring_empty),
                wan(|w| w.rx_dropped),
                wan(|w| w.rx_fill_starved),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_config_gets_its_own_socket() {
        let c = with_socket(LAB_CONFIG, Path::new("/tmp/x/r.sock"));
        assert!(c.contains("socket: /tmp/x/r.sock") && !c.contains("/run/afxdp-router"));
        control::config::Config::from_str(&c, Path::new("tcp.yaml")).expect("valid config");
        let bare = with_socket("dataplane:\n  workers: [1]\n", Path::new("/s"));
        assert!(bare.ends_with("control:\n  socket: /s\n"), "{bare}");
    }

    #[test]
    fn table_takes_medians_per_system_and_streams() {
        let run = |system, streams, gbit_s, retransmits, wan| TcpRun {
            system,
            round: 0,
            result: BulkResult {
                streams,
                gbit_s,
                retransmits,
                ..BulkResult::default()
            },
            wan,
        };
        let w = WanCounters {
            fill_ring_empty: 7,
            ..WanCounters::default()
        };
        let report = TcpReport {
            runs: vec![
                run(TcpSystem::Routerd, 4, 1.0, 10, Some(w)),
                run(TcpSystem::Routerd, 4, 3.0, 30, Some(w)),
                run(TcpSystem::Routerd, 4, 2.0, 20, Some(w)),
                run(TcpSystem::Linux, 4, 2.5, 5, None),
            ],
            census: vec![],
        };
        let t = tcp_table(&report, &[TcpSystem::Routerd, TcpSystem::Linux], &[1, 4]);
        assert!(
            t.contains("| routerd | 4 | 2.000 | 1.00 3.00 2.00 | 20 | 10 30 20 | 7 7 7 |"),
            "{t}"
        );
        assert!(
            t.contains("| linux | 4 | 2.500 | 2.50 | 5 | 5 |  |  |  |"),
            "{t}"
        );
        assert!(!t.contains("| 1 |"), "no runs with one stream: {t}");
    }
}
