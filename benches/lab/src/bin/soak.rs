//! soak: builds the lab (client - router - server namespaces), runs routerd
//! in it and a bounded mixed load through it for ten minutes (by default),
//! sampling routerd's resident memory; then stops it and checks that memory
//! stayed flat after warm-up, no UMEM frame leaked and the counters add up.
//! See `benches/lab/src/soak.rs` for the load and the exact checks.
//!
//! Run as root: `cargo run --release -p lab --bin soak -- --minutes 10`.
//! Exit status 0 when every check holds, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use lab::soak::{self, SoakOptions};
use lab::{LabError, RouterdProc, Topology};

/// Soak routerd in a namespace lab.
#[derive(Parser, Debug)]
#[command(name = "soak", about)]
struct Args {
    /// Minutes of load.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seconds of warm-up before the memory baseline.
    #[arg(long, default_value_t = 60.0)]
    warmup: f64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 5.0)]
    sample: f64,
    /// Allowed growth of resident memory after warm-up, KiB.
    #[arg(long, default_value_t = 1024)]
    rss_slack_kib: u64,
    /// New short transit UDP flows per second.
    #[arg(long, default_value_t = 200)]
    churn: u32,
    /// New tracked TCP flows (SYNs) to the router per second.
    #[arg(long, default_value_t = 100)]
    syn: u32,
    /// Connection-table size of the default config.
    #[arg(long, default_value_t = 262_144)]
    max_entries: u32,
    /// Router config (devices r0 and r1); default: the transit router with
    /// SYN_SENT entries expiring after 5 s.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// routerd binary to run (default: routerd's code built into this one).
    #[arg(long, value_name = "FILE")]
    routerd: Option<PathBuf>,
    #[command(flatten)]
    builtin: lab::BuiltinRouterd,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = match lab::tool_start("soak", &args.builtin, args.config.clone()) {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    match soak_main(&args, &stop) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(1)
        }
    }
}

fn soak_main(args: &Args, stop: &AtomicBool) -> Result<bool, LabError> {
    lab::preflight()?;
    let opts = SoakOptions {
        secs: (args.minutes * 60.0).max(1.0),
        warmup_secs: args.warmup,
        sample_secs: args.sample,
        rss_slack_kib: args.rss_slack_kib,
        churn_per_sec: args.churn,
        syn_per_sec: args.syn,
    };
    let made_config = args.config.is_none();
    let config = match &args.config {
        Some(c) => c.clone(),
        None => soak::soak_config("bin", args.max_entries)?,
    };
    let me = std::env::current_exe().map_err(|err| LabError::Io {
        what: "cannot find this program".into(),
        err,
    })?;
    let (program, pre): (PathBuf, Vec<&str>) = match &args.routerd {
        Some(p) => (p.clone(), vec![]),
        None => (me, vec!["--as-routerd"]),
    };
    println!("== building the lab: client - router - server namespaces");
    let t = Topology::build("afxs")?;
    println!(
        "== routerd {} {} --config {}",
        program.display(),
        pre.join(" "),
        config.display()
    );
    let mut r = RouterdProc::spawn(&program, &pre, &t.rtr, &config)?;
    r.wait_ready(Duration::from_secs(30))?;
    println!(
        "== load for {:.0} s (warm-up {:.0} s, memory sampled every {:.0} s): TCP, UDP, \
         {} new transit flows/s, {} new tracked flows/s",
        opts.secs, opts.warmup_secs, opts.sample_secs, opts.churn_per_sec, opts.syn_per_sec
    );
    let report = soak::soak(&t, &mut r, &opts, stop);
    if made_config {
        let _ = std::fs::remove_file(&config);
    }
    let report = report?;
    print!("{}", report.render());
    Ok(report.problems().is_empty())
}
