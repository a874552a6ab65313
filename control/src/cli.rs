//! The command lines of `routerd` and `routerctl` (clap definitions).
//!
//! The binaries parse with these, and the build (`control/build.rs`)
//! includes this file to generate shell completions and man pages from the
//! same definitions. So this file uses only `clap` and `std`: nothing of
//! this crate.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// afxdp-router daemon.
#[derive(Parser, Debug)]
#[command(name = "routerd", version, about)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["check", "config"])))]
pub struct RouterdArgs {
    /// Validate FILE, print a summary and exit (0: valid, 1: invalid).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Run the router with the configuration in FILE (needs root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With --config: write the final counters as JSON to FILE at exit.
    #[arg(long, value_name = "FILE", requires = "config")]
    pub stats_json: Option<PathBuf>,
    /// With --config: serve the control socket at PATH instead of the
    /// config's control.socket.
    #[arg(long, value_name = "PATH", requires = "config")]
    pub socket: Option<PathBuf>,
}

/// `routerctl`'s command line.
#[derive(Parser)]
#[command(
    name = "routerctl",
    version,
    about = "Control and inspect afxdp-router"
)]
pub struct Cli {
    /// Control socket of the running routerd.
    #[arg(long, global = true, default_value = "/run/afxdp-router/routerd.sock")]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// With --against OLD, run them through both configs (each with its own
    /// connection table) and print both answers per packet, marking with
    /// CHANGED those whose verdict, chain, rule, output or next hop differ.
    ///
    /// PACKET examples:
    ///   "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S"
    ///   "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA"
    ///   "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1"
    ///   "in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request"
    ///   "in=wan tcp [2001:db8::2]:40000 > [2001:db8::1]:22 flags=S"
    ///   "in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request hl=1"
    #[command(verbatim_doc_comment)]
    Explain {
        /// The YAML config to build the pipeline from (with --against: the
        /// new config).
        #[arg(long)]
        config: PathBuf,
        /// Compare with this config (the old one): both answers per packet.
        #[arg(long, value_name = "OLD")]
        against: Option<PathBuf>,
        /// With --against: exit 1 if any packet's answer changed, 0 if none
        /// did (2 for an error), as `git diff --exit-code`.
        #[arg(long, requires = "against")]
        exit_code: bool,
        /// One JSON object per packet, one per line (with --against:
        /// `old`, `new`, `changed` and the changed `fields`).
        #[arg(long)]
        json: bool,
        /// Packet descriptions, run in order.
        #[arg(required = true)]
        packets: Vec<String>,
    },
    /// Counters of the running router: interfaces, workers, drops by
    /// reason, rules, connection tracking, AF_XDP rings.
    Stats {
        #[command(subcommand)]
        what: Option<StatsWhat>,
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
    /// The neighbour tables, IPv4 (ARP) and IPv6 (NDP), like `ip neigh`:
    /// address, interface, MAC and state (reachable, stale, probe, failed,
    /// permanent for those from the config).
    Neighbours {
        /// JSON: a list of neighbours (with the seconds until a learned
        /// one expires).
        #[arg(long)]
        json: bool,
    },
    /// Load a config into the running router without stopping traffic. A
    /// config that does not validate is refused and the old one keeps
    /// running. routerd opens FILE only if the caller may read it.
    ///
    /// With --dry-run, say what the reload would change (rules added,
    /// removed or moved, routes, neighbours, interfaces, settings, and
    /// which need a restart) and change nothing.
    Reload {
        /// The config to load (default: the file routerd runs).
        file: Option<PathBuf>,
        /// Compare FILE with the running config; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: the changes as one JSON object.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Show every stage's decision for the next matching packets of the
    /// live router, in `explain`'s words.
    ///
    /// MATCH words (all must hold), as in tcpdump:
    ///   ip | ip6 | tcp | udp | icmp | icmpv6 | proto N
    ///   src|dst|host ADDRESS[/LEN]   (IPv4 or IPv6)
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
    /// Shell completions, man pages and the config's JSON Schema,
    /// generated from the same definitions the programs use (see the
    /// README for where they go).
    Generate {
        #[command(subcommand)]
        what: GenerateWhat,
    },
    /// Capture the live router's frames into a pcapng file that tcpdump and
    /// Wireshark read: as received (--rx), as sent (--tx) and dropped, with
    /// the drop reason in each packet's comment (--drops); all three when
    /// none is given. Stops by itself at --count, --bytes or --duration, or
    /// at Ctrl-C, with a complete file. One capture runs at a time.
    ///
    /// e.g. routerctl capture --drops --match '{protocol: tcp, destination_port: 22}' -w ssh.pcapng
    ///      routerctl capture --interface wan -w - | tcpdump -n -r -
    #[command(verbatim_doc_comment)]
    Capture(CaptureArgs),
    /// The route table of the running router: show, lookup, verify
    /// against the kernel's table.
    Route {
        #[command(subcommand)]
        cmd: RouteCmd,
    },
}

/// `routerctl route ...`.
#[derive(Subcommand)]
pub enum RouteCmd {
    /// The dataplane's routes with their source (connected, static, kernel
    /// and its protocol), those equal to or inside PREFIX; then the kernel
    /// feed's counters and the kernel routes skipped, with why.
    Show {
        /// A prefix (`203.0.113.0/24`, `2001:db8::/32`, `default`); all
        /// routes, IPv4 then IPv6, without.
        prefix: Option<String>,
        /// Only the counts by source.
        #[arg(long)]
        summary: bool,
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The route the dataplane uses for ADDRESS (longest prefix match);
    /// exit status 1 if there is none.
    Lookup {
        /// An IPv4 or IPv6 address.
        address: String,
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Compare the kernel's table (the kernel_routes protocols) with the
    /// dataplane's kernel routes; exit status 1 if they differ.
    Verify {
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The most bytes `routerctl capture` keeps of a frame (`--snaplen`).
pub const MAX_SNAPLEN: u32 = 262_144;

/// `routerctl capture`'s arguments.
#[derive(Args)]
pub struct CaptureArgs {
    /// The interface (config name or device), `host` (the router's own
    /// traffic), or `any`.
    #[arg(long, short = 'i', value_name = "NAME|any", default_value = "any")]
    pub interface: String,
    /// Frames as received.
    #[arg(long)]
    pub rx: bool,
    /// Frames as sent (after the rewrite).
    #[arg(long)]
    pub tx: bool,
    /// Dropped frames, with the reason and stage in the comment.
    #[arg(long)]
    pub drops: bool,
    /// Only frames matching these rule match keys, a YAML/JSON flow mapping:
    /// in, out, source, destination, protocol, source_port,
    /// destination_port, icmp_type, icmp_code (as in the config's rules).
    #[arg(long = "match", value_name = "MATCH")]
    pub matcher: Option<String>,
    /// Stop after this many packets.
    #[arg(long, short = 'c', default_value_t = 1000)]
    pub count: u32,
    /// Stop after this many captured bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub bytes: u64,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub duration: u64,
    /// Bytes kept of each frame.
    #[arg(long, short = 's', default_value_t = MAX_SNAPLEN)]
    pub snaplen: u32,
    /// The pcapng file to write (mode 0600), `-` for standard output.
    #[arg(short = 'w', value_name = "FILE")]
    pub write: PathBuf,
}

/// What `routerctl stats` shows besides the counters.
#[derive(Subcommand)]
pub enum StatsWhat {
    /// Where each worker's cycles go, as `vppctl show runtime`: loops, busy
    /// loops, packets, packets per busy loop, and cycles per packet by
    /// phase (rx, pipeline, tx, host, handoff, housekeeping, idle), from
    /// the TSC.
    Runtime {
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
        /// Set the runtime accounting (only it) to zero.
        #[arg(long, alias = "reset", conflicts_with = "json")]
        clear: bool,
    },
}

/// What `routerctl generate` writes.
#[derive(Subcommand)]
pub enum GenerateWhat {
    /// Print the completion script of a program for a shell.
    Completions {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
        /// The program (routerctl or routerd).
        #[arg(long, value_enum, default_value_t = Program::Routerctl)]
        program: Program,
    },
    /// Write the man pages of routerd and routerctl (one per subcommand)
    /// into DIR (e.g. /usr/local/share/man/man1).
    Man {
        /// The directory to write `*.1` into (created if missing).
        dir: PathBuf,
    },
    /// Print the JSON Schema of the YAML config (for editors:
    /// `# yaml-language-server: $schema=PATH`).
    Schema,
}

/// A shell `routerctl generate completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    /// The shell's name.
    pub const fn name(self) -> &'static str {
        match self {
            CompletionShell::Bash => "bash",
            CompletionShell::Zsh => "zsh",
            CompletionShell::Fish => "fish",
        }
    }
}

/// One of the two programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Program {
    Routerctl,
    Routerd,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Nft,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CtAction {
    List,
    Flush,
}
