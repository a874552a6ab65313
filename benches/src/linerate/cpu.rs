//! CPU time from `/proc`: per CPU from `/proc/stat`, per process from
//! `/proc/PID/stat`.
//!
//! A CPU's busy time is `user + nice + system + irq + softirq` (the first,
//! second, third, sixth and seventh numbers of its `cpuN` line): everything
//! but `idle`, `iowait` and `steal` (time the hypervisor gave to another
//! guest). `guest` and `guest_nice` are already inside `user` and `nice`,
//! so they are not added again. The unit is the kernel's `USER_HZ` clock
//! tick, 100 per second on every architecture this project builds for
//! (x86_64, aarch64), hence 10 ms resolution per reading: measure for
//! seconds, not milliseconds.
//!
//! A process's CPU time is `utime + stime` of `/proc/PID/stat` (all its
//! threads). Softirq work the kernel runs on a process's syscall exit
//! (a veth `sendto` that delivers into the peer) is counted as the CPU's
//! `softirq`, not as the process's time, where the kernel accounts IRQ time
//! (`CONFIG_IRQ_TIME_ACCOUNTING`, as on Debian's kernels).

use serde::Serialize;

use super::LinerateError;

/// `USER_HZ`: ticks per second in `/proc/stat` and `/proc/PID/stat`.
pub const USER_HZ: f64 = 100.0;

/// Busy ticks per CPU, by CPU number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuTicks(pub Vec<u64>);

impl CpuTicks {
    /// Reads `/proc/stat`.
    pub fn read() -> Result<CpuTicks, LinerateError> {
        let text = std::fs::read_to_string("/proc/stat")
            .map_err(|e| LinerateError::Setup(format!("read /proc/stat: {e}")))?;
        parse_stat(&text)
            .ok_or_else(|| LinerateError::Setup("no cpuN lines in /proc/stat".into()))
    }

    /// Busy seconds per CPU from `before` to `self`.
    pub fn secs_since(&self, before: &CpuTicks) -> Vec<f64> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, t)| t.saturating_sub(before.0.get(i).copied().unwrap_or(0)) as f64 / USER_HZ)
            .collect()
    }
}

/// The busy ticks of each `cpuN` line (the summed `cpu` line is skipped).
pub fn parse_stat(text: &str) -> Option<CpuTicks> {
    let mut out: Vec<u64> = Vec::new();
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
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        if out.len() <= cpu {
            out.resize(cpu + 1, 0);
        }
        out[cpu] = busy;
    }
    (!out.is_empty()).then_some(CpuTicks(out))
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
    fn busy_ticks_leave_out_idle_iowait_and_steal() {
        let text = "cpu  10 20 30 40 50 60 70 80 0 0\n\
                    cpu0 1 2 3 400 5 6 7 800 1 0\n\
                    cpu1 10 0 0 9999 9999 0 1 9999 0 0\n\
                    intr 123\n";
        let t = parse_stat(text).unwrap();
        assert_eq!(t.0, vec![1 + 2 + 3 + 6 + 7, 11]);
        let later = CpuTicks(vec![t.0[0] + 150, t.0[1]]);
        assert_eq!(later.secs_since(&t), vec![1.5, 0.0]);
        assert_eq!(parse_stat("intr 1\n"), None);
        let own = CpuTicks::read().unwrap();
        assert!(!own.0.is_empty());
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
