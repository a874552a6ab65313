//! routerd as a child process in a namespace (`ip netns exec NS routerd
//! ...`), its log captured, its counters read from `--stats-json` at exit;
//! and [`tool_start`], how a tool that carries routerd inside it starts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::run::stats::RouterStats;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::{io_err, LabError};

/// The hidden arguments with which a tool (the lab, the soak) runs its
/// built-in copy of routerd: `TOOL --as-routerd --config FILE`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BuiltinRouterd {
    /// Internal: run as routerd (how the tool starts its built-in copy).
    #[arg(long, hide = true)]
    pub as_routerd: bool,
    /// Internal, with --as-routerd.
    #[arg(long, hide = true, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

/// How a tool that carries routerd inside it (the lab, the soak) starts:
/// with `--as-routerd` it *is* routerd and returns routerd's exit code as
/// `Err`; otherwise it gets a flag that SIGINT and SIGTERM raise, so it can
/// clean up before it stops.
pub fn tool_start(
    tool: &str,
    builtin: &BuiltinRouterd,
    config: Option<PathBuf>,
) -> Result<Arc<std::sync::atomic::AtomicBool>, std::process::ExitCode> {
    let stats_json = builtin.stats_json.clone();
    if builtin.as_routerd {
        let Some(config) = config else {
            eprintln!("{tool} --as-routerd needs --config FILE");
            return Err(std::process::ExitCode::from(2));
        };
        return Err(control::run::main_run(&control::run::RunOptions {
            config,
            stats_json,
        }));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("{tool}: cannot install signal handlers: {e}");
            return Err(std::process::ExitCode::from(1));
        }
    }
    Ok(stop)
}

/// routerd running in the router namespace as a child process.
#[derive(Debug)]
pub struct RouterdProc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Receiver<()>,
    stats_json: PathBuf,
    exited: Option<ExitStatus>,
}

impl RouterdProc {
    /// Starts `routerd` (`program` plus `pre_args`, e.g. `--as-routerd` for
    /// the lab's built-in copy) with `--config config` in namespace `ns`.
    pub fn spawn(
        program: &Path,
        pre_args: &[&str],
        ns: &str,
        config: &Path,
    ) -> Result<RouterdProc, LabError> {
        RouterdProc::spawn_on(program, pre_args, ns, config, None)
    }

    /// For a test: [`RouterdProc::spawn`], then [`RouterdProc::wait_ready`]
    /// for up to 20 s; panics with why when routerd does not start.
    pub fn spawn_ready(program: &Path, pre_args: &[&str], ns: &str, config: &Path) -> RouterdProc {
        let mut r = RouterdProc::spawn(program, pre_args, ns, config).expect("spawn routerd");
        if let Err(e) = r.wait_ready(Duration::from_secs(20)) {
            panic!("routerd did not start: {e}");
        }
        r
    }

    /// Like [`RouterdProc::spawn`], with every routerd thread allowed only
    /// on `cpu` when given (what `taskset -c CPU` does: the child inherits
    /// the CPU mask of the thread that starts it).
    pub fn spawn_on(
        program: &Path,
        pre_args: &[&str],
        ns: &str,
        config: &Path,
        cpu: Option<usize>,
    ) -> Result<RouterdProc, LabError> {
        static STARTS: AtomicU32 = AtomicU32::new(0);
        let stats_json = std::env::temp_dir().join(format!(
            "routerd-{ns}-{}.json",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&stats_json);
        let start = || -> Result<Child, LabError> {
            if let Some(c) = cpu {
                dataplane::worker::pin_current_thread(c)
                    .map_err(|e| LabError::Routerd(format!("pin to CPU {c}: {e}")))?;
            }
            Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(program)
                .args(pre_args)
                .arg("--config")
                .arg(config)
                .arg("--stats-json")
                .arg(&stats_json)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => LabError::MissingTool {
                        tool: "ip",
                        package: "iproute2",
                    },
                    _ => io_err(format!("cannot start {}", program.display()))(e),
                })
        };
        // A thread of its own, so that pinning it leaves the caller alone.
        let mut child = std::thread::scope(|s| {
            s.spawn(start)
                .join()
                .unwrap_or_else(|_| Err(LabError::Routerd("the starting thread panicked".into())))
        })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, ready) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready: forwarding") {
                    let _ = tx.send(());
                }
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(RouterdProc {
            child,
            log,
            ready,
            stats_json,
            exited: None,
        })
    }

    /// Waits until routerd logs that it forwards.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.ready.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                std::thread::sleep(Duration::from_millis(50));
                return Err(LabError::Routerd(format!(
                    "exited ({st}) before it was ready: {}",
                    self.log().join(" | ")
                )));
            }
        }
        Err(LabError::Timeout(format!(
            "routerd not ready after {limit:?}: {}",
            self.log().join(" | ")
        )))
    }

    /// routerd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What routerd logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `signal` (a `kill` name: TERM, USR1, ...) to routerd.
    pub fn signal(&self, signal: &str) -> Result<(), LabError> {
        send_signal(self.child.id(), signal, "routerd")
    }

    /// SIGTERM, then waits up to `limit` for the exit (SIGKILL after that).
    pub fn terminate(&mut self, limit: Duration) -> Result<ExitStatus, LabError> {
        if let Some(st) = self.exited {
            return Ok(st);
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            self.exited = Some(st);
            return Ok(st);
        }
        self.signal("TERM")?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()?;
        Err(LabError::Timeout(format!(
            "routerd did not exit within {limit:?} of SIGTERM (killed)"
        )))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<ExitStatus, LabError> {
        let _ = self.child.kill();
        let st = self.child.wait().map_err(io_err("wait for routerd"))?;
        self.exited = Some(st);
        Ok(st)
    }

    /// The counters routerd wrote at exit.
    pub fn final_stats(&self) -> Result<RouterStats, LabError> {
        let text = std::fs::read_to_string(&self.stats_json).map_err(io_err(format!(
            "routerd's counters {}",
            self.stats_json.display()
        )))?;
        serde_json::from_str(&text).map_err(|e| LabError::Routerd(format!("bad stats JSON: {e}")))
    }
}

impl Drop for RouterdProc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.terminate(Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.stats_json);
    }
}

/// Sends `signal` (a `kill` name: TERM, INT, ...) to the process `pid`
/// (one the caller started); `what` names it in the error.
pub fn send_signal(pid: u32, signal: &str, what: &str) -> Result<(), LabError> {
    let sig: Signal = format!("SIG{signal}")
        .parse()
        .map_err(|_| LabError::Routerd(format!("no signal named {signal}")))?;
    let pid = Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, sig)
        .map_err(|e| io_err(format!("send SIG{signal} to {what} ({pid})"))(std::io::Error::from(e)))
}
