//! A synthetic IPv6 Internet table: prefixes with the length mix of the
//! real one, clustered as real allocations are, for the `route6` bench.
//!
//! Length mix (per mille, summing to 1000), after the shape of the IPv6
//! table seen from the default-free zone: /48 the largest share (45%), /32
//! next (10%), RIR allocations /29../31 (2.5%), the ISP sizes /33../47 with
//! peaks at /36, /40 and /44 (37%), a few /56../64 (5%) and /16../28 (0.5%).
//!
//! Placement: prefixes up to /32 get random addresses in 2000::/3 (global
//! unicast); every longer prefix is carved at random out of one of them, so
//! that, as in the real table, more-specifics share their upper trie levels
//! with the allocation they come from.

use crate::rng::Rng;
use dataplane::addr::Ipv6Prefix;

/// `(length, per mille)`: the share of each prefix length.
pub const LENGTH_MIX: [(u8, u32); 36] = [
    (16, 1),
    (24, 2),
    (28, 2),
    (29, 15),
    (30, 5),
    (31, 5),
    (32, 100),
    (33, 12),
    (34, 12),
    (35, 10),
    (36, 35),
    (37, 6),
    (38, 10),
    (39, 5),
    (40, 60),
    (41, 10),
    (42, 20),
    (43, 10),
    (44, 90),
    (45, 15),
    (46, 40),
    (47, 30),
    (48, 450),
    (49, 2),
    (50, 2),
    (52, 3),
    (54, 1),
    (55, 1),
    (56, 20),
    (57, 1),
    (58, 2),
    (59, 1),
    (60, 3),
    (61, 1),
    (62, 1),
    (64, 10),
];

/// `n` prefixes with [`LENGTH_MIX`], next hops `0..next_hops`, the same for
/// the same seed of `rng`.
pub fn internet_table(n: usize, next_hops: u32, rng: &mut Rng) -> Vec<(Ipv6Prefix, u32)> {
    let total: u32 = LENGTH_MIX.iter().map(|&(_, w)| w).sum();
    let count = |w: u32| (n as u64 * u64::from(w) / u64::from(total)) as usize;
    let mut out = Vec::with_capacity(n);
    // Allocations first (up to /32), then the more-specifics carved out of them.
    for &(len, w) in LENGTH_MIX.iter().filter(|&&(l, _)| l <= 32) {
        for _ in 0..count(w) {
            let addr = (1u128 << 125) | (random_u128(rng) >> 3);
            out.push(prefix(addr, len, next_hops, rng));
        }
    }
    let parents = out.len();
    for &(len, w) in LENGTH_MIX.iter().filter(|&&(l, _)| l > 32) {
        for _ in 0..count(w) {
            out.push(carve(&out[..parents], len, next_hops, rng));
        }
    }
    // Rounding leaves a few short of n: fill with /48s.
    while out.len() < n {
        out.push(carve(&out[..parents], 48, next_hops, rng));
    }
    // Shuffle (Fisher-Yates) so the input order says nothing of the length.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

/// `n` addresses to look up: 90% inside a random prefix of `routes` (host
/// bits random), 10% random in 2000::/3.
pub fn lookup_addresses(routes: &[(Ipv6Prefix, u32)], n: usize, rng: &mut Rng) -> Vec<u128> {
    (0..n)
        .map(|_| {
            if rng.below(10) == 0 || routes.is_empty() {
                (1u128 << 125) | (random_u128(rng) >> 3)
            } else {
                let (p, _) = routes[rng.below(routes.len() as u64) as usize];
                p.addr() | (random_u128(rng) & !p.mask())
            }
        })
        .collect()
}

/// `n` addresses with the locality of real traffic, which concentrates on
/// few destinations: 90% inside a prefix of `routes` drawn with Zipf's law
/// of exponent `s` (the prefix of rank `k`, `routes[k - 1]`, with weight
/// `1 / k^s`; `routes` is in random order, so the popular ones are spread
/// over the table), host bits random; 10% random in 2000::/3, as in
/// [`lookup_addresses`].
pub fn lookup_addresses_zipf(
    routes: &[(Ipv6Prefix, u32)],
    n: usize,
    s: f64,
    rng: &mut Rng,
) -> Vec<u128> {
    let mut cdf = Vec::with_capacity(routes.len());
    let mut sum = 0.0;
    for k in 1..=routes.len() {
        sum += (k as f64).powf(-s);
        cdf.push(sum);
    }
    (0..n)
        .map(|_| {
            if rng.below(10) == 0 || routes.is_empty() {
                (1u128 << 125) | (random_u128(rng) >> 3)
            } else {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * sum;
                let k = cdf.partition_point(|&c| c <= u).min(routes.len() - 1);
                let (p, _) = routes[k];
                p.addr() | (random_u128(rng) & !p.mask())
            }
        })
        .collect()
}

fn random_u128(rng: &mut Rng) -> u128 {
    (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
}

fn prefix(addr: u128, len: u8, next_hops: u32, rng: &mut Rng) -> (Ipv6Prefix, u32) {
    let p = Ipv6Prefix::new(addr, len).expect("len <= 128");
    (p, rng.below(u64::from(next_hops)) as u32)
}

fn carve(
    parents: &[(Ipv6Prefix, u32)],
    len: u8,
    next_hops: u32,
    rng: &mut Rng,
) -> (Ipv6Prefix, u32) {
    let (parent, _) = parents[rng.below(parents.len() as u64) as usize];
    let addr = parent.addr() | (random_u128(rng) & !parent.mask());
    prefix(addr, len, next_hops, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_and_placement() {
        let mut rng = Rng::new(1);
        let routes = internet_table(100_000, 16, &mut rng);
        assert_eq!(routes.len(), 100_000);
        let share = |len: u8| routes.iter().filter(|(p, _)| p.len() == len).count();
        assert!((44_000..47_000).contains(&share(48)), "{}", share(48));
        assert!((9_500..10_500).contains(&share(32)), "{}", share(32));
        let global = Ipv6Prefix::new(1 << 125, 3).unwrap();
        assert!(routes
            .iter()
            .all(|(p, nh)| global.contains(p.addr()) && *nh < 16));
        let addrs = lookup_addresses(&routes, 1000, &mut rng);
        assert!(addrs.iter().all(|&a| global.contains(a)));
        // Zipf, s = 1: rank 1 draws 0.9 / H(100000) = 7.4% of the addresses.
        let zipf = lookup_addresses_zipf(&routes, 10_000, 1.0, &mut rng);
        assert!(zipf.iter().all(|&a| global.contains(a)));
        let top = zipf.iter().filter(|&&a| routes[0].0.contains(a)).count();
        assert!((500..1000).contains(&top), "{top}");
        // Same seed, same table.
        assert_eq!(
            internet_table(1000, 16, &mut Rng::new(5)),
            internet_table(1000, 16, &mut Rng::new(5))
        );
    }
}
