//! IPv6 route table (Poptrie LPM) benches, against the per-length hash
//! baseline it was chosen over.
//!
//! Cases:
//! - `route6_lookup_1m_prefixes`: 64 lookups (one `lookup` each) per
//!   iteration in a table of 1M prefixes (elements/s = lookups per second on
//!   one core; the addresses cycle through 1M, so the table is cache-cold).
//! - `route6_lookup_batch_1m_prefixes`: the same 64 addresses through one
//!   `lookup_batch` (64 lookups in lock step).
//! - `route6_lookup_batch_hot_1m_prefixes`: `lookup_batch` over the first
//!   4,096 of those addresses only, whose nodes stay in the core's caches:
//!   what a lookup costs without its cache misses, beside the case above.
//! - `route6_lookup_zipf_1m_prefixes`, `route6_lookup_batch_zipf_1m_prefixes`:
//!   the two above with the locality of real traffic (see Addresses).
//! - `route6_hash_lookup_1m_prefixes`: the baseline, one hash probe per
//!   distinct prefix length from the longest down.
//! - `route6_build_1m_prefixes`: build the Poptrie from the 1M prefixes.
//!
//! Prefixes: `benches::prefix6::internet_table` (the length mix of the
//! Internet table: 45% /48, 10% /32, ..., clustered under the allocations),
//! 256 next hops. Addresses: 90% inside a random prefix of the table (every
//! prefix as likely: the worst case for the caches), 10% random in
//! 2000::/3. The `zipf` cases draw the prefix with Zipf's law (exponent 1:
//! the most popular 1% of the prefixes get about half of the lookups, as
//! real traffic concentrates on few destinations), the same 10% random.
//! Before the cases the bench prints `route6:` lines with the memory per
//! prefix and the build time of both structures, and the memory a
//! DIR-16-8-8 multibit trie would need for the same prefixes.
//!
//! Run: `cargo bench -p benches --bench route6`.

use std::hint::black_box;
use std::time::Instant;

use benches::prefix6::{internet_table, lookup_addresses, lookup_addresses_zipf};
use benches::rng::Rng;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use dataplane::route6::{HashRouteTable6, RouteTable6};

const PREFIXES: usize = 1_000_000;
const BURST: usize = 64;
/// Addresses of the `hot` case.
const HOT: usize = 4096;

fn route6(c: &mut Criterion) {
    let mut rng = Rng::new(0x0006_2026);
    let routes = internet_table(PREFIXES, 256, &mut rng);

    let start = Instant::now();
    let table = RouteTable6::build(&routes);
    let build = start.elapsed();
    eprintln!(
        "route6: poptrie {} prefixes, {} nodes, {} leaves, memory_bytes = {} ({:.1} MiB, \
         {:.1} bytes/prefix), one build {:?}",
        table.len(),
        table.nodes(),
        table.leaves(),
        table.memory_bytes(),
        table.memory_bytes() as f64 / (1 << 20) as f64,
        table.memory_bytes() as f64 / table.len() as f64,
        build
    );
    let start = Instant::now();
    let hash = HashRouteTable6::build(&routes);
    let build = start.elapsed();
    eprintln!(
        "route6: hash baseline {} prefixes, memory_bytes ~ {} ({:.1} bytes/prefix), one build {:?}",
        hash.len(),
        hash.memory_bytes(),
        hash.memory_bytes() as f64 / hash.len() as f64,
        build
    );

    // The third candidate, DIR-16-8-8 (a multibit trie without compression,
    // DPDK rte_lpm6's shape): its memory is fixed by the prefixes alone, one
    // 256-entry node of 4-byte entries per distinct /24, /32, ... that a
    // longer prefix passes through, plus the 2^16-entry first table.
    let mut nodes = 0usize;
    for depth in (16..128).step_by(8) {
        let distinct: std::collections::HashSet<u128> = routes
            .iter()
            .filter(|(p, _)| u32::from(p.len()) > depth)
            .map(|(p, _)| p.addr() >> (128 - depth))
            .collect();
        nodes += distinct.len();
    }
    let dir_bytes = (1usize << 16) * 4 + nodes * 256 * 4;
    eprintln!(
        "route6: dir-16-8-8 would need {nodes} nodes, {dir_bytes} bytes ({:.1} bytes/prefix)",
        dir_bytes as f64 / table.len() as f64
    );

    let addrs = lookup_addresses(&routes, 1 << 20, &mut rng);
    let zipf = lookup_addresses_zipf(&routes, 1 << 20, 1.0, &mut rng);
    for (name, addrs) in [("uniform", &addrs), ("zipf", &zipf)] {
        // The three must agree (a bench of a wrong table measures nothing).
        let mut out = vec![0u32; addrs.len()];
        table.lookup_batch(addrs, &mut out);
        let mut hits = 0usize;
        for (&a, &slot) in addrs.iter().zip(&out) {
            let want = hash.lookup(a);
            assert_eq!(table.lookup(a), want, "address {a:#034x}");
            assert_eq!(slot.checked_sub(1), want, "batch, address {a:#034x}");
            hits += usize::from(want.is_some());
        }
        eprintln!(
            "route6: {:.1}% of the {name} lookup addresses hit a route",
            100.0 * hits as f64 / addrs.len() as f64
        );
    }

    let mut group = c.benchmark_group("route6");
    group.throughput(Throughput::Elements(BURST as u64));
    let mut bursts = addrs.chunks_exact(BURST).cycle();
    group.bench_function("route6_lookup_1m_prefixes", |b| {
        b.iter(|| {
            for &ip in bursts.next().expect("cycle never ends") {
                black_box(table.lookup(black_box(ip)));
            }
        })
    });
    let mut out = [0u32; BURST];
    group.bench_function("route6_lookup_batch_1m_prefixes", |b| {
        b.iter(|| {
            let burst = bursts.next().expect("cycle never ends");
            table.lookup_batch(black_box(burst), &mut out);
            black_box(&out);
        })
    });
    let mut hot_bursts = addrs[..HOT].chunks_exact(BURST).cycle();
    group.bench_function("route6_lookup_batch_hot_1m_prefixes", |b| {
        b.iter(|| {
            let burst = hot_bursts.next().expect("cycle never ends");
            table.lookup_batch(black_box(burst), &mut out);
            black_box(&out);
        })
    });
    let mut zipf_bursts = zipf.chunks_exact(BURST).cycle();
    group.bench_function("route6_lookup_zipf_1m_prefixes", |b| {
        b.iter(|| {
            for &ip in zipf_bursts.next().expect("cycle never ends") {
                black_box(table.lookup(black_box(ip)));
            }
        })
    });
    group.bench_function("route6_lookup_batch_zipf_1m_prefixes", |b| {
        b.iter(|| {
            let burst = zipf_bursts.next().expect("cycle never ends");
            table.lookup_batch(black_box(burst), &mut out);
            black_box(&out);
        })
    });
    group.bench_function("route6_hash_lookup_1m_prefixes", |b| {
        b.iter(|| {
            for &ip in bursts.next().expect("cycle never ends") {
                black_box(hash.lookup(black_box(ip)));
            }
        })
    });
    group.finish();
    drop(hash);
    drop(table);

    let mut group = c.benchmark_group("route6");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("route6_build_1m_prefixes", |b| {
        b.iter(|| RouteTable6::build(black_box(&routes)))
    });
    group.finish();
}

criterion_group!(benches, route6);
criterion_main!(benches);
