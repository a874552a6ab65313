//! The generator and the sink on threads of their own, each in its network
//! namespace and (optionally) pinned to a CPU, driven by commands so one
//! process can run many trials without reopening its sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::gen::{GenConfig, GenReport, Generator, RunSpec};
use super::sink::{Sink, SinkConfig, SinkReport, MAX_MEASURE};
use super::LinerateError;

/// Where a thread runs.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Network namespace (`/run/netns/NAME`); `None`: the caller's.
    pub netns: Option<String>,
    /// CPU to pin to; `None`: anywhere.
    pub cpu: Option<usize>,
}

impl Placement {
    fn enter(&self) -> Result<(), LinerateError> {
        if let Some(ns) = &self.netns {
            lab::netns::enter(ns)
                .map_err(|e| LinerateError::Setup(format!("enter namespace {ns}: {e}")))?;
        }
        if let Some(cpu) = self.cpu {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                return Err(LinerateError::Setup(format!(
                    "cannot pin a thread to CPU {cpu}"
                )));
            }
        }
        Ok(())
    }
}

/// How long opening a port may take (a just-closed socket keeps its queue
/// busy for a while).
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

fn spawn<T, C>(
    name: &str,
    place: Placement,
    open: impl FnOnce() -> Result<T, LinerateError> + Send + 'static,
    mut serve: impl FnMut(&mut T, C) -> bool + Send + 'static,
) -> Result<(Sender<C>, JoinHandle<()>), LinerateError>
where
    C: Send + 'static,
{
    let (cmd_tx, cmd_rx) = channel::<C>();
    let (ready_tx, ready_rx) = channel::<Result<(), LinerateError>>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let opened = place.enter().and_then(|()| open());
            let mut state = match opened {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(cmd) = cmd_rx.recv() {
                if !serve(&mut state, cmd) {
                    break;
                }
            }
        })
        .map_err(|e| LinerateError::Setup(format!("spawn {name}: {e}")))?;
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok((cmd_tx, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(LinerateError::Setup(format!(
            "{name} did not open within {OPEN_TIMEOUT:?}"
        ))),
    }
}

type Reply<T> = Sender<Result<T, LinerateError>>;

/// A generator on its own thread.
pub struct GenHandle {
    cmd: Option<Sender<(RunSpec, Reply<GenReport>)>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GenHandle {
    /// Opens the generator in `place`.
    pub fn open(cfg: GenConfig, place: Placement) -> Result<GenHandle, LinerateError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (cmd, thread) = spawn(
            "linerate-gen",
            place,
            move || Generator::open(&cfg),
            move |g: &mut Generator, (spec, reply): (RunSpec, Reply<GenReport>)| {
                let _ = reply.send(g.run(&spec, &flag));
                true
            },
        )?;
        Ok(GenHandle {
            cmd: Some(cmd),
            stop,
            thread: Some(thread),
        })
    }

    /// Sends one run and waits for its report.
    pub fn run(&self, spec: &RunSpec) -> Result<GenReport, LinerateError> {
        let (tx, rx) = channel();
        self.stop.store(false, Ordering::Relaxed);
        let cmd = self.cmd.as_ref().expect("open until dropped");
        cmd.send((spec.clone(), tx))
            .map_err(|_| LinerateError::Setup("generator thread ended".into()))?;
        let bound = spec.duration + Duration::from_secs(10);
        match rx.recv_timeout(bound) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                self.stop.store(true, Ordering::Relaxed);
                rx.recv_timeout(Duration::from_secs(5))
                    .map_err(|_| LinerateError::Setup("generator does not answer".into()))?
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(LinerateError::Setup("generator thread ended".into()))
            }
        }
    }
}

impl Drop for GenHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cmd.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum SinkCmd {
    Measure(Duration, Reply<SinkReport>),
}

/// A sink on its own thread: [`SinkHandle::start`] begins a measurement,
/// [`SinkHandle::finish`] ends it and returns the report.
pub struct SinkHandle {
    cmd: Option<Sender<SinkCmd>>,
    stop: Arc<AtomicBool>,
    pending: Option<Receiver<Result<SinkReport, LinerateError>>>,
    thread: Option<JoinHandle<()>>,
}

impl SinkHandle {
    /// Opens the sink in `place`.
    pub fn open(cfg: SinkConfig, place: Placement) -> Result<SinkHandle, LinerateError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (cmd, thread) = spawn(
            "linerate-sink",
            place,
            move || Sink::open(&cfg),
            move |s: &mut Sink, c: SinkCmd| {
                let SinkCmd::Measure(max, reply) = c;
                let _ = reply.send(s.measure(&flag, max));
                true
            },
        )?;
        Ok(SinkHandle {
            cmd: Some(cmd),
            stop,
            pending: None,
            thread: Some(thread),
        })
    }

    /// Starts measuring, for at most `max`.
    pub fn start(&mut self, max: Duration) -> Result<(), LinerateError> {
        let (tx, rx) = channel();
        self.stop.store(false, Ordering::Relaxed);
        let cmd = self.cmd.as_ref().expect("open until dropped");
        cmd.send(SinkCmd::Measure(max.min(MAX_MEASURE), tx))
            .map_err(|_| LinerateError::Setup("sink thread ended".into()))?;
        self.pending = Some(rx);
        // The sink's first look at its counters happens on its thread.
        std::thread::sleep(Duration::from_millis(5));
        Ok(())
    }

    /// Ends the measurement and returns what the sink saw.
    pub fn finish(&mut self) -> Result<SinkReport, LinerateError> {
        self.stop.store(true, Ordering::Relaxed);
        let rx = self
            .pending
            .take()
            .ok_or_else(|| LinerateError::Setup("sink was not started".into()))?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| LinerateError::Setup("sink does not answer".into()))?
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cmd.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
