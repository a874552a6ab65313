//! routerd: the router daemon. `--check FILE` validates a config and prints
//! a summary; `--config FILE` runs the router until SIGINT or SIGTERM
//! (SIGHUP reloads FILE; `routerctl` talks to it on the control socket).

use clap::Parser;
use control::cli::RouterdArgs;
use control::config::Config;
use control::run::{self, RunOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = RouterdArgs::parse();
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
