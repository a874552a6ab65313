//! routerd's own runtime accounting, as `routerctl stats runtime --json`
//! prints it (VPP's `show runtime`): per worker, loops, busy loops,
//! packets and TSC cycles by phase. [`RuntimeSnapshot::delta`] of two
//! readings gives cycles per packet by phase over a measurement.
//!
//! Read tolerantly: unknown fields are ignored and missing ones are zero,
//! and a routerctl without the subcommand (or a routerd without the
//! accounting) gives `None`, shown as "runtime accounting unavailable".

use std::collections::BTreeMap;
use std::path::Path;

use dataplane::worker::Phase;
use serde::{Deserialize, Serialize};

/// The phases, in table order: the worker's own ([`Phase::ALL`]).
fn phase_order(name: &str) -> usize {
    (Phase::ALL.iter())
        .position(|p| p.name() == name)
        .unwrap_or(Phase::ALL.len())
}

/// One worker's (or the total's) counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeWorker {
    pub worker: u64,
    pub core: Option<u64>,
    pub loops: u64,
    pub busy_loops: u64,
    pub packets: u64,
    /// Cycles by phase name.
    pub cycles: BTreeMap<String, u64>,
    pub total_cycles: u64,
}

/// `routerctl stats runtime --json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeSnapshot {
    pub tsc_hz: u64,
    pub workers: Vec<RuntimeWorker>,
    pub total: Option<RuntimeWorker>,
}

/// Cycles per packet by phase over one measurement, all workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RuntimeDelta {
    /// Packets the workers processed.
    pub packets: u64,
    /// Loops, and loops that found work.
    pub loops: u64,
    pub busy_loops: u64,
    /// Cycles per packet by phase, in [`Phase::ALL`] order where present.
    pub per_packet: Vec<(String, f64)>,
    /// All cycles but `idle`, per packet.
    pub busy_per_packet: f64,
    /// Nanoseconds per packet of the non-idle cycles (`tsc_hz`).
    pub busy_ns_per_packet: f64,
}

impl RuntimeSnapshot {
    /// Parses the JSON; `None` when it is not a runtime snapshot.
    pub fn parse(text: &str) -> Option<RuntimeSnapshot> {
        let s: RuntimeSnapshot = serde_json::from_str(text).ok()?;
        (s.tsc_hz > 0 || !s.workers.is_empty()).then_some(s)
    }

    /// Sum over workers (the `total` object when given).
    pub fn sum(&self) -> RuntimeWorker {
        if let Some(t) = &self.total {
            return t.clone();
        }
        let mut t = RuntimeWorker::default();
        for w in &self.workers {
            t.loops += w.loops;
            t.busy_loops += w.busy_loops;
            t.packets += w.packets;
            t.total_cycles += w.total_cycles;
            for (k, v) in &w.cycles {
                *t.cycles.entry(k.clone()).or_default() += v;
            }
        }
        t
    }

    /// What happened between `before` and `self`.
    pub fn delta(&self, before: &RuntimeSnapshot) -> RuntimeDelta {
        let (a, b) = (self.sum(), before.sum());
        let packets = a.packets.saturating_sub(b.packets);
        let per = |c: u64| {
            if packets == 0 {
                0.0
            } else {
                c as f64 / packets as f64
            }
        };
        let mut per_packet = Vec::new();
        let mut busy = 0u64;
        let mut names: Vec<&String> = a.cycles.keys().collect();
        names.sort_by_key(|n| phase_order(n));
        for name in names {
            let d = a.cycles[name].saturating_sub(b.cycles.get(name).copied().unwrap_or(0));
            if name != "idle" {
                busy += d;
            }
            per_packet.push((name.clone(), per(d)));
        }
        let hz = self.tsc_hz.max(1) as f64;
        RuntimeDelta {
            packets,
            loops: a.loops.saturating_sub(b.loops),
            busy_loops: a.busy_loops.saturating_sub(b.busy_loops),
            per_packet,
            busy_per_packet: per(busy),
            busy_ns_per_packet: per(busy) / hz * 1e9,
        }
    }
}

/// Reads routerd's accounting with `routerctl --socket SOCKET stats
/// runtime --json`; `None` where routerctl or the subcommand is missing.
pub fn read(routerctl: &Path, socket: &Path) -> Option<RuntimeSnapshot> {
    let out = std::process::Command::new(routerctl)
        .arg("--socket")
        .arg(socket)
        .args(["stats", "runtime", "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    RuntimeSnapshot::parse(&String::from_utf8_lossy(&out.stdout))
}

impl RuntimeDelta {
    /// `rx 12.0 pipeline 40.1 ... busy 80.2 cycles/pkt (32 ns)`.
    pub fn describe(&self) -> String {
        let mut s: Vec<String> = self
            .per_packet
            .iter()
            .filter(|(n, _)| n != "idle")
            .map(|(n, v)| format!("{n} {v:.0}"))
            .collect();
        s.push(format!(
            "= {:.0} cycles/pkt ({:.0} ns), {:.1} pkts/busy loop",
            self.busy_per_packet,
            self.busy_ns_per_packet,
            if self.busy_loops == 0 {
                0.0
            } else {
                self.packets as f64 / self.busy_loops as f64
            }
        ));
        s.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"{"tsc_hz": 2000000000, "workers": [{"worker": 0, "core": 1,
        "loops": 100, "busy_loops": 10, "packets": 1000,
        "cycles": {"rx": 1000, "pipeline": 2000, "tx": 3000, "host": 0, "handoff": 0,
                   "housekeeping": 100, "idle": 50000}, "total_cycles": 56100}],
        "total": null, "extra": 1}"#;

    #[test]
    fn deltas_give_cycles_per_packet_by_phase() {
        let b = RuntimeSnapshot::parse(BEFORE).expect("parses");
        let mut a = b.clone();
        let w = &mut a.workers[0];
        w.packets += 100;
        w.loops += 50;
        w.busy_loops += 5;
        *w.cycles.get_mut("rx").unwrap() += 1000;
        *w.cycles.get_mut("pipeline").unwrap() += 4000;
        *w.cycles.get_mut("tx").unwrap() += 2000;
        *w.cycles.get_mut("idle").unwrap() += 99_000;
        let d = a.delta(&b);
        assert_eq!(d.packets, 100);
        assert_eq!(d.per_packet[0], ("rx".to_string(), 10.0));
        assert_eq!(d.per_packet[1], ("pipeline".to_string(), 40.0));
        assert_eq!(d.per_packet.last().unwrap().0, "idle");
        assert_eq!(d.busy_per_packet, 70.0);
        assert_eq!(d.busy_ns_per_packet, 35.0);
        assert!(d
            .describe()
            .contains("= 70 cycles/pkt (35 ns), 20.0 pkts/busy loop"));
    }

    #[test]
    fn what_is_not_a_runtime_snapshot_is_none() {
        assert_eq!(RuntimeSnapshot::parse("not json"), None);
        assert_eq!(RuntimeSnapshot::parse("{}"), None);
        assert_eq!(
            read(Path::new("/nonexistent/routerctl"), Path::new("/x")),
            None
        );
    }
}
