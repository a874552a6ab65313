//! Open vSwitch's userspace datapath over AF_XDP as a router for
//! `linerate compare`: what a user would otherwise pick for a userspace
//! AF_XDP router.
//!
//! - `ovsdb-server` and `ovs-vswitchd` run inside the router namespace
//!   (`ip netns exec`) with their own database, sockets and logs in a
//!   temporary directory (`OVS_RUNDIR`, `OVS_DBDIR`, `OVS_LOGDIR`), never
//!   the system's; they are started as children and stopped by their pids
//!   (SIGTERM, SIGKILL after 5 s), and the directory is removed.
//! - A bridge with `datapath_type=netdev` and the two router ports as
//!   `type=afxdp` (`options:xdp-mode=native`: copy mode on veth, as
//!   routerd), one PMD thread pinned to the router's CPU
//!   (`other_config:pmd-cpu-mask`); `ovs-vswitchd`'s other threads are
//!   started with that CPU as their only CPU, as routerd's are.
//! - Flows route like the router: IPv4 from r0 to 198.19.1.0/24 gets the
//!   router's MAC as source and the sink's as destination, its TTL
//!   decremented, and leaves on r1; everything else is dropped. The
//!   tracked variant adds `ct(commit)` to that flow, so every packet goes
//!   through OVS's userspace connection tracker.
//!
//! Needs Debian's `openvswitch-switch` (`apt-get install
//! openvswitch-switch`; built with AF_XDP: `iface_types` lists `afxdp`).
//! Installing it starts no daemon where `policy-rc.d` forbids it (as in
//! containers); where it starts the system's own, that one is left alone:
//! this module only talks to its own sockets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::frame::Mac;
use super::LinerateError;

/// The schema Debian installs.
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A running OVS in the router namespace.
pub struct Ovs {
    dir: PathBuf,
    db: Option<Child>,
    vswitchd: Option<Child>,
}

fn err(what: &str, e: impl std::fmt::Display) -> LinerateError {
    LinerateError::Setup(format!("open vswitch: {what}: {e}"))
}

/// Whether OVS's programs are installed.
pub fn installed() -> bool {
    Path::new(SCHEMA).exists()
        && Command::new("ovs-vswitchd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

impl Ovs {
    fn env(&self, cmd: &mut Command) {
        cmd.env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir);
    }

    /// Runs an OVS client program (`ovs-vsctl`, `ovs-ofctl`, `ovs-appctl`)
    /// against this instance; its stdout.
    pub fn ctl(&self, program: &str, args: &[&str]) -> Result<String, LinerateError> {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        if program == "ovs-vsctl" {
            cmd.arg(format!("--db=unix:{}/db.sock", self.dir.display()))
                .arg("--timeout=10");
        }
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| err(&format!("cannot run {program}"), e))?;
        if !out.status.success() {
            return Err(err(
                &format!("`{program} {}`", args.join(" ")),
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts OVS in namespace `ns` with its threads on `cpu`, the two
    /// ports and the router's flows (`tracked`: with `ct(commit)`).
    /// `src`/`dst` are the MACs the routed frames leave r1 with.
    pub fn start(
        ns: &str,
        cpu: usize,
        tracked: bool,
        src: Mac,
        dst: Mac,
    ) -> Result<Ovs, LinerateError> {
        let dir = std::env::temp_dir().join(format!("linerate-ovs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir.display().to_string(), e))?;
        let mut ovs = Ovs {
            dir,
            db: None,
            vswitchd: None,
        };
        let db = ovs.dir.join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA)
            .status()
            .map_err(|e| {
                err(
                    "cannot run ovsdb-tool (apt-get install openvswitch-switch)",
                    e,
                )
            })?;
        if !st.success() {
            return Err(err("ovsdb-tool create", st));
        }
        let d = ovs.dir.display().to_string();
        ovs.db = Some(ovs.spawn_in(
            ns,
            cpu,
            "ovsdb-server",
            &[
                &db.display().to_string(),
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                &format!("--log-file={d}/ovsdb.log"),
            ],
        )?);
        ovs.wait_for(&ovs.dir.join("db.sock"))?;
        ovs.ctl("ovs-vsctl", &["--no-wait", "init"])?;
        ovs.ctl(
            "ovs-vsctl",
            &[
                "--no-wait",
                "set",
                "Open_vSwitch",
                ".",
                &format!("other_config:pmd-cpu-mask=0x{:x}", 1u64 << cpu),
            ],
        )?;
        ovs.vswitchd = Some(ovs.spawn_in(
            ns,
            cpu,
            "ovs-vswitchd",
            &[
                &format!("unix:{d}/db.sock"),
                &format!("--unixctl={d}/vswitchd.ctl"),
                &format!("--log-file={d}/vswitchd.log"),
            ],
        )?);
        ovs.wait_for(&ovs.dir.join("vswitchd.ctl"))?;
        let types = ovs.iface_types()?;
        if !types.split([',', ' ', '[', ']']).any(|t| t == "afxdp") {
            return Err(err(
                "this ovs-vswitchd has no AF_XDP ports",
                format!("iface_types is {types}"),
            ));
        }
        ovs.ctl(
            "ovs-vsctl",
            &[
                "add-br",
                "br0",
                "--",
                "set",
                "bridge",
                "br0",
                "datapath_type=netdev",
            ],
        )?;
        for port in ["r0", "r1"] {
            ovs.ctl(
                "ovs-vsctl",
                &[
                    "add-port",
                    "br0",
                    port,
                    "--",
                    "set",
                    "interface",
                    port,
                    "type=afxdp",
                    "options:xdp-mode=native",
                ],
            )?;
        }
        ovs.ctl("ovs-ofctl", &["del-flows", "br0"])?;
        let ct = if tracked { "ct(commit)," } else { "" };
        ovs.ctl(
            "ovs-ofctl",
            &[
                "add-flow",
                "br0",
                &format!(
                    "priority=10,ip,in_port=r0,nw_dst=198.19.1.0/24,\
                     actions={ct}mod_dl_src:{src},mod_dl_dst:{dst},dec_ttl,output:r1"
                ),
            ],
        )?;
        ovs.ctl("ovs-ofctl", &["add-flow", "br0", "priority=0,actions=drop"])?;
        Ok(ovs)
    }

    /// `iface_types` of this ovs-vswitchd (e.g. `[afxdp, afxdp-nonpmd,
    /// geneve, ...]`).
    pub fn iface_types(&self) -> Result<String, LinerateError> {
        self.ctl("ovs-vsctl", &["get", "Open_vSwitch", ".", "iface_types"])
    }

    /// ovs-vswitchd's pid.
    pub fn vswitchd_pid(&self) -> Option<u32> {
        self.vswitchd.as_ref().map(Child::id)
    }

    /// OVS's own cycle accounting (`ovs-appctl dpif-netdev/pmd-perf-show`
    /// needs `pmd-perf-metrics`; `pmd-stats-show` always works).
    pub fn pmd_stats(&self) -> Result<String, LinerateError> {
        let ctl = format!("{}/vswitchd.ctl", self.dir.display());
        self.ctl("ovs-appctl", &["-t", &ctl, "dpif-netdev/pmd-stats-show"])
    }

    /// Clears the PMD counters.
    pub fn pmd_clear(&self) -> Result<(), LinerateError> {
        let ctl = format!("{}/vswitchd.ctl", self.dir.display());
        self.ctl("ovs-appctl", &["-t", &ctl, "dpif-netdev/pmd-stats-clear"])
            .map(drop)
    }

    fn spawn_in(
        &self,
        ns: &str,
        cpu: usize,
        program: &str,
        args: &[&str],
    ) -> Result<Child, LinerateError> {
        let mut cmd = Command::new("ip");
        self.env(&mut cmd);
        cmd.args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // From a thread pinned to `cpu`: the child inherits its CPU mask.
        std::thread::scope(|s| {
            s.spawn(|| {
                dataplane::worker::pin_current_thread(cpu)
                    .map_err(|e| err(&format!("pin to CPU {cpu}"), e))?;
                cmd.spawn()
                    .map_err(|e| err(&format!("cannot start {program}"), e))
            })
            .join()
            .unwrap_or_else(|_| Err(err(program, "the starting thread panicked")))
        })
    }

    fn wait_for(&self, path: &Path) -> Result<(), LinerateError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.join("vswitchd.log"))
                    .or_else(|_| std::fs::read_to_string(self.dir.join("ovsdb.log")))
                    .unwrap_or_default();
                return Err(err(
                    &format!("{} did not appear", path.display()),
                    log.lines().last().unwrap_or(""),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// `avg processing cycles per packet` of `pmd-stats-show` (summed over
/// PMD threads by their packets): TSC cycles the PMD spent on packets,
/// its idle polling left out.
pub fn processing_cycles_per_packet(pmd_stats: &str) -> Option<f64> {
    let (mut packets, mut cycles) = (0f64, 0f64);
    let mut pkts_here = None;
    for line in pmd_stats.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("packets received:") {
            pkts_here = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("avg processing cycles per packet:") {
            let per: f64 = v.split_whitespace().next()?.parse().ok()?;
            let n = pkts_here.take().unwrap_or(0.0);
            packets += n;
            cycles += per * n;
        }
    }
    (packets > 0.0).then(|| cycles / packets)
}

/// SIGTERM, then SIGKILL after `limit`; reaps.
fn stop(child: &mut Child, limit: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // ovs-vswitchd first: it takes its XDP programs off r0 and r1.
        if let Some(c) = self.vswitchd.as_mut() {
            stop(c, Duration::from_secs(5));
        }
        if let Some(c) = self.db.as_mut() {
            stop(c, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmd_processing_cycles_are_weighted_by_packets() {
        let text = "pmd thread numa_id 0 core_id 1:\n  packets received: 300\n  \
                    idle cycles: 100 (50.00%)\n  avg cycles per packet: 9.00 (2700/300)\n  \
                    avg processing cycles per packet: 400.00 (120000/300)\n\
                    pmd thread numa_id 0 core_id 2:\n  packets received: 100\n  \
                    avg processing cycles per packet: 800.00 (80000/100)\n";
        assert_eq!(processing_cycles_per_packet(text), Some(500.0));
        assert_eq!(processing_cycles_per_packet("main thread:\n"), None);
    }
}
