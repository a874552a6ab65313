//! The soak run: a bounded mixed load through a running routerd in the lab
//! (see [`crate::topology`]), with routerd's resident memory sampled, and the
//! books checked at the end.
//!
//! Load, all at once, until the time is up:
//! - transit TCP: verified transfers (4 MiB each) client -> server, one
//!   after the other;
//! - transit UDP: paced streams of 1000 datagrams of 512 bytes, counted at
//!   the server;
//! - transit churn: short UDP flows (two datagrams each) from a new socket
//!   (a new source port) to a changing destination port of [`SINK_IP`];
//! - host flows: TCP sessions with a service on the router (an echo
//!   server on 198.19.0.1:22 in the router namespace, reached through the
//!   host path), 16 KiB echoed and verified each, one after the other;
//! - tracked churn to the router: TCP SYNs to 198.18.0.1:22 (no listener
//!   there: the router's kernel answers RST) from changing source ports,
//!   each a new connection-table entry that expires within seconds (SYN_SENT
//!   5 s in the soak config, CLOSE 10 s), so the table fills and empties
//!   all along (host sessions leave TIME_WAIT entries, 10 s here).
//!
//! Checks at the end ([`SoakReport::problems`]):
//! - resident memory (`VmRSS`) flat after warm-up: the last sample within
//!   [`SoakOptions::rss_slack_kib`] of the first one after warm-up;
//! - every worker's frame census balances with no frame held or in flight
//!   (no UMEM frame leaked);
//! - the counters add up (exact, after routerd stopped):
//!   - per port: `pipeline_rx_packets = rx_packets` (every frame the socket
//!     gave was processed once) and `pipeline_tx_packets = tx_packets +
//!     tx_ring_full` (every frame the pipeline sent reached the TX ring or
//!     was counted as not taken);
//!   - all ports: `sum rx_packets + from_host_packets = forwarded +
//!     to_host + consumed + sum of drops by reason` (the pipeline's invariant, see
//!     `dataplane/src/counters.rs`) and `sum (tx_packets + tx_ring_full) =
//!     forwarded + generated`;
//!   - frames the kernel dropped before routerd saw them are not in `rx`:
//!     they are `xdp_rx_ring_full` and `xdp_rx_dropped`, printed per port;
//! - every TCP transfer and host session verified, at least 95 % of the
//!   UDP stream delivered, routerd exited 0.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use control::run::stats::RouterStats;

use crate::traffic::{self, Pattern};
use crate::{LabError, RouterdProc, Topology, SINK_IP};

/// The router's address on the client side (tracked churn goes there).
const ROUTER_WAN_IP: &str = "198.18.0.1";
/// Where the router's own service listens (host flows go there).
const ROUTER_SERVICE: &str = "198.19.0.1:22";
/// Bytes echoed per host session.
const HOST_SESSION_BYTES: usize = 16 << 10;

/// How long and how hard to soak.
#[derive(Clone, Debug, PartialEq)]
pub struct SoakOptions {
    /// Seconds of load.
    pub secs: f64,
    /// Seconds before the memory baseline is taken.
    pub warmup_secs: f64,
    /// Seconds between two memory samples.
    pub sample_secs: f64,
    /// Allowed growth of resident memory after warm-up, KiB.
    pub rss_slack_kib: u64,
    /// New transit UDP flows per second.
    pub churn_per_sec: u32,
    /// New tracked TCP flows to the router per second.
    pub syn_per_sec: u32,
}

impl Default for SoakOptions {
    /// Ten minutes, one minute of warm-up, a sample every 5 s.
    fn default() -> Self {
        SoakOptions {
            secs: 600.0,
            warmup_secs: 60.0,
            sample_secs: 5.0,
            rss_slack_kib: 1024,
            churn_per_sec: 200,
            syn_per_sec: 100,
        }
    }
}

/// One memory sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RssSample {
    /// Seconds since the load started.
    pub at: f64,
    /// `VmRSS` in KiB.
    pub kib: u64,
}

/// What the soak did and what routerd counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SoakReport {
    /// The options it ran with.
    pub warmup_secs: f64,
    /// Allowed growth, KiB.
    pub rss_slack_kib: u64,
    /// Seconds of load.
    pub secs: f64,
    /// Memory samples.
    pub rss: Vec<RssSample>,
    /// TCP transfers done and verified.
    pub tcp_verified: u64,
    /// TCP transfers that failed or did not verify.
    pub tcp_failed: u64,
    /// TCP bytes moved (verified transfers).
    pub tcp_bytes: u64,
    /// UDP stream datagrams sent and received intact.
    pub udp_sent: u64,
    pub udp_received: u64,
    /// Host sessions (TCP to the router's service) echoed and verified.
    pub host_verified: u64,
    /// Host sessions that failed.
    pub host_failed: u64,
    /// Short transit UDP flows started.
    pub churn_flows: u64,
    /// TCP SYNs sent to the router (new tracked flows).
    pub syns: u64,
    /// Whether routerd exited 0 when stopped.
    pub routerd_ok: bool,
    /// What routerd counted, from `--stats-json`.
    pub stats: RouterStats,
}

/// The soak config: `configs/transit-router.yaml` with half-open entries
/// (SYN_SENT, SYN_RECV) expiring after 5 s, TIME_WAIT after 10 s, its
/// control socket at [`control_socket`], and a table of `max_entries` flows, written to a
/// temporary file named after `tag`.
///
/// The table's memory is reserved at start but the kernel maps its pages
/// when first written: the hash index (32 bytes per entry of
/// `max_entries`, 8 MiB for the default 262144) is written at random
/// places by new flows, so resident memory climbs towards that bound while
/// flows are new, then stays flat. A warm-up must cover it: at 100 new
/// flows a second, about a minute for the default table, a few seconds
/// for 16384 entries (the short soak's).
pub fn soak_config(tag: &str, max_entries: u32) -> Result<PathBuf, LabError> {
    let mut text = include_str!("../../../configs/transit-router.yaml").to_string();
    for (from, to) in [
        (
            "tcp_syn_sent: 2m",
            "tcp_syn_sent: 5s, tcp_syn_recv: 5s, tcp_time_wait: 10s".to_string(),
        ),
        ("max_entries: 262144", format!("max_entries: {max_entries}")),
        (
            "socket: /run/afxdp-router/routerd.sock",
            format!("socket: {}", control_socket(tag).display()),
        ),
    ] {
        if !text.contains(from) {
            return Err(LabError::Traffic(format!(
                "configs/transit-router.yaml changed: no `{from}`"
            )));
        }
        text = text.replace(from, &to);
    }
    let path = std::env::temp_dir().join(format!("soak-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).map_err(|err| LabError::Io {
        what: format!("write {}", path.display()),
        err,
    })?;
    Ok(path)
}

/// An echo server on [`ROUTER_SERVICE`] in the router namespace, one
/// connection at a time, until `done`.
fn echo_service(
    t: &Topology,
    ready: std::sync::mpsc::Sender<()>,
    done: &(dyn Fn(Instant) -> bool + Sync),
    start: Instant,
) -> Result<(), LabError> {
    in_namespace(&t.rtr)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |err| LabError::Io { what, err }
    };
    let l = TcpListener::bind(ROUTER_SERVICE).map_err(io("bind the router's service"))?;
    l.set_nonblocking(true).map_err(io("listener"))?;
    let _ = ready.send(());
    let mut buf = vec![0u8; 64 << 10];
    while !done(start) {
        let mut c = match l.accept() {
            Ok((c, _)) => c,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        let _ = c.set_nonblocking(false);
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One session with the router's service: 16 KiB out, the same back.
fn host_session(seed: u64) -> Result<(), String> {
    let addr: SocketAddr = ROUTER_SERVICE.parse().expect("valid");
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut out = vec![0u8; HOST_SESSION_BYTES];
    Pattern::new(seed).fill(&mut out);
    c.write_all(&out).map_err(|e| format!("write: {e}"))?;
    c.shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut back = Vec::with_capacity(HOST_SESSION_BYTES);
    c.read_to_end(&mut back)
        .map_err(|e| format!("read after {} bytes: {e}", back.len()))?;
    if back != out {
        return Err(format!(
            "{} bytes came back, not the {} sent",
            back.len(),
            out.len()
        ));
    }
    Ok(())
}

fn in_namespace(ns: &str) -> Result<(), LabError> {
    crate::netns::enter(ns).map_err(|err| LabError::Io {
        what: format!("enter namespace {ns}"),
        err,
    })
}

/// The control socket of [`soak_config`]'s config for `tag`.
pub fn control_socket(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("routerd-{tag}-{}.sock", std::process::id()))
}

/// `VmRSS` of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs the load through `r` (ready, in `t`'s router namespace), samples
/// its memory, then stops it (SIGTERM) and reads its counters. Setting
/// `interrupt` ends the load early (Ctrl-C).
pub fn soak(
    t: &Topology,
    r: &mut RouterdProc,
    opts: &SoakOptions,
    interrupt: &AtomicBool,
) -> Result<SoakReport, LabError> {
    let stop = AtomicBool::new(false);
    let tcp_ok = AtomicU64::new(0);
    let tcp_bad = AtomicU64::new(0);
    let tcp_bytes = AtomicU64::new(0);
    let udp_sent = AtomicU64::new(0);
    let udp_got = AtomicU64::new(0);
    let churn = AtomicU64::new(0);
    let host_ok = AtomicU64::new(0);
    let host_bad = AtomicU64::new(0);
    let syns = AtomicU64::new(0);
    let pid = r.pid();
    let start = Instant::now();
    let done = |start: Instant| {
        stop.load(Ordering::Relaxed)
            || interrupt.load(Ordering::Relaxed)
            || start.elapsed().as_secs_f64() >= opts.secs
    };
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut port = 0u16;
            while !done(start) {
                port = (port + 1) % 64;
                match traffic::tcp_transfer(t, 4 << 20, 5100 + port, Duration::from_secs(60)) {
                    Ok(res) if res.verified => {
                        tcp_ok.fetch_add(1, Ordering::Relaxed);
                        tcp_bytes.fetch_add(res.received, Ordering::Relaxed);
                    }
                    Ok(res) => {
                        eprintln!("soak: TCP transfer not verified: {res:?}");
                        tcp_bad.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("soak: TCP transfer failed: {e}");
                        tcp_bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        s.spawn(|| {
            let mut port = 0u16;
            while !done(start) {
                port = (port + 1) % 64;
                match traffic::udp_exchange(t, 1000, 512, 5200 + port) {
                    Ok(u) => {
                        udp_sent.fetch_add(u64::from(u.sent), Ordering::Relaxed);
                        udp_got.fetch_add(u64::from(u.received), Ordering::Relaxed);
                    }
                    Err(e) => eprintln!("soak: UDP stream failed: {e}"),
                }
            }
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        s.spawn(|| echo_service(t, ready_tx, &done, start));
        if ready_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
            s.spawn(|| -> Result<(), LabError> {
                in_namespace(&t.cli)?;
                let mut n = 0u64;
                while !done(start) {
                    n += 1;
                    match host_session(n) {
                        Ok(()) => host_ok.fetch_add(1, Ordering::Relaxed),
                        // The service closes when the time is up.
                        Err(_) if done(start) => 0,
                        Err(e) => {
                            eprintln!("soak: host session {n}: {e}");
                            host_bad.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(())
            });
        } else {
            host_bad.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: the router's echo service did not start");
        }
        let churner = s.spawn(|| -> Result<u64, LabError> {
            in_namespace(&t.cli)?;
            let pause = Duration::from_secs_f64(1.0 / f64::from(opts.churn_per_sec.max(1)));
            let mut n = 0u64;
            let payload = [0x33u8; 64];
            while !done(start) {
                let port = 10_000 + n % 20_000;
                let addr: SocketAddr = format!("{SINK_IP}:{port}").parse().expect("valid");
                // A new socket: a new source port, a new flow.
                if let Ok(sock) = UdpSocket::bind("0.0.0.0:0") {
                    let _ = sock.send_to(&payload, addr);
                    let _ = sock.send_to(&payload, addr);
                }
                n += 1;
                std::thread::sleep(pause);
            }
            Ok(n)
        });
        let syner = s.spawn(|| -> Result<u64, LabError> {
            in_namespace(&t.cli)?;
            let pause = Duration::from_secs_f64(1.0 / f64::from(opts.syn_per_sec.max(1)));
            let addr: SocketAddr = format!("{ROUTER_WAN_IP}:22").parse().expect("valid");
            let mut n = 0u64;
            while !done(start) {
                // One SYN from a new source port; the socket closes in
                // SYN_SENT, so the kernel sends nothing more.
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(1));
                n += 1;
                std::thread::sleep(pause);
            }
            Ok(n)
        });
        let every = Duration::from_secs_f64(opts.sample_secs.max(0.1));
        let mut next = start;
        while !done(start) {
            if Instant::now() >= next {
                if let Some(kib) = rss_kib(pid) {
                    rss.push(RssSample {
                        at: start.elapsed().as_secs_f64(),
                        kib,
                    });
                }
                next += every;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(kib) = rss_kib(pid) {
            rss.push(RssSample {
                at: start.elapsed().as_secs_f64(),
                kib,
            });
        }
        stop.store(true, Ordering::Relaxed);
        if let Ok(Ok(n)) = churner.join() {
            churn.store(n, Ordering::Relaxed);
        }
        if let Ok(Ok(n)) = syner.join() {
            syns.store(n, Ordering::Relaxed);
        }
    });
    let secs = start.elapsed().as_secs_f64();
    // Let queued packets and ARP retries leave before the books close.
    std::thread::sleep(Duration::from_millis(1500));
    let status = r.terminate(Duration::from_secs(20))?;
    let stats = r.final_stats()?;
    Ok(SoakReport {
        warmup_secs: opts.warmup_secs,
        rss_slack_kib: opts.rss_slack_kib,
        secs,
        rss,
        tcp_verified: tcp_ok.into_inner(),
        tcp_failed: tcp_bad.into_inner(),
        tcp_bytes: tcp_bytes.into_inner(),
        udp_sent: udp_sent.into_inner(),
        udp_received: udp_got.into_inner(),
        host_verified: host_ok.into_inner(),
        host_failed: host_bad.into_inner(),
        churn_flows: churn.into_inner(),
        syns: syns.into_inner(),
        routerd_ok: status.success(),
        stats,
    })
}

impl SoakReport {
    /// The first sample at or after warm-up and the last sample.
    pub fn rss_baseline_and_last(&self) -> Option<(RssSample, RssSample)> {
        let base = *self.rss.iter().find(|s| s.at >= self.warmup_secs)?;
        let last = *self.rss.last()?;
        (last.at > base.at).then_some((base, last))
    }

    /// Everything that does not hold; empty when the soak passed.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let st = &self.stats;
        match self.rss_baseline_and_last() {
            Some((b, l)) if l.kib > b.kib + self.rss_slack_kib => p.push(format!(
                "resident memory grew after warm-up: {} KiB at {:.0} s, {} KiB at {:.0} s \
                 (allowed {} KiB)",
                b.kib, b.at, l.kib, l.at, self.rss_slack_kib
            )),
            Some(_) => {}
            None => p.push("no memory samples after warm-up".into()),
        }
        for w in &st.workers {
            let c = &w.census;
            if !c.balanced || c.held != 0 || c.tx != 0 {
                p.push(format!("worker {}: UMEM frames lost: {c:?}", w.index));
            }
        }
        for i in &st.interfaces {
            if i.pipeline_rx_packets != i.rx_packets {
                p.push(format!(
                    "{}: rx_packets {} but the pipeline processed {}",
                    i.device, i.rx_packets, i.pipeline_rx_packets
                ));
            }
            if i.pipeline_tx_packets != i.tx_packets + i.tx_ring_full {
                p.push(format!(
                    "{}: pipeline sent {} but tx_packets {} + tx_ring_full {}",
                    i.device, i.pipeline_tx_packets, i.tx_packets, i.tx_ring_full
                ));
            }
        }
        let (rx, tx) = self.rx_tx();
        let out = st.forwarded + st.to_host + st.consumed + st.total_drops();
        if rx + st.from_host_packets != out {
            p.push(format!(
                "rx {rx} + from host {} != forwarded {} + to_host {} + consumed {} + drops {}",
                st.from_host_packets,
                st.forwarded,
                st.to_host,
                st.consumed,
                st.total_drops()
            ));
        }
        if tx != st.forwarded + st.generated {
            p.push(format!(
                "tx + tx_ring_full {tx} != forwarded {} + generated {}",
                st.forwarded, st.generated
            ));
        }
        if self.tcp_failed > 0 || self.tcp_verified == 0 {
            p.push(format!(
                "TCP transfers: {} verified, {} failed",
                self.tcp_verified, self.tcp_failed
            ));
        }
        if self.host_failed > 0 || self.host_verified == 0 {
            p.push(format!(
                "host sessions: {} verified, {} failed",
                self.host_verified, self.host_failed
            ));
        }
        if self.udp_sent == 0 || self.udp_received * 100 < self.udp_sent * 95 {
            p.push(format!(
                "UDP stream: {} of {} delivered",
                self.udp_received, self.udp_sent
            ));
        }
        if !self.routerd_ok {
            p.push("routerd did not exit 0".into());
        }
        p
    }

    /// (sum of rx_packets, sum of tx_packets + tx_ring_full) over the ports.
    fn rx_tx(&self) -> (u64, u64) {
        let ifs = &self.stats.interfaces;
        (
            ifs.iter().map(|i| i.rx_packets).sum(),
            ifs.iter().map(|i| i.tx_packets + i.tx_ring_full).sum(),
        )
    }

    /// The numbers, for people.
    pub fn render(&self) -> String {
        let st = &self.stats;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "soak: {:.0} s of load; TCP {} transfers verified ({} MiB), {} failed; UDP stream \
             {}/{} delivered; host sessions {} verified, {} failed; {} short transit UDP \
             flows; {} SYNs to the router (tracked)",
            self.secs,
            self.tcp_verified,
            self.tcp_bytes >> 20,
            self.tcp_failed,
            self.udp_received,
            self.udp_sent,
            self.host_verified,
            self.host_failed,
            self.churn_flows,
            self.syns
        );
        let samples: Vec<String> = self
            .rss
            .iter()
            .map(|r| format!("{:.0}s:{}", r.at, r.kib))
            .collect();
        let _ = writeln!(s, "routerd VmRSS KiB: {}", samples.join(" "));
        if let Some((b, l)) = self.rss_baseline_and_last() {
            let _ = writeln!(
                s,
                "after warm-up ({:.0} s): {} KiB -> {} KiB at the end ({:+} KiB, allowed {} KiB)",
                self.warmup_secs,
                b.kib,
                l.kib,
                l.kib as i64 - b.kib as i64,
                self.rss_slack_kib
            );
        }
        for i in &st.interfaces {
            let _ = writeln!(
                s,
                "{} ({}): rx {} = processed {}; tx {} + tx_ring_full {} = sent by the pipeline \
                 {}; dropped by the kernel before routerd: rx_ring_full {}, other {}",
                i.name,
                i.device,
                i.rx_packets,
                i.pipeline_rx_packets,
                i.tx_packets,
                i.tx_ring_full,
                i.pipeline_tx_packets,
                i.xdp_rx_ring_full,
                i.xdp_rx_dropped
            );
        }
        let (rx, tx) = self.rx_tx();
        let drops: Vec<String> = st.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "rx {rx} + from host {} = forwarded {} + to_host {} + consumed {} + drops {} ({})",
            st.from_host_packets,
            st.forwarded,
            st.to_host,
            st.consumed,
            st.total_drops(),
            drops.join(", ")
        );
        let _ = writeln!(
            s,
            "tx + tx_ring_full {tx} = forwarded {} + generated {}",
            st.forwarded, st.generated
        );
        let _ = writeln!(
            s,
            "tracked {}, untracked {}, conntrack entries at the end {}",
            st.tracked, st.untracked, st.conntrack_entries
        );
        for w in &st.workers {
            let c = &w.census;
            let _ = writeln!(
                s,
                "worker {}: frames {} = free {} + fill {} + rx {} + held {} + tx {} ({})",
                w.index,
                c.total,
                c.free,
                c.fill,
                c.rx,
                c.held,
                c.tx,
                if c.balanced {
                    "balanced"
                } else {
                    "NOT BALANCED"
                }
            );
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(s, "soak passed");
        } else {
            for p in problems {
                let _ = writeln!(s, "FAILED: {p}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::run::stats::{Census, InterfaceStats, WorkerStats};

    fn report() -> SoakReport {
        let mut st = RouterStats {
            forwarded: 90,
            consumed: 2,
            generated: 3,
            ..Default::default()
        };
        st.drops.insert("host_unavailable".into(), 8);
        st.interfaces = vec![
            InterfaceStats {
                rx_packets: 60,
                pipeline_rx_packets: 60,
                tx_packets: 40,
                tx_ring_full: 1,
                pipeline_tx_packets: 41,
                ..Default::default()
            },
            InterfaceStats {
                rx_packets: 40,
                pipeline_rx_packets: 40,
                tx_packets: 52,
                pipeline_tx_packets: 52,
                ..Default::default()
            },
        ];
        st.workers = vec![WorkerStats {
            census: Census {
                total: 8,
                free: 4,
                fill: 4,
                balanced: true,
                ..Default::default()
            },
            ..Default::default()
        }];
        SoakReport {
            warmup_secs: 10.0,
            rss_slack_kib: 1024,
            secs: 30.0,
            rss: vec![
                RssSample { at: 0.0, kib: 1000 },
                RssSample {
                    at: 10.0,
                    kib: 5000,
                },
                RssSample {
                    at: 30.0,
                    kib: 5500,
                },
            ],
            tcp_verified: 3,
            host_verified: 2,
            udp_sent: 100,
            udp_received: 99,
            routerd_ok: true,
            stats: st,
            ..Default::default()
        }
    }

    #[test]
    fn a_balanced_run_passes_and_prints_its_identities() {
        let r = report();
        assert_eq!(r.problems(), Vec::<String>::new());
        let text = r.render();
        assert!(
            text.contains("rx 100 + from host 0 = forwarded 90 + to_host 0 + consumed 2 + drops 8"),
            "{text}"
        );
        assert!(text.contains("5000 KiB -> 5500 KiB"), "{text}");
    }

    #[test]
    fn growth_a_lost_frame_or_an_unbalanced_count_fails() {
        let mut r = report();
        r.rss.push(RssSample {
            at: 40.0,
            kib: 6100,
        });
        r.stats.workers[0].census.held = 1;
        r.stats.forwarded += 1;
        let p = r.problems();
        assert!(p.iter().any(|l| l.contains("memory grew")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("frames lost")), "{p:?}");
        assert!(
            p.iter().any(|l| l.starts_with("rx 100 + from host 0 !=")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|l| l.starts_with("tx + tx_ring_full")),
            "{p:?}"
        );
    }
}
