//! The control handshake of a worker: what the control side shares with
//! it ([`WorkerShared`]) and how they talk without a lock on the packet
//! path. New tables come through a [`TablesSlot`] (an `Arc` swapped under
//! a lock, noticed through an atomic generation at housekeeping); requests
//! (list or flush the connection table, reset the counters, clear the
//! runtime accounting) are counters
//! the worker compares at housekeeping (`Ask`, [`WorkerShared::ask`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conntrack::FlowView;
use crate::neighbour::NeighbourView;
use crate::tables::Tables;
use crate::trace_capture::TraceHub;

use super::{Worker, WorkerSnapshot, MAX_LISTED_FLOWS};

/// The compiled tables the workers run with, replaced whole by the control
/// side. Workers notice a new generation at housekeeping (one atomic load)
/// and only then take the lock.
#[derive(Debug)]
pub struct TablesSlot {
    generation: AtomicU64,
    tables: Mutex<Arc<Tables>>,
}

impl TablesSlot {
    /// A slot holding `tables` as generation 0.
    pub fn new(tables: Arc<Tables>) -> TablesSlot {
        TablesSlot {
            generation: AtomicU64::new(0),
            tables: Mutex::new(tables),
        }
    }

    /// Publishes new tables; workers adopt them at their next housekeeping.
    pub fn replace(&self, tables: Arc<Tables>) {
        let mut slot = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        *slot = tables;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current generation (bumped by every [`TablesSlot::replace`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The tables in the slot and their generation.
    pub fn load(&self) -> (u64, Arc<Tables>) {
        let slot = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation.load(Ordering::Acquire), slot.clone())
    }
}

/// What the control side may ask a worker, answered at its housekeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerRequest {
    /// List the connection table (at most [`MAX_LISTED_FLOWS`] entries).
    ListFlows,
    /// Empty the connection table.
    FlushFlows,
    /// Set the counters to zero (pipeline, loop, runtime, port and
    /// connection-table counters; the frame census is a state, not a
    /// counter).
    ResetCounters,
    /// Set the runtime accounting alone to zero (`vppctl clear runtime`).
    ClearRuntime,
    /// List both neighbour tables.
    ListNeighbours,
}

/// A worker's answer to a [`WorkerRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerReply {
    /// The connection table's live entries.
    Flows(Vec<FlowView>),
    /// Entries removed by the flush.
    Flushed(usize),
    /// Counters are zero (and a snapshot saying so was published).
    Reset,
    /// The runtime accounting is zero (and a snapshot saying so was
    /// published).
    RuntimeCleared,
    /// The neighbour tables ([`crate::pipeline::Pipeline::neighbour_views`]).
    Neighbours(Vec<NeighbourView>),
}

/// One kind of request: the control side bumps `requested`, the worker
/// acts when it differs from `done` and then stores it there. Requests made
/// before the worker looks are answered together (all are idempotent).
#[derive(Debug, Default)]
struct Ask {
    requested: AtomicU64,
    done: AtomicU64,
}

impl Ask {
    /// Worker: the request to answer, if one waits.
    fn pending(&self) -> Option<u64> {
        let r = self.requested.load(Ordering::Acquire);
        (r != self.done.load(Ordering::Relaxed)).then_some(r)
    }
}

/// What the control side shares with one worker.
pub struct WorkerShared {
    /// Set to stop the worker; it finishes its loop, drains TX and returns.
    pub stop: Arc<AtomicBool>,
    /// Tables for all workers.
    pub tables: Arc<TablesSlot>,
    /// Live traces (`routerctl trace`), shared by all workers.
    pub trace: Arc<TraceHub>,
    snapshot: Mutex<WorkerSnapshot>,
    /// Bumped at every published snapshot.
    published: AtomicU64,
    asks: [Ask; 5],
    /// The last listing ([`WorkerRequest::ListFlows`]).
    flows: Mutex<Vec<FlowView>>,
    /// The last listing ([`WorkerRequest::ListNeighbours`]).
    neighbours: Mutex<Vec<NeighbourView>>,
    /// Entries removed by the last flush.
    flushed: AtomicU64,
}

impl std::fmt::Debug for WorkerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerShared")
            .field("stop", &self.stop)
            .field("tables", &self.tables)
            .field("published", &self.published)
            .field("asks", &self.asks)
            .finish_non_exhaustive()
    }
}

impl WorkerShared {
    /// Shared state for a worker with the common stop flag and tables slot
    /// (and a trace hub of its own: see [`WorkerShared::with_trace_hub`]).
    pub fn new(stop: Arc<AtomicBool>, tables: Arc<TablesSlot>) -> WorkerShared {
        WorkerShared {
            stop,
            tables,
            trace: Arc::new(TraceHub::new()),
            snapshot: Mutex::new(WorkerSnapshot::default()),
            published: AtomicU64::new(0),
            asks: Default::default(),
            flows: Mutex::new(Vec::new()),
            neighbours: Mutex::new(Vec::new()),
            flushed: AtomicU64::new(0),
        }
    }

    /// Use `hub` (one for all workers) for live traces.
    pub fn with_trace_hub(mut self, hub: Arc<TraceHub>) -> WorkerShared {
        self.trace = hub;
        self
    }

    /// Asks the worker (control side; waits up to `limit` for the answer,
    /// which comes at the worker's next housekeeping). `None`: no answer in
    /// time (the worker is stuck or stopped); the request stays pending.
    pub fn ask(&self, req: WorkerRequest, limit: Duration) -> Option<WorkerReply> {
        let ask = &self.asks[req as usize];
        let want = ask.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + limit;
        while ask.done.load(Ordering::Acquire) < want {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Some(match req {
            WorkerRequest::ListFlows => {
                WorkerReply::Flows(self.flows.lock().unwrap_or_else(|e| e.into_inner()).clone())
            }
            WorkerRequest::FlushFlows => {
                WorkerReply::Flushed(self.flushed.load(Ordering::Acquire) as usize)
            }
            WorkerRequest::ResetCounters => WorkerReply::Reset,
            WorkerRequest::ClearRuntime => WorkerReply::RuntimeCleared,
            WorkerRequest::ListNeighbours => WorkerReply::Neighbours(
                self.neighbours
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
        })
    }

    /// The last snapshot the worker published.
    pub fn snapshot(&self) -> WorkerSnapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Snapshots published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

impl Worker {
    /// Answers what the control side asked ([`WorkerShared::ask`]); true
    /// when counters or the table changed (publish now).
    pub(super) fn answer_requests(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut changed = false;
        let [list, flush, reset, clear_runtime, neighbours] = &shared.asks;
        if let Some(r) = flush.pending() {
            let n = self.pipeline.conntrack().len();
            self.pipeline.conntrack_mut().flush();
            shared.flushed.store(n as u64, Ordering::Release);
            flush.done.store(r, Ordering::Release);
            changed = true;
        }
        if let Some(r) = list.pending() {
            let now = self.pipeline.now();
            let flows: Vec<FlowView> = self
                .pipeline
                .conntrack()
                .flows(now)
                .take(MAX_LISTED_FLOWS)
                .collect();
            *shared.flows.lock().unwrap_or_else(|e| e.into_inner()) = flows;
            list.done.store(r, Ordering::Release);
        }
        if let Some(r) = reset.pending() {
            self.reset_counters();
            // Published before the answer, so that the control side reads zeros.
            self.publish(false);
            reset.done.store(r, Ordering::Release);
        }
        if let Some(r) = clear_runtime.pending() {
            self.rt.clear();
            self.publish(false);
            clear_runtime.done.store(r, Ordering::Release);
        }
        if let Some(r) = neighbours.pending() {
            *shared.neighbours.lock().unwrap_or_else(|e| e.into_inner()) =
                self.pipeline.neighbour_views();
            neighbours.done.store(r, Ordering::Release);
        }
        changed
    }

    /// Publishes the worker's snapshot to the control side.
    pub(super) fn publish(&mut self, stopped: bool) {
        let snap = self.snapshot(stopped);
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snap;
        self.shared.published.fetch_add(1, Ordering::Release);
        self.last_publish = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_slot_bumps_generation_on_replace() {
        let t = Arc::new(Tables::build(Default::default()));
        let slot = TablesSlot::new(t.clone());
        assert_eq!(slot.generation(), 0);
        let t2 = Arc::new(Tables::build(Default::default()));
        slot.replace(t2.clone());
        let (g, got) = slot.load();
        assert_eq!(g, 1);
        assert!(Arc::ptr_eq(&got, &t2));
    }

    #[test]
    fn a_request_nobody_answers_times_out_and_one_answered_returns() {
        let t = Arc::new(Tables::build(Default::default()));
        let shared = WorkerShared::new(
            Arc::new(AtomicBool::new(false)),
            Arc::new(TablesSlot::new(t)),
        );
        let start = Instant::now();
        assert_eq!(
            shared.ask(WorkerRequest::FlushFlows, Duration::from_millis(20)),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        // The worker's side, by hand: answer what is pending.
        let ask = &shared.asks[WorkerRequest::FlushFlows as usize];
        let r = ask.pending().expect("the request waits");
        shared.flushed.store(4, Ordering::Release);
        ask.done.store(r, Ordering::Release);
        assert!(ask.pending().is_none());
        // A second request is answered once the worker acts on it.
        std::thread::scope(|s| {
            let h = s.spawn(|| shared.ask(WorkerRequest::FlushFlows, Duration::from_secs(5)));
            while ask.pending().is_none() {
                std::thread::yield_now();
            }
            let r = ask.pending().unwrap();
            ask.done.store(r, Ordering::Release);
            assert_eq!(h.join().unwrap(), Some(WorkerReply::Flushed(4)));
        });
    }
}
