//! Runs a pipeline bench case a fixed number of times, for instruction
//! counts under `valgrind --tool=callgrind` (see `benches/callgrind.sh`).
//!
//! Usage: pipeline_iter untracked|established BURSTS

use std::hint::black_box;

use benches::workload::{
    established_host_burst, transit_tables, untracked_transit_burst, Burst, BURST,
};
use dataplane::packet::Verdict;
use dataplane::pipeline::Pipeline;

/// The measured region: callgrind collects only inside this function.
#[inline(never)]
pub fn afxdp_measured_bursts(p: &mut Pipeline, b: &mut Burst, n: usize, restore: bool) -> usize {
    let mut out = [Verdict::Consumed; BURST];
    let mut ok = 0;
    for _ in 0..n {
        if restore {
            b.restore();
        }
        b.run(black_box(p), &mut out);
        ok += out
            .iter()
            .filter(|v| !matches!(v, Verdict::Drop(_)))
            .count();
    }
    ok
}

/// Restoring headers alone, to subtract from the forwarding case.
#[inline(never)]
pub fn afxdp_measured_restore(b: &mut Burst, n: usize) {
    for _ in 0..n {
        b.restore();
        black_box(&b.frames);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("untracked");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let tables = transit_tables(1000);
    let mut p = Pipeline::new(tables);
    let (mut burst, restore) = match case {
        "untracked" => (untracked_transit_burst(1000), true),
        "established" => (established_host_burst(&mut p), false),
        _ => {
            eprintln!("usage: pipeline_iter untracked|established BURSTS");
            std::process::exit(2);
        }
    };
    // Warm up outside the measured region.
    afxdp_measured_bursts(&mut p, &mut burst, 1, restore);
    let ok = afxdp_measured_bursts(&mut p, &mut burst, n, restore);
    if restore {
        afxdp_measured_restore(&mut burst, n);
    }
    assert_eq!(ok, n * BURST, "every packet should pass in this case");
    println!("{case}: {} packets", n * BURST);
}
