//! Prometheus text exposition (format 0.0.4) of [`StatsSnapshot`], and a
//! tiny HTTP listener that serves it on `GET /metrics`.
//!
//! Names follow the Prometheus conventions: prefix `afxdp_router_`, base
//! units, `_total` on counters, labels for dimensions
//! (`afxdp_router_rx_packets_total{interface="wan"}`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::api::{ControlHandler, StatsSnapshot};
use super::{io_reason, CtlError};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escape a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP afxdp_router_{name} {help}");
        let _ = writeln!(self.out, "# TYPE afxdp_router_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let _ = write!(self.out, "afxdp_router_{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// The exposition text of a snapshot.
pub fn render(s: &StatsSnapshot) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };

    type IfField = fn(&super::api::InterfaceStats) -> u64;
    let per_if: [(&str, &str, IfField); 6] = [
        ("rx_packets_total", "Frames received on an interface.", |i| i.rx_packets),
        ("rx_bytes_total", "Bytes received on an interface.", |i| i.rx_bytes),
        ("tx_packets_total", "Frames sent on an interface.", |i| i.tx_packets),
        ("tx_bytes_total", "Bytes sent on an interface.", |i| i.tx_bytes),
        (
            "rx_dropped_total",
            "Frames the kernel dropped before the router saw them (AF_XDP rx_dropped and rx_ring_full).",
            |i| i.rx_dropped,
        ),
        (
            "tx_dropped_total",
            "Frames not sent (TX ring full or bad frame).",
            |i| i.tx_dropped,
        ),
    ];
    for (name, help, get) in per_if {
        f.head(name, "counter", help);
        for (n, i) in &s.interfaces {
            f.sample(name, &[("interface", n)], get(i));
        }
    }

    f.head("drops_total", "counter", "Packets dropped, by reason.");
    for (r, n) in &s.drops {
        f.sample("drops_total", &[("reason", r)], n);
    }

    for (name, help, bytes) in [
        (
            "rule_packets_total",
            "Packets that matched a rule (position empty: the chain policy).",
            false,
        ),
        (
            "rule_bytes_total",
            "Bytes of packets that matched a rule (position empty: the chain policy).",
            true,
        ),
    ] {
        f.head(name, "counter", help);
        for r in &s.rules {
            let pos = r.position.map(|p| p.to_string()).unwrap_or_default();
            let comment = r.comment.clone().unwrap_or_default();
            f.sample(
                name,
                &[
                    ("table", &r.table),
                    ("chain", &r.chain),
                    ("position", &pos),
                    ("action", &r.action),
                    ("comment", &comment),
                ],
                if bytes { r.bytes } else { r.packets },
            );
        }
    }

    let c = &s.conntrack;
    f.head(
        "conntrack_entries",
        "gauge",
        "Flows in the connection tables.",
    );
    f.sample("conntrack_entries", &[], c.entries);
    f.head(
        "conntrack_max_entries",
        "gauge",
        "Flows the connection tables may hold.",
    );
    f.sample("conntrack_max_entries", &[], c.max_entries);
    f.head("conntrack_flows", "gauge", "Flows by protocol or state.");
    for (p, n) in &c.by_protocol {
        f.sample("conntrack_flows", &[("protocol", p)], n);
    }
    for (st, n) in &c.by_state {
        f.sample("conntrack_flows", &[("state", st)], n);
    }
    for (name, help, v) in [
        (
            "tracked_packets_total",
            "IP packets that went through connection tracking.",
            c.tracked_packets,
        ),
        (
            "untracked_packets_total",
            "IP packets marked NOTRACK in the raw stage.",
            c.untracked_packets,
        ),
        ("conntrack_inserted_total", "Flows inserted.", c.inserted),
        ("conntrack_expired_total", "Flows expired.", c.expired),
        (
            "conntrack_early_dropped_total",
            "Flows evicted to make room.",
            c.early_dropped,
        ),
        (
            "conntrack_table_full_total",
            "New flows refused because the table was full.",
            c.table_full,
        ),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }

    if !s.workers.is_empty() {
        f.head("worker_loops_total", "counter", "Worker loop iterations.");
        for w in &s.workers {
            let (id, core) = (w.worker.to_string(), w.core.to_string());
            f.sample(
                "worker_loops_total",
                &[("worker", &id), ("core", &core)],
                w.loops,
            );
        }
        f.head(
            "worker_busy_loops_total",
            "counter",
            "Worker loop iterations that found work.",
        );
        for w in &s.workers {
            let (id, core) = (w.worker.to_string(), w.core.to_string());
            f.sample(
                "worker_busy_loops_total",
                &[("worker", &id), ("core", &core)],
                w.busy_loops,
            );
        }
        type WorkerField = fn(&super::api::WorkerStats) -> u64;
        let per_worker: [(&str, &str, &str, WorkerField); 5] = [
            (
                "worker_rx_packets_total",
                "counter",
                "Packets a worker's pipeline took (a handed-over packet counts at its owner).",
                |w| w.rx_packets,
            ),
            (
                "worker_handed_off_total",
                "counter",
                "Tracked packets a worker handed to the worker owning their flow.",
                |w| w.handed_off,
            ),
            (
                "worker_handed_in_total",
                "counter",
                "Packets other workers handed to a worker.",
                |w| w.handed_in,
            ),
            (
                "worker_handoff_full_total",
                "counter",
                "Hand-offs dropped because the owner's queue was full.",
                |w| w.handoff_full,
            ),
            (
                "worker_conntrack_entries",
                "gauge",
                "Entries in a worker's connection table (the flows it owns).",
                |w| w.conntrack_entries,
            ),
        ];
        for (name, kind, help, get) in per_worker {
            f.head(name, kind, help);
            for w in &s.workers {
                let (id, core) = (w.worker.to_string(), w.core.to_string());
                f.sample(name, &[("worker", &id), ("core", &core)], get(w));
            }
        }
    }

    let rt = &s.runtime;
    if !rt.workers.is_empty() {
        // The same core label as the other worker families (0: not pinned).
        let labels =
            |w: &super::api::WorkerRuntime| (w.worker.to_string(), w.core.unwrap_or(0).to_string());
        f.head(
            "tsc_hz",
            "gauge",
            "Rate of the counter the worker cycles are read from (the TSC), per second.",
        );
        f.sample("tsc_hz", &[], rt.tsc_hz);
        f.head(
            "worker_cycles_total",
            "counter",
            "Worker loop cycles by phase (rx, pipeline, tx, host, handoff, housekeeping, idle); \
             the phases add up to the loop time.",
        );
        for w in &rt.workers {
            let (id, core) = labels(w);
            for (phase, c) in w.counts.cycles.phases() {
                f.sample(
                    "worker_cycles_total",
                    &[("worker", &id), ("core", &core), ("phase", phase)],
                    c,
                );
            }
        }
        f.head(
            "worker_runtime_packets_total",
            "counter",
            "Packets a worker ran through its pipeline, the packets of worker_cycles_total \
             (a handed-over packet counts at both workers).",
        );
        for w in &rt.workers {
            let (id, core) = labels(w);
            f.sample(
                "worker_runtime_packets_total",
                &[("worker", &id), ("core", &core)],
                w.counts.packets,
            );
        }
    }

    type RingField = fn(&super::api::RingStats) -> u64;
    let rings: [(&str, &str, RingField); 6] = [
        (
            "xdp_fill_ring_empty_total",
            "Times the kernel found the AF_XDP fill ring empty.",
            |r| r.fill_ring_empty,
        ),
        (
            "xdp_tx_ring_full_total",
            "Frames that found the AF_XDP TX ring full.",
            |r| r.tx_ring_full,
        ),
        (
            "xdp_rx_dropped_total",
            "Frames the kernel dropped on the AF_XDP socket (XDP_STATISTICS rx_dropped).",
            |r| r.rx_dropped,
        ),
        (
            "xdp_rx_ring_full_total",
            "Frames the kernel dropped because the AF_XDP RX ring was full.",
            |r| r.rx_ring_full,
        ),
        (
            "xdp_rx_invalid_descs_total",
            "Invalid descriptors in the AF_XDP fill ring.",
            |r| r.rx_invalid_descs,
        ),
        (
            "xdp_tx_invalid_descs_total",
            "Invalid descriptors in the AF_XDP TX ring.",
            |r| r.tx_invalid_descs,
        ),
    ];
    if !s.afxdp.is_empty() {
        for (name, help, get) in rings {
            f.head(name, "counter", help);
            for (n, r) in &s.afxdp {
                f.sample(name, &[("interface", n)], get(r));
            }
        }
    }

    let p = &s.path;
    for (name, help, v) in [
        (
            "forwarded_packets_total",
            "Frames forwarded out of a port.",
            p.forwarded,
        ),
        (
            "host_packets_total",
            "Packets delivered to the host path.",
            p.to_host,
        ),
        (
            "icmp_errors_sent_total",
            "ICMP errors sent.",
            p.icmp_errors_sent,
        ),
        (
            "icmp_errors_rate_limited_total",
            "ICMP errors not sent because of the rate limit.",
            p.icmp_errors_rate_limited,
        ),
        (
            "tcp_resets_sent_total",
            "TCP resets sent for reject rules.",
            p.tcp_resets_sent,
        ),
        (
            "arp_requests_sent_total",
            "ARP requests sent to resolve next hops.",
            p.arp_requests_sent,
        ),
        (
            "arp_replies_sent_total",
            "ARP requests for the router's addresses answered.",
            p.arp_replies_sent,
        ),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }

    f.head(
        "packets_total",
        "counter",
        "Packets by family (ipv4 is the total less ipv6, ARP and other frames included) and outcome.",
    );
    for (family, fs) in [("ipv4", &s.ipv4), ("ipv6", &s.ipv6)] {
        for (what, v) in [
            ("rx", fs.rx),
            ("forwarded", fs.forwarded),
            ("to_host", fs.to_host),
            ("dropped", fs.dropped),
        ] {
            f.sample("packets_total", &[("family", family), ("what", what)], v);
        }
    }
    let n = &s.ndp;
    for (name, help, v) in [
        (
            "nd_solicits_received_total",
            "Neighbour solicitations for the router's addresses received.",
            n.solicits_received,
        ),
        (
            "nd_adverts_sent_total",
            "Neighbour advertisements sent.",
            n.adverts_sent,
        ),
        (
            "nd_adverts_received_total",
            "Neighbour advertisements received.",
            n.adverts_received,
        ),
        (
            "nd_solicits_sent_total",
            "Neighbour solicitations sent to resolve or probe next hops.",
            n.solicits_sent,
        ),
        (
            "nd_resolution_failures_total",
            "IPv6 next hops that did not answer three solicitations.",
            n.resolution_failures,
        ),
        ("ra_sent_total", "Router advertisements sent.", n.ra_sent),
        (
            "rs_received_total",
            "Router solicitations received.",
            n.rs_received,
        ),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }

    let r = &s.routes;
    f.head(
        "routes",
        "gauge",
        "Routes in use, by source (connected, local, static, kernel).",
    );
    for (src, n) in &r.by_source {
        f.sample("routes", &[("source", src)], n);
    }
    if !r.kernel_skipped.is_empty() {
        f.head(
            "kernel_routes_skipped",
            "gauge",
            "Kernel routes not in the dataplane, by reason (routerctl route show says which).",
        );
        for (reason, n) in &r.kernel_skipped {
            f.sample("kernel_routes_skipped", &[("reason", reason)], n);
        }
        f.head(
            "kernel_routes_resyncs_total",
            "counter",
            "Full resyncs of the kernel route feed after lost notifications (ENOBUFS).",
        );
        f.sample("kernel_routes_resyncs_total", &[], r.kernel_resyncs);
        f.head(
            "kernel_routes_messages_total",
            "counter",
            "Route and nexthop messages the kernel route feed applied.",
        );
        f.sample("kernel_routes_messages_total", &[], r.kernel_messages);
    }
    out
}

/// A running metrics listener; dropping it stops it.
pub struct MetricsHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHandle {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(t) = self.thread.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = t.join();
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serve `GET /metrics` on `addr` from the handler's stats, one scrape at a
/// time, in a background thread.
pub fn serve(
    addr: SocketAddr,
    handler: Arc<dyn ControlHandler>,
) -> Result<MetricsHandle, CtlError> {
    let listen_err = |e: std::io::Error| CtlError::Listen {
        what: format!("metrics address {addr}"),
        reason: io_reason(&e),
    };
    let listener = TcpListener::bind(addr).map_err(listen_err)?;
    let local = listener.local_addr().map_err(listen_err)?;
    tracing::info!(address = %local, "metrics listening");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    if let Err(e) = answer(s, &*handler) {
                        tracing::debug!(error = %e, "metrics scrape failed");
                    }
                }
            }
        })
        .map_err(listen_err)?;
    Ok(MetricsHandle {
        addr: local,
        stop,
        thread: Some(thread),
    })
}

fn answer(stream: TcpStream, h: &dyn ControlHandler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.by_ref().take(8192).read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    let mut header = String::new();
    loop {
        header.clear();
        let n = reader.by_ref().take(8192).read_line(&mut header)?;
        if n == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render(&h.stats())),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}
