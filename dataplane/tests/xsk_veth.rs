//! AF_XDP ports on veth pairs (root): forwarding between two ports of one
//! worker on a shared UMEM, clean detach, reopen right after close, and the
//! error lines.
//!
//! Topology: ns a (a0 198.18.0.2/24) -- ra [ns r] rb -- (b0 198.19.0.2/24) ns b.
//! a and b route the other side via 198.18.0.1 / 198.19.0.1, with static ARP
//! entries for those addresses pointing at ra / rb, so ns r answers no ARP.
//! The test's forwarder, in a thread inside ns r, rewrites the MACs and sends
//! each frame out of the other port from the same UMEM frame.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{mac_str, Lab};
use std::sync::Arc;

use dataplane::xsk::{
    FrameCensus, FrameRef, PortConfig, PortsStats, WorkerPorts, XdpMode, XdpProgram,
};

const UMEM_FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;

struct Topo {
    lab: Lab,
    a: String,
    r: String,
    b: String,
    /// MACs of a0, ra, rb, b0.
    a0: [u8; 6],
    ra: [u8; 6],
    rb: [u8; 6],
    b0: [u8; 6],
}

fn topo(prefix: &str) -> Topo {
    let mut lab = Lab::new(prefix);
    let a = lab.add_ns("a");
    let r = lab.add_ns("r");
    let b = lab.add_ns("b");
    lab.veth(&a, "a0", &r, "ra");
    lab.veth(&r, "rb", &b, "b0");
    let (a0, ra, rb, b0) = (
        lab.mac(&a, "a0"),
        lab.mac(&r, "ra"),
        lab.mac(&r, "rb"),
        lab.mac(&b, "b0"),
    );
    for (ns, dev, addr, other, gw, gw_mac) in [
        (&a, "a0", "198.18.0.2/24", "198.19.0.0/24", "198.18.0.1", ra),
        (&b, "b0", "198.19.0.2/24", "198.18.0.0/24", "198.19.0.1", rb),
    ] {
        lab.exec(ns, &["ip", "addr", "add", addr, "dev", dev]);
        lab.exec(ns, &["ip", "route", "add", other, "via", gw]);
        let mac = mac_str(gw_mac);
        lab.exec(
            ns,
            &[
                "ip",
                "neigh",
                "replace",
                gw,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        );
        lab.tx_offload_off(ns, dev);
    }
    Topo {
        lab,
        a,
        r,
        b,
        a0,
        ra,
        rb,
        b0,
    }
}

fn ports(mode: XdpMode) -> Vec<PortConfig> {
    ["ra", "rb"]
        .iter()
        .map(|name| PortConfig {
            ifname: (*name).to_string(),
            queue: 0,
            mode,
        })
        .collect()
}

struct Forwarded {
    frames: u64,
    census: FrameCensus,
    stats: PortsStats,
}

/// Forwards between port 0 and port 1 until `stop`, at most 30 s and
/// 100 000 frames. `macs[p]` = (dst, src) for frames leaving port `p`.
fn forward(ports: &mut WorkerPorts, macs: [([u8; 6], [u8; 6]); 2], stop: &AtomicBool) -> Forwarded {
    let started = Instant::now();
    let mut burst = [FrameRef::default(); 64];
    let mut frames = 0u64;
    while !stop.load(Ordering::Relaxed)
        && started.elapsed() < Duration::from_secs(30)
        && frames < 100_000
    {
        let mut idle = true;
        for (inp, outp) in [(0usize, 1usize), (1, 0)] {
            let n = ports.rx_burst(inp, &mut burst);
            if n == 0 {
                continue;
            }
            idle = false;
            let (dst, src) = macs[outp];
            for buf in ports.frames_mut(&burst[..n]) {
                buf[0..6].copy_from_slice(&dst);
                buf[6..12].copy_from_slice(&src);
            }
            // What the ring did not take, tx_burst freed.
            frames += ports.tx_burst(outp, &burst[..n]).sent as u64;
        }
        if idle {
            ports.housekeeping();
            ports.wait_rx(Duration::from_millis(10));
        }
    }
    // Let the kernel finish sending and hand back every completion.
    for _ in 0..200 {
        ports.housekeeping();
        if ports.frames_accounted().tx == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Forwarded {
        frames,
        census: ports.frames_accounted(),
        stats: ports.stats(),
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn forwards_ping_between_two_veths_on_a_shared_umem() {
    let t = topo("xskfwd");
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let macs = [(t.a0, t.ra), (t.b0, t.rb)];
    let (ping, fwd) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            lab::netns::enter(&t.r).expect("enter ns r");
            let mut ports =
                match WorkerPorts::open(&ports(XdpMode::Native), UMEM_FRAMES, FRAME_SIZE) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return None;
                    }
                };
            ready_tx.send(Ok(())).expect("main thread waits");
            Some(forward(&mut ports, macs, &stop))
        });
        // Stops the worker however this thread leaves (a panic included).
        let guard = StopOnDrop(&stop);
        let opened = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("worker reports within 20 s");
        let ping = opened.map(|()| {
            t.lab
                .ping(&t.a, "198.19.0.2", 20, Duration::from_millis(50))
        });
        drop(guard);
        let fwd = worker.join().expect("worker thread");
        (ping, fwd)
    });
    let ping = ping.unwrap_or_else(|e| panic!("WorkerPorts::open failed: {e}"));
    assert!(
        ping.sent == 20 && ping.received == 20,
        "ping through the AF_XDP forwarder failed:\n{}",
        ping.text
    );
    let fwd = fwd.expect("forwarder ran");
    assert!(
        fwd.frames >= 40,
        "20 requests and 20 replies forwarded, got {}",
        fwd.frames
    );
    let (ra, rb) = (&fwd.stats.ports[0], &fwd.stats.ports[1]);
    assert!(ra.rx_packets >= 20 && rb.tx_packets >= 20, "{ra:?} {rb:?}");
    assert!(rb.rx_packets >= 20 && ra.tx_packets >= 20, "{ra:?} {rb:?}");
    assert_eq!(ra.xdp.tx_invalid_descs + rb.xdp.tx_invalid_descs, 0);
    assert_eq!(ra.xdp.rx_invalid_descs + rb.xdp.rx_invalid_descs, 0);
    assert!(
        fwd.census.balanced() && fwd.census.total == UMEM_FRAMES,
        "every frame is in one place: {:?}",
        fwd.census
    );
    assert_eq!(fwd.census.held, 0, "{:?}", fwd.census);
    assert_eq!(fwd.census.tx, 0, "all sends completed: {:?}", fwd.census);
    eprintln!(
        "forwarded {} frames; census {:?}\n{:#?}",
        fwd.frames, fwd.census, fwd.stats
    );
    let _ = (&t.b, t.b0);
}

fn xdp_attached(lab: &Lab, ns: &str, dev: &str) -> bool {
    lab.link_show(ns, dev).contains("xdp")
}

/// Whether XDP is gone from `dev` within two seconds: the kernel may
/// release a closed bpf_link from a work queue, a moment after the close.
fn xdp_detached_soon(lab: &Lab, ns: &str, dev: &str) -> bool {
    let start = Instant::now();
    while xdp_attached(lab, ns, dev) {
        if start.elapsed() > Duration::from_secs(2) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn dropping_ports_detaches_xdp_and_reopening_at_once_works() {
    let t = topo("xskreopen");
    std::thread::scope(|s| {
        s.spawn(|| {
            lab::netns::enter(&t.r).expect("enter ns r");
            let first = WorkerPorts::open(&ports(XdpMode::Native), UMEM_FRAMES, FRAME_SIZE)
                .unwrap_or_else(|e| panic!("open: {e}"));
            assert!(xdp_attached(&t.lab, &t.r, "ra") && xdp_attached(&t.lab, &t.r, "rb"));
            drop(first);
            for dev in ["ra", "rb"] {
                assert!(
                    xdp_detached_soon(&t.lab, &t.r, dev),
                    "XDP still attached 2 s after drop: {}",
                    t.lab.link_show(&t.r, dev)
                );
            }
            // Straight away: the kernel may still hold the queues (EBUSY).
            let started = Instant::now();
            let again = WorkerPorts::open(&ports(XdpMode::Native), UMEM_FRAMES, FRAME_SIZE)
                .unwrap_or_else(|e| panic!("reopen right after close: {e}"));
            eprintln!("reopen took {:?}", started.elapsed());
            assert!(again.frames_accounted().balanced());
            drop(again);
            // Generic mode attaches too, and detaches on drop.
            let generic = WorkerPorts::open(&ports(XdpMode::Generic), UMEM_FRAMES, FRAME_SIZE)
                .unwrap_or_else(|e| panic!("open generic: {e}"));
            assert!(t.lab.link_show(&t.r, "ra").contains("xdpgeneric"));
            drop(generic);
            assert!(xdp_detached_soon(&t.lab, &t.r, "ra"));
        })
        .join()
        .expect("worker thread");
    });
}

#[test]
fn second_attach_and_missing_queue_name_the_fix() {
    let t = topo("xskerr");
    std::thread::scope(|s| {
        s.spawn(|| {
            lab::netns::enter(&t.r).expect("enter ns r");
            let held = WorkerPorts::open(&ports(XdpMode::Native), UMEM_FRAMES, FRAME_SIZE)
                .unwrap_or_else(|e| panic!("open: {e}"));
            let busy = WorkerPorts::open(&ports(XdpMode::Native), UMEM_FRAMES, FRAME_SIZE)
                .expect_err("a second program on the same interface");
            assert!(
                busy.to_string()
                    .contains("another XDP program is attached: `ip link set dev ra xdp off`"),
                "{busy}"
            );
            drop(held);
            let cfg = [PortConfig {
                ifname: "ra".into(),
                queue: 5,
                mode: XdpMode::Native,
            }];
            // The dropped program's link may take a moment to go away:
            // retry while it is still in the way, for at most two seconds.
            let start = std::time::Instant::now();
            let err = loop {
                let err = WorkerPorts::open(&cfg, UMEM_FRAMES, FRAME_SIZE)
                    .expect_err("veth has one queue");
                if !err.to_string().contains("another XDP program")
                    || start.elapsed() > std::time::Duration::from_secs(2)
                {
                    break err;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            };
            assert_eq!(
                err.to_string(),
                "ra: queue 5 does not exist (bind EINVAL): see the channel count with `ethtool -l ra`"
            );
        })
        .join()
        .expect("worker thread");
    });
}

#[test]
fn bind_waits_while_the_queue_is_busy_then_succeeds() {
    let t = topo("xskbusy");
    std::thread::scope(|s| {
        s.spawn(|| {
            lab::netns::enter(&t.r).expect("enter ns r");
            let cfg = ports(XdpMode::Native);
            let programs: Vec<Arc<XdpProgram>> = cfg
                .iter()
                .map(|c| Arc::new(XdpProgram::attach(&c.ifname, c.mode).expect("attach")))
                .collect();
            let first = WorkerPorts::open_with_programs(&cfg, &programs, UMEM_FRAMES, FRAME_SIZE)
                .unwrap_or_else(|e| panic!("open: {e}"));
            let started = Instant::now();
            std::thread::scope(|inner| {
                inner.spawn(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    drop(first);
                });
                // Binds get EBUSY until `first` is gone, and retry.
                let second =
                    WorkerPorts::open_with_programs(&cfg, &programs, UMEM_FRAMES, FRAME_SIZE)
                        .unwrap_or_else(|e| panic!("open while busy: {e}"));
                let waited = started.elapsed();
                assert!(
                    waited >= Duration::from_millis(250),
                    "the second bind cannot succeed while the first socket holds the queue \
                     ({waited:?})"
                );
                assert!(second.frames_accounted().balanced());
            });
        })
        .join()
        .expect("worker thread");
    });
}

#[test]
fn missing_device_names_the_fix() {
    // Needs no privilege: the name is resolved before anything else.
    let cfg = [PortConfig {
        ifname: "nosuchdev0x".into(),
        queue: 0,
        mode: XdpMode::Native,
    }];
    let err = WorkerPorts::open(&cfg, UMEM_FRAMES, FRAME_SIZE).expect_err("no such device");
    assert_eq!(
        err.to_string(),
        "no such device nosuchdev0x: create it or fix interfaces[].device"
    );
}
