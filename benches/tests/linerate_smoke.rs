//! `linerate` end to end (root): generator and sink in two namespaces
//! joined by a veth pair, no router between them. Every frame sent must
//! arrive once, in order, in its flow, with a sane latency; the counting
//! sink must count exactly what was sent; a short RFC 2544 search must pass
//! at its first rate. About 3 seconds; namespaces are removed on exit.

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
