//! Hand-off between workers: a tracked packet that reaches a worker which
//! does not own its flow ([`crate::owner`]) is copied into a buffer and
//! queued for the owner, as VPP hands NAT sessions to their thread.
//!
//! Each worker has its own UMEM (its fill and completion rings are single
//! producer, single consumer, and its free stack has one owner), so a frame
//! never crosses workers: the packet's bytes do, in a buffer from a pool
//! allocated at start, through one bounded lock-free queue per worker
//! (crossbeam `ArrayQueue`). The owner copies the bytes into a frame of its
//! own UMEM and runs them through its pipeline as if they had arrived on
//! its queue of the same port; the buffer goes back to the pool. No lock,
//! no allocation and no syscall: only a copy, on the tracked path alone.
//! Untracked transit never comes here.

use crossbeam_queue::ArrayQueue;

use crate::addr::Mac;
use crate::packet::PortId;

/// Packets waiting for one worker, at most.
pub const HANDOFF_QUEUE: usize = 1024;
/// Bytes of a hand-off buffer: a whole frame's worth.
pub const HANDOFF_BUF: usize = 2048;
/// Neighbour updates waiting for one worker, at most.
pub const NEIGHBOUR_UPDATES: usize = 256;

/// A packet on its way to the worker that owns its flow.
#[derive(Debug)]
pub struct Handed {
    /// The port it arrived on.
    pub port: PortId,
    /// Its length.
    pub len: usize,
    /// The frame's bytes (`..len`).
    pub buf: Box<[u8]>,
}

/// Why a hand-off did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffFull {
    /// The owner's queue is full (it falls behind).
    Queue,
    /// No buffer is free (every buffer waits in some queue).
    Pool,
}

/// The hand-off queues of all workers, shared by them.
#[derive(Debug)]
pub struct Handoff {
    inbox: Vec<ArrayQueue<Handed>>,
    pool: ArrayQueue<Box<[u8]>>,
    /// Neighbours another worker learned from ARP, per worker: an ARP
    /// reply reaches one queue, but any worker may send to the neighbour.
    neighbours: Vec<ArrayQueue<(u32, Mac, PortId)>>,
    /// The same for IPv6 neighbours learned from NDP.
    neighbours6: Vec<ArrayQueue<(u128, Mac, PortId)>>,
}

impl Handoff {
    /// Queues for `workers` workers and a pool that fills all of them.
    pub fn new(workers: usize) -> Handoff {
        let buffers = HANDOFF_QUEUE * workers;
        let pool = ArrayQueue::new(buffers.max(1));
        for _ in 0..buffers {
            let _ = pool.push(vec![0u8; HANDOFF_BUF].into_boxed_slice());
        }
        Handoff {
            inbox: (0..workers)
                .map(|_| ArrayQueue::new(HANDOFF_QUEUE))
                .collect(),
            pool,
            neighbours: (0..workers)
                .map(|_| ArrayQueue::new(NEIGHBOUR_UPDATES))
                .collect(),
            neighbours6: (0..workers)
                .map(|_| ArrayQueue::new(NEIGHBOUR_UPDATES))
                .collect(),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inbox.len()
    }

    /// Copies `frame` (received on `port`) into a buffer for worker `to`.
    pub fn send(&self, to: usize, port: PortId, frame: &[u8]) -> Result<(), HandoffFull> {
        let mut buf = self.pool.pop().ok_or(HandoffFull::Pool)?;
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        match self.inbox[to].push(Handed { port, len, buf }) {
            Ok(()) => Ok(()),
            Err(h) => {
                self.recycle(h.buf);
                Err(HandoffFull::Queue)
            }
        }
    }

    /// The next packet handed to worker `me`.
    #[inline]
    pub fn receive(&self, me: usize) -> Option<Handed> {
        self.inbox[me].pop()
    }

    /// Whether packets wait for worker `me` (one atomic load).
    #[inline]
    pub fn has_packet(&self, me: usize) -> bool {
        !self.inbox[me].is_empty()
    }

    /// Packets waiting for worker `me`.
    pub fn waiting(&self, me: usize) -> usize {
        self.inbox[me].len()
    }

    /// Tells every worker but `from` that `addr` is at `mac` on `port`. A
    /// full queue loses the update: the neighbour's next ARP answer (a
    /// refresh comes before it expires) brings it again.
    pub fn publish_neighbour(&self, from: usize, addr: u32, mac: Mac, port: PortId) {
        for (i, q) in self.neighbours.iter().enumerate() {
            if i != from {
                let _ = q.push((addr, mac, port));
            }
        }
    }

    /// The next neighbour another worker learned, for worker `me`.
    #[inline]
    pub fn learned_neighbour(&self, me: usize) -> Option<(u32, Mac, PortId)> {
        self.neighbours[me].pop()
    }

    /// Tells every worker but `from` that the IPv6 neighbour `addr` is at
    /// `mac` on `port`; a full queue loses the update, as for IPv4.
    pub fn publish_neighbour6(&self, from: usize, addr: u128, mac: Mac, port: PortId) {
        for (i, q) in self.neighbours6.iter().enumerate() {
            if i != from {
                let _ = q.push((addr, mac, port));
            }
        }
    }

    /// The next IPv6 neighbour another worker learned, for worker `me`.
    #[inline]
    pub fn learned_neighbour6(&self, me: usize) -> Option<(u128, Mac, PortId)> {
        self.neighbours6[me].pop()
    }

    /// Gives a buffer back to the pool.
    pub fn recycle(&self, buf: Box<[u8]>) {
        // Never full: the pool holds every buffer there is.
        let _ = self.pool.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_reach_their_owner_and_a_full_queue_refuses() {
        let h = Handoff::new(2);
        h.send(1, PortId(3), &[1, 2, 3]).unwrap();
        assert!(!h.has_packet(0));
        let got = h.receive(1).expect("handed to worker 1");
        assert_eq!(
            (got.port, &got.buf[..got.len]),
            (PortId(3), &[1u8, 2, 3][..])
        );
        h.recycle(got.buf);
        for _ in 0..HANDOFF_QUEUE {
            h.send(0, PortId(0), &[0; 60]).unwrap();
        }
        assert_eq!(h.send(0, PortId(0), &[0; 60]), Err(HandoffFull::Queue));
        assert_eq!(h.waiting(0), HANDOFF_QUEUE);
        // The refused packet's buffer went back: worker 1's queue still
        // takes a whole queue's worth.
        for _ in 0..HANDOFF_QUEUE {
            h.send(1, PortId(0), &[0; 60]).unwrap();
        }
    }

    #[test]
    fn neighbours_reach_every_other_worker_per_family() {
        let h = Handoff::new(3);
        let mac = Mac([2, 0, 0, 0, 0, 7]);
        h.publish_neighbour6(1, 0x2001_0db8 << 96 | 9, mac, PortId(2));
        h.publish_neighbour(1, 0xc612_0009, mac, PortId(1));
        for w in [0, 2] {
            assert_eq!(
                h.learned_neighbour6(w),
                Some((0x2001_0db8 << 96 | 9, mac, PortId(2)))
            );
            assert_eq!(h.learned_neighbour(w), Some((0xc612_0009, mac, PortId(1))));
            assert_eq!(h.learned_neighbour6(w), None);
        }
        assert_eq!(h.learned_neighbour6(1), None, "not back to the sender");
    }
}
