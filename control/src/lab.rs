//! A lab of network namespaces for `lab` and the end-to-end tests:
//! client - router - server joined by veth pairs, routerd run inside the
//! router namespace, and Rust traffic endpoints (TCP, UDP) in threads that
//! enter the client and server namespaces.
//!
//! ```text
//!  ns <tag>-cli            ns <tag>-rtr                ns <tag>-srv
//!  cli0 198.18.0.2/24 --- r0 [routerd or Linux] r1 --- srv0 198.19.0.2/24
//!  gw 198.18.0.1           198.18.0.1   198.19.0.1      gw 198.19.0.1
//!                                                       mac 02:00:00:00:00:02
//! ```
//! The router namespace carries the kernel addresses of a normal Linux
//! router (r0 198.18.0.1/24, r1 198.19.0.1/24, 203.0.113.0/24 via
//! 198.19.0.2) so that Linux forwarding can be measured on the same links;
//! routerd takes them off while it runs and puts them back at exit.
//! Kernel forwarding is off there unless a measurement turns it on.
//!
//! Everything is bounded in time and count, and the namespaces (with their
//! veths) are removed when the [`Lab`] is dropped, also on a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::run::stats::RouterStats;

/// Client address.
pub const CLIENT_IP: &str = "198.18.0.2";
/// Server address.
pub const SERVER_IP: &str = "198.19.0.2";
/// Server MAC: the static neighbour of `configs/transit-router.yaml`.
pub const SERVER_MAC: &str = "02:00:00:00:00:02";
/// An address routed to the server that the server does not own: its
/// kernel drops such packets early (forwarding off, no ICMP), a cheap sink.
pub const SINK_IP: &str = "203.0.113.1";

/// Why the lab failed. One line each.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error(
        "the lab needs root (network namespaces, XDP): run it as root, e.g. \
         sudo -E cargo run --release -p control --bin lab"
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

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |err| LabError::Io { what, err }
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Checks root and the tools the lab runs.
pub fn preflight() -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot);
    }
    for (tool, package, arg) in [
        ("ip", "iproute2", "-V"),
        ("ping", "iputils-ping", "-V"),
        ("ethtool", "ethtool", "--version"),
        ("kill", "procps", "-l"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !ok {
            return Err(LabError::MissingTool { tool, package });
        }
    }
    Ok(())
}

fn run(cmd: &[&str]) -> Result<String, LabError> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(io_err(format!("cannot run {}", cmd[0])))?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: cmd.join(" "),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Namespaces made for one run, removed on drop.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// A lab whose namespaces are named `<prefix><pid>-<name>`.
    pub fn new(prefix: &str) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        Ok(Lab {
            tag: format!("{prefix}{}", std::process::id()),
            namespaces: Vec::new(),
        })
    }

    /// Namespace `<tag>-<short>` with loopback up and IPv6 off.
    pub fn add_ns(&mut self, short: &str) -> Result<String, LabError> {
        let name = format!("{}-{short}", self.tag);
        // One left by a killed run with the same pid: start afresh.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        self.exec(
            &name,
            &[
                "sh",
                "-c",
                "[ ! -e /proc/sys/net/ipv6 ] || echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            ],
        )?;
        Ok(name)
    }

    /// The namespaces made so far.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Runs `cmd` in `ns`; its stdout, or an error with its stderr.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Result<String, LabError> {
        let out = self.try_exec(ns, cmd)?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: format!("ip netns exec {ns} {}", cmd.join(" ")),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .trim()
                .to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd` in `ns` and returns whatever happened.
    pub fn try_exec(&self, ns: &str, cmd: &[&str]) -> Result<Output, LabError> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()
            .map_err(io_err("cannot run ip netns exec"))
    }

    /// A counter of `ifname` in `ns` (`/sys/class/net/IF/statistics/NAME`).
    pub fn if_stat(&self, ns: &str, ifname: &str, name: &str) -> Result<u64, LabError> {
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        let text = self.exec(ns, &["cat", &path])?;
        text.trim().parse().map_err(|_| LabError::Command {
            cmd: format!("cat {path}"),
            output: text,
        })
    }

    /// A sysctl value in `ns`.
    pub fn sysctl(&self, ns: &str, key: &str) -> Result<String, LabError> {
        Ok(self.exec(ns, &["sysctl", "-n", key])?.trim().to_string())
    }

    /// Sets a sysctl in `ns`.
    pub fn set_sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        self.exec(ns, &["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "lab: could not delete namespace {ns}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("lab: could not delete namespace {ns}: {e}"),
            }
        }
    }
}

/// The three-namespace lab.
#[derive(Debug)]
pub struct Topology {
    /// The namespaces (dropped last: removes everything).
    pub lab: Lab,
    /// Client namespace (`cli0`).
    pub cli: String,
    /// Router namespace (`r0`, `r1`).
    pub rtr: String,
    /// Server namespace (`srv0`).
    pub srv: String,
}

impl Topology {
    /// Builds client - router - server; kernel forwarding off in the router.
    pub fn build(prefix: &str) -> Result<Topology, LabError> {
        let mut lab = Lab::new(prefix)?;
        let cli = lab.add_ns("cli")?;
        let rtr = lab.add_ns("rtr")?;
        let srv = lab.add_ns("srv")?;
        for (ns, rdev, peer_ns, peer) in [(&rtr, "r0", &cli, "cli0"), (&rtr, "r1", &srv, "srv0")] {
            run(&[
                "ip", "-n", ns, "link", "add", rdev, "type", "veth", "peer", "name", peer, "netns",
                peer_ns,
            ])?;
        }
        run(&[
            "ip", "-n", &srv, "link", "set", "srv0", "address", SERVER_MAC,
        ])?;
        for (ns, dev) in [(&cli, "cli0"), (&rtr, "r0"), (&rtr, "r1"), (&srv, "srv0")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        for (ns, dev, addr, gw) in [
            (&cli, "cli0", "198.18.0.2/24", "198.18.0.1"),
            (&srv, "srv0", "198.19.0.2/24", "198.19.0.1"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
            run(&["ip", "-n", ns, "route", "add", "default", "via", gw])?;
            // veth: forwarded TCP/UDP would carry unfinished checksums.
            lab.exec(ns, &["ethtool", "-K", dev, "tx", "off"])?;
        }
        let t = Topology { lab, cli, rtr, srv };
        t.kernel_router_addresses()?;
        t.lab.set_sysctl(&t.rtr, "net.ipv4.ip_forward", "0")?;
        Ok(t)
    }

    /// Gives the router namespace's kernel the addresses and route of a
    /// Linux router (routerd restores them itself at a clean exit; this
    /// also covers a SIGKILLed one).
    pub fn kernel_router_addresses(&self) -> Result<(), LabError> {
        let r = self.rtr.as_str();
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "replace",
            "198.18.0.1/24",
            "dev",
            "r0",
        ])?;
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "replace",
            "198.19.0.1/24",
            "dev",
            "r1",
        ])?;
        run(&[
            "ip",
            "-n",
            r,
            "route",
            "replace",
            "203.0.113.0/24",
            "via",
            SERVER_IP,
            "dev",
            "r1",
        ])
        .map(drop)
    }

    /// `ping -c COUNT` from the client to `dst`.
    pub fn ping(&self, dst: &str, count: u32) -> Result<PingResult, LabError> {
        let c = count.to_string();
        let out = self
            .lab
            .try_exec(&self.cli, &["ping", "-c", &c, "-i", "0.2", "-W", "2", dst])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(PingResult::parse(count, &text))
    }

    /// Whether any XDP program is attached in the router namespace.
    pub fn router_has_xdp(&self) -> Result<bool, LabError> {
        let text = self.lab.exec(&self.rtr, &["ip", "link", "show"])?;
        Ok(text.contains("xdp"))
    }

    /// Whether every XDP program left the router namespace within `limit`:
    /// the kernel may release a closed bpf_link from a work queue, a moment
    /// after the process that held it exited.
    pub fn router_xdp_gone_within(&self, limit: std::time::Duration) -> Result<bool, LabError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if !self.router_has_xdp()? {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// How a tool that carries routerd inside it (the lab, the soak) starts:
/// with `--as-routerd` it *is* routerd and returns routerd's exit code as
/// `Err`; otherwise it gets a flag that SIGINT and SIGTERM raise, so it can
/// clean up before it stops.
pub fn tool_start(
    tool: &str,
    as_routerd: bool,
    config: Option<PathBuf>,
    stats_json: Option<PathBuf>,
) -> Result<Arc<std::sync::atomic::AtomicBool>, std::process::ExitCode> {
    if as_routerd {
        let Some(config) = config else {
            eprintln!("{tool} --as-routerd needs --config FILE");
            return Err(std::process::ExitCode::from(2));
        };
        return Err(crate::run::main_run(&crate::run::RunOptions {
            config,
            stats_json,
        }));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("{tool}: cannot install signal handlers: {e}");
            return Err(std::process::ExitCode::from(1));
        }
    }
    Ok(stop)
}

/// What `ping` printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingResult {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// TTL of each reply.
    pub ttls: Vec<u8>,
    /// The output.
    pub text: String,
}

impl PingResult {
    /// Reads `ping`'s output.
    pub fn parse(sent: u32, text: &str) -> PingResult {
        let ttls: Vec<u8> = text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("ttl="))
            .filter_map(|t| t.parse().ok())
            .collect();
        PingResult {
            sent,
            received: ttls.len() as u32,
            ttls,
            text: text.to_string(),
        }
    }
}

/// Runs `f` in a new thread inside network namespace `ns`.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, LabError>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        dataplane::xsk::netns::enter(&ns).map_err(io_err(format!("enter namespace {ns}")))?;
        f()
    })
}

fn join<T>(h: std::thread::JoinHandle<Result<T, LabError>>) -> Result<T, LabError> {
    h.join()
        .unwrap_or_else(|_| Err(LabError::Traffic("a traffic thread panicked".into())))
}

/// Deterministic bytes (xorshift64) so both ends can check a transfer.
#[derive(Clone, Debug)]
pub struct Pattern(u64);

impl Pattern {
    /// A pattern from `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }
    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// FNV-1a over a stream.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub fn update(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// The hash.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// A verified TCP transfer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TcpResult {
    /// Bytes sent.
    pub sent: u64,
    /// Bytes the server received.
    pub received: u64,
    /// The server's hash of what it received equals the client's of what it sent.
    pub verified: bool,
    /// Seconds from connect to the server's report.
    pub secs: f64,
}

/// Sends `bytes` of a pattern from the client to the server over TCP; the
/// server reports the length and hash of what it got. Bounded by `limit`.
pub fn tcp_transfer(
    t: &Topology,
    bytes: u64,
    port: u16,
    limit: Duration,
) -> Result<TcpResult, LabError> {
    let addr: SocketAddr = format!("{SERVER_IP}:{port}")
        .parse()
        .expect("valid address");
    let (ready_tx, ready_rx) = mpsc::channel();
    let deadline = Instant::now() + limit;
    let server = in_ns(&t.srv, move || {
        let l = TcpListener::bind(addr).map_err(io_err("bind the TCP server"))?;
        l.set_nonblocking(true).map_err(io_err("listener"))?;
        let _ = ready_tx.send(());
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(LabError::Timeout("no TCP connection arrived".into()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(io_err("accept")(e)),
            }
        };
        s.set_nonblocking(false).map_err(io_err("socket"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io_err("socket"))?;
        let mut h = Fnv::default();
        let mut n = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!("TCP server got {n} bytes")));
            }
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    h.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) => return Err(io_err(format!("TCP read after {n} bytes"))(e)),
            }
        }
        let mut report = [0u8; 16];
        report[..8].copy_from_slice(&n.to_le_bytes());
        report[8..].copy_from_slice(&h.value().to_le_bytes());
        s.write_all(&report).map_err(io_err("TCP report"))?;
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| LabError::Timeout("TCP server did not start".into()))?;
    let client = in_ns(&t.cli, move || {
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(io_err(format!("TCP connect to {addr}")))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(io_err("socket"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(io_err("socket"))?;
        let mut pat = Pattern::new(0x5eed);
        let mut h = Fnv::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            pat.fill(&mut buf[..k]);
            h.update(&buf[..k]);
            s.write_all(&buf[..k])
                .map_err(io_err(format!("TCP write after {} bytes", bytes - left)))?;
            left -= k as u64;
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(io_err("TCP shutdown"))?;
        let mut report = [0u8; 16];
        s.read_exact(&mut report)
            .map_err(io_err("TCP report from the server"))?;
        let got = u64::from_le_bytes(report[..8].try_into().expect("8 bytes"));
        let hash = u64::from_le_bytes(report[8..].try_into().expect("8 bytes"));
        Ok(TcpResult {
            sent: bytes,
            received: got,
            verified: got == bytes && hash == h.value(),
            secs: start.elapsed().as_secs_f64(),
        })
    });
    let res = join(client);
    let srv = join(server);
    let res = res?;
    srv?;
    Ok(res)
}

/// UDP datagrams client -> server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpResult {
    /// Datagrams sent.
    pub sent: u32,
    /// Datagrams received with the right content.
    pub received: u32,
    /// Datagrams received with wrong content.
    pub corrupt: u32,
}

/// Sends `count` datagrams of `size` bytes (paced) and counts what arrives
/// intact at the server.
pub fn udp_exchange(
    t: &Topology,
    count: u32,
    size: usize,
    port: u16,
) -> Result<UdpResult, LabError> {
    let addr: SocketAddr = format!("{SERVER_IP}:{port}")
        .parse()
        .expect("valid address");
    let size = size.max(8);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_ns(&t.srv, move || {
        let s = UdpSocket::bind(addr).map_err(io_err("bind the UDP server"))?;
        s.set_read_timeout(Some(Duration::from_millis(1000)))
            .map_err(io_err("socket"))?;
        let _ = ready_tx.send(());
        let (mut ok, mut bad) = (0u32, 0u32);
        let mut buf = vec![0u8; 65536];
        let mut want = vec![0u8; size];
        let deadline = Instant::now() + Duration::from_secs(20);
        while ok + bad < count && Instant::now() < deadline {
            match s.recv(&mut buf) {
                Ok(n) => {
                    let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                    Pattern::new(seq).fill(&mut want[8..]);
                    if n == size && buf[8..n] == want[8..] {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
                Err(_) => break, // a second of silence: the sender is done
            }
        }
        Ok((ok, bad))
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| LabError::Timeout("UDP server did not start".into()))?;
    let client = in_ns(&t.cli, move || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(io_err("UDP socket"))?;
        s.connect(addr).map_err(io_err("UDP connect"))?;
        let mut buf = vec![0u8; size];
        for seq in 0..u64::from(count) {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            Pattern::new(seq).fill(&mut buf[8..]);
            s.send(&buf).map_err(io_err("UDP send"))?;
            if seq % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    });
    join(client)?;
    let (received, corrupt) = join(server)?;
    Ok(UdpResult {
        sent: count,
        received,
        corrupt,
    })
}

/// Sends UDP datagrams with `payload` bytes to `dst` from the client, as
/// fast as one thread pinned to `core` can, for `secs` or `max` datagrams.
/// Returns (datagrams sent, seconds).
pub fn udp_flood(
    t: &Topology,
    dst: &str,
    payload: usize,
    secs: f64,
    max: u64,
    core: Option<usize>,
) -> Result<(u64, f64), LabError> {
    udp_send(t, dst, payload, secs, max, core, None)
}

/// Like [`udp_flood`], pausing `pause` after every `every` datagrams when
/// `pace` is `Some((every, pause))`.
pub fn udp_send(
    t: &Topology,
    dst: &str,
    payload: usize,
    secs: f64,
    max: u64,
    core: Option<usize>,
    pace: Option<(u64, Duration)>,
) -> Result<(u64, f64), LabError> {
    let addr: SocketAddr = format!("{dst}:9")
        .parse()
        .map_err(|_| LabError::Traffic(format!("bad address {dst}")))?;
    let h = in_ns(&t.cli, move || {
        if let Some(c) = core {
            dataplane::worker::pin_current_thread(c)
                .map_err(|e| LabError::Traffic(e.to_string()))?;
        }
        let s = UdpSocket::bind("0.0.0.0:0").map_err(io_err("UDP socket"))?;
        s.connect(addr).map_err(io_err("UDP connect"))?;
        let buf = vec![0x5au8; payload];
        let start = Instant::now();
        let limit = Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        while sent < max {
            // Check the clock every 256 sends, not every one.
            if sent % 256 == 0 && start.elapsed() >= limit {
                break;
            }
            if s.send(&buf).is_ok() {
                sent += 1;
                if let Some((every, pause)) = pace {
                    if sent % every == 0 {
                        std::thread::sleep(pause);
                    }
                }
            }
        }
        Ok((sent, start.elapsed().as_secs_f64()))
    });
    join(h)
}

/// routerd running in the router namespace as a child process.
#[derive(Debug)]
pub struct RouterdProc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Receiver<()>,
    stats_json: PathBuf,
    exited: Option<ExitStatus>,
}

impl RouterdProc {
    /// Starts `routerd` (`program` plus `pre_args`, e.g. `--as-routerd` for
    /// the lab's built-in copy) with `--config config` in namespace `ns`.
    pub fn spawn(
        program: &Path,
        pre_args: &[&str],
        ns: &str,
        config: &Path,
    ) -> Result<RouterdProc, LabError> {
        static STARTS: AtomicU32 = AtomicU32::new(0);
        let stats_json = std::env::temp_dir().join(format!(
            "routerd-{ns}-{}.json",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&stats_json);
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(pre_args)
            .arg("--config")
            .arg(config)
            .arg("--stats-json")
            .arg(&stats_json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("cannot start {}", program.display())))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, ready) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready: forwarding") {
                    let _ = tx.send(());
                }
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(RouterdProc {
            child,
            log,
            ready,
            stats_json,
            exited: None,
        })
    }

    /// Waits until routerd logs that it forwards.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.ready.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                std::thread::sleep(Duration::from_millis(50));
                return Err(LabError::Routerd(format!(
                    "exited ({st}) before it was ready: {}",
                    self.log().join(" | ")
                )));
            }
        }
        Err(LabError::Timeout(format!(
            "routerd not ready after {limit:?}: {}",
            self.log().join(" | ")
        )))
    }

    /// routerd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What routerd logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `signal` (a `kill` name: TERM, USR1, ...) to routerd.
    pub fn signal(&self, signal: &str) -> Result<(), LabError> {
        run(&["kill", &format!("-{signal}"), &self.child.id().to_string()]).map(drop)
    }

    /// SIGTERM, then waits up to `limit` for the exit (SIGKILL after that).
    pub fn terminate(&mut self, limit: Duration) -> Result<ExitStatus, LabError> {
        if let Some(st) = self.exited {
            return Ok(st);
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            self.exited = Some(st);
            return Ok(st);
        }
        self.signal("TERM")?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()?;
        Err(LabError::Timeout(format!(
            "routerd did not exit within {limit:?} of SIGTERM (killed)"
        )))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<ExitStatus, LabError> {
        let _ = self.child.kill();
        let st = self.child.wait().map_err(io_err("wait for routerd"))?;
        self.exited = Some(st);
        Ok(st)
    }

    /// The counters routerd wrote at exit.
    pub fn final_stats(&self) -> Result<RouterStats, LabError> {
        let text = std::fs::read_to_string(&self.stats_json).map_err(io_err(format!(
            "routerd's counters {}",
            self.stats_json.display()
        )))?;
        serde_json::from_str(&text).map_err(|e| LabError::Routerd(format!("bad stats JSON: {e}")))
    }
}

impl Drop for RouterdProc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.terminate(Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.stats_json);
    }
}

/// One run of the flood measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct FloodRun {
    /// `routerd` or `linux`.
    pub system: &'static str,
    /// Datagrams the client sent.
    pub sent: u64,
    /// Frames the server's veth received.
    pub received: u64,
    /// Seconds of sending.
    pub secs: f64,
}

impl FloodRun {
    /// Frames per second that reached the server.
    pub fn rx_pps(&self) -> f64 {
        self.received as f64 / self.secs
    }
    /// Datagrams per second the client sent.
    pub fn tx_pps(&self) -> f64 {
        self.sent as f64 / self.secs
    }
}

/// Floods [`SINK_IP`] (routed to the server) from the client for `secs`
/// and counts what the server's veth received.
pub fn flood_once(
    t: &Topology,
    system: &'static str,
    secs: f64,
    core: Option<usize>,
) -> Result<FloodRun, LabError> {
    // Warm up: resolve neighbours before counting.
    udp_flood(t, SINK_IP, 18, 0.05, 1000, core)?;
    std::thread::sleep(Duration::from_millis(200));
    let before = t.lab.if_stat(&t.srv, "srv0", "rx_packets")?;
    // 18-byte payloads: 64-byte Ethernet frames with the FCS.
    let (sent, took) = udp_flood(t, SINK_IP, 18, secs, 50_000_000, core)?;
    std::thread::sleep(Duration::from_millis(300));
    let after = t.lab.if_stat(&t.srv, "srv0", "rx_packets")?;
    Ok(FloodRun {
        system,
        sent,
        received: after.saturating_sub(before),
        secs: took,
    })
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_output_is_read() {
        let text = "PING 198.19.0.2 (198.19.0.2) 56(84) bytes of data.\n\
                    64 bytes from 198.19.0.2: icmp_seq=1 ttl=63 time=0.1 ms\n\
                    64 bytes from 198.19.0.2: icmp_seq=2 ttl=63 time=0.1 ms\n";
        let p = PingResult::parse(3, text);
        assert_eq!(p.received, 2);
        assert_eq!(p.ttls, vec![63, 63]);
    }

    #[test]
    fn pattern_and_hash_are_deterministic() {
        let (mut a, mut b) = (vec![0u8; 100], vec![0u8; 100]);
        Pattern::new(7).fill(&mut a);
        Pattern::new(7).fill(&mut b);
        assert_eq!(a, b);
        Pattern::new(8).fill(&mut b);
        assert_ne!(a, b);
        let mut h1 = Fnv::default();
        h1.update(&a);
        let mut h2 = Fnv::default();
        h2.update(&a[..50]);
        h2.update(&a[50..]);
        assert_eq!(h1.value(), h2.value());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
