//! Bulk TCP through the lab, as a user measures a router with `iperf3 -P N`:
//! N streams from the client to the server for a fixed time, throughput
//! and retransmits. Nothing to install: both ends are Rust sockets in
//! threads that enter the client and server namespaces.
//!
//! - Throughput: bytes the server read, over the time from the first
//!   connect to the last stream's end of file (goodput, what `iperf3`
//!   calls the receiver's rate).
//! - Retransmits: `Tcp: RetransSegs` of the client's namespace
//!   (`/proc/thread-self/net/snmp`, read by a thread inside it) before and
//!   after: every TCP segment the client's kernel sent again, which is
//!   what `tcpi_total_retrans` of `TCP_INFO` sums per socket, without
//!   `unsafe` (nothing but these streams uses TCP in that namespace).
//!
//! Every loop is bounded: the senders stop at the duration, every socket
//! has read and write timeouts, and the whole run ends within
//! `duration + 15 s`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netns::{in_ns, join};
use crate::{io_err, LabError};

/// Longest bulk run.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// Most streams.
pub const MAX_STREAMS: u32 = 64;

/// What to send.
#[derive(Clone, Debug)]
pub struct BulkOptions {
    /// Parallel TCP connections (`iperf3 -P`).
    pub streams: u32,
    /// How long the client sends.
    pub duration: Duration,
    /// The server's address and port.
    pub server: SocketAddr,
    /// CPU for the client's threads (`None`: where the scheduler puts them).
    pub client_cpu: Option<usize>,
    /// CPU for the server's threads.
    pub server_cpu: Option<usize>,
}

/// What a bulk run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BulkResult {
    /// Streams.
    pub streams: u32,
    /// Bytes the server read, all streams.
    pub bytes: u64,
    /// Seconds from the first connect to the last end of file.
    pub secs: f64,
    /// `bytes * 8 / secs / 1e9`.
    pub gbit_s: f64,
    /// Segments the client's kernel retransmitted (`RetransSegs`).
    pub retransmits: u64,
    /// Segments the client's kernel sent (`OutSegs`), retransmits included.
    pub segments_out: u64,
    /// Bytes per stream, in connect order.
    pub per_stream: Vec<u64>,
}

/// `Tcp:` counters of the calling thread's network namespace:
/// (`OutSegs`, `RetransSegs`).
pub fn tcp_counters() -> Result<(u64, u64), LabError> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp")
        .map_err(io_err("read /proc/thread-self/net/snmp"))?;
    parse_snmp_tcp(&text)
        .ok_or_else(|| LabError::Traffic("no Tcp: OutSegs/RetransSegs in /proc/net/snmp".into()))
}

/// (`OutSegs`, `RetransSegs`) from the text of `/proc/net/snmp`: a `Tcp:`
/// line of names followed by a `Tcp:` line of values.
pub fn parse_snmp_tcp(text: &str) -> Option<(u64, u64)> {
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names: Vec<&str> = tcp.next()?.split_whitespace().collect();
    let values: Vec<&str> = tcp.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some((get("OutSegs")?, get("RetransSegs")?))
}

fn pin(cpu: Option<usize>) -> Result<(), LabError> {
    if let Some(c) = cpu {
        dataplane::worker::pin_current_thread(c)
            .map_err(|e| LabError::Traffic(format!("pin to CPU {c}: {e}")))?;
    }
    Ok(())
}

/// Runs `opts.streams` bulk TCP streams from namespace `cli` to the server
/// in namespace `srv` for `opts.duration`.
pub fn tcp_bulk(cli: &str, srv: &str, opts: &BulkOptions) -> Result<BulkResult, LabError> {
    if opts.streams == 0 || opts.streams > MAX_STREAMS {
        return Err(LabError::Traffic(format!(
            "streams {} out of range 1..={MAX_STREAMS}",
            opts.streams
        )));
    }
    if opts.duration.is_zero() || opts.duration > MAX_DURATION {
        return Err(LabError::Traffic(format!(
            "duration {:?} out of range (0, {MAX_DURATION:?}]",
            opts.duration
        )));
    }
    let n = opts.streams;
    let addr = opts.server;
    let duration = opts.duration;
    let limit = duration + Duration::from_secs(15);
    let server_cpu = opts.server_cpu;
    let client_cpu = opts.client_cpu;
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_ns(srv, move || {
        pin(server_cpu)?;
        let deadline = Instant::now() + limit;
        let l = TcpListener::bind(addr).map_err(io_err(format!("bind {addr}")))?;
        l.set_nonblocking(true).map_err(io_err("listener"))?;
        let _ = ready_tx.send(());
        let mut readers = Vec::new();
        while readers.len() < n as usize {
            match l.accept() {
                Ok((s, _)) => {
                    readers.push(std::thread::spawn(
                        move || -> Result<(u64, Instant), LabError> {
                            pin(server_cpu)?;
                            s.set_nonblocking(false).map_err(io_err("socket"))?;
                            s.set_read_timeout(Some(Duration::from_secs(5)))
                                .map_err(io_err("socket"))?;
                            let mut s = s;
                            let mut buf = vec![0u8; 256 * 1024];
                            let mut got = 0u64;
                            loop {
                                if Instant::now() >= deadline {
                                    return Err(LabError::Timeout(format!(
                                        "bulk TCP stream still open after {limit:?} ({got} bytes)"
                                    )));
                                }
                                match s.read(&mut buf) {
                                    Ok(0) => return Ok((got, Instant::now())),
                                    Ok(k) => got += k as u64,
                                    Err(e) => {
                                        return Err(io_err(format!(
                                            "bulk TCP read after {got} bytes"
                                        ))(e))
                                    }
                                }
                            }
                        },
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(LabError::Timeout(format!(
                            "{} of {n} bulk TCP connections arrived",
                            readers.len()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(io_err("accept")(e)),
            }
        }
        let mut out = Vec::new();
        for r in readers {
            out.push(
                r.join()
                    .unwrap_or_else(|_| Err(LabError::Traffic("a reader panicked".into())))?,
            );
        }
        Ok(out)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| LabError::Timeout("bulk TCP server did not start".into()))?;
    let client = in_ns(cli, move || {
        pin(client_cpu)?;
        let before = tcp_counters()?;
        let start = Instant::now();
        let stop = start + duration;
        let mut senders = Vec::new();
        for _ in 0..n {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(io_err(format!("bulk TCP connect to {addr}")))?;
            senders.push(std::thread::spawn(move || -> Result<u64, LabError> {
                pin(client_cpu)?;
                let mut s = s;
                s.set_write_timeout(Some(Duration::from_millis(500)))
                    .map_err(io_err("socket"))?;
                let buf = vec![0x5au8; 128 * 1024];
                let mut sent = 0u64;
                while Instant::now() < stop {
                    match s.write(&buf) {
                        Ok(k) => sent += k as u64,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => {
                            return Err(io_err(format!("bulk TCP write after {sent} bytes"))(e))
                        }
                    }
                }
                s.shutdown(std::net::Shutdown::Write)
                    .map_err(io_err("bulk TCP shutdown"))?;
                Ok(sent)
            }));
        }
        let mut sent = Vec::new();
        for s in senders {
            sent.push(
                s.join()
                    .unwrap_or_else(|_| Err(LabError::Traffic("a sender panicked".into())))?,
            );
        }
        // The last segments and their retransmits are counted once the
        // receivers have read everything; the caller reads again then.
        Ok((before, start, sent))
    });
    let sent = join(client);
    let got = join(server);
    let (before, start, _sent) = sent?;
    let got = got?;
    let after = crate::netns::run_in(cli, tcp_counters)?;
    let end = got.iter().map(|g| g.1).max().unwrap_or(start);
    let bytes: u64 = got.iter().map(|g| g.0).sum();
    let secs = end.duration_since(start).as_secs_f64().max(1e-6);
    Ok(BulkResult {
        streams: n,
        bytes,
        secs,
        gbit_s: bytes as f64 * 8.0 / secs / 1e9,
        retransmits: after.1.saturating_sub(before.1),
        segments_out: after.0.saturating_sub(before.0),
        per_stream: got.iter().map(|g| g.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_tcp_line_is_read_by_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails \
                    EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
                    Tcp: 1 200 120000 -1 5 3 0 0 2 1000 2000 17 0 1 0\n\
                    Udp: InDatagrams\nUdp: 4\n";
        assert_eq!(parse_snmp_tcp(text), Some((2000, 17)));
        assert_eq!(parse_snmp_tcp("Ip: a\nIp: 1\n"), None);
    }
}
