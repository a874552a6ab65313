//! What a worker's ports count: our own counters per port, the kernel's
//! `XDP_STATISTICS`, what a TX burst did with its frames, and the census of
//! where the UMEM's frames are.

/// The kernel's drop counters for one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Received packets dropped for a reason other than a full or empty ring.
    pub rx_dropped: u64,
    /// Invalid descriptors met in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors met in the TX ring.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty on a kick.
    pub tx_ring_empty_descs: u64,
}

/// Counters of one port. Ours are exact; `xdp` is read from the kernel when
/// [`super::WorkerPorts::stats`] is called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames handed to the kernel for sending.
    pub tx_packets: u64,
    /// Bytes handed to the kernel for sending.
    pub tx_bytes: u64,
    /// Refills that found too few free frames (the fill ring stays short).
    pub rx_fill_starved: u64,
    /// Frames `tx_burst` could not place because the TX ring was full.
    pub tx_ring_full: u64,
    /// Frames `tx_burst` refused as outside the UMEM or crossing a frame.
    pub tx_bad_frames: u64,
    /// `sendto` wake-ups made.
    pub tx_kicks: u64,
    /// Kicks that failed with something other than "busy, try again".
    pub tx_kick_errors: u64,
    /// `recvfrom` wake-ups made because the fill ring asked for one.
    pub rx_wakeups: u64,
    /// Frames not sent because the port's link was down or its device gone
    /// (freed, including those taken back from the TX ring).
    pub tx_link_down: u64,
    /// Times the port went down (a kick failed with ENETDOWN or ENXIO).
    pub link_down_events: u64,
    /// The kernel's counters for the socket.
    pub xdp: XdpStatistics,
}

/// Counters of all ports, in port order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortsStats {
    /// One entry per port.
    pub ports: Vec<PortStats>,
}

/// What [`super::WorkerPorts::tx_burst`] did with a burst: `sent` frames went to
/// the TX ring; the others were freed, counted by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResult {
    /// Frames placed in the TX ring.
    pub sent: usize,
    /// Frames the full TX ring did not take.
    pub ring_full: usize,
    /// Frames outside the UMEM or crossing a frame boundary.
    pub bad: usize,
    /// Frames dropped because the link was down or the device gone.
    pub link_down: usize,
}

/// Where the UMEM's frames are. `total` equals the sum of the rest when the
/// books balance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCensus {
    /// Frames in the UMEM.
    pub total: u32,
    /// On the free stack.
    pub free: u32,
    /// Given to the kernel for receive: in a fill ring or taken from it and
    /// not yet in an RX ring.
    pub fill: u32,
    /// In an RX ring, not yet taken by `rx_burst`.
    pub rx: u32,
    /// Held by the caller (from `rx_burst`/`alloc`, not yet back through
    /// `tx_burst`/`free`).
    pub held: u32,
    /// In a TX ring or a completion ring.
    pub tx: u32,
}

impl FrameCensus {
    /// Frames found in some place.
    pub fn accounted(&self) -> u32 {
        self.free + self.fill + self.rx + self.held + self.tx
    }

    /// Whether every frame is in exactly one place.
    pub fn balanced(&self) -> bool {
        self.accounted() == self.total
    }
}
