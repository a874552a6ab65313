//! lab: builds client - router - server network namespaces, runs routerd in
//! the router namespace, sends real traffic through it (ping, a verified TCP
//! transfer, UDP; over IPv6 as well when the config gives the router IPv6
//! addresses), prints what the router counted and removes everything.
//!
//! `lab --measure` instead compares packets per second forwarded by routerd
//! and by Linux kernel forwarding on the same namespaces with the same
//! traffic source, interleaved and repeated, and prints the medians.
//!
//! Run as root: `cargo run --release -p lab`. A fresh machine needs only
//! Rust and iproute2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use control::config::Config;
use lab::{FloodRun, LabError, RouterdProc, Topology, SERVER_IP, SERVER_IP6};

/// Namespace lab for afxdp-router.
#[derive(Parser, Debug)]
#[command(name = "lab", about)]
struct Args {
    /// Router config (devices r0 and r1); default configs/transit-router.yaml,
    /// with --measure configs/lab-measure.yaml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Measure pps through routerd and through Linux forwarding instead.
    #[arg(long)]
    measure: bool,
    /// Measurement rounds (each runs both systems once).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    rounds: u32,
    /// Seconds of sending per measurement run (at most 5).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// routerd binary to run (default: the one next to this program if it
    /// is at least as new, else this program's built-in copy).
    #[arg(long, value_name = "FILE")]
    routerd: Option<PathBuf>,
    #[command(flatten)]
    builtin: lab::BuiltinRouterd,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = match lab::tool_start("lab", &args.builtin, args.config.clone()) {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    match lab_main(&args, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(stop: &AtomicBool) -> Result<(), LabError> {
    if stop.load(Ordering::Relaxed) {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}

/// The config file: as given, else `configs/transit-router.yaml` (with
/// `--measure`: `configs/lab-measure.yaml`, the same router with a larger
/// UMEM) from the current directory or the source tree.
fn config_path(args: &Args) -> PathBuf {
    if let Some(p) = &args.config {
        return p.clone();
    }
    let name = if args.measure {
        "lab-measure.yaml"
    } else {
        "transit-router.yaml"
    };
    let here = Path::new("configs").join(name);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

/// The routerd to run: (program, leading arguments, description).
fn routerd_program(args: &Args) -> Result<(PathBuf, Vec<&'static str>, String), LabError> {
    let me = std::env::current_exe().map_err(|err| LabError::Io {
        what: "cannot find this program".into(),
        err,
    })?;
    if let Some(p) = &args.routerd {
        return Ok((p.clone(), vec![], p.display().to_string()));
    }
    let sibling = me.with_file_name("routerd");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(r), Some(l)) = (mtime(&sibling), mtime(&me)) {
        if r >= l {
            return Ok((sibling.clone(), vec![], sibling.display().to_string()));
        }
    }
    Ok((
        me.clone(),
        vec!["--as-routerd"],
        format!(
            "{} --as-routerd (routerd's code, built into the lab)",
            me.display()
        ),
    ))
}

fn lab_main(args: &Args, stop: &AtomicBool) -> Result<(), LabError> {
    lab::preflight()?;
    let config = config_path(args);
    let cfg = Config::load(&config).map_err(|e| LabError::Routerd(e.to_string()))?;
    let (program, pre, desc) = routerd_program(args)?;
    println!("== building the lab: client - router - server namespaces");
    let t = Topology::build("afxl")?;
    println!(
        "   {} (cli0 198.18.0.2/24) -- r0 [{}] r1 -- (srv0 198.19.0.2/24) {}",
        t.cli, t.rtr, t.srv
    );
    println!(
        "   kernel forwarding in {}: net.ipv4.ip_forward = {}",
        t.rtr,
        t.lab.sysctl(&t.rtr, "net.ipv4.ip_forward")?
    );
    let ipv6 = !args.measure && ipv6_lab(&cfg, &config)?;
    if ipv6 {
        t.add_ipv6()?;
        println!(
            "   IPv6: (cli0 {}/64) -- r0 {} | r1 {} -- (srv0 {}/64)",
            lab::CLIENT_IP6,
            lab::ROUTER_WAN_IP6,
            lab::ROUTER_LAN_IP6,
            SERVER_IP6
        );
    }
    check(stop)?;
    let res = if args.measure {
        measure(args, &t, &cfg, &config, &program, &pre, &desc, stop)
    } else {
        demo(&t, &config, &program, &pre, &desc, ipv6, stop)
    };
    println!("== removing the lab: {}", t.lab.namespaces().join(", "));
    drop(t);
    res
}

/// Whether the config gives the router IPv6 addresses, and then that they
/// are the lab's (wan 2001:db8::1/64, lan 2001:db8:1::1/64).
fn ipv6_lab(cfg: &Config, config: &Path) -> Result<bool, LabError> {
    let ifs = &cfg.spec.interfaces;
    if ifs.iter().all(|i| i.addresses6.is_empty()) {
        return Ok(false);
    }
    let want = [lab::ROUTER_WAN_IP6, lab::ROUTER_LAN_IP6];
    for (i, want) in want.iter().enumerate() {
        let want: std::net::Ipv6Addr = want.parse().expect("the lab's address");
        let has = ifs.get(i).is_some_and(|ifc| {
            ifc.addresses6
                .iter()
                .any(|a| a.addr == u128::from(want) && a.net.len() == 64)
        });
        if !has {
            return Err(LabError::Routerd(format!(
                "{}: interfaces[{i}] has IPv6 addresses but not {want}/64, the lab's \
                 address for it (wan 2001:db8::1/64, lan 2001:db8:1::1/64)",
                config.display()
            )));
        }
    }
    Ok(true)
}

fn start_routerd(
    t: &Topology,
    config: &Path,
    program: &Path,
    pre: &[&str],
) -> Result<RouterdProc, LabError> {
    let mut r = RouterdProc::spawn(program, pre, &t.rtr, config)?;
    r.wait_ready(Duration::from_secs(20))?;
    Ok(r)
}

fn demo(
    t: &Topology,
    config: &Path,
    program: &Path,
    pre: &[&str],
    desc: &str,
    ipv6: bool,
    stop: &AtomicBool,
) -> Result<(), LabError> {
    println!(
        "== starting routerd in {}: {desc} --config {}",
        t.rtr,
        config.display()
    );
    let mut r = start_routerd(t, config, program, pre)?;
    println!("   routerd (pid {}) is forwarding", r.pid());
    let mut failures = Vec::new();

    check(stop)?;
    println!("== ping -c 5 {SERVER_IP} from the client");
    let p = t.ping(SERVER_IP, 5)?;
    println!(
        "   {}/{} replies, ttl {:?} (the server sends 64: one router hop)",
        p.received, p.sent, p.ttls
    );
    if p.received != p.sent || p.ttls.iter().any(|&ttl| ttl != 63) {
        failures.push(format!("ping: {}", p.text.trim()));
    }

    check(stop)?;
    let bytes = 16 << 20;
    println!(
        "== TCP: {} MiB client -> server, verified end to end",
        bytes >> 20
    );
    match lab::tcp_transfer(t, bytes, 5001, Duration::from_secs(60)) {
        Ok(tcp) => {
            println!(
                "   {} bytes sent, {} received, hash {} ({:.1} MB/s)",
                tcp.sent,
                tcp.received,
                if tcp.verified { "verified" } else { "MISMATCH" },
                tcp.received as f64 / tcp.secs / 1e6
            );
            if !tcp.verified {
                failures.push("TCP: the bytes differ".to_string());
            }
        }
        Err(e) => failures.push(format!("TCP: {e}")),
    }

    check(stop)?;
    println!("== UDP: 1000 datagrams of 512 bytes client -> server");
    match lab::udp_exchange(t, 1000, 512, 5002) {
        Ok(u) => {
            println!(
                "   {} sent, {} received intact, {} corrupt",
                u.sent, u.received, u.corrupt
            );
            if u.corrupt > 0 || u.received < u.sent * 95 / 100 {
                failures.push(format!("UDP: {u:?}"));
            }
        }
        Err(e) => failures.push(format!("UDP: {e}")),
    }

    if ipv6 {
        demo6(t, &mut failures, stop)?;
    } else {
        println!("== IPv6: left out (the config gives the router no IPv6 addresses)");
    }

    println!("== stopping routerd (SIGTERM)");
    let st = r.terminate(Duration::from_secs(10))?;
    println!("   routerd exited: {st}");
    // The log up to the counters, which follow from the JSON file.
    for line in r
        .log()
        .iter()
        .take_while(|l| !l.contains("what the router counted"))
    {
        println!("   | {line}");
    }
    let stats = r.final_stats()?;
    println!("== what the router counted");
    print!("{}", stats.render());
    if !st.success() {
        failures.push(format!("routerd exit status {st}"));
    }
    if failures.is_empty() {
        println!("== all traffic went through routerd as sent");
        Ok(())
    } else {
        Err(LabError::Traffic(failures.join("; ")))
    }
}

/// The IPv6 half of the demo: ping6, a verified TCP transfer and UDP,
/// client -> server across the router.
fn demo6(t: &Topology, failures: &mut Vec<String>, stop: &AtomicBool) -> Result<(), LabError> {
    check(stop)?;
    println!("== ping -6 -c 5 {SERVER_IP6} from the client");
    match t.ping6(SERVER_IP6, 5) {
        Ok(p) => {
            println!(
                "   {}/{} replies, hop limit {:?} (the server sends 64: one router hop)",
                p.received, p.sent, p.hop_limits
            );
            if p.received != p.sent || p.hop_limits.iter().any(|&h| h != 63) {
                failures.push(format!("ping6: {}", p.text.trim()));
            }
        }
        Err(e) => failures.push(format!("ping6: {e}")),
    }

    check(stop)?;
    let bytes = 16 << 20;
    println!(
        "== TCP over IPv6: {} MiB client -> [{SERVER_IP6}]:5003, verified end to end",
        bytes >> 20
    );
    let addr = std::net::SocketAddr::new(SERVER_IP6.parse().expect("address"), 5003);
    match lab::tcp_transfer_to(t, addr, bytes, Duration::from_secs(60)) {
        Ok(tcp) => {
            println!(
                "   {} bytes sent, {} received, hash {} ({:.1} MB/s)",
                tcp.sent,
                tcp.received,
                if tcp.verified { "verified" } else { "MISMATCH" },
                tcp.received as f64 / tcp.secs / 1e6
            );
            if !tcp.verified {
                failures.push("TCP over IPv6: the bytes differ".to_string());
            }
        }
        Err(e) => failures.push(format!("TCP over IPv6: {e}")),
    }

    check(stop)?;
    println!("== UDP over IPv6: 1000 datagrams of 512 bytes client -> server");
    let addr = std::net::SocketAddr::new(SERVER_IP6.parse().expect("address"), 5004);
    match lab::udp_exchange_to(t, addr, 1000, 512) {
        Ok(u) => {
            println!(
                "   {} sent, {} received intact, {} corrupt",
                u.sent, u.received, u.corrupt
            );
            if u.corrupt > 0 || u.received < u.sent * 95 / 100 {
                failures.push(format!("UDP over IPv6: {u:?}"));
            }
        }
        Err(e) => failures.push(format!("UDP over IPv6: {e}")),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &Args,
    t: &Topology,
    cfg: &Config,
    config: &Path,
    program: &Path,
    pre: &[&str],
    desc: &str,
    stop: &AtomicBool,
) -> Result<(), LabError> {
    let secs = args.seconds.clamp(0.5, 5.0);
    let sender_core = Some(0);
    println!(
        "== measuring: UDP flood of 64-byte frames to 203.0.113.1 (routed to the server, \
         dropped by its kernel), {secs} s per run, {} rounds, interleaved",
        args.rounds
    );
    println!(
        "   sender: one thread pinned to core 0 in {}; routerd: {desc}, workers on cores {:?}",
        t.cli, cfg.dataplane.workers
    );
    println!(
        "   where the work runs: Linux forwarding runs in the sender's softirq (core 0); \
         routerd's XDP redirect and copy into the AF_XDP ring also run on core 0, its worker \
         (pipeline, TX, the server's receive) on its own core"
    );
    let mut runs: Vec<FloodRun> = Vec::new();
    for round in 0..args.rounds {
        let order: [&str; 2] = if round % 2 == 0 {
            ["routerd", "linux"]
        } else {
            ["linux", "routerd"]
        };
        for system in order {
            check(stop)?;
            let mut detail = None;
            let run = if system == "routerd" {
                let mut r = start_routerd(t, config, program, pre)?;
                let run = lab::flood_once(t, "routerd", secs, sender_core);
                r.terminate(Duration::from_secs(10))?;
                let run = run?;
                if let Ok(st) = r.final_stats() {
                    let wan = &st.interfaces[0];
                    let busy = st.workers.iter().map(|w| w.busy_share).fold(0.0, f64::max);
                    detail = Some(format!(
                        "            routerd: rx {} forwarded {}; kernel drops before routerd: \
                         fill ring empty {}, rx ring full {}; tx_ring_full {}; worker busy {:.0}%",
                        wan.rx_packets,
                        st.forwarded,
                        wan.xdp_rx_dropped,
                        wan.xdp_rx_ring_full,
                        st.interfaces.iter().map(|i| i.tx_ring_full).sum::<u64>(),
                        busy * 100.0
                    ));
                }
                run
            } else {
                t.kernel_router_addresses()?;
                t.lab.set_sysctl(&t.rtr, "net.ipv4.ip_forward", "1")?;
                let run = lab::flood_once(t, "linux", secs, sender_core);
                t.lab.set_sysctl(&t.rtr, "net.ipv4.ip_forward", "0")?;
                run?
            };
            println!(
                "   round {} {:8}: sent {:>9} ({:>8.0} pps), server received {:>9} ({:>8.0} pps)",
                round + 1,
                run.system,
                run.sent,
                run.tx_pps(),
                run.received,
                run.rx_pps()
            );
            if let Some(d) = detail {
                println!("{d}");
            }
            runs.push(run);
        }
    }
    let med = |s: &str| {
        lab::median(
            runs.iter()
                .filter(|r| r.system == s)
                .map(FloodRun::rx_pps)
                .collect(),
        )
    };
    let (r, l) = (med("routerd"), med("linux"));
    println!(
        "== medians of {} runs each: forwarded to the server",
        args.rounds
    );
    println!("   routerd {r:>10.0} pps");
    println!("   linux   {l:>10.0} pps");
    if l > 0.0 {
        println!("   routerd / linux = {:.2}", r / l);
    }
    Ok(())
}
