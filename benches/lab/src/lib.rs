//! The test lab of afxdp-router: network namespaces joined by veth pairs,
//! routerd run inside one, and traffic sent through it from Rust sockets.
//! Shared by the `lab` command, the `soak`, `linerate compare` and the
//! end-to-end tests. A tool, not the router: routerd's libraries
//! (`control`, `dataplane`) keep no namespace code.
//!
//! What a fresh machine needs: Rust and iproute2's `ip`, as root. Nothing
//! else is run: ICMP echo comes from a raw socket ([`ping`]), TX checksum
//! offload goes off through `SIOCETHTOOL` ([`dataplane::xsk::ethtool`]),
//! sysctls are written under `/proc/sys` by a thread inside the namespace
//! ([`Lab::set_sysctl`]), signals go through `kill(2)`.
//!
//! - [`netns`]: entering a namespace from a thread.
//! - [`ns`]: [`Lab`], the namespaces of one run (removed on drop).
//! - [`topology`]: the client - router - server [`Topology`].
//! - [`routerd`]: routerd as a child process in a namespace.
//! - [`traffic`]: verified TCP and UDP transfers, floods.
//! - [`bulk`]: bulk TCP streams with throughput and retransmits.
//! - [`ping`]: ICMP echo from a raw socket.
//! - [`ping6`]: ICMPv6 echo from a raw socket, with the replies' hop limits.
//! - [`soak`]: the bounded mixed load and its checks.
//! - [`nft`]: nf_tables rulesets and conntrack over netlink (no `nft`).

pub mod bulk;
pub mod netns;
pub mod nft;
pub mod ns;
pub mod ping;
pub mod ping6;
pub mod routerd;
pub mod soak;
pub mod tempdir;
pub mod topology;
pub mod traffic;

pub use netns::in_ns;
pub use ns::Lab;
pub use ping::{ping, ping_in, PingOptions, PingResult};
pub use ping6::{ping6, ping6_in, ping6_sized_in, Ping6Error, Ping6Result};
pub use routerd::{send_signal, tool_start, BuiltinRouterd, RouterdProc};
pub use tempdir::TempDir;
pub use topology::{
    Topology, CLIENT_IP, CLIENT_IP6, ROUTER_LAN_IP6, ROUTER_WAN_IP6, SERVER_IP, SERVER_IP6,
    SERVER_MAC, SINK_IP,
};
pub use traffic::{
    flood_once, median, tcp_transfer, tcp_transfer_to, udp_exchange, udp_exchange_to, udp_flood,
    udp_send, FloodRun, Fnv, Pattern, TcpResult, UdpResult,
};

/// Why the lab failed. One line each.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error(
        "the lab needs root (network namespaces, XDP): run it as root, e.g. \
         sudo -E cargo run --release -p lab"
    )]
    NotRoot,
    /// A tool is missing.
    #[error("the lab needs `{tool}`: install it (apt-get install {package})")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    /// A command failed.
    #[error("`{cmd}` failed: {output}")]
    Command { cmd: String, output: String },
    /// Something did not happen in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Traffic did not arrive as sent.
    #[error("{0}")]
    Traffic(String),
    /// routerd failed.
    #[error("routerd: {0}")]
    Routerd(String),
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
    /// An I/O error.
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |err| LabError::Io { what, err }
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks root and the one program the lab runs (`ip`, from iproute2).
pub fn preflight() -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot);
    }
    ns::run(&["ip", "-V"]).map(drop)
}

/// Panics with one line unless the process is root and `ip` runs: what a
/// namespace test calls first.
pub fn require_root() {
    if let Err(e) = preflight() {
        match e {
            LabError::NotRoot => panic!(
                "these tests need root and network namespaces: run as root, e.g. \
                 sudo -E cargo test"
            ),
            e => panic!("{e}"),
        }
    }
}

/// Whether a test may use `tool` (from Debian's `package`), a program
/// beyond iproute2 that some checks run (tcpdump, BIRD). A fresh machine
/// has only Rust and iproute2, and the README's test command must pass
/// there: without the tool those checks are left out, with one line saying
/// so. In CI (`CI` set, as `.ci/run`, which installs the package, runs),
/// a missing tool fails the test instead, so nothing is left out there.
pub fn optional_tool(tool: &str, package: &str, what: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is not installed: apt-get install {package} (.ci/run installs it); {what}");
    }
    eprintln!(
        "note: {tool} is not installed, so {what} is left out here \
         (apt-get install {package}; .ci/run installs it and CI runs it)"
    );
    false
}
