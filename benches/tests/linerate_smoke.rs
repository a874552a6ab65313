//! `linerate` end to end (root): generator and sink in two namespaces
//! joined by a veth pair, no router between them. Every frame sent must
//! arrive once, in order, in its flow, with a sane latency; the counting
//! sink must count exactly what was sent; a short RFC 2544 search must pass
//! at its first rate. About 3 seconds; namespaces are removed on exit.
//! Then `linerate compare`'s fixed-rate phase (baseline, Linux, routerd)
//! and `linerate tcp` (routerd, Linux), one second per row, for sane
//! figures, not speed: about 20 seconds more.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use benches::linerate::frame::{FlowSet, Mac, SizeMix};
use benches::linerate::gen::{GenConfig, RunSpec};
use benches::linerate::handles::{GenHandle, Placement, SinkHandle};
use benches::linerate::rfc2544::{search, trial, SearchParams};
use benches::linerate::sink::{SinkConfig, SinkKind};
use dataplane::xsk::XdpMode;
use lab::Lab;

const FLOWS: u32 = 8;

struct Pair {
    lab: Lab,
    g: String,
    s: String,
    g0: Mac,
    s0: Mac,
}

fn pair(prefix: &str) -> Pair {
    lab::require_root();
    let mut lab = Lab::new(prefix).expect("lab");
    let g = lab.add_ns("g").expect("namespace g");
    let s = lab.add_ns("s").expect("namespace s");
    lab.veth(&g, "g0", &s, "s0").expect("veth pair");
    let (g0, s0) = (
        Mac(lab.mac(&g, "g0").expect("MAC of g0")),
        Mac(lab.mac(&s, "s0").expect("MAC of s0")),
    );
    Pair { lab, g, s, g0, s0 }
}

fn gen(p: &Pair) -> GenHandle {
    GenHandle::open(
        GenConfig {
            ifname: "g0".into(),
            mode: XdpMode::Native,
            src_mac: p.g0,
            dst_mac: p.s0,
            flows: FlowSet {
                count: FLOWS,
                src: Ipv4Addr::new(198, 18, 0, 10),
                dst: Ipv4Addr::new(198, 19, 0, 10),
            },
        },
        Placement {
            netns: Some(p.g.clone()),
            cpu: None,
        },
    )
    .expect("generator opens")
}

fn sink(p: &Pair, kind: SinkKind) -> SinkHandle {
    SinkHandle::open(
        SinkConfig {
            ifname: "s0".into(),
            mode: XdpMode::Native,
            kind,
            flows: FLOWS,
        },
        Placement {
            netns: Some(p.s.clone()),
            cpu: None,
        },
    )
    .expect("sink opens")
}

#[test]
fn generator_to_sink_over_veth_loses_nothing() {
    let started = Instant::now();
    let p = pair("lrsmk");
    let gen = gen(&p);

    // 1. The checking sink: one second of IMIX at a modest rate.
    let mut s = sink(&p, SinkKind::Afxdp);
    s.start(Duration::from_secs(10)).unwrap();
    let g = gen
        .run(&RunSpec {
            rate_pps: 20_000.0,
            sizes: SizeMix::Imix,
            duration: Duration::from_secs(1),
            count: None,
            whole_bursts: false,
        })
        .expect("generator runs");
    std::thread::sleep(Duration::from_millis(200));
    let r = s.finish().expect("sink reports");
    drop(s);
    // Never above the rate; below it only when the machine is loaded (the
    // pacer does not catch up more than two bursts).
    assert!(
        g.sent >= 4_000 && g.sent <= 20_100,
        "a 1 s run at 20 kpps sent {} frames: {g:?}",
        g.sent
    );
    assert!(g.offered_pps <= 20_100.0, "{g:?}");
    let t = r.totals.expect("the AF_XDP sink checks frames");
    let loss = r.loss(&g);
    assert_eq!(loss.lost, 0, "sent {} received {}: {r:?}", g.sent, t.unique);
    assert_eq!(t.received, g.sent, "every frame exactly once");
    assert_eq!((t.missing, t.duplicates, t.reordered), (0, 0, 0));
    assert_eq!(t.flows_seen, FLOWS);
    assert_eq!(t.unknown_flow, 0);
    assert!(
        r.flow_mismatches(&g).is_empty(),
        "{:?}",
        r.flow_mismatches(&g)
    );
    for f in &r.flows {
        assert_eq!(f.highest, g.sent_in_flow(f.flow), "flow {}", f.flow);
    }
    let l = t.latency;
    assert_eq!(l.samples, g.sent);
    assert!(l.min_us > 0.0, "{l:?}");
    assert!(l.median_us < 20_000.0 && l.p99_us < 500_000.0, "{l:?}");
    assert!(l.min_us <= l.median_us && l.median_us <= l.p99_us && l.p99_us <= l.max_us);

    // 2. The counting sink: exactly the frames sent, by frame count.
    let mut c = sink(&p, SinkKind::Count);
    c.start(Duration::from_secs(10)).unwrap();
    let g = gen
        .run(&RunSpec {
            rate_pps: 50_000.0,
            sizes: SizeMix::Fixed(64),
            duration: Duration::from_secs(5),
            count: Some(10_000),
            whole_bursts: false,
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let r = c.finish().unwrap();
    assert_eq!(g.sent, 10_000);
    assert_eq!(r.received, 10_000, "{r:?}");

    // 3. A short search: a bare veth takes 30 kpps, so the first trial
    // passes (it may say "generator-limited" on a loaded machine).
    let params = SearchParams {
        max_pps: 30_000.0,
        max_trials: 4,
        ..SearchParams::default()
    };
    let size = SizeMix::Fixed(128);
    let res = search(&params, |rate| {
        trial(&gen, &mut c, &size, rate, Duration::from_millis(300))
    })
    .unwrap();
    assert_eq!(res.trials.len(), 1, "{res:?}");
    let t0 = res.trials[0];
    assert!(t0.passed && t0.outcome.sent > 1_000, "{res:?}");
    assert_eq!(t0.outcome.received, t0.outcome.sent);
    assert_eq!(
        res.throughput_pps,
        Some(t0.outcome.offered_pps.min(30_000.0))
    );
    assert_eq!(res.generator_limited, t0.generator_limited);

    drop(c);
    drop(gen);
    drop(p.lab);
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_missing_interface_is_named() {
    let p = pair("lrsmm");
    let err = SinkHandle::open(
        SinkConfig {
            ifname: "nosuch0".into(),
            mode: XdpMode::Native,
            kind: SinkKind::Count,
            flows: 1,
        },
        Placement {
            netns: Some(p.s.clone()),
            cpu: None,
        },
    )
    .err()
    .expect("no such interface");
    assert!(err.to_string().contains("no such device nosuch0"), "{err}");
}

/// `linerate compare`'s fixed-rate phase, short: the baseline (generator
/// straight into the sink), Linux forwarding and routerd (this binary's
/// built-in copy) each get 20 kpps of 64-byte frames for one second, and
/// every row must report what it forwarded and the CPU time it took per
/// packet, with the baseline subtracted. Speed is not asserted. About
/// 10 seconds.
#[test]
fn fixed_rate_phase_reports_cpu_per_packet_against_the_baseline() {
    use benches::linerate::compare::{
        compare, cost_table, summarize_costs, CompareOptions, FixedOptions, RuntimeCell, System,
    };
    lab::require_root();
    let out = lab::TempDir::new("lrsmf", "out");
    let systems = vec![System::Generator, System::Linux, System::RouterdUntracked];
    let opts = CompareOptions {
        routerd: env!("CARGO_BIN_EXE_linerate").into(),
        routerd_args: vec!["--as-routerd".into()],
        routerctl: None,
        systems: systems.clone(),
        sizes: vec![SizeMix::Fixed(64)],
        repeats: 1,
        trial: Duration::from_secs(1),
        flows: 16,
        resolution: 0.05,
        max_trials: 2,
        gen_cpu: 0,
        router_cpu: 1,
        out_dir: out.path("compare"),
        routerd_xdp: XdpMode::Native,
        search: false,
        fixed: Some(FixedOptions {
            rate_pps: Some(20_000.0),
            share: 0.8,
            duration: Duration::from_secs(1),
            repeats: 1,
        }),
    };
    let started = Instant::now();
    let report = compare(&opts, |line| eprintln!("{line}")).expect("compare runs");
    assert!(report.runs.is_empty(), "no search was asked for");
    assert_eq!(report.costs.len(), 3, "{:?}", report.costs);
    for c in &report.costs {
        assert!(
            c.m.forwarded > 0 && c.m.forwarded <= c.m.sent,
            "{:?}: sent {} forwarded {}",
            c.system,
            c.m.sent,
            c.m.forwarded
        );
        assert!(c.m.sent > 5_000, "1 s at 20 kpps: {:?}", c.m);
        assert!(
            c.total_ns_per_packet() > 0.0,
            "{:?} took no CPU: {:?}",
            c.system,
            c.m.cpu_secs
        );
    }
    let routerd = report
        .costs
        .iter()
        .find(|c| c.system == System::RouterdUntracked)
        .unwrap();
    assert!(
        routerd.m.process_secs.is_some(),
        "routerd's own CPU time is read"
    );
    assert_eq!(routerd.runtime, Some(RuntimeCell::Unavailable));
    let sums = summarize_costs(&report.costs, &systems, &opts.sizes);
    let base = sums.iter().find(|s| s.system == System::Generator).unwrap();
    assert_eq!(base.router_ns, None, "the baseline is what is subtracted");
    for s in sums.iter().filter(|s| s.system != System::Generator) {
        let r = s.router_ns.expect("router figure");
        assert!(
            (r - (s.total_ns - base.total_ns)).abs() < 1e-6,
            "{s:?} minus {base:?}"
        );
    }
    let table = cost_table(&sums);
    assert!(
        table.contains("| baseline: generator -> sink, no router | 64 |"),
        "{table}"
    );
    assert!(table.contains("runtime accounting unavailable"), "{table}");
    assert!(started.elapsed() < Duration::from_secs(90));
}

/// `linerate tcp`, short: one bulk TCP stream for one second through
/// routerd (built in) and through Linux forwarding in the same lab; each
/// must carry data, count the client's segments and retransmits, and
/// routerd's wan ring counters must be read. About 8 seconds.
#[test]
fn tcp_through_routerd_and_linux_reports_throughput_and_retransmits() {
    use benches::linerate::tcp::{run_tcp, tcp_table, TcpOptions, TcpSystem, LAB_CONFIG};
    lab::require_root();
    let out = lab::TempDir::new("lrsmt", "out");
    let opts = TcpOptions {
        routerd: env!("CARGO_BIN_EXE_linerate").into(),
        routerd_args: vec!["--as-routerd".into()],
        config: LAB_CONFIG.into(),
        streams: vec![1],
        duration: Duration::from_secs(1),
        rounds: 1,
        systems: vec![TcpSystem::Routerd, TcpSystem::Linux],
        client_cpu: None,
        server_cpu: None,
        out_dir: out.path("tcp"),
    };
    let started = Instant::now();
    let report = run_tcp(&opts, |line| eprintln!("{line}")).expect("tcp runs");
    assert_eq!(report.runs.len(), 2, "{report:?}");
    for r in &report.runs {
        let b = &r.result;
        assert_eq!(b.streams, 1);
        assert!(b.bytes > 100_000 && b.gbit_s > 0.0, "{:?}: {b:?}", r.system);
        assert!(
            b.segments_out > 50,
            "the client's segments are counted: {b:?}"
        );
        assert!(b.secs >= 0.9 && b.secs < 20.0, "{b:?}");
        assert_eq!(r.wan.is_some(), r.system == TcpSystem::Routerd, "{r:?}");
    }
    let routerd = report
        .runs
        .iter()
        .find(|r| r.system == TcpSystem::Routerd)
        .unwrap();
    let wan = routerd.wan.unwrap();
    assert!(
        wan.rx_packets > 50,
        "routerd received the data segments on wan: {wan:?}"
    );
    assert!(
        !report.census.is_empty(),
        "routerd's census at exit is read"
    );
    let t = tcp_table(&report, &opts.systems, &opts.streams);
    assert!(
        t.contains("| routerd | 1 |") && t.contains("| linux | 1 |"),
        "{t}"
    );
    assert!(started.elapsed() < Duration::from_secs(90));
}
