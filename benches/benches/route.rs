//! Route table (DIR-24-8 LPM) benches.
//!
//! Cases:
//! - `route_lookup_1m_routes`: 64 lookups of random addresses per iteration
//!   in a table of 1M random prefixes (elements/s = lookups per second on
//!   one core; the addresses cycle through 1M, so the table is cache-cold).
//! - `route_build_1m_routes`: build the table from the same 1M prefixes,
//!   including zeroing/faulting in the 64 MiB tbl24 and freeing it.
//!
//! - `tables_build_100k_kernel_routes`: what the kernel route feed of
//!   routerd does for each batch it publishes: `Tables::build` of a
//!   two-port config plus 100,000 kernel /32 routes via one gateway
//!   (source, precedence and next-hop dedup, the LPM table, the rule
//!   dispatch), freeing the old tables included.
//! - `tables_build_100k_kernel_routes_ecmp`: the same with two gateways
//!   per route (multipath next hops).
//!
//! Prefix length mix (roughly a full Internet table): 60% /24, 30% /16../23,
//! 8% /8../15, 2% /25../32, on random addresses, 256 next hops.
//!
//! Run: `cargo bench -p benches --bench route`.

use std::hint::black_box;
use std::time::Instant;

use benches::rng::Rng;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use dataplane::addr::Ipv4Prefix;
use dataplane::addr::{IfAddr, Mac};
use dataplane::packet::PortId;
use dataplane::route::RouteTable;
use dataplane::tables::{Interface, NextHop, RouteSource, RouteSpec, Tables, TablesSpec};

const ROUTES: usize = 1_000_000;
const BURST: usize = 64;

fn random_routes(n: usize, rng: &mut Rng) -> Vec<(Ipv4Prefix, u32)> {
    (0..n)
        .map(|_| {
            let len = match rng.below(100) {
                0..60 => 24,
                60..90 => 16 + rng.below(8),
                90..98 => 8 + rng.below(8),
                _ => 25 + rng.below(8),
            } as u8;
            let prefix = Ipv4Prefix::new(rng.next_u32(), len).expect("len <= 32");
            (prefix, rng.below(256) as u32)
        })
        .collect()
}

fn route(c: &mut Criterion) {
    let mut rng = Rng::new(0x0001_2024);
    let routes = random_routes(ROUTES, &mut rng);

    let start = Instant::now();
    let table = RouteTable::build(&routes);
    eprintln!(
        "route table: {} input routes, {} distinct prefixes, {} tbl8 groups, \
         memory_bytes = {} ({:.1} MiB), one build {:?}",
        routes.len(),
        table.len(),
        table.tbl8_groups(),
        table.memory_bytes(),
        table.memory_bytes() as f64 / (1 << 20) as f64,
        start.elapsed()
    );

    let addrs: Vec<u32> = (0..1 << 20).map(|_| rng.next_u32()).collect();
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(BURST as u64));
    let mut bursts = addrs.chunks_exact(BURST).cycle();
    group.bench_function("route_lookup_1m_routes", |b| {
        b.iter(|| {
            for &ip in bursts.next().expect("cycle never ends") {
                black_box(table.lookup(black_box(ip)));
            }
        })
    });
    group.finish();
    drop(table);

    let mut group = c.benchmark_group("route");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("route_build_1m_routes", |b| {
        b.iter(|| RouteTable::build(black_box(&routes)))
    });
    group.finish();
}

/// Two ports and `n` kernel /32 routes from 10.0.0.0 via 198.19.0.2
/// (and 198.19.0.3 with `ecmp`).
fn kernel_spec(n: u32, ecmp: bool) -> TablesSpec {
    let ifc = |name: &str, a: &str| Interface {
        name: name.into(),
        device: name.into(),
        mac: Mac::ZERO,
        addresses: vec![a.parse::<IfAddr>().expect("address")],
        addresses6: Vec::new(),
        mtu: 1500,
        ra: None,
    };
    let gw = |last: u32| NextHop::Via {
        port: PortId(1),
        gateway: 0xc613_0000 | last,
    };
    let kernel_routes = (0..n)
        .map(|i| {
            let mut r = RouteSpec::new(Ipv4Prefix::host(0x0a00_0000 + i), gw(2))
                .with_source(RouteSource::Kernel { protocol: 12 });
            if ecmp {
                r.also.push(gw(3));
            }
            r
        })
        .collect();
    TablesSpec {
        interfaces: vec![ifc("wan", "198.18.0.1/24"), ifc("lan", "198.19.0.1/24")],
        kernel_routes,
        ..TablesSpec::default()
    }
}

fn tables(c: &mut Criterion) {
    let mut group = c.benchmark_group("tables");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(100_000));
    for (name, ecmp) in [
        ("tables_build_100k_kernel_routes", false),
        ("tables_build_100k_kernel_routes_ecmp", true),
    ] {
        let spec = kernel_spec(100_000, ecmp);
        group.bench_function(name, |b| b.iter(|| Tables::build(black_box(spec.clone()))));
    }
    group.finish();
}

criterion_group!(benches, route, tables);
criterion_main!(benches);
