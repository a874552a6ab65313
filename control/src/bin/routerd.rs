//! routerd: the router daemon. `--check FILE` validates a config and prints
//! a summary; `--config FILE` runs the router until SIGINT or SIGTERM
//! (SIGHUP reloads FILE; `routerctl` talks to it on the control socket).

use clap::Parser;
use control::config::Config;
use control::run::{self, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// afxdp-router daemon.
#[derive(Parser, Debug)]
#[command(name = "routerd", version, about)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["check", "config"])))]
struct Args {
    /// Validate FILE, print a summary and exit (0: valid, 1: invalid).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Run the router with the configuration in FILE (needs root).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --config: write the final counters as JSON to FILE at exit.
    #[arg(long, value_name = "FILE", requires = "config")]
    stats_json: Option<PathBuf>,
    /// With --config: serve the control socket at PATH instead of the
    /// config's control.socket.
    #[arg(long, value_name = "PATH", requires = "config")]
    socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = args.check {
        return match Config::load(&path) {
            Ok(cfg) => {
                print!("{}", cfg.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    let Some(config) = args.config else {
        return ExitCode::from(2);
    };
    run::main_run_on(
        &RunOptions {
            config,
            stats_json: args.stats_json,
        },
        args.socket.as_deref(),
    )
}
