//! `routerctl`: the router's control CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use control::config::Config;
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
    let _ = &cli.socket;
    let r = match &cli.cmd {
        Cmd::Explain {
            config,
            json,
            packets,
        } => explain(config, *json, packets),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
