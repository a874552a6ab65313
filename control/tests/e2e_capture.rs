//! `routerctl capture` against a live routerd (root): client - router -
//! server namespaces, routerd in the router namespace on the transit
//! config with SSH to the router refused (`filter.input` rule 3 drops
//! `tcp dport 22`), its control socket in a temporary directory.
//!
//! Checks: during a ping across the router and a refused SSH attempt, the
//! file (mode 0600) holds the echo request as received on wan and as sent
//! on lan (TTL 63), the reply both ways, and the dropped SYN with its
//! reason, stage, chain and rule in the packet's comment; tcpdump reads it
//! and lists them; Ctrl-C ends the capture with a complete file. `--drops
//! --match '{protocol: tcp, destination_port: 22}'` keeps only the SYNs;
//! `--count N` stops at exactly N packets; `--duration` stops it by
//! itself; `-w -` feeds `tcpdump -r -`, and a reader that stops early
//! (`tcpdump -c 2`) ends the capture quietly; a bad match, an unknown interface
//! and a second capture get one line each, and a killed routerctl's
//! capture gives way after the watchdog; without routerd, one line.
//!
//! tcpdump (installed by `.ci/run`) only reads files here; the files are
//! also read with the `pcap-file` crate, which is what every check on their
//! contents uses. Without tcpdump (a fresh machine: Rust and iproute2),
//! the tcpdump checks are left out with one line saying so, and a reader
//! in Rust stands in for `| tcpdump -r -`; in CI they are required. The tests run
//! one at a time (a lock); every traffic loop is bounded in count and
//! time; namespaces and temporary files go also when a test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lab::{LabError, PingOptions, RouterdProc, TempDir, Topology, CLIENT_IP, SERVER_IP};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

const WAN_ADDR: &str = "198.18.0.1";
const SSH_RULE: &str = "      - match: { protocol: tcp, destination_port: 22, state: [new] }
        action: accept
        comment: ssh
";
const NO_SSH_RULE: &str = "      - match: { protocol: tcp, destination_port: 22, state: [new] }
        action: drop
        comment: no ssh from outside
";
const SYN_COMMENT: &str =
    "drop: filter_denied (stage filter, chain input, rule 3: no ssh from outside)";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A routerd under test. Fields drop in order: routerd stops, then the
/// namespaces go, then the temporary directory.
struct Live {
    r: RouterdProc,
    t: Topology,
    dir: TempDir,
    socket: PathBuf,
}

impl Live {
    fn start(tag: &str) -> Live {
        lab::require_root();
        let dir = TempDir::new("e2ecap", tag);
        let config = dir.path("router.yaml");
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
        let text = std::fs::read_to_string(p).expect("read the transit config");
        assert!(text.contains(SSH_RULE), "the transit config changed");
        std::fs::write(&config, text.replace(SSH_RULE, NO_SSH_RULE)).expect("write the config");
        let socket = dir.path("routerd.sock");
        let t = Topology::build(tag).expect("build the lab");
        let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
        let sock = socket.to_str().expect("utf-8 path");
        let r = RouterdProc::spawn_ready(routerd, &["--socket", sock], &t.rtr, &config);
        Live { r, t, dir, socket }
    }

    /// `routerctl capture ARGS` started; returns once it says it captures.
    fn capture(&self, args: &[&str], stdout: Stdio) -> Capture {
        let mut child = Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("capture")
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run routerctl capture");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l.clone());
                lines.push(l);
            }
            lines
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.starts_with("routerctl: capturing ") => {}
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("routerctl capture did not start: {other:?}");
            }
        }
        Capture {
            child,
            reader: Some(reader),
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run routerctl")
    }

    fn ping(&self, count: u32) {
        let r = lab::ping_in(&self.t.cli, SERVER_IP, &PingOptions::count(count))
            .expect("ping through routerd");
        assert_eq!(r.received, count, "{r:?}");
    }

    /// One SSH attempt to the router: the SYN is dropped, connect times out.
    fn ssh_attempt(&self) {
        let dst: SocketAddr = format!("{WAN_ADDR}:22").parse().expect("address");
        let r = lab::in_ns(&self.t.cli, move || {
            Ok::<_, LabError>(TcpStream::connect_timeout(&dst, Duration::from_millis(800)))
        })
        .join()
        .expect("client thread")
        .expect("in the namespace");
        assert!(r.is_err(), "SSH to the router is refused by the filter");
    }

    fn stop(&mut self) {
        let st = self.r.terminate(Duration::from_secs(10)).expect("stops");
        assert!(
            st.success(),
            "routerd exit: {st}\n{}",
            self.r.log().join("\n")
        );
    }
}

/// A running `routerctl capture`.
struct Capture {
    child: Child,
    reader: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Capture {
    /// Waits (bounded) for it to end by itself; its status and stderr.
    fn wait(&mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let lines = self.reader.take().map(|r| r.join().expect("reader"));
                return (st, lines.unwrap_or_default());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("routerctl capture did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, then waits for the end.
    fn interrupt(&mut self) -> (ExitStatus, Vec<String>) {
        lab::send_signal(self.child.id(), "INT", "routerctl capture").expect("SIGINT");
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One packet of a pcapng file.
#[derive(Debug)]
struct Pkt {
    iface: String,
    inbound: bool,
    comment: Option<String>,
    data: Vec<u8>,
}

impl Pkt {
    fn ipv4(&self) -> bool {
        self.data.len() >= 34 && self.data[12..14] == [0x08, 0x00]
    }
    fn proto(&self) -> u8 {
        self.data[23]
    }
    fn ttl(&self) -> u8 {
        self.data[22]
    }
    fn src(&self) -> String {
        std::net::Ipv4Addr::new(self.data[26], self.data[27], self.data[28], self.data[29])
            .to_string()
    }
    fn dst(&self) -> String {
        std::net::Ipv4Addr::new(self.data[30], self.data[31], self.data[32], self.data[33])
            .to_string()
    }
    /// ICMP type.
    fn icmp(&self) -> Option<u8> {
        (self.ipv4() && self.proto() == 1).then(|| self.data[34])
    }
    /// TCP destination port and flags.
    fn tcp(&self) -> Option<(u16, u8)> {
        (self.ipv4() && self.proto() == 6 && self.data.len() >= 54).then(|| {
            (
                u16::from_be_bytes([self.data[36], self.data[37]]),
                self.data[47],
            )
        })
    }
    fn is_echo(&self, ty: u8, src: &str, dst: &str) -> bool {
        self.icmp() == Some(ty) && self.src() == src && self.dst() == dst
    }
}

/// The interfaces' names and the packets of a pcapng stream (read with
/// the `pcap-file` crate: tcpdump does not print comments or flags).
fn read_pcapng(bytes: &[u8]) -> (Vec<String>, Vec<Pkt>) {
    let mut r = PcapNgReader::new(bytes).expect("a pcapng section header");
    let mut packets = Vec::new();
    let mut raw = Vec::new();
    while let Some(b) = r.next_block() {
        if let Block::EnhancedPacket(p) = b.expect("a valid block") {
            raw.push(p.into_owned());
        }
    }
    let names: Vec<String> = r
        .interfaces()
        .iter()
        .map(|i| {
            i.options
                .iter()
                .find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                })
                .expect("every interface has a name")
        })
        .collect();
    for p in raw {
        let mut flags = None;
        let mut comment = None;
        for o in &p.options {
            match o {
                EnhancedPacketOption::Flags(f) => flags = Some(*f),
                EnhancedPacketOption::Comment(c) => comment = Some(c.to_string()),
                _ => {}
            }
        }
        let flags = flags.expect("every packet has epb_flags");
        assert!(
            flags & 3 == 1 || flags & 3 == 2,
            "direction inbound or outbound"
        );
        packets.push(Pkt {
            iface: names[p.interface_id as usize].clone(),
            inbound: flags & 3 == 1,
            comment,
            data: p.data.to_vec(),
        });
    }
    (names, packets)
}

/// Whether tcpdump is here to read the files too (see the module doc):
/// looked for once, so that its absence is said once.
fn have_tcpdump() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        lab::optional_tool(
            "tcpdump",
            "tcpdump",
            "reading the capture files with tcpdump",
        )
    })
}

/// `tcpdump -n -r FILE`'s listing, or `None` without tcpdump.
fn tcpdump_read(file: &Path) -> Option<String> {
    if !have_tcpdump() {
        return None;
    }
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .output()
        .expect("run tcpdump (installed by .ci/run)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump -r {}: {err}", file.display());
    Some(format!("{err}{}", String::from_utf8_lossy(&out.stdout)))
}

/// tcpdump's packet lines (not its `reading from file` line).
fn packet_lines(listing: &str) -> usize {
    listing
        .lines()
        .filter(|l| !l.starts_with("reading from file"))
        .count()
}

fn tcpdump_lines_with(listing: &str, what: &str) -> usize {
    listing.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn a_capture_holds_the_ping_and_the_dropped_ssh_syn_with_its_reason() {
    let _g = serial();
    let mut live = Live::start("ecapa");
    let file = live.dir.path("all.pcapng");
    let mut cap = live.capture(&["-w", file.to_str().expect("utf-8")], Stdio::null());
    live.ping(3);
    live.ssh_attempt();
    std::thread::sleep(Duration::from_millis(200));
    let (st, log) = cap.interrupt();
    assert!(st.success(), "Ctrl-C ends it cleanly: {st} {log:?}");
    assert!(log.iter().any(|l| l.contains(" captured (")), "{log:?}");

    let md = std::fs::metadata(&file).expect("the file exists");
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "mode 0600");
    assert_eq!(md.uid(), nix_uid(), "owned by the caller");

    if let Some(listing) = tcpdump_read(&file) {
        eprintln!("routerctl capture: {log:?}\ntcpdump -n -r all.pcapng:\n{listing}");
        let req = format!("{CLIENT_IP} > {SERVER_IP}: ICMP echo request");
        let rep = format!("{SERVER_IP} > {CLIENT_IP}: ICMP echo reply");
        // Each echo twice: as received and as sent.
        assert_eq!(tcpdump_lines_with(&listing, &req), 6, "{listing}");
        assert_eq!(tcpdump_lines_with(&listing, &rep), 6, "{listing}");
        assert!(
            tcpdump_lines_with(&listing, &format!("> {WAN_ADDR}.22: Flags [S]")) >= 1,
            "{listing}"
        );
    }

    let (names, pkts) = read_pcapng(&std::fs::read(&file).expect("read"));
    assert_eq!(names, ["wan", "lan", "host"]);
    let find = |pred: &dyn Fn(&Pkt) -> bool| pkts.iter().filter(|p| pred(p)).collect::<Vec<_>>();
    let req_in = find(&|p| p.is_echo(8, CLIENT_IP, SERVER_IP) && p.iface == "wan" && p.inbound);
    let req_out = find(&|p| p.is_echo(8, CLIENT_IP, SERVER_IP) && p.iface == "lan" && !p.inbound);
    let rep_in = find(&|p| p.is_echo(0, SERVER_IP, CLIENT_IP) && p.iface == "lan" && p.inbound);
    let rep_out = find(&|p| p.is_echo(0, SERVER_IP, CLIENT_IP) && p.iface == "wan" && !p.inbound);
    assert_eq!(
        (req_in.len(), req_out.len(), rep_in.len(), rep_out.len()),
        (3, 3, 3, 3),
        "{pkts:#?}"
    );
    assert!(req_in.iter().all(|p| p.ttl() == 64 && p.comment.is_none()));
    assert!(
        req_out.iter().all(|p| p.ttl() == 63),
        "sent as rewritten, TTL decremented"
    );
    let syns = find(&|p| p.tcp() == Some((22, 0x02)));
    assert!(!syns.is_empty(), "{pkts:#?}");
    for s in &syns {
        assert_eq!((s.iface.as_str(), s.inbound), ("wan", true));
        assert_eq!(s.comment.as_deref(), Some(SYN_COMMENT));
    }
    live.stop();
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").expect("proc").uid()
}

#[test]
fn match_count_and_standard_output_each_bound_a_capture() {
    let _g = serial();
    let mut live = Live::start("ecapb");

    // The README's session: only the dropped SSH SYNs.
    let file = live.dir.path("ssh.pcapng");
    let mut cap = live.capture(
        &[
            "--drops",
            "--match",
            "{protocol: tcp, destination_port: 22}",
            "-w",
            file.to_str().expect("utf-8"),
        ],
        Stdio::null(),
    );
    live.ping(2);
    live.ssh_attempt();
    std::thread::sleep(Duration::from_millis(200));
    let (st, log) = cap.interrupt();
    assert!(st.success(), "{st} {log:?}");
    eprintln!("routerctl capture (ssh): {log:?}");
    let (_, pkts) = read_pcapng(&std::fs::read(&file).expect("read"));
    assert!(!pkts.is_empty(), "the SYN is in it");
    for p in &pkts {
        assert_eq!(p.tcp(), Some((22, 0x02)), "only SSH SYNs: {p:?}");
        assert_eq!(p.comment.as_deref(), Some(SYN_COMMENT));
    }
    if let Some(listing) = tcpdump_read(&file) {
        eprintln!("tcpdump -n -r ssh.pcapng:\n{listing}");
        assert_eq!(packet_lines(&listing), pkts.len(), "{listing}");
        assert!(!listing.contains("ICMP"), "{listing}");
    }

    // --count: stops by itself at exactly N, whatever else flows.
    let file = live.dir.path("count.pcapng");
    let mut cap = live.capture(
        &["--count", "5", "-w", file.to_str().expect("utf-8")],
        Stdio::null(),
    );
    live.ping(3);
    let (st, log) = cap.wait(Duration::from_secs(15));
    assert!(st.success(), "{st} {log:?}");
    let (_, pkts) = read_pcapng(&std::fs::read(&file).expect("read"));
    assert_eq!(pkts.len(), 5, "{pkts:#?}");
    if let Some(listing) = tcpdump_read(&file) {
        assert_eq!(packet_lines(&listing), 5, "{listing}");
    }

    // -w - into tcpdump -r -, stopped by its count.
    let mut cap = live.capture(
        &[
            "--rx",
            "--interface",
            "wan",
            "--match",
            "{protocol: icmp}",
            "--count",
            "3",
            "-w",
            "-",
        ],
        Stdio::piped(),
    );
    let mut stdout = cap.child.stdout.take().expect("stdout");
    let req = format!("{CLIENT_IP} > {SERVER_IP}: ICMP echo request");
    if have_tcpdump() {
        let dump = Command::new("tcpdump")
            .args(["-n", "-r", "-"])
            .stdin(stdout)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tcpdump");
        live.ping(3);
        let (st, log) = cap.wait(Duration::from_secs(15));
        assert!(st.success(), "{st} {log:?}");
        let out = dump
            .wait_with_output()
            .expect("tcpdump ends with its input");
        let listing = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "routerctl capture ... -w - | tcpdump -n -r -:\n{}\n{}{listing}",
            log.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tcpdump_lines_with(&listing, &req), 3, "{listing}");
        assert_eq!(listing.lines().count(), 3, "{listing}");
    } else {
        // The same stream read in Rust: a whole pcapng file of 3 requests.
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout.read_to_end(&mut bytes).expect("read the pipe");
            bytes
        });
        live.ping(3);
        let (st, log) = cap.wait(Duration::from_secs(15));
        assert!(st.success(), "{st} {log:?}");
        let (names, pkts) = read_pcapng(&reader.join().expect("reader"));
        assert_eq!(names, ["wan", "lan", "host"]);
        assert_eq!(pkts.len(), 3, "{pkts:#?}");
        assert!(pkts
            .iter()
            .all(|p| p.is_echo(8, CLIENT_IP, SERVER_IP) && p.inbound && p.iface == "wan"));
    }

    // A reader that stops early (`tcpdump -c 2`) ends the capture quietly.
    let mut cap = live.capture(
        &[
            "--rx",
            "--interface",
            "wan",
            "--match",
            "{protocol: icmp}",
            "-w",
            "-",
        ],
        Stdio::piped(),
    );
    let mut stdout = cap.child.stdout.take().expect("stdout");
    if have_tcpdump() {
        let dump = Command::new("tcpdump")
            .args(["-n", "-c", "2", "-r", "-"])
            .stdin(stdout)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run tcpdump");
        live.ping(2);
        let out = dump.wait_with_output().expect("tcpdump ends after 2");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    } else {
        // A reader in Rust that reads the first bytes and goes away.
        live.ping(2);
        let mut first = [0u8; 64];
        let n = stdout.read(&mut first).expect("read the pipe");
        assert!(n > 0, "the capture wrote to standard output");
        drop(stdout);
    }
    // The next frame written finds the pipe closed.
    for _ in 0..10 {
        if cap.child.try_wait().expect("wait").is_some() {
            break;
        }
        live.ping(1);
    }
    let (st, log) = cap.wait(Duration::from_secs(15));
    assert!(st.success(), "{st} {log:?}");
    assert!(
        log.last()
            .is_some_and(|l| l.ends_with("the reader of standard output went away")),
        "{log:?}"
    );
    live.stop();
}

#[test]
fn duration_and_a_killed_client_end_a_capture_and_bad_requests_get_one_line() {
    let _g = serial();
    let mut live = Live::start("ecapc");

    let file = live.dir.path("idle.pcapng");
    let mut cap = live.capture(
        &["--duration", "2", "-w", file.to_str().expect("utf-8")],
        Stdio::null(),
    );
    // While it runs, a second one is refused with one line, and makes no file.
    let second = live.dir.path("second.pcapng");
    let out = live.ctl(&["capture", "-w", second.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("routerctl: a capture is already running") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!second.exists());
    // Not a wall-clock assertion: it ends by itself, well within the bound.
    let (st, log) = cap.wait(Duration::from_secs(20));
    assert!(st.success(), "{st} {log:?}");
    let _ = tcpdump_read(&file);
    let (names, _) = read_pcapng(&std::fs::read(&file).expect("read"));
    assert_eq!(names, ["wan", "lan", "host"]);

    let bad = |args: &[&str]| {
        let mut a = vec!["capture"];
        a.extend_from_slice(args);
        let out = live.ctl(&a);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let f = live.dir.path("bad.pcapng");
    let f = f.to_str().expect("utf-8");
    assert_eq!(
        bad(&["--match", "{protocol: tcp, destinaton_port: 22}", "-w", f]),
        "routerctl: --match:1:17: match.destinaton_port: unknown key, did you mean destination_port?\n"
    );
    assert_eq!(
        bad(&["--interface", "dmz", "-w", f]),
        "routerctl: --interface dmz: not an interface of the running config, expected wan, lan, host or any\n"
    );
    assert!(bad(&["--match", "{state: [new]}", "-w", f])
        .contains("state cannot be matched in a capture"));
    assert!(!Path::new(f).exists(), "a refused capture writes no file");

    // A capture whose routerctl is killed holds the router for at most the
    // watchdog (5 s without a poll), then another may start.
    let mut cap = live.capture(
        &[
            "-w",
            live.dir.path("killed.pcapng").to_str().expect("utf-8"),
        ],
        Stdio::null(),
    );
    cap.child.kill().expect("SIGKILL routerctl");
    let _ = cap.child.wait();
    assert!(bad(&["-w", f]).starts_with("routerctl: a capture is already running"));
    std::thread::sleep(Duration::from_millis(5500));
    let next = live.dir.path("next.pcapng");
    let mut cap = live.capture(
        &["--count", "1", "-w", next.to_str().expect("utf-8")],
        Stdio::null(),
    );
    live.ping(1);
    let (st, log) = cap.wait(Duration::from_secs(15));
    assert!(st.success(), "{st} {log:?}");
    assert_eq!(read_pcapng(&std::fs::read(&next).expect("read")).1.len(), 1);
    live.stop();
}

#[test]
fn without_routerd_capture_says_it_cannot_reach_it() {
    let dir = TempDir::new("e2ecap", "none");
    let socket = dir.path("nobody.sock");
    let file = dir.path("x.pcapng");
    let out = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(&socket)
        .args(["capture", "-w"])
        .arg(&file)
        .output()
        .expect("run routerctl");
    let mut err = String::new();
    out.stderr
        .as_slice()
        .read_to_string(&mut err)
        .expect("utf-8");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err,
        format!(
            "routerctl: cannot reach routerd at {}: No such file or directory (is routerd \
             running? --socket PATH)\n",
            socket.display()
        )
    );
    assert!(!file.exists());
}
