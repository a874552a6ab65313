//! routerd: the router daemon. `--check FILE` validates a config and prints
//! a summary; `--config FILE` runs the router (not yet).

use clap::Parser;
use control::config::Config;
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
    /// Run the router with the configuration in FILE.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    if args.config.is_some() {
        eprintln!("routerd: running the router is not implemented yet");
        return ExitCode::from(2);
    }
    ExitCode::from(2)
}
