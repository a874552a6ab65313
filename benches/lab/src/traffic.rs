//! Traffic through the lab from Rust sockets in threads that enter the
//! client and server namespaces: verified TCP transfers, counted UDP
//! streams (both over IPv4 or IPv6), floods. Every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::netns::{in_ns, join};
use crate::topology::{Topology, SERVER_IP, SINK_IP};
use crate::{io_err, LabError};

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
    tcp_transfer_to(t, addr, bytes, limit)
}

/// [`tcp_transfer`] to the server's `addr` (IPv4 or IPv6, e.g.
/// `[2001:db8:1::2]:5001`).
pub fn tcp_transfer_to(
    t: &Topology,
    addr: SocketAddr,
    bytes: u64,
    limit: Duration,
) -> Result<TcpResult, LabError> {
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
    udp_exchange_to(t, addr, count, size)
}

/// [`udp_exchange`] to the server's `addr` (IPv4 or IPv6).
pub fn udp_exchange_to(
    t: &Topology,
    addr: SocketAddr,
    count: u32,
    size: usize,
) -> Result<UdpResult, LabError> {
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
        let any = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(any).map_err(io_err("UDP socket"))?;
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
        let any = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(any).map_err(io_err("UDP socket"))?;
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
