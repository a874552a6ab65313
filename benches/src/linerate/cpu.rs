//! CPU time from `/proc`: per CPU from `/proc/stat`, per process from
//! `/proc/PID/stat`.
//!
//! A CPU's busy time over a measurement is the wall-clock time minus the
//! growth of its `idle` and `iowait` (the fourth and fifth numbers of its
//! `cpuN` line). Not the sum of `user + nice + system + irq + softirq`:
//! on a kernel with tick-based accounting (`CONFIG_TICK_CPU_ACCOUNTING`,
//! no `CONFIG_IRQ_TIME_ACCOUNTING`, as here) those are sampled at each
//! timer tick, and short bursts of softirq work on a CPU that is idle at
//! the ticks (packets every few hundred microseconds) are missed or
//! over-counted at random; with `NO_HZ_IDLE` the kernel measures idle time
//! from the idle loop's own timestamps, so idle (and thus busy) is exact
//! up to the reading's unit. That unit is `USER_HZ`, 100 per second on
//! every architecture this project builds for (x86_64, aarch64): 10 ms per
//! reading, so measure for seconds. `steal` (time the hypervisor gave to
//! another guest) counts as busy here; the summed fields are kept too.
//!
//! A process's CPU time is `utime + stime` of `/proc/PID/stat` (all its
//! threads), tick-sampled like the fields above. Softirq work the kernel
//! runs on a process's syscall exit (a veth `sendto` that delivers into
//! the peer) is charged to the process where the tick lands in it.

use serde::Serialize;

use super::LinerateError;

/// `USER_HZ`: ticks per second in `/proc/stat` and `/proc/PID/stat`.
pub const USER_HZ: f64 = 100.0;

/// One reading of `/proc/stat`: per CPU, the summed busy fields and the
/// idle ticks (`idle + iowait`), by CPU number, and when it was taken.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuTicks {
    /// `user + nice + system + irq + softirq` per CPU.
    pub busy: Vec<u64>,
    /// `idle + iowait` per CPU.
    pub idle: Vec<u64>,
    /// `CLOCK_MONOTONIC` at the reading, nanoseconds.
    pub at_ns: u64,
}

impl CpuTicks {
    /// Reads `/proc/stat`.
    pub fn read() -> Result<CpuTicks, LinerateError> {
        let text = std::fs::read_to_string("/proc/stat")
            .map_err(|e| LinerateError::Setup(format!("read /proc/stat: {e}")))?;
        let at_ns = super::monotonic_ns();
        let mut t = parse_stat(&text)
            .ok_or_else(|| LinerateError::Setup("no cpuN lines in /proc/stat".into()))?;
        t.at_ns = at_ns;
        Ok(t)
    }

    /// Busy seconds per CPU from `before` to `self`: the time between the
    /// readings minus the idle time that grew meanwhile (never below 0).
    pub fn secs_since(&self, before: &CpuTicks) -> Vec<f64> {
        let wall = self.at_ns.saturating_sub(before.at_ns) as f64 / 1e9;
        self.idle
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let idle =
                    t.saturating_sub(before.idle.get(i).copied().unwrap_or(0)) as f64 / USER_HZ;
                (wall - idle).max(0.0)
            })
            .collect()
    }

    /// Seconds of the summed busy fields per CPU (tick-sampled).
    pub fn sampled_secs_since(&self, before: &CpuTicks) -> Vec<f64> {
        self.busy
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.saturating_sub(before.busy.get(i).copied().unwrap_or(0)) as f64 / USER_HZ
            })
            .collect()
    }
}

/// Busy and idle ticks of each `cpuN` line (the summed `cpu` line is
/// skipped); `at_ns` is left 0.
pub fn parse_stat(text: &str) -> Option<CpuTicks> {
    let mut out = CpuTicks::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let Some(name) = w.next() else { continue };
        let Some(num) = name.strip_prefix("cpu") else {
            continue;
        };
        let Ok(cpu) = num.parse::<usize>() else {
            continue;
        };
        let v: Vec<u64> = w.map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 7 {
            return None;
        }
        // user nice system idle iowait irq softirq [steal guest guest_nice]
        if out.busy.len() <= cpu {
            out.busy.resize(cpu + 1, 0);
            out.idle.resize(cpu + 1, 0);
        }
        out.busy[cpu] = v[0] + v[1] + v[2] + v[5] + v[6];
        out.idle[cpu] = v[3] + v[4];
    }
    (!out.busy.is_empty()).then_some(out)
}

/// `utime + stime` of process `pid` in ticks (`None`: no such process).
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_pid_stat(&text)
}

/// `utime + stime` (fields 14 and 15) from the text of `/proc/PID/stat`.
/// The command name (field 2) is in parentheses and may hold spaces, so
/// fields are counted after its closing parenthesis.
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is f[0], so field N is f[N - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_is_wall_time_minus_idle() {
        let text = "cpu  10 20 30 40 50 60 70 80 0 0\n\
                    cpu0 1 2 3 400 5 6 7 800 1 0\n\
                    cpu1 10 0 0 9999 1 0 1 9999 0 0\n\
                    intr 123\n";
        let t = parse_stat(text).unwrap();
        assert_eq!(t.busy, vec![1 + 2 + 3 + 6 + 7, 11]);
        assert_eq!(t.idle, vec![405, 10_000]);
        // Two seconds later: CPU 0 idle for 0.5 s of them, CPU 1 for 2.5
        // (more than the wall time: a reading's unit is 10 ms).
        let later = CpuTicks {
            busy: vec![t.busy[0] + 150, t.busy[1]],
            idle: vec![t.idle[0] + 50, t.idle[1] + 250],
            at_ns: 2_000_000_000,
        };
        assert_eq!(later.secs_since(&t), vec![1.5, 0.0]);
        assert_eq!(later.sampled_secs_since(&t), vec![1.5, 0.0]);
        assert_eq!(parse_stat("intr 1\n"), None);
        let own = CpuTicks::read().unwrap();
        assert!(!own.busy.is_empty() && own.at_ns > 0);
    }

    #[test]
    fn process_time_counts_fields_after_the_name() {
        // A name with spaces and a parenthesis, as comm may be.
        let text = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_pid_stat(text), Some(300));
        let me = process_ticks(std::process::id());
        assert!(me.is_some());
        assert_eq!(process_ticks(u32::MAX), None);
    }
}
