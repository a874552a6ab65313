//! `routerctl capture`: live packet capture into pcapng.
//!
//! - The wire messages ([`CaptureStart`] and its answer [`CaptureStarted`],
//!   [`CapturePoll`]).
//! - routerd's side, [`CaptureService`]: resolves the interface and the
//!   `--match` (the config's rule match keys, decoded by
//!   [`crate::config::capture_match`]) against the running config, arms
//!   the workers' hub ([`dataplane::capture`]), hands out what the workers
//!   recorded, with the drop reason and stage in words. One capture runs
//!   at a time: another `capture_start` is refused with one line while it
//!   runs (a live trace may run beside it). It ends by itself at its count,
//!   its byte budget or its duration, and within
//!   [`dataplane::capture::CAPTURE_WATCHDOG_NS`] when its client stops
//!   polling (a killed routerctl).
//! - routerctl's side, [`run`]: the poll loop that writes the file
//!   ([`super::pcapng`]), created by routerctl itself with mode 0600 (so it
//!   belongs to the caller; routerd creates no file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::capture::{
    unix_now_ns, CaptureBusy, CaptureDir, CaptureRecord, CaptureRequest, CaptureSession,
    CAPTURE_WATCHDOG_NS, MAX_CAPTURE_COUNT,
};
use dataplane::packet::PortId;
use dataplane::rules::FilterAction;
use dataplane::tables::Tables;
use dataplane::trace_capture::TraceHub;
use serde::{Deserialize, Serialize};

use super::client::Client;
use super::pcapng::{FileInterface, FilePacket, PcapngOut, EPB_INBOUND, EPB_OUTBOUND};
use super::proto::Request;
use super::CtlError;

/// Largest snap length (tcpdump's default).
pub use crate::cli::MAX_SNAPLEN;
/// Longest capture.
pub const MAX_DURATION_SECS: u64 = 24 * 3600;
/// Most records one poll answer carries.
const MAX_POLL_RECORDS: usize = 512;
/// Most frame bytes one poll answer carries (twice that in hex).
const MAX_POLL_BYTES: usize = 1 << 20;
/// After a session ended, how long polls still wait for records a worker
/// claimed just before the end.
const END_GRACE: Duration = Duration::from_millis(100);

/// Arm a capture (`routerctl capture ...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStart {
    /// An interface (its config name or its device), `host`, or `any` /
    /// `None`: every port and the host path.
    #[serde(default)]
    pub interface: Option<String>,
    /// Frames as received. With none of `rx`, `tx`, `drops`: all three.
    #[serde(default)]
    pub rx: bool,
    /// Frames as sent.
    #[serde(default)]
    pub tx: bool,
    /// Dropped frames, with the reason.
    #[serde(default)]
    pub drops: bool,
    /// Rule match keys as a YAML/JSON flow mapping
    /// (`{protocol: tcp, destination_port: 22}`).
    #[serde(default)]
    pub matcher: Option<String>,
    /// Most packets.
    pub count: u32,
    /// Most bytes captured (the frames' kept bytes).
    pub bytes: u64,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Longest time it runs, in seconds.
    pub duration_secs: u64,
}

/// An interface of the capture, in the order of the file's interface
/// blocks (ports in config order, then the host path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInterface {
    /// The config's name (`wan`), `host` for the host path.
    pub name: String,
    /// Its kernel device (`r0`; the TUN for the host path).
    pub device: String,
}

/// The answer to [`CaptureStart`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    /// The capture's id, for polls and stop.
    pub id: u64,
    /// The file's interfaces.
    pub interfaces: Vec<CaptureInterface>,
    /// The interfaces captured (indexes into `interfaces`).
    pub captured: Vec<u32>,
    /// What it captures, in words (`rx, tx, drops`).
    pub what: String,
}

/// One captured frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// Index into [`CaptureStarted::interfaces`].
    pub interface: u32,
    /// `in` (received, or received and dropped) or `out` (sent).
    pub direction: String,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's length.
    pub orig_len: u32,
    /// The bytes kept, in hex.
    pub data: String,
    /// For a dropped frame: `drop: REASON (stage STAGE...)`.
    pub comment: Option<String>,
}

/// The answer to a capture poll.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturePoll {
    /// Frames since the last poll.
    pub packets: Vec<CapturedPacket>,
    /// Packets the capture still takes.
    pub remaining: u32,
    /// Frames lost to a full queue (the client polled too slowly).
    pub lost: u64,
    /// The capture ended (count, bytes, duration or stop) and everything
    /// it recorded has been handed out.
    pub done: bool,
    /// The answer was full: more records wait.
    #[serde(default)]
    pub more: bool,
}

/// The drop reason of a recorded frame in words:
/// `drop: filter_denied (stage filter, chain input, rule 3: no ssh)`.
pub fn drop_comment(r: &CaptureRecord, t: &Tables) -> Option<String> {
    let d = r.drop?;
    let name = d.name();
    // Reason names are `<stage>_<reason>` (dataplane::drop).
    let stage = name.split('_').next().unwrap_or(name);
    let mut s = format!("drop: {name} (stage {stage}");
    if let Some((chain, rule)) = r.filter {
        s.push_str(&format!(", chain {}", chain.name()));
        let c = &t.filter[chain as usize];
        match rule {
            Some(i) => {
                s.push_str(&format!(", rule {}", i + 1));
                if let Some(text) = c.rules.get(i).and_then(|r| r.comment.as_deref()) {
                    s.push_str(&format!(": {text}"));
                }
            }
            None => s.push_str(&format!(
                ", policy {}",
                match c.policy {
                    FilterAction::Accept => "accept",
                    _ => "drop",
                }
            )),
        }
    }
    s.push(')');
    if r.answered {
        s.push_str(", answered by the router");
    }
    Some(s)
}

/// The armed capture, as the control side follows it.
struct Active {
    session: Arc<CaptureSession>,
    /// Its end (Unix ns).
    deadline_ns: u64,
    last_poll: Instant,
    ended_seen: Option<Instant>,
    ports: usize,
}

/// routerd's side of captures: owns nothing but what it shares with the
/// workers (their trace hub).
#[derive(Clone)]
pub struct CaptureService {
    hub: Arc<TraceHub>,
    active: Arc<Mutex<Option<Active>>>,
}

impl CaptureService {
    /// A service over the workers' hub.
    pub fn new(hub: Arc<TraceHub>) -> CaptureService {
        CaptureService {
            hub,
            active: Arc::new(Mutex::new(None)),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Option<Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arm a capture over the running tables; `host_device`: the host
    /// path's TUN, if routerd runs one.
    pub fn start(
        &self,
        tables: &Tables,
        host_device: Option<&str>,
        req: &CaptureStart,
    ) -> Result<CaptureStarted, String> {
        let (request, interfaces, captured, what) = to_request(tables, host_device, req)?;
        let now = unix_now_ns();
        let deadline_ns = now.saturating_add(req.duration_secs.saturating_mul(1_000_000_000));
        let mut active = self.active();
        let take_over = active.as_ref().is_some_and(|a| {
            a.last_poll.elapsed() > Duration::from_nanos(CAPTURE_WATCHDOG_NS) || a.session.ended()
        });
        let session = self
            .hub
            .arm_capture(
                request,
                req.count,
                req.bytes,
                deadline_ns.min(now + CAPTURE_WATCHDOG_NS),
                take_over,
            )
            .map_err(|CaptureBusy::Running { id }| {
                format!(
                    "a capture is already running (capture {id}, another routerctl capture): one \
                     runs at a time; wait for it to end (at most its --duration) or stop it \
                     with Ctrl-C"
                )
            })?;
        tracing::info!(
            id = session.id(),
            interface = req.interface.as_deref().unwrap_or("any"),
            matcher = req.matcher.as_deref().unwrap_or(""),
            count = req.count,
            "capture armed: {what}"
        );
        let id = session.id();
        *active = Some(Active {
            session,
            deadline_ns,
            last_poll: Instant::now(),
            ended_seen: None,
            ports: tables.interfaces.len(),
        });
        Ok(CaptureStarted {
            id,
            interfaces,
            captured,
            what,
        })
    }

    /// What the workers recorded since the last poll.
    pub fn poll(&self, tables: &Tables, id: u64) -> Result<CapturePoll, String> {
        let mut guard = self.active();
        let a = match guard.as_mut() {
            Some(a) if a.session.id() == id => a,
            _ => {
                return Err(format!(
                    "capture {id} is not running here (another capture replaced it, or routerd \
                     restarted)"
                ))
            }
        };
        let now = unix_now_ns();
        a.last_poll = Instant::now();
        if now >= a.deadline_ns {
            self.hub.end_capture(&a.session);
        } else {
            a.session
                .set_expiry(a.deadline_ns.min(now + CAPTURE_WATCHDOG_NS));
        }
        let ended = a.session.ended();
        if ended && a.ended_seen.is_none() {
            a.ended_seen = Some(Instant::now());
        }
        let mut packets = Vec::new();
        let mut bytes = 0;
        while packets.len() < MAX_POLL_RECORDS && bytes < MAX_POLL_BYTES {
            let Some(r) = a.session.pop() else { break };
            bytes += r.data.len();
            let interface = if r.port.is_host() {
                a.ports as u32
            } else {
                u32::from(r.port.0)
            };
            packets.push(CapturedPacket {
                interface,
                direction: match r.dir {
                    CaptureDir::Sent => "out",
                    CaptureDir::Received | CaptureDir::Dropped => "in",
                }
                .into(),
                ts_ns: r.ts_ns,
                orig_len: r.orig_len,
                comment: drop_comment(&r, tables),
                data: hex::encode(&r.data),
            });
        }
        let done = packets.is_empty() && a.ended_seen.is_some_and(|t| t.elapsed() >= END_GRACE);
        let more = packets.len() >= MAX_POLL_RECORDS || bytes >= MAX_POLL_BYTES;
        Ok(CapturePoll {
            packets,
            remaining: a.session.remaining(),
            lost: a.session.lost(),
            done,
            more,
        })
    }

    /// Stop a capture (what it recorded can still be polled).
    pub fn stop(&self, id: u64) {
        if let Some(a) = self.active().as_ref().filter(|a| a.session.id() == id) {
            self.hub.end_capture(&a.session);
            tracing::info!(id, "capture stopped");
        }
    }
}

/// The dataplane request, the file's interfaces, those captured and what
/// is captured in words.
fn to_request(
    tables: &Tables,
    host_device: Option<&str>,
    req: &CaptureStart,
) -> Result<(CaptureRequest, Vec<CaptureInterface>, Vec<u32>, String), String> {
    if req.count == 0 || req.count > MAX_CAPTURE_COUNT {
        return Err(format!(
            "--count {}: expected 1 to {MAX_CAPTURE_COUNT}",
            req.count
        ));
    }
    if req.snaplen == 0 || req.snaplen > MAX_SNAPLEN {
        return Err(format!(
            "--snaplen {}: expected 1 to {MAX_SNAPLEN}",
            req.snaplen
        ));
    }
    if req.bytes == 0 {
        return Err("--bytes 0: expected at least 1".into());
    }
    if req.duration_secs == 0 || req.duration_secs > MAX_DURATION_SECS {
        return Err(format!(
            "--duration {}: expected 1 to {MAX_DURATION_SECS} seconds",
            req.duration_secs
        ));
    }
    let mut interfaces: Vec<CaptureInterface> = tables
        .interfaces
        .iter()
        .map(|i| CaptureInterface {
            name: i.name.clone(),
            device: i.device.clone(),
        })
        .collect();
    if let Some(tun) = host_device {
        interfaces.push(CaptureInterface {
            name: "host".into(),
            device: tun.into(),
        });
    }
    let n = tables.interfaces.len();
    let port_of = |idx: usize| {
        if idx < n {
            PortId(idx as u8)
        } else {
            PortId::HOST
        }
    };
    let captured: Vec<u32> = match req.interface.as_deref() {
        None | Some("any") => (0..interfaces.len() as u32).collect(),
        Some(name) => match interfaces
            .iter()
            .position(|i| i.name == name || i.device == name)
        {
            Some(i) => vec![i as u32],
            None => {
                let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
                return Err(format!(
                    "--interface {name}: not an interface of the running config, expected {} \
                     or any",
                    names.join(", ")
                ));
            }
        },
    };
    let ports = captured
        .iter()
        .fold(0u64, |m, &i| m | port_of(i as usize).bit());
    let matcher =
        crate::config::capture_match(req.matcher.as_deref().unwrap_or(""), &tables.interfaces)
            .map_err(|e| e.to_string())?;
    let all = !(req.rx || req.tx || req.drops);
    let (rx, tx, drops) = (req.rx || all, req.tx || all, req.drops || all);
    let what = [(rx, "rx"), (tx, "tx"), (drops, "drops")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(", ");
    Ok((
        CaptureRequest {
            ports,
            rx,
            tx,
            drops,
            matcher,
            snaplen: req.snaplen,
        },
        interfaces,
        captured,
        what,
    ))
}

/// Where the file goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`-w -`).
    Stdout,
    /// A file, created (or truncated) with mode 0600.
    File(PathBuf),
}

/// What a finished capture wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    pub received: u64,
    pub sent: u64,
    pub dropped: u64,
    pub lost: u64,
    /// The reader of standard output went away (`| tcpdump -c N`).
    pub reader_gone: bool,
    /// Stopped by a signal (Ctrl-C).
    pub interrupted: bool,
}

impl CaptureSummary {
    /// Frames written.
    pub fn packets(&self) -> u64 {
        self.received + self.sent + self.dropped
    }
}

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The control socket.
    #[error(transparent)]
    Ctl(#[from] CtlError),
    /// The output.
    #[error("{0}")]
    Output(String),
}

/// Creates the capture file: owned by the caller, mode 0600 even when it
/// existed (tcpdump's `-w` truncates too).
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Poll interval of the client.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// `routerctl capture`: arm, poll and write until the capture ends (its
/// count, bytes or duration), `stop` is set (Ctrl-C), or the reader of
/// standard output goes away. Progress lines go to `log`.
pub fn run(
    socket: &Path,
    start: CaptureStart,
    output: &Output,
    stop: &AtomicBool,
    log: &mut dyn Write,
) -> Result<CaptureSummary, CaptureError> {
    let mut c = Client::connect(socket)?;
    let started: CaptureStarted = c.call(Request::CaptureStart(start.clone()))?;
    let id = started.id;
    let out: Box<dyn Write> = match output {
        Output::Stdout => Box::new(std::io::stdout().lock()),
        Output::File(p) => match create_file(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                let _ = c.call_value(Request::CaptureStop { id });
                return Err(CaptureError::Output(format!(
                    "cannot create {}: {}",
                    p.display(),
                    super::io_reason(&e)
                )));
            }
        },
    };
    let file_ifs: Vec<FileInterface> = started
        .interfaces
        .iter()
        .map(|i| FileInterface {
            name: i.name.clone(),
            description: if i.name == "host" {
                format!("afxdp-router host path (TUN {})", i.device)
            } else {
                format!("afxdp-router port {} (device {})", i.name, i.device)
            },
        })
        .collect();
    let app = format!(
        "routerctl capture (afxdp-router {})",
        env!("CARGO_PKG_VERSION")
    );
    let where_to = match output {
        Output::Stdout => "standard output".to_string(),
        Output::File(p) => p.display().to_string(),
    };
    let mut summary = CaptureSummary::default();
    let mut w = match PcapngOut::new(out, &file_ifs, start.snaplen, &app) {
        Ok(w) => w,
        Err(e) => return finish_broken(&mut c, id, &where_to, Broken::Pcap(e), summary),
    };
    if let Err(e) = w.flush() {
        return finish_broken(&mut c, id, &where_to, Broken::Io(e), summary);
    }
    let names: Vec<String> = started
        .captured
        .iter()
        .filter_map(|&i| started.interfaces.get(i as usize))
        .map(|i| format!("{} ({})", i.name, i.device))
        .collect();
    let _ = writeln!(
        log,
        "routerctl: capturing {} on {}, up to {} packets or {} s, to {where_to}",
        started.what,
        names.join(", "),
        start.count,
        start.duration_secs
    );
    let began = Instant::now();
    let mut stopped = false;
    loop {
        if !stopped
            && (stop.load(Ordering::Relaxed)
                || began.elapsed() >= Duration::from_secs(start.duration_secs))
        {
            summary.interrupted = stop.load(Ordering::Relaxed);
            c.call_value(Request::CaptureStop { id })?;
            stopped = true;
        }
        let p: CapturePoll = c.call(Request::CapturePoll { id })?;
        summary.lost = p.lost;
        for pkt in &p.packets {
            let data = hex::decode(&pkt.data)
                .map_err(|e| CtlError::Protocol(format!("captured bytes: {e}")))?;
            let flags = if pkt.direction == "out" {
                EPB_OUTBOUND
            } else {
                EPB_INBOUND
            };
            let fp = FilePacket {
                interface: pkt.interface,
                ts_ns: pkt.ts_ns,
                flags,
                orig_len: pkt.orig_len,
                data: &data,
                comment: pkt.comment.as_deref(),
            };
            if let Err(e) = w.packet(&fp) {
                return finish_broken(&mut c, id, &where_to, Broken::Pcap(e), summary);
            }
            match (pkt.direction.as_str(), &pkt.comment) {
                ("out", _) => summary.sent += 1,
                (_, Some(_)) => summary.dropped += 1,
                _ => summary.received += 1,
            }
        }
        if !p.packets.is_empty() {
            if let Err(e) = w.flush() {
                return finish_broken(&mut c, id, &where_to, Broken::Io(e), summary);
            }
        }
        if p.done {
            break;
        }
        // A full answer: more wait, poll again at once.
        if p.packets.len() < MAX_POLL_RECORDS && !p.more {
            std::thread::sleep(POLL_EVERY);
        }
    }
    let mut inner = w.into_inner();
    if let Err(e) = inner.flush() {
        return Err(CaptureError::Output(format!(
            "cannot write {where_to}: {}",
            super::io_reason(&e)
        )));
    }
    Ok(summary)
}

/// A failed write of the file.
enum Broken {
    Io(std::io::Error),
    Pcap(pcap_file::PcapError),
}

/// The output failed: stop the capture; a reader of standard output that
/// went away ends it quietly (`| tcpdump -c 5`), anything else is an error.
fn finish_broken(
    c: &mut Client,
    id: u64,
    where_to: &str,
    why: Broken,
    mut summary: CaptureSummary,
) -> Result<CaptureSummary, CaptureError> {
    let _ = c.call_value(Request::CaptureStop { id });
    let reason = match why {
        Broken::Io(e) | Broken::Pcap(pcap_file::PcapError::IoError(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            summary.reader_gone = true;
            return Ok(summary);
        }
        Broken::Io(e) => super::io_reason(&e),
        Broken::Pcap(e) => e.to_string(),
    };
    Err(CaptureError::Output(format!(
        "cannot write {where_to}: {reason}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::addr::{IfAddr, Ipv4Prefix, Mac};
    use dataplane::drop::DropReason;
    use dataplane::rules::{Chain, ChainId, FilterRule, Match};
    use dataplane::tables::{Interface, TablesSpec};

    fn tables() -> Tables {
        let ifc = |name: &str, dev: &str, a: [u8; 4]| Interface {
            name: name.into(),
            device: dev.into(),
            mac: Mac::ZERO,
            addresses: vec![IfAddr {
                addr: u32::from_be_bytes(a),
                net: Ipv4Prefix::new(u32::from_be_bytes(a), 24).expect("prefix"),
            }],
            addresses6: Vec::new(),
            mtu: 1500,
            ra: None,
        };
        Tables::build(TablesSpec {
            interfaces: vec![
                ifc("wan", "r0", [198, 18, 0, 1]),
                ifc("lan", "r1", [198, 19, 0, 1]),
            ],
            filter_input: Chain {
                policy: FilterAction::Drop,
                rules: vec![FilterRule {
                    matches: Match::default(),
                    action: FilterAction::Drop,
                    comment: Some("no ssh".into()),
                }],
            },
            ..Default::default()
        })
    }

    fn start(matcher: &str) -> CaptureStart {
        CaptureStart {
            interface: None,
            rx: false,
            tx: false,
            drops: false,
            matcher: Some(matcher.into()),
            count: 10,
            bytes: 1 << 20,
            snaplen: 65535,
            duration_secs: 60,
        }
    }

    #[test]
    fn a_match_uses_the_rule_keys_and_a_bad_one_says_where() {
        let t = tables();
        let (r, ifs, captured, what) = to_request(
            &t,
            Some("rtr0"),
            &start("{protocol: tcp, destination_port: 22, in: wan, out: host}"),
        )
        .expect("valid");
        assert_eq!(r.matcher.protocol, Some(6));
        assert_eq!(r.matcher.destination_port.as_deref(), Some(&[(22, 22)][..]));
        assert_eq!(r.matcher.in_ports, Some(PortId(0).bit()));
        assert_eq!(r.matcher.out_ports, Some(PortId::HOST.bit()));
        assert_eq!(r.matcher.need, r.matcher.compute_need());
        assert_eq!((r.rx, r.tx, r.drops), (true, true, true));
        assert_eq!(what, "rx, tx, drops");
        let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["wan", "lan", "host"]);
        assert_eq!(captured, [0, 1, 2]);
        assert_eq!(
            r.ports,
            PortId(0).bit() | PortId(1).bit() | PortId::HOST.bit()
        );
        // JSON is YAML too.
        let (j, ..) = to_request(
            &t,
            None,
            &start(
                r#"{"source": "198.18.0.0/24", "protocol": "icmp", "icmp_type": "echo-request"}"#,
            ),
        )
        .expect("valid JSON");
        assert_eq!(j.matcher.icmp_type, Some(8));
        // IPv6 as the rules take it.
        let (r6, ..) = to_request(
            &t,
            None,
            &start("{destination: 2001:db8:5::/48, protocol: icmpv6, icmpv6_type: echo-request}"),
        )
        .expect("valid IPv6 match");
        assert_eq!(
            r6.matcher.destination6.as_deref(),
            Some(&["2001:db8:5::/48".parse().unwrap()][..])
        );
        assert_eq!(
            (r6.matcher.protocol, r6.matcher.icmp_type),
            (Some(58), Some(128))
        );

        let err = |m: &str| to_request(&t, None, &start(m)).unwrap_err();
        assert_eq!(
            err("{protocol: tcp, destinaton_port: 22}"),
            "--match:1:17: match.destinaton_port: unknown key, did you mean destination_port?"
        );
        assert!(
            err("{destination_port: 22}").contains("needs protocol: tcp or protocol: udp"),
            "{}",
            err("{destination_port: 22}")
        );
        assert!(err("{state: [new]}").contains("state cannot be matched in a capture"));
        assert!(err("{in: dmz}").contains("\"dmz\" is not an interface"));
        assert!(err("tcp").contains("not a mapping, expected match keys"));
        assert!(err("{protocol: tcp").starts_with("--match:"));
    }

    #[test]
    fn the_interface_and_the_bounds_are_checked() {
        let t = tables();
        let mut s = start("");
        s.interface = Some("r1".into());
        s.drops = true;
        let (r, _, captured, what) = to_request(&t, Some("rtr0"), &s).expect("valid");
        assert_eq!((captured, r.ports), (vec![1], PortId(1).bit()));
        assert_eq!(
            (r.rx, r.tx, r.drops, what.as_str()),
            (false, false, true, "drops")
        );
        s.interface = Some("host".into());
        assert!(to_request(&t, None, &s).unwrap_err().starts_with(
            "--interface host: not an interface of the running config, expected wan, lan or any"
        ));
        s.interface = None;
        s.count = 0;
        assert_eq!(
            to_request(&t, None, &s).unwrap_err(),
            format!("--count 0: expected 1 to {MAX_CAPTURE_COUNT}")
        );
        s.count = 1;
        s.duration_secs = 0;
        assert!(to_request(&t, None, &s)
            .unwrap_err()
            .starts_with("--duration 0"));
    }

    #[test]
    fn a_drop_comment_names_reason_stage_chain_and_rule() {
        let t = tables();
        let rec = |drop, filter, answered| CaptureRecord {
            port: PortId(0),
            dir: CaptureDir::Dropped,
            ts_ns: 1,
            orig_len: 60,
            data: vec![],
            drop,
            filter,
            answered,
            worker: 0,
        };
        let c = |r: CaptureRecord| drop_comment(&r, &t);
        assert_eq!(
            c(rec(
                Some(DropReason::FilterDenied),
                Some((ChainId::Input, Some(0))),
                false
            ))
            .as_deref(),
            Some("drop: filter_denied (stage filter, chain input, rule 1: no ssh)")
        );
        assert_eq!(
            c(rec(
                Some(DropReason::FilterPolicy),
                Some((ChainId::Input, None)),
                false
            ))
            .as_deref(),
            Some("drop: filter_policy (stage filter, chain input, policy drop)")
        );
        assert_eq!(
            c(rec(Some(DropReason::IpBadChecksum), None, false)).as_deref(),
            Some("drop: ip_bad_checksum (stage ip)")
        );
        assert_eq!(
            c(rec(Some(DropReason::NeighbourUnresolved), None, true)).as_deref(),
            Some("drop: neighbour_unresolved (stage neighbour), answered by the router")
        );
        assert_eq!(c(rec(None, None, false)), None);
    }

    #[test]
    fn the_service_refuses_a_second_capture_and_hands_out_records() {
        let t = tables();
        let hub = Arc::new(TraceHub::new());
        let svc = CaptureService::new(Arc::clone(&hub));
        let a = svc.start(&t, None, &start("")).expect("first");
        let e = svc.start(&t, None, &start("")).unwrap_err();
        assert!(e.starts_with("a capture is already running"), "{e}");
        let p = svc.poll(&t, a.id).expect("poll");
        assert!(p.packets.is_empty() && !p.done && p.remaining == 10);
        assert!(svc.poll(&t, a.id + 1).is_err());
        svc.stop(a.id);
        assert!(!hub.any_armed());
        std::thread::sleep(END_GRACE);
        let _ = svc.poll(&t, a.id).expect("poll");
        std::thread::sleep(END_GRACE);
        assert!(svc.poll(&t, a.id).expect("poll").done);
        // Once it ended, a new one may start.
        let b = svc.start(&t, None, &start("")).expect("second");
        assert!(b.id > a.id);
    }
}
