//! What a worker uses: one UMEM shared by the AF_XDP sockets of all its
//! ports, and a free-frame stack.
//!
//! Frame ownership: a frame is always in exactly one place: the free stack,
//! the kernel's receive side (a fill ring, or taken from it and not yet in an
//! RX ring), an RX ring, the caller's hands, or the kernel's send side (a TX
//! ring or a completion ring). [`WorkerPorts::frames_accounted`] counts each
//! place and must add up to the UMEM size.
//!
//! - [`WorkerPorts::rx_burst`] and [`WorkerPorts::alloc`] hand frames to the
//!   caller; [`WorkerPorts::tx_burst`] and [`WorkerPorts::free`] take them
//!   back. `tx_burst` takes every frame it is given: what it cannot send (a
//!   full TX ring, a frame outside the UMEM, a port whose link is down) it
//!   frees and counts by reason ([`TxResult`]).
//! - Frame bytes are reached by address: [`WorkerPorts::frame_mut`] for one
//!   frame, [`WorkerPorts::frames_mut`] for a burst at once (it checks that
//!   the frames are distinct, so the slices never alias). They reach only
//!   frames the caller holds: every frame's owner is tracked in release
//!   builds too, and touching a frame the kernel owns (in a fill, RX, TX or
//!   completion ring, where the kernel or a NIC may be writing or reading
//!   it), or freeing one twice, panics instead of aliasing it.
//! - Completions are reaped every loop ([`WorkerPorts::complete`], and in
//!   `tx_burst`), whatever the TX ring's NEED_WAKEUP flag says: a zero-copy
//!   driver (mlx5) clears the flag while descriptors are in flight, and
//!   only the `sendto` kick waits on it (libxdp's `complete_tx_l2fwd`).
//! - A kick that fails with ENETDOWN (the interface is down) or ENXIO (the
//!   device is gone) marks the port down: the descriptors the kernel has
//!   not taken are taken back from the TX ring and freed, and while the port
//!   is down `tx_burst` sends nothing (counted `tx_link_down`), so no stale
//!   packet leaves when the link returns. Housekeeping probes a down port
//!   with an empty TX ring and brings it back when a kick succeeds.
//!
//! Nothing here allocates after [`WorkerPorts::open`] (except
//! [`WorkerPorts::stats`]); the only syscalls are one TX kick loop per
//! burst and the wake-ups the rings ask for.

use std::sync::Arc;
use std::time::Duration;

pub use super::bpf::XdpMode;
use super::bpf::XdpProgram;
use super::error::{IfName, XskError, XskStep};
use super::fake::FakeKernel;
pub use super::socket::BindMode;
use super::socket::{effective_bind, SocketTarget, XskSocket};
pub use super::stats::{FrameCensus, PortStats, PortsStats, TxResult, XdpStatistics};
use super::umem::Umem;

/// Most ports one worker may have (a `PortId` is below 63).
const MAX_PORTS: usize = 63;
/// Smallest and largest ring sizes we configure.
const RING_MIN: u32 = 64;
const RING_MAX: u32 = 4096;
/// Most `sendto` calls one kick makes before leaving the rest to the next
/// burst or to housekeeping.
const KICK_ROUNDS: u32 = 64;
/// Housekeeping rounds between two probes of a port whose link is down.
const LINK_PROBE_ROUNDS: u32 = 64;
/// Frames the fill rings leave on the free stack for the frames a worker
/// builds itself (host path, hand-offs, ARP, ICMP errors): an eighth of
/// the UMEM, and at least this many (a quarter of a small UMEM).
pub const ALLOC_RESERVE_MIN: u32 = 512;

/// One interface queue a worker owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Interface name (in the worker thread's network namespace).
    pub ifname: String,
    /// RX/TX queue of the interface.
    pub queue: u32,
    /// Where the XDP program runs.
    pub mode: XdpMode,
}

/// A frame by UMEM address: `len` bytes from `addr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameRef {
    /// Byte offset of the packet in the UMEM (received frames start 256
    /// bytes into their buffer: the kernel's XDP headroom).
    pub addr: u64,
    /// Packet length in bytes.
    pub len: u32,
}

/// A port's link as the kicks saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    /// A kick failed with ENETDOWN (or ENXIO: the device is gone); probed
    /// again at housekeeping.
    Down,
}

/// One port: a socket bound to an interface queue.
struct Port {
    sock: XskSocket,
    /// The XDP program redirecting the queue to the socket (none for the
    /// fake kernel's ports).
    prog: Option<Arc<XdpProgram>>,
    queue: u32,
    link: Link,
    /// Housekeeping rounds until the next probe of a down link.
    probe_in: u32,
    /// Frames given to the fill ring and not yet taken from the RX ring.
    rx_out: u32,
    /// Frames put in the TX ring and not yet reaped from completion.
    tx_out: u32,
    stats: PortStats,
    /// Clears the offset inside a frame.
    frame_mask: u64,
}

impl Drop for Port {
    fn drop(&mut self) {
        // Packets of this queue go back to the kernel stack before the
        // socket closes (the kernel would empty the slot anyway).
        if let Some(prog) = &self.prog {
            prog.unregister(self.queue);
        }
    }
}

/// The ports of one worker over one shared UMEM. See the module doc for the
/// frame ownership rules.
pub struct WorkerPorts {
    // Declared before `umem`: sockets close before the UMEM is unmapped.
    ports: Vec<Port>,
    umem: Umem,
    /// Free frame bases; capacity is the UMEM size, so pushes never grow it.
    free: Vec<u64>,
    held: u32,
    /// Frames each port keeps in the kernel's receive side (fill ring and
    /// RX ring together): see [`fill_target`].
    fill_target: u32,
    /// Frames refills leave on the free stack ([`alloc_reserve`]).
    reserve: u32,
    /// Entries of every ring.
    ring_size: u32,
    /// Per-frame stamp of the last `frames_mut` call that yielded it.
    stamps: Vec<u32>,
    stamp: u32,
    pollfds: Vec<libc::pollfd>,
    /// Per frame: held by the caller (else on the free stack or the
    /// kernel's). Checked in every build: frame accessors and frees of
    /// frames the caller does not hold panic.
    owned: Vec<bool>,
}

impl std::fmt::Debug for WorkerPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPorts")
            .field("ports", &self.ports.len())
            .field("census", &self.frames_accounted())
            .finish()
    }
}

impl WorkerPorts {
    /// Attaches the redirect program to every interface (once per distinct
    /// name) and opens the ports on one UMEM of `umem_frames` frames of
    /// `frame_size` bytes. Use [`WorkerPorts::open_with_programs`] when
    /// several workers share an interface.
    pub fn open(
        ports: &[PortConfig],
        umem_frames: u32,
        frame_size: u32,
    ) -> Result<WorkerPorts, XskError> {
        let mut programs: Vec<Arc<XdpProgram>> = Vec::with_capacity(ports.len());
        for (i, cfg) in ports.iter().enumerate() {
            let same = ports[..i].iter().position(|c| c.ifname == cfg.ifname);
            let prog = match same {
                Some(j) => programs[j].clone(),
                None => Arc::new(XdpProgram::attach(&cfg.ifname, cfg.mode)?),
            };
            programs.push(prog);
        }
        Self::open_with_programs(ports, &programs, umem_frames, frame_size)
    }

    /// Opens the ports with programs already attached (`programs[i]` on the
    /// interface of `ports[i]`; `ports[i].mode` is then unused). The first
    /// port's socket registers the UMEM; the others share it, each with its
    /// own fill and completion rings.
    pub fn open_with_programs(
        ports: &[PortConfig],
        programs: &[Arc<XdpProgram>],
        umem_frames: u32,
        frame_size: u32,
    ) -> Result<WorkerPorts, XskError> {
        Self::open_with_bind(ports, programs, umem_frames, frame_size, BindMode::Auto)
    }

    /// [`WorkerPorts::open_with_programs`] with the sockets bound as `bind`
    /// asks (`auto` binds copy under a generic-mode program; `zerocopy`
    /// fails where the driver cannot).
    pub fn open_with_bind(
        ports: &[PortConfig],
        programs: &[Arc<XdpProgram>],
        umem_frames: u32,
        frame_size: u32,
        bind: BindMode,
    ) -> Result<WorkerPorts, XskError> {
        let config_err = |detail: u64| {
            XskError::new(XskStep::Config, libc::EINVAL, IfName::new("")).with_detail(detail)
        };
        let n = ports.len();
        if n == 0 || n > MAX_PORTS || programs.len() != n {
            return Err(config_err(n as u64));
        }
        for (i, cfg) in ports.iter().enumerate() {
            let dup = ports[..i]
                .iter()
                .any(|c| c.ifname == cfg.ifname && c.queue == cfg.queue);
            if dup || programs[i].ifname().as_str() != cfg.ifname {
                return Err(config_err(i as u64));
            }
        }
        let (mut out, ring_size) = Self::empty(n, umem_frames, frame_size)?;
        for (cfg, prog) in ports.iter().zip(programs) {
            let target = SocketTarget {
                ifname: prog.ifname(),
                ifindex: prog.ifindex(),
                queue: cfg.queue,
                ring_size,
                bind: effective_bind(bind, prog.mode() == XdpMode::Generic),
            };
            let owner = out.ports.first().map(|p| p.sock.fd());
            let sock = XskSocket::open(&out.umem, owner, target)?;
            let port = out.add_port(sock, Some(prog.clone()), cfg.queue);
            prog.register(cfg.queue, port.sock.fd())?;
        }
        Ok(out)
    }

    /// Ports whose kernel side is `kernel`'s queues (one port per queue):
    /// the ring layer and the worker loop under behaviour veth never shows.
    pub fn open_fake(
        kernel: &FakeKernel,
        umem_frames: u32,
        frame_size: u32,
    ) -> Result<WorkerPorts, XskError> {
        let (mut out, ring_size) = Self::empty(kernel.len(), umem_frames, frame_size)?;
        for p in 0..kernel.len() {
            let sock = XskSocket::fake(kernel.queue(p), &out.umem, ring_size);
            out.add_port(sock, None, p as u32);
        }
        Ok(out)
    }

    /// A UMEM for `n` ports and no port yet; and the ring size.
    fn empty(n: usize, umem_frames: u32, frame_size: u32) -> Result<(WorkerPorts, u32), XskError> {
        let share = umem_frames / n.max(1) as u32;
        if n == 0 || n > MAX_PORTS || share < RING_MIN {
            let e = XskError::new(XskStep::Config, libc::EINVAL, IfName::new(""));
            return Err(e.with_detail(umem_frames.into()));
        }
        // Each port's rings hold half its share: its fill ring and its TX
        // ring full at once still fit in the UMEM.
        let ring_size = prev_power_of_two(share / 2).clamp(RING_MIN, RING_MAX);
        let fill_target = fill_target(umem_frames, n as u32, ring_size);
        let umem = Umem::new(umem_frames, frame_size)?;
        let fs = u64::from(frame_size);
        let mut free: Vec<u64> = Vec::with_capacity(umem_frames as usize);
        // Lowest addresses on top of the stack.
        free.extend((0..u64::from(umem_frames)).rev().map(|i| i * fs));
        let out = WorkerPorts {
            ports: Vec::with_capacity(n),
            umem,
            free,
            held: 0,
            fill_target,
            reserve: alloc_reserve(umem_frames),
            ring_size,
            stamps: vec![0; umem_frames as usize],
            stamp: 0,
            pollfds: Vec::with_capacity(n),
            owned: vec![false; umem_frames as usize],
        };
        Ok((out, ring_size))
    }

    /// Adds a port on `sock` and fills its fill ring (before any program
    /// points at the socket: no packet meets an empty fill ring).
    fn add_port(&mut self, sock: XskSocket, prog: Option<Arc<XdpProgram>>, queue: u32) -> &Port {
        self.pollfds.push(libc::pollfd {
            fd: sock.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let frame_mask = !(u64::from(self.umem.frame_size()) - 1);
        self.ports.push(Port {
            sock,
            prog,
            queue,
            link: Link::Up,
            probe_in: 0,
            rx_out: 0,
            tx_out: 0,
            stats: PortStats::default(),
            frame_mask,
        });
        let port = self.ports.last_mut().expect("just pushed");
        refill(port, &mut self.free, self.fill_target, self.reserve);
        port
    }

    /// Frames each port keeps in the kernel's receive side when it can.
    pub fn fill_target(&self) -> u32 {
        self.fill_target
    }

    /// Entries of each ring (fill, RX, TX, completion) of every port.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Frames refills leave on the free stack ([`alloc_reserve`]).
    pub fn alloc_reserve(&self) -> u32 {
        self.reserve
    }

    /// Whether the kernel bound `port`'s socket zero-copy (`XDP_OPTIONS`;
    /// `None` when the kernel does not say).
    pub fn zero_copy(&self, port: usize) -> Option<bool> {
        self.ports[port].sock.zero_copy().ok()
    }

    /// Turns on preferred busy polling on `port`'s socket (`usecs` of busy
    /// polling, `budget` packets a poll); the NAPI id the kernel gave the
    /// socket (0: none, busy polling then does nothing), or the errno.
    pub fn busy_poll(&self, port: usize, usecs: u32, budget: u32) -> Result<u32, i32> {
        self.ports[port].sock.busy_poll(usecs, budget)
    }

    /// Whether `port`'s link is up as far as its kicks tell.
    pub fn link_up(&self, port: usize) -> bool {
        self.ports[port].link == Link::Up
    }

    /// Number of ports.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether there are no ports (never, once open).
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.umem.frame_size()
    }

    /// Takes up to `out.len()` received frames of `port`; the caller now
    /// holds them. Refills the port's fill ring.
    pub fn rx_burst(&mut self, port: usize, out: &mut [FrameRef]) -> usize {
        let p = &mut self.ports[port];
        let want = out.len().min(u32::MAX as usize) as u32;
        let (idx, n) = p.sock.rx.peek(want);
        let mut bytes = 0u64;
        for (i, slot) in out.iter_mut().take(n as usize).enumerate() {
            let d = p.sock.rx.read(idx.wrapping_add(i as u32));
            *slot = FrameRef {
                addr: d.addr,
                len: d.len,
            };
            bytes += u64::from(d.len);
            let f = self.umem.frame_index(d.addr);
            assert!(
                !self.owned[f],
                "the kernel returned frame {f}, which the caller holds"
            );
            self.owned[f] = true;
        }
        if n > 0 {
            p.sock.rx.release();
        }
        p.rx_out -= n;
        self.held += n;
        p.stats.rx_packets += u64::from(n);
        p.stats.rx_bytes += bytes;
        refill(p, &mut self.free, self.fill_target, self.reserve);
        if n == 0 && p.sock.fill.needs_wakeup() {
            p.sock.wake_rx();
            p.stats.rx_wakeups += 1;
        }
        n as usize
    }

    /// Hands `frames` to `port`'s TX ring, in order, and kicks the kernel
    /// once; takes every frame: what it could not send is freed and counted
    /// ([`TxResult`]). A frame outside the UMEM or crossing a frame is
    /// skipped (the frames after it still go); a full ring takes a prefix;
    /// a port whose link is down takes nothing.
    pub fn tx_burst(&mut self, port: usize, frames: &[FrameRef]) -> TxResult {
        let umem_len = self.umem.len();
        let fs = u64::from(self.umem.frame_size());
        let mut r = TxResult::default();
        let p = &mut self.ports[port];
        reap(p, &mut self.free);
        if p.link == Link::Down {
            r.link_down = frames.len();
            p.stats.tx_link_down += frames.len() as u64;
            for f in frames {
                free_held(&mut self.owned, &mut self.free, &mut self.held, fs, f.addr);
            }
            return r;
        }
        let valid = |f: &FrameRef| {
            let end = f.addr + u64::from(f.len);
            f.len > 0 && end <= umem_len && (end - 1) / fs == f.addr / fs
        };
        let want = frames.iter().filter(|f| valid(f)).count() as u32;
        let (idx, mut got) = p.sock.tx.reserve(want);
        if got < want {
            // Let the kernel drain the ring, then try for the rest.
            kick(p, &mut self.free);
            got += p.sock.tx.reserve(want - got).1;
        }
        let mut bytes = 0u64;
        let mut placed = 0u32;
        for f in frames {
            if !valid(f) {
                r.bad += 1;
                // An address outside the UMEM was never handed out: nothing
                // to free.
                if f.addr < umem_len {
                    free_held(&mut self.owned, &mut self.free, &mut self.held, fs, f.addr);
                }
                continue;
            }
            if placed == got {
                r.ring_full += 1;
                free_held(&mut self.owned, &mut self.free, &mut self.held, fs, f.addr);
                continue;
            }
            let fi = (f.addr / fs) as usize;
            assert!(
                self.owned[fi],
                "tx_burst of frame {fi}, which the caller does not hold"
            );
            self.owned[fi] = false;
            p.sock.tx.write(
                idx.wrapping_add(placed),
                libc::xdp_desc {
                    addr: f.addr,
                    len: f.len,
                    options: 0,
                },
            );
            placed += 1;
            bytes += u64::from(f.len);
        }
        p.stats.tx_bad_frames += r.bad as u64;
        p.stats.tx_ring_full += r.ring_full as u64;
        if got > 0 {
            p.sock.tx.submit();
            self.held -= got;
            p.tx_out += got;
            p.stats.tx_packets += u64::from(got);
            p.stats.tx_bytes += bytes;
            kick(p, &mut self.free);
        }
        r.sent = got as usize;
        if p.link == Link::Down {
            // This very kick found the link down: what it took back counts
            // as dropped, not sent.
            r.link_down = r.sent;
            r.sent = 0;
        }
        r
    }

    /// Free slots in `port`'s TX ring now (after reaping completions): how
    /// many frames a `tx_burst` would place.
    pub fn tx_room(&mut self, port: usize) -> usize {
        let p = &mut self.ports[port];
        reap(p, &mut self.free);
        if p.link == Link::Down {
            return 0;
        }
        let size = p.sock.tx.size();
        p.sock.tx.free(size) as usize
    }

    /// Reaps the completions of every port with frames out: call once a
    /// loop (a zero-copy driver posts completions without being asked).
    #[inline]
    pub fn complete(&mut self) {
        for p in &mut self.ports {
            if p.tx_out > 0 {
                reap(p, &mut self.free);
            }
        }
    }

    /// Puts a frame the caller holds back on the free stack (any address
    /// inside the frame will do).
    pub fn free(&mut self, addr: u64) {
        assert!(
            addr < self.umem.len(),
            "free of address {addr} outside the UMEM"
        );
        let fs = u64::from(self.umem.frame_size());
        free_held(&mut self.owned, &mut self.free, &mut self.held, fs, addr);
    }

    /// A free frame for a generated packet: the address of its first byte
    /// (the whole `frame_size` buffer is the caller's).
    pub fn alloc(&mut self) -> Option<u64> {
        let addr = self.free.pop()?;
        self.owned[self.umem.frame_index(addr)] = true;
        self.held += 1;
        Some(addr)
    }

    /// The buffer from `addr` to the end of its frame. Panics unless the
    /// caller holds the frame (the kernel may be using the others).
    pub fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let (start, len) = self.span(addr);
        // SAFETY: `span` keeps the range inside the UMEM mapping, which lives
        // as long as `self`; `&mut self` makes this the only Rust reference.
        unsafe { std::slice::from_raw_parts_mut(self.umem.as_ptr().add(start), len) }
    }

    /// The `len` packet bytes of a frame the caller holds (panics for a
    /// frame it does not hold).
    pub fn frame(&self, frame: FrameRef) -> &[u8] {
        let (start, len) = self.span(frame.addr);
        // SAFETY: as in `frame_mut`, under a shared borrow of `self`.
        let buf = unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(start), len) };
        &buf[..(frame.len as usize).min(len)]
    }

    /// The buffers of a burst, each from its `addr` to the end of its frame,
    /// all mutable at once. Panics if two refer to the same frame, or to a
    /// frame the caller does not hold.
    pub fn frames_mut<'a>(&'a mut self, frames: &'a [FrameRef]) -> FramesMut<'a> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.fill(0);
            self.stamp = 1;
        }
        FramesMut {
            base: self.umem.as_ptr(),
            umem_len: self.umem.len(),
            frame_size: u64::from(self.umem.frame_size()),
            frames: frames.iter(),
            stamps: &mut self.stamps,
            owned: &self.owned,
            stamp: self.stamp,
        }
    }

    /// The span of a held frame's buffer from `addr`.
    fn span(&self, addr: u64) -> (usize, usize) {
        assert!(addr < self.umem.len(), "address {addr} outside the UMEM");
        let f = self.umem.frame_index(addr);
        assert!(self.owned[f], "frame {f} is not held by the caller");
        let end = self.umem.frame_base(addr) + u64::from(self.umem.frame_size());
        (addr as usize, (end - addr) as usize)
    }

    /// Reaps completions, refills fill rings, finishes pending TX kicks and
    /// makes the RX wake-ups the kernel asks for. Call it every few loops
    /// and when idle.
    pub fn housekeeping(&mut self) {
        for p in &mut self.ports {
            reap(p, &mut self.free);
            refill(p, &mut self.free, self.fill_target, self.reserve);
            if p.link == Link::Down {
                probe_link(p);
            } else if p.sock.tx.outstanding() > 0 {
                kick(p, &mut self.free);
            }
            if p.sock.fill.needs_wakeup() {
                p.sock.wake_rx();
                p.stats.rx_wakeups += 1;
            }
        }
        debug_assert!(
            self.frames_accounted().balanced(),
            "frame books do not balance: {:?}",
            self.frames_accounted()
        );
    }

    /// Sleeps until some port has received frames or `timeout` passed;
    /// whether one has. For idle workers and tests, not for the hot loop.
    /// (In copy mode each `poll` also runs the kernel's TX path, which counts
    /// in `tx_ring_empty_descs` when the TX ring is empty.)
    pub fn wait_rx(&mut self, timeout: Duration) -> bool {
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `pollfds` is a live array of `len` pollfd entries.
        let ret = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ms,
            )
        };
        ret > 0
    }

    /// Counters of every port, with the kernel's `XDP_STATISTICS`.
    pub fn stats(&self) -> PortsStats {
        PortsStats {
            ports: (0..self.ports.len()).map(|i| self.port_stats(i)).collect(),
        }
    }

    /// Counters of one port, with the kernel's `XDP_STATISTICS` (one
    /// syscall, no allocation).
    pub fn port_stats(&self, port: usize) -> PortStats {
        let p = &self.ports[port];
        let mut s = p.stats;
        if let Ok(k) = p.sock.statistics() {
            s.xdp = XdpStatistics {
                rx_dropped: k.rx_dropped,
                rx_invalid_descs: k.rx_invalid_descs,
                tx_invalid_descs: k.tx_invalid_descs,
                rx_ring_full: k.rx_ring_full,
                rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
                tx_ring_empty_descs: k.tx_ring_empty_descs,
            };
        }
        s
    }

    /// Where every frame is.
    pub fn frames_accounted(&self) -> FrameCensus {
        let mut c = FrameCensus {
            total: self.umem.frames(),
            free: self.free.len() as u32,
            held: self.held,
            ..FrameCensus::default()
        };
        for p in &self.ports {
            let ready = p.sock.rx.ready().min(p.rx_out);
            c.rx += ready;
            c.fill += p.rx_out - ready;
            c.tx += p.tx_out;
        }
        c
    }

    /// The socket descriptor of a port (for diagnostics and `poll`).
    pub fn port_fd(&self, port: usize) -> i32 {
        self.ports[port].sock.fd()
    }
}

/// Moves completed TX frames to the free stack.
fn reap(p: &mut Port, free: &mut Vec<u64>) -> u32 {
    let size = p.sock.comp.size();
    let (idx, n) = p.sock.comp.peek(size);
    if n == 0 {
        return 0;
    }
    for i in 0..n {
        // Completions return the TX address (maybe inside the frame).
        free.push(p.sock.comp.read(idx.wrapping_add(i)) & p.frame_mask);
    }
    p.sock.comp.release();
    p.tx_out -= n;
    n
}

/// Tops the port's receive side up to `target` frames, leaving `reserve`
/// frames on the free stack.
fn refill(p: &mut Port, free: &mut Vec<u64>, target: u32, reserve: u32) {
    let want = target.saturating_sub(p.rx_out);
    if want == 0 {
        return;
    }
    let avail = want.min((free.len() as u32).saturating_sub(reserve));
    if avail < want {
        p.stats.rx_fill_starved += 1;
    }
    let (idx, got) = p.sock.fill.reserve(avail);
    if got == 0 {
        return;
    }
    for i in 0..got {
        let addr = free.pop().expect("counted above");
        p.sock.fill.write(idx.wrapping_add(i), addr);
    }
    p.sock.fill.submit();
    p.rx_out += got;
}

/// Wakes the kernel to send the TX ring, looping while it says "again"
/// (veth sends at most the socket's TX budget per call) and makes progress.
fn kick(p: &mut Port, free: &mut Vec<u64>) {
    if !p.sock.tx.needs_wakeup() {
        return;
    }
    let mut left = p.sock.tx.outstanding();
    for _ in 0..KICK_ROUNDS {
        p.stats.tx_kicks += 1;
        let res = p.sock.kick_tx();
        // Completions make room for the kernel's next batch.
        let reaped = reap(p, free);
        match res {
            Ok(()) => {}
            Err(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {}
            Err(libc::ENETDOWN | libc::ENXIO) => {
                p.stats.tx_kick_errors += 1;
                link_down(p, free);
                return;
            }
            Err(_) => {
                p.stats.tx_kick_errors += 1;
                return;
            }
        }
        let now = p.sock.tx.outstanding();
        if now == 0 || (now == left && reaped == 0) {
            return;
        }
        left = now;
    }
}

/// The kick found the link down (ENETDOWN) or the device gone (ENXIO): the
/// kernel took nothing, so what the TX ring holds comes back (freed,
/// counted `tx_link_down`) instead of leaving seconds later, and the port
/// stays down until a probe succeeds.
fn link_down(p: &mut Port, free: &mut Vec<u64>) {
    let mask = p.frame_mask;
    let back = p.sock.tx.retract(|d| free.push(d.addr & mask));
    p.tx_out -= back;
    p.stats.tx_link_down += u64::from(back);
    // Those frames were counted as sent when they entered the ring.
    p.stats.tx_packets -= u64::from(back);
    p.stats.link_down_events += 1;
    p.link = Link::Down;
    p.probe_in = 0;
}

/// Housekeeping of a down port: every [`LINK_PROBE_ROUNDS`] rounds, a kick
/// with the TX ring empty (nothing stale can leave); success brings the
/// port back.
fn probe_link(p: &mut Port) {
    if p.probe_in > 0 {
        p.probe_in -= 1;
        return;
    }
    p.probe_in = LINK_PROBE_ROUNDS;
    debug_assert_eq!(p.sock.tx.outstanding(), 0);
    if matches!(p.sock.kick_tx(), Ok(()) | Err(libc::EAGAIN | libc::EBUSY)) {
        p.link = Link::Up;
    }
}

/// Puts a held frame back on the free stack; panics on a frame the caller
/// does not hold (a double free would hand one frame out twice).
fn free_held(owned: &mut [bool], free: &mut Vec<u64>, held: &mut u32, fs: u64, addr: u64) {
    let f = (addr / fs) as usize;
    assert!(
        owned[f],
        "free of frame {f}, which the caller does not hold"
    );
    owned[f] = false;
    free.push(addr & !(fs - 1));
    *held -= 1;
}

/// Frames each of `ports` ports keeps in the kernel's receive side: its
/// whole fill ring (`ring_size`), as long as the fill rings together leave
/// [`alloc_reserve`] frames on the free stack.
///
/// The receive side is what absorbs a burst while the worker is not
/// looking (another thread on its core, a sleep of the idle back-off): a
/// frame kept on the free stack instead, while the fill ring has room, is
/// a packet the kernel drops as "fill ring empty". Rings are sized so that
/// every port's fill ring and TX ring fit in the UMEM together (a TX ring
/// whose kicks keep failing holds its frames; the fill rings must not
/// starve for it). With the default 16384 frames and two ports: rings of
/// 4096, 4096 frames in each fill ring (1024 of 4096, a quarter, before);
/// with 4096 frames: rings of 1024, full.
pub fn fill_target(umem_frames: u32, ports: u32, ring_size: u32) -> u32 {
    let share = umem_frames.saturating_sub(alloc_reserve(umem_frames)) / ports.max(1);
    share.min(ring_size).max(1)
}

/// Frames refills leave on the free stack (see [`ALLOC_RESERVE_MIN`]).
pub fn alloc_reserve(umem_frames: u32) -> u32 {
    (umem_frames / 8).max(ALLOC_RESERVE_MIN.min(umem_frames / 4))
}

fn prev_power_of_two(x: u32) -> u32 {
    if x == 0 {
        0
    } else {
        1 << (31 - x.leading_zeros())
    }
}

/// The buffers of a burst; see [`WorkerPorts::frames_mut`].
pub struct FramesMut<'a> {
    base: *mut u8,
    umem_len: u64,
    frame_size: u64,
    frames: std::slice::Iter<'a, FrameRef>,
    stamps: &'a mut [u32],
    owned: &'a [bool],
    stamp: u32,
}

impl<'a> Iterator for FramesMut<'a> {
    type Item = &'a mut [u8];

    fn next(&mut self) -> Option<&'a mut [u8]> {
        let f = self.frames.next()?;
        assert!(
            f.addr < self.umem_len,
            "address {} outside the UMEM",
            f.addr
        );
        let index = (f.addr / self.frame_size) as usize;
        assert!(
            self.owned[index],
            "frames_mut: frame {index} is not held by the caller"
        );
        assert!(
            self.stamps[index] != self.stamp,
            "frames_mut: frame {index} appears twice in the burst"
        );
        self.stamps[index] = self.stamp;
        let end = (index as u64 + 1) * self.frame_size;
        // SAFETY: the range lies inside the UMEM mapping, which outlives 'a
        // (the iterator borrows the WorkerPorts mutably for 'a); the stamp
        // check guarantees no other slice of this iterator covers this frame,
        // and the mutable borrow excludes every other Rust reference.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.base.add(f.addr as usize), (end - f.addr) as usize)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.frames.size_hint()
    }
}

impl ExactSizeIterator for FramesMut<'_> {}
