//! A fake kernel: the kernel's side of the four AF_XDP rings, played in
//! memory, so that [`super::WorkerPorts`] and the worker loop run in tests
//! against behaviour veth never shows (veth binds in copy mode and always
//! asks for wake-ups).
//!
//! [`FakeKernel`] holds one [`FakeQueue`] per port. A queue plays either
//! [`FakeMode::Copy`] (the kernel sends the TX ring inside the `sendto`
//! kick and keeps NEED_WAKEUP set, as veth does) or [`FakeMode::ZeroCopy`]
//! (a driver sends the TX ring whenever the test calls [`FakeKernel::nic`],
//! clears NEED_WAKEUP while descriptors are in flight, as mlx5 does, and can
//! hold completions back for some steps). Kicks can fail with a chosen
//! errno, the link can go down (kicks then fail with ENETDOWN, as the
//! kernel's `xsk_check_common` does for an interface that is not up) or the
//! device can go away (ENXIO).
//!
//! Not for production: a `Mutex` per queue, allocation per packet. It
//! touches UMEM frames only while the kernel owns them (taken from the fill
//! ring and not yet in the RX ring; read from the TX ring), and not at all
//! once its socket is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ring::{ConsRing, Mmap, ProdRing, RingOffsets};
use super::umem::Umem;

/// The ring layout the fake uses: producer, consumer and flags on their own
/// cache lines, then the descriptors.
const OFF: RingOffsets = RingOffsets {
    producer: 0,
    consumer: 64,
    flags: 128,
    desc: 192,
};
/// Where a received packet starts in its frame (the kernel's XDP headroom).
pub const RX_HEADROOM: u64 = 256;
/// Descriptors one copy-mode kick sends (the kernel's default TX budget).
const COPY_TX_BUDGET: u32 = 32;

/// How a fake queue behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeMode {
    /// Copy mode (veth, generic XDP): TX is sent inside the kick, and both
    /// rings always ask for wake-ups.
    Copy,
    /// Zero-copy driver: TX is sent at [`FakeKernel::nic`]; the TX ring asks
    /// for a wake-up only when the driver is idle, the fill ring only when
    /// it is empty.
    ZeroCopy,
}

/// The kernel's four rings of one socket, and the UMEM they point into.
struct Side {
    fill: ConsRing<u64>,
    comp: ProdRing<u64>,
    rx: ProdRing<libc::xdp_desc>,
    tx: ConsRing<libc::xdp_desc>,
    // After the rings: their memory.
    _maps: [Mmap; 4],
    umem: *mut u8,
    umem_len: u64,
    frame_size: u64,
}

/// One queue's state.
struct State {
    side: Option<Side>,
    mode: FakeMode,
    link_up: bool,
    gone: bool,
    kick_error: Option<i32>,
    completion_delay: u32,
    step: u32,
    /// Sent frames whose completion is due at a step: (due, address).
    in_flight: VecDeque<(u32, u64)>,
    /// Frames sent on the wire, oldest first.
    wire: Vec<Vec<u8>>,
    stats: FakeStats,
}

// SAFETY: the raw UMEM pointer in `Side` is only dereferenced under the
// queue's mutex, for frames the kernel side owns, while the socket (and so
// the UMEM, which outlives it) is open; nothing ties it to a thread.
unsafe impl Send for State {}

/// What a fake queue counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Kicks (`sendto`) received.
    pub kicks: u64,
    /// Kicks answered with an error.
    pub kick_errors: u64,
    /// RX wake-ups (`recvfrom`) received.
    pub rx_wakeups: u64,
    /// Packets delivered into the RX ring.
    pub delivered: u64,
    /// Deliveries that found the fill ring empty (`XDP_STATISTICS`'
    /// `rx_fill_ring_empty_descs`).
    pub fill_ring_empty: u64,
    /// Deliveries that found the RX ring full.
    pub rx_ring_full: u64,
    /// Deliveries dropped while the link was down.
    pub rx_link_down: u64,
    /// TX descriptors outside the UMEM (`tx_invalid_descs`).
    pub tx_invalid: u64,
    /// Frames sent on the wire.
    pub sent: u64,
}

/// The kernel side of one socket.
pub struct FakeQueue {
    state: Mutex<State>,
}

impl std::fmt::Debug for FakeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeQueue").finish_non_exhaustive()
    }
}

/// A ring's memory for `size` descriptors of `desc` bytes.
fn ring_map(size: u32, desc: usize) -> Mmap {
    Mmap::anonymous(OFF.desc as usize + size as usize * desc).expect("fake ring memory")
}

impl FakeQueue {
    fn new(mode: FakeMode) -> FakeQueue {
        FakeQueue {
            state: Mutex::new(State {
                side: None,
                mode,
                link_up: true,
                gone: false,
                kick_error: None,
                completion_delay: 0,
                step: 0,
                in_flight: VecDeque::new(),
                wire: Vec::new(),
                stats: FakeStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the four rings of `ring_size` entries and returns the user's
    /// side of each (fill, completion, RX, TX).
    pub(crate) fn attach(
        &self,
        umem: &Umem,
        ring_size: u32,
    ) -> (
        ProdRing<u64>,
        ConsRing<u64>,
        ConsRing<libc::xdp_desc>,
        ProdRing<libc::xdp_desc>,
    ) {
        let d = std::mem::size_of::<libc::xdp_desc>();
        let maps = [
            ring_map(ring_size, 8),
            ring_map(ring_size, 8),
            ring_map(ring_size, d),
            ring_map(ring_size, d),
        ];
        let p = [0, 1, 2, 3].map(|i| maps[i].as_ptr());
        // SAFETY: each mapping holds a ring of `ring_size` entries laid out
        // as OFF says and lives in `Side` until `close`, which the socket
        // calls only after its own rings are dropped; each side of each
        // ring has exactly one owner (the user's here, the kernel's in Side).
        let (user, kernel) = unsafe {
            (
                (
                    ProdRing::new(p[0], OFF, ring_size, None),
                    ConsRing::new(p[1], OFF, ring_size, None),
                    ConsRing::new(p[2], OFF, ring_size, None),
                    ProdRing::new(p[3], OFF, ring_size, None),
                ),
                (
                    ConsRing::new(p[0], OFF, ring_size, None),
                    ProdRing::new(p[1], OFF, ring_size, None),
                    ProdRing::new(p[2], OFF, ring_size, None),
                    ConsRing::new(p[3], OFF, ring_size, None),
                ),
            )
        };
        let (fill, comp, rx, tx) = kernel;
        let mut st = self.lock();
        let side = Side {
            fill,
            comp,
            rx,
            tx,
            _maps: maps,
            umem: umem.as_ptr(),
            umem_len: umem.len(),
            frame_size: u64::from(umem.frame_size()),
        };
        // Copy mode (veth) always asks for wake-ups; a zero-copy driver
        // starts idle, which asks too.
        side.fill.set_need_wakeup(true);
        side.tx.set_need_wakeup(true);
        st.side = Some(side);
        user
    }

    /// The socket closed: forget the rings and the UMEM.
    pub(crate) fn close(&self) {
        self.lock().side = None;
    }

    pub(crate) fn zero_copy(&self) -> bool {
        self.lock().mode == FakeMode::ZeroCopy
    }

    /// `sendto` on the socket.
    pub(crate) fn kick(&self) -> Result<(), i32> {
        let mut st = self.lock();
        st.stats.kicks += 1;
        let err = if st.gone {
            Some(libc::ENXIO)
        } else if !st.link_up {
            Some(libc::ENETDOWN)
        } else {
            st.kick_error
        };
        if let Some(e) = err {
            st.stats.kick_errors += 1;
            return Err(e);
        }
        match st.mode {
            // A zero-copy kick only wakes the driver: it sends at `nic`.
            FakeMode::ZeroCopy => Ok(()),
            FakeMode::Copy => {
                let left = st.transmit(COPY_TX_BUDGET);
                st.complete_due();
                if left {
                    Err(libc::EAGAIN)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `recvfrom` on the socket.
    pub(crate) fn wake_rx(&self) {
        self.lock().stats.rx_wakeups += 1;
    }

    pub(crate) fn statistics(&self) -> libc::xdp_statistics {
        let s = self.lock().stats;
        libc::xdp_statistics {
            rx_dropped: s.rx_link_down,
            rx_invalid_descs: 0,
            tx_invalid_descs: s.tx_invalid,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.fill_ring_empty,
            tx_ring_empty_descs: 0,
        }
    }
}

impl State {
    /// Sends up to `budget` TX descriptors; true when more wait. Stops
    /// early when the completion ring has no room for what is in flight.
    fn transmit(&mut self, budget: u32) -> bool {
        let due = self.step + self.completion_delay;
        let Some(s) = self.side.as_mut() else {
            return false;
        };
        let room = s.comp.size() - s.comp.outstanding();
        let budget = budget.min(room.saturating_sub(self.in_flight.len() as u32));
        let (idx, n) = s.tx.peek(budget);
        for i in 0..n {
            let d = s.tx.read(idx.wrapping_add(i));
            let end = d.addr + u64::from(d.len);
            let one_frame = d.len > 0 && (end - 1) / s.frame_size == d.addr / s.frame_size;
            if end > s.umem_len || !one_frame {
                // The kernel skips an invalid descriptor (no completion).
                self.stats.tx_invalid += 1;
                continue;
            }
            // SAFETY: the range lies inside the UMEM (checked above), which
            // outlives the open socket; the frame is in the TX ring, so the
            // user does not write it.
            let bytes =
                unsafe { std::slice::from_raw_parts(s.umem.add(d.addr as usize), d.len as usize) };
            self.wire.push(bytes.to_vec());
            self.stats.sent += 1;
            self.in_flight.push_back((due, d.addr));
        }
        if n > 0 {
            s.tx.release();
        }
        s.tx.ready() > 0
    }

    /// Moves completions that are due into the completion ring.
    fn complete_due(&mut self) {
        let Some(s) = self.side.as_mut() else {
            return;
        };
        let mut ready = 0;
        while self
            .in_flight
            .get(ready)
            .is_some_and(|&(due, _)| due <= self.step)
        {
            ready += 1;
        }
        let (idx, got) = s.comp.reserve(ready as u32);
        for i in 0..got {
            let (_, addr) = self.in_flight.pop_front().expect("counted above");
            s.comp.write(idx.wrapping_add(i), addr);
        }
        if got > 0 {
            s.comp.submit();
        }
    }

    /// NEED_WAKEUP as the mode sets it.
    fn set_flags(&mut self) {
        let Some(s) = self.side.as_mut() else {
            return;
        };
        match self.mode {
            FakeMode::Copy => {
                s.fill.set_need_wakeup(true);
                s.tx.set_need_wakeup(true);
            }
            FakeMode::ZeroCopy => {
                let busy = s.tx.ready() > 0 || !self.in_flight.is_empty();
                s.tx.set_need_wakeup(!busy);
                s.fill.set_need_wakeup(s.fill.ready() == 0);
            }
        }
    }
}

/// The fake kernel of a set of ports: queue *p* serves port *p*.
#[derive(Debug)]
pub struct FakeKernel {
    queues: Vec<Arc<FakeQueue>>,
}

impl FakeKernel {
    /// `ports` queues, all in `mode`.
    pub fn new(ports: usize, mode: FakeMode) -> FakeKernel {
        FakeKernel {
            queues: (0..ports).map(|_| Arc::new(FakeQueue::new(mode))).collect(),
        }
    }

    /// Number of queues.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    pub(crate) fn queue(&self, port: usize) -> Arc<FakeQueue> {
        Arc::clone(&self.queues[port])
    }

    fn lock(&self, port: usize) -> MutexGuard<'_, State> {
        self.queues[port].lock()
    }

    /// A frame arrives on `port`: it takes a frame from the fill ring,
    /// copies `frame` in after the headroom and posts it to the RX ring.
    /// False (and counted) when the fill ring is empty, the RX ring full or
    /// the link down.
    pub fn deliver(&self, port: usize, frame: &[u8]) -> bool {
        let mut st = self.lock(port);
        if !st.link_up || st.gone {
            st.stats.rx_link_down += 1;
            return false;
        }
        let State { side, stats, .. } = &mut *st;
        let Some(s) = side.as_mut() else {
            return false;
        };
        assert!(
            frame.len() as u64 <= s.frame_size - RX_HEADROOM,
            "frame too long for the UMEM's frames"
        );
        if s.rx.free(1) == 0 {
            stats.rx_ring_full += 1;
            return false;
        }
        let (fidx, got) = s.fill.peek(1);
        if got == 0 {
            stats.fill_ring_empty += 1;
            return false;
        }
        let base = s.fill.read(fidx) & !(s.frame_size - 1);
        s.fill.release();
        let addr = base + RX_HEADROOM;
        assert!(
            addr + frame.len() as u64 <= s.umem_len,
            "fill address outside the UMEM"
        );
        // SAFETY: the frame was just taken from the fill ring, so the user
        // does not touch it until it appears in the RX ring; the range lies
        // inside the UMEM (asserted), which outlives the open socket.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), s.umem.add(addr as usize), frame.len());
        }
        let (ridx, _) = s.rx.reserve(1);
        s.rx.write(
            ridx,
            libc::xdp_desc {
                addr,
                len: frame.len() as u32,
                options: 0,
            },
        );
        s.rx.submit();
        stats.delivered += 1;
        st.set_flags();
        true
    }

    /// One step of a zero-copy driver on `port` (NAPI): sends what the TX
    /// ring holds (up to 64), posts the completions that are due, and sets
    /// NEED_WAKEUP as a driver does. In copy mode it only posts completions
    /// (the kick sends). Returns the frames sent in this step.
    pub fn nic(&self, port: usize) -> usize {
        let mut st = self.lock(port);
        let before = st.stats.sent;
        if st.mode == FakeMode::ZeroCopy && st.link_up && !st.gone {
            st.transmit(64);
        }
        st.complete_due();
        st.step += 1;
        st.set_flags();
        (st.stats.sent - before) as usize
    }

    /// Takes the frames `port` sent on the wire so far.
    pub fn take_sent(&self, port: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.lock(port).wire)
    }

    /// Brings `port`'s link up or down (kicks fail with ENETDOWN while it
    /// is down; a zero-copy driver sends nothing).
    pub fn set_link(&self, port: usize, up: bool) {
        self.lock(port).link_up = up;
    }

    /// The device behind `port` goes away: kicks fail with ENXIO.
    pub fn remove_device(&self, port: usize) {
        self.lock(port).gone = true;
    }

    /// Every kick on `port` fails with `errno` (None: kicks work).
    pub fn fail_kicks(&self, port: usize, errno: Option<i32>) {
        self.lock(port).kick_error = errno;
    }

    /// Completions on `port` wait `steps` calls of [`FakeKernel::nic`].
    pub fn delay_completions(&self, port: usize, steps: u32) {
        self.lock(port).completion_delay = steps;
    }

    /// What `port` counted.
    pub fn stats(&self, port: usize) -> FakeStats {
        self.lock(port).stats
    }

    /// Whether `port`'s TX ring asks for a wake-up now.
    pub fn tx_needs_wakeup(&self, port: usize) -> bool {
        self.lock(port)
            .side
            .as_ref()
            .is_some_and(|s| s.tx.needs_wakeup())
    }
}
