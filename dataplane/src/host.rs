//! The host path: the router's own traffic between the workers and the
//! kernel's IP stack, through a TUN device.
//!
//! ```text
//! worker --deliver--> [to_kernel queue]   --host thread: write--> TUN -> kernel
//! worker <-receive--- [from_kernel queue] <--host thread: read--- TUN <- kernel
//! ```
//!
//! One host thread owns the device and makes every syscall; the workers
//! only push and pop buffers on lock-free queues (crossbeam `ArrayQueue`),
//! so a worker never blocks, allocates or makes a syscall for the host
//! path. Buffers come from a pool allocated at start and circulate: free
//! pool -> a queue -> back to the pool.
//!
//! With several workers, every worker delivers to the kernel, and each
//! packet from the kernel goes to the worker that owns its flow
//! ([`crate::owner`]: the same symmetric hash the workers use, the quoted
//! flow for an ICMP error), so the router's own flows are tracked by one
//! worker whatever queue their packets from outside arrive on. Each worker
//! has its own queue from the host thread.
//!
//! Every packet the host path drops is counted under a name in
//! [`HostStats`]; packets a worker could not hand over are the pipeline's
//! `host_unavailable` drop.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::owner;
use crate::packet::ETH_HDR_LEN;
use crate::worker::HostPath;
use crate::xsk::tun::{Tun, TunRead};

/// Bytes of a pool buffer: a whole UMEM frame's worth.
pub const HOST_BUF_SIZE: usize = 2048;
/// Longest packet from the kernel the host path takes: what the smallest
/// UMEM frame (2048 bytes) holds behind the Ethernet header the worker puts
/// in front of it. The TUN's MTU keeps the kernel's packets far below.
pub const MAX_FROM_KERNEL: usize = HOST_BUF_SIZE - ETH_HDR_LEN;
/// Buffers in the pool (both directions together).
pub const HOST_BUFFERS: usize = 1024;
/// Packets from the kernel waiting for one worker, at most.
pub const FROM_KERNEL_QUEUE: usize = 512;
/// Packets the host thread reads from the device per round, at most.
const READ_BATCH: usize = 64;
/// Shortest and longest wait of an idle host thread. The wait ends at once
/// when the kernel sends; packets for the kernel wait at most the longest.
const IDLE_WAIT_MIN: Duration = Duration::from_micros(20);
const IDLE_WAIT_MAX: Duration = Duration::from_micros(500);

/// Where the host thread reads and writes IP packets: the TUN, or an
/// in-memory device in tests.
pub trait HostDevice: Send + 'static {
    /// One packet into `buf` (what was copied, and whether it was cut);
    /// `Ok(None)` when none waits.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<TunRead>>;
    /// Hands one packet to the kernel; `Ok(false)` when it cannot take it.
    fn write(&mut self, packet: &[u8]) -> io::Result<bool>;
    /// Waits up to `timeout` for a packet to read.
    fn wait_readable(&mut self, timeout: Duration) -> bool;
}

impl HostDevice for Tun {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<TunRead>> {
        Tun::read(self, buf)
    }
    fn write(&mut self, packet: &[u8]) -> io::Result<bool> {
        Tun::write(self, packet)
    }
    fn wait_readable(&mut self, timeout: Duration) -> bool {
        Tun::wait_readable(self, timeout)
    }
}

/// What the host path counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Packets written to the kernel.
    pub to_kernel_packets: u64,
    /// Bytes written to the kernel.
    pub to_kernel_bytes: u64,
    /// Packets read from the kernel and queued for the worker.
    pub from_kernel_packets: u64,
    /// Bytes read from the kernel and queued.
    pub from_kernel_bytes: u64,
    /// Drop: the device refused a packet for the kernel (busy or an error).
    pub to_kernel_write_failed: u64,
    /// Drop: a packet from the kernel found no free buffer or a full queue
    /// (the worker does not keep up).
    pub from_kernel_queue_full: u64,
    /// Drop: a packet from the kernel longer than a frame can carry.
    pub from_kernel_too_big: u64,
    /// Errors reading the device (other than "nothing to read").
    pub read_errors: u64,
}

impl HostStats {
    /// Packets the host path dropped, all reasons.
    pub fn drops(&self) -> u64 {
        self.to_kernel_write_failed + self.from_kernel_queue_full + self.from_kernel_too_big
    }

    /// The named drop counters, for logs and JSON.
    pub fn named_drops(&self) -> [(&'static str, u64); 3] {
        [
            ("host_to_kernel_write_failed", self.to_kernel_write_failed),
            ("host_from_kernel_queue_full", self.from_kernel_queue_full),
            ("host_from_kernel_too_big", self.from_kernel_too_big),
        ]
    }
}

#[derive(Default)]
struct Counters {
    to_kernel_packets: AtomicU64,
    to_kernel_bytes: AtomicU64,
    from_kernel_packets: AtomicU64,
    from_kernel_bytes: AtomicU64,
    to_kernel_write_failed: AtomicU64,
    from_kernel_queue_full: AtomicU64,
    from_kernel_too_big: AtomicU64,
    read_errors: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A pool buffer and the packet length in it.
struct Buf {
    len: usize,
    data: Box<[u8]>,
}

/// The queues and counters shared by the host thread and the workers.
struct Shared {
    free: ArrayQueue<Buf>,
    to_kernel: ArrayQueue<Buf>,
    /// One queue per worker: packets of the flows it owns.
    from_kernel: Vec<ArrayQueue<Buf>>,
    counters: Counters,
}

impl Shared {
    fn new(workers: usize) -> Shared {
        let free = ArrayQueue::new(HOST_BUFFERS);
        for _ in 0..HOST_BUFFERS {
            let _ = free.push(Buf {
                len: 0,
                data: vec![0u8; HOST_BUF_SIZE].into_boxed_slice(),
            });
        }
        Shared {
            free,
            to_kernel: ArrayQueue::new(HOST_BUFFERS),
            from_kernel: (0..workers.max(1))
                .map(|_| ArrayQueue::new(FROM_KERNEL_QUEUE))
                .collect(),
            counters: Counters::default(),
        }
    }

    /// Back to the pool (never full: the pool holds every buffer there is).
    fn recycle(&self, b: Buf) {
        let _ = self.free.push(b);
    }

    fn stats(&self) -> HostStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HostStats {
            to_kernel_packets: g(&c.to_kernel_packets),
            to_kernel_bytes: g(&c.to_kernel_bytes),
            from_kernel_packets: g(&c.from_kernel_packets),
            from_kernel_bytes: g(&c.from_kernel_bytes),
            to_kernel_write_failed: g(&c.to_kernel_write_failed),
            from_kernel_queue_full: g(&c.from_kernel_queue_full),
            from_kernel_too_big: g(&c.from_kernel_too_big),
            read_errors: g(&c.read_errors),
        }
    }
}

/// The host thread: owns the device, moves packets between it and the
/// queues until stopped.
pub struct HostThread {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostThread")
            .field("stats", &self.stats())
            .finish()
    }
}

impl HostThread {
    /// Starts the host thread over `device` (the TUN) for `workers`
    /// workers.
    pub fn start<D: HostDevice>(device: D, workers: usize) -> io::Result<HostThread> {
        let shared = Arc::new(Shared::new(workers));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("host-tun".into())
            .spawn(move || run(device, &s, &st))?;
        Ok(HostThread {
            shared,
            stop,
            handle: Some(handle),
        })
    }

    /// The host path of worker `index`: it delivers to the kernel and
    /// receives the kernel's packets of the flows it owns.
    pub fn port(&self, index: usize) -> HostPort {
        assert!(index < self.shared.from_kernel.len(), "no worker {index}");
        HostPort {
            shared: self.shared.clone(),
            index,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> HostStats {
        self.shared.stats()
    }

    /// Stops the thread (it drops the device) and returns the counters.
    pub fn stop(mut self) -> HostStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for HostThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The host thread's loop.
fn run<D: HostDevice>(mut dev: D, s: &Shared, stop: &AtomicBool) {
    let c = &s.counters;
    let mut wait = IDLE_WAIT_MIN;
    // Where a packet goes when no pool buffer is free (then dropped).
    let mut spill = vec![0u8; HOST_BUF_SIZE];
    while !stop.load(Ordering::Relaxed) {
        let mut work = 0usize;
        while let Some(b) = s.to_kernel.pop() {
            work += 1;
            match dev.write(&b.data[..b.len]) {
                Ok(true) => {
                    bump(&c.to_kernel_packets, 1);
                    bump(&c.to_kernel_bytes, b.len as u64);
                }
                Ok(false) | Err(_) => bump(&c.to_kernel_write_failed, 1),
            }
            s.recycle(b);
        }
        for _ in 0..READ_BATCH {
            let (got, buf) = match s.free.pop() {
                Some(mut b) => (dev.read(&mut b.data), Some(b)),
                None => (dev.read(&mut spill), None),
            };
            let r = match got {
                Ok(Some(r)) => r,
                Ok(None) => {
                    if let Some(b) = buf {
                        s.recycle(b);
                    }
                    break;
                }
                Err(_) => {
                    bump(&c.read_errors, 1);
                    if let Some(b) = buf {
                        s.recycle(b);
                    }
                    break;
                }
            };
            work += 1;
            let Some(mut b) = buf else {
                bump(&c.from_kernel_queue_full, 1);
                continue;
            };
            // A cut packet cannot be sent whole, nor one that a worker's
            // frame cannot hold behind its Ethernet header: dropped here,
            // counted once.
            let n = r.len;
            if r.truncated || n > MAX_FROM_KERNEL {
                bump(&c.from_kernel_too_big, 1);
                s.recycle(b);
                continue;
            }
            b.len = n;
            // To the worker that owns the packet's flow (one worker owns
            // them all: no parse).
            let workers = s.from_kernel.len();
            let to = match workers {
                1 => 0,
                _ => {
                    owner::flow_of_ip_packet(&b.data[..n]).map_or(0, |k| owner::owner(&k, workers))
                }
            };
            match s.from_kernel[to].push(b) {
                Ok(()) => {
                    bump(&c.from_kernel_packets, 1);
                    bump(&c.from_kernel_bytes, n as u64);
                }
                Err(b) => {
                    bump(&c.from_kernel_queue_full, 1);
                    s.recycle(b);
                }
            }
        }
        if work > 0 {
            wait = IDLE_WAIT_MIN;
        } else {
            dev.wait_readable(wait);
            wait = (wait * 2).min(IDLE_WAIT_MAX);
        }
    }
}

/// One worker's end of the host path.
pub struct HostPort {
    shared: Arc<Shared>,
    /// The worker's index: its queue from the kernel.
    index: usize,
}

impl HostPath for HostPort {
    fn deliver(&mut self, ip_packet: &[u8]) -> bool {
        let s = &self.shared;
        let Some(mut b) = s.free.pop() else {
            return false;
        };
        if ip_packet.len() > b.data.len() {
            s.recycle(b);
            return false;
        }
        b.data[..ip_packet.len()].copy_from_slice(ip_packet);
        b.len = ip_packet.len();
        match s.to_kernel.push(b) {
            Ok(()) => true,
            Err(b) => {
                s.recycle(b);
                false
            }
        }
    }

    #[inline]
    fn has_packet(&self) -> bool {
        !self.shared.from_kernel[self.index].is_empty()
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let s = &self.shared;
        loop {
            let b = s.from_kernel[self.index].pop()?;
            if b.len > buf.len() {
                // The frame is smaller than what the pool carries: the
                // packet counts as too big, no longer as received.
                let c = &s.counters;
                c.from_kernel_packets.fetch_sub(1, Ordering::Relaxed);
                c.from_kernel_bytes
                    .fetch_sub(b.len as u64, Ordering::Relaxed);
                bump(&c.from_kernel_too_big, 1);
                s.recycle(b);
                continue;
            }
            buf[..b.len].copy_from_slice(&b.data[..b.len]);
            let n = b.len;
            s.recycle(b);
            return Some(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A device whose kernel side is two queues of packets.
    #[derive(Clone, Default)]
    struct Fake {
        /// What "the kernel" sends (read by the host thread).
        outbound: Arc<Mutex<Vec<Vec<u8>>>>,
        /// What the host thread wrote to "the kernel".
        inbound: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl HostDevice for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<TunRead>> {
            let mut q = self.outbound.lock().unwrap();
            if q.is_empty() {
                return Ok(None);
            }
            let p = q.remove(0);
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            Ok(Some(TunRead {
                len: n,
                truncated: p.len() > buf.len(),
            }))
        }
        fn write(&mut self, packet: &[u8]) -> io::Result<bool> {
            self.inbound.lock().unwrap().push(packet.to_vec());
            Ok(true)
        }
        fn wait_readable(&mut self, timeout: Duration) -> bool {
            std::thread::sleep(timeout);
            false
        }
    }

    fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn packets_cross_both_ways_and_buffers_come_back() {
        let dev = Fake::default();
        let host = HostThread::start(dev.clone(), 2).unwrap();
        let mut w0 = host.port(0);
        let mut w1 = host.port(1);
        assert!(w0.deliver(&[0x45, 1, 2, 3]));
        assert!(w1.deliver(&[0x45, 9]));
        assert!(until(Duration::from_secs(5), || dev
            .inbound
            .lock()
            .unwrap()
            .len()
            == 2));
        assert_eq!(dev.inbound.lock().unwrap()[0], vec![0x45, 1, 2, 3]);

        dev.outbound.lock().unwrap().push(vec![0x45; 100]);
        assert!(until(Duration::from_secs(5), || w0.has_packet()));
        // Not a packet whose flow can be read: worker 0 takes it.
        assert!(!w1.has_packet(), "only one worker gets a packet");
        let mut buf = [0u8; 2048];
        assert_eq!(w1.receive(&mut buf), None);
        assert_eq!(w0.receive(&mut buf), Some(100));
        assert_eq!(buf[..100], [0x45; 100]);
        assert_eq!(w0.receive(&mut buf), None);

        let st = host.stop();
        assert_eq!(st.to_kernel_packets, 2);
        assert_eq!(st.to_kernel_bytes, 6);
        assert_eq!(st.from_kernel_packets, 1);
        assert_eq!(st.drops(), 0);
    }

    #[test]
    fn a_worker_that_does_not_receive_fills_the_queue_and_drops_are_counted() {
        let dev = Fake::default();
        let host = HostThread::start(dev.clone(), 1).unwrap();
        let n = FROM_KERNEL_QUEUE + 10;
        dev.outbound
            .lock()
            .unwrap()
            .extend((0..n).map(|_| vec![0x45u8; 60]));
        assert!(until(Duration::from_secs(5), || dev
            .outbound
            .lock()
            .unwrap()
            .is_empty()));
        let st = host.stop();
        assert_eq!(st.from_kernel_packets, FROM_KERNEL_QUEUE as u64);
        assert_eq!(st.from_kernel_queue_full, 10);
    }

    #[test]
    fn too_big_packets_are_dropped_by_name() {
        let dev = Fake::default();
        let host = HostThread::start(dev.clone(), 1).unwrap();
        let mut w = host.port(0);
        dev.outbound
            .lock()
            .unwrap()
            .push(vec![0x45; HOST_BUF_SIZE + 5]);
        dev.outbound.lock().unwrap().push(vec![0x45; 1500]);
        assert!(until(Duration::from_secs(5), || w.has_packet()));
        // A receiver whose frame is too small for the 1500-byte packet.
        let mut small = [0u8; 1000];
        assert_eq!(w.receive(&mut small), None);
        assert!(!w.deliver(&[0u8; HOST_BUF_SIZE + 1]));
        let st = host.stop();
        assert_eq!(st.from_kernel_too_big, 2);
        assert_eq!(
            st.from_kernel_packets, 0,
            "a dropped packet is not also received"
        );
        assert_eq!(
            st.named_drops()
                .iter()
                .find(|(n, _)| *n == "host_from_kernel_too_big")
                .map(|x| x.1),
            Some(2)
        );
    }

    #[test]
    fn packets_a_frame_cannot_hold_are_counted_once() {
        let dev = Fake::default();
        let host = HostThread::start(dev.clone(), 1).unwrap();
        let mut w = host.port(0);
        // 2035 to 2047 bytes fit the host path's buffers but not a 2048-byte
        // UMEM frame behind an Ethernet header.
        for len in [
            MAX_FROM_KERNEL,
            MAX_FROM_KERNEL + 1,
            HOST_BUF_SIZE - 1,
            HOST_BUF_SIZE,
        ] {
            dev.outbound.lock().unwrap().push(vec![0x45; len]);
        }
        assert!(until(Duration::from_secs(5), || w.has_packet()));
        let mut frame = [0u8; 2048 - 14];
        assert_eq!(w.receive(&mut frame), Some(MAX_FROM_KERNEL));
        assert_eq!(w.receive(&mut frame), None);
        let st = host.stop();
        assert_eq!((st.from_kernel_packets, st.from_kernel_too_big), (1, 3));
    }

    /// A UDP packet from the router, 198.18.0.1:`sport` > 198.18.0.2:53.
    fn udp(sport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[198, 18, 0, 1]);
        p[16..20].copy_from_slice(&[198, 18, 0, 2]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        p
    }

    #[test]
    fn each_packet_from_the_kernel_goes_to_the_owner_of_its_flow() {
        let dev = Fake::default();
        let host = HostThread::start(dev.clone(), 2).unwrap();
        let mut ports = [host.port(0), host.port(1)];
        let sports: Vec<u16> = (40000..40040).collect();
        dev.outbound
            .lock()
            .unwrap()
            .extend(sports.iter().map(|&p| udp(p)));
        assert!(until(Duration::from_secs(5), || dev
            .outbound
            .lock()
            .unwrap()
            .is_empty()));
        std::thread::sleep(Duration::from_millis(20));
        let mut got = [Vec::new(), Vec::new()];
        let mut buf = [0u8; 2048];
        for (w, p) in ports.iter_mut().enumerate() {
            while let Some(n) = p.receive(&mut buf) {
                got[w].push(u16::from_be_bytes([buf[20], buf[21]]));
                assert_eq!(n, 28);
            }
        }
        for (w, list) in got.iter().enumerate() {
            for &sport in list {
                let k = owner::flow_of_ip_packet(&udp(sport)).unwrap();
                assert_eq!(owner::owner(&k, 2), w, "sport {sport}");
            }
        }
        assert_eq!(got[0].len() + got[1].len(), sports.len());
        assert!(!got[0].is_empty() && !got[1].is_empty(), "{got:?}");
    }
}
