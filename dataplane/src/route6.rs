//! Longest-prefix-match IPv6 route table: a Poptrie (Asai and Ohara,
//! "Poptrie: A Compressed Trie with Population Count for Fast and Scalable
//! Software IP Routing Table Lookup", SIGCOMM 2015).
//!
//! Owns the compiled LPM structure that maps a destination address (`u128`,
//! host byte order) to a next-hop id, with the shape of the IPv4 table
//! ([`crate::route::RouteTable`]): built once from `(prefix, next_hop)` and
//! swapped in whole (read-copy-update), `lookup` / `lookup_slot`, `len`,
//! `memory_bytes`. A lookup never allocates, locks or makes a syscall; it
//! reads one direct entry and at most 18 nodes (one per 6 bits below /20),
//! and the batch form [`RouteTable6::lookup_batch`] runs 64 lookups in lock
//! step, prefetching each one's next node, so that their cache misses
//! overlap (40M lookups/s on one core of this VM, below). Routes change by building a new
//! table and swapping it in, as for IPv4: there is no incremental insert or
//! remove (a 1M-prefix build takes about 0.2 s).
//!
//! # Layout
//!
//! - `direct`: 2^20 `u32` entries indexed by the top 20 bits (4 MiB). An
//!   entry is a leaf slot (`0` no route, `nh + 1` next hop `nh`), or with
//!   bit 31 set the index of a node for the next 6 bits, or with bits 31
//!   and 30 set the index of a wide node.
//! - Wide nodes (level compression, as in an LC-trie): a subtree that holds
//!   at least 512 prefixes is one table of 4,096 entries (16 KiB, at most
//!   32 bytes per prefix below it) for the next 12 bits instead of two
//!   6-bit levels, its entries like the direct table's. Where an operator
//!   announces many more-specifics (1,000 /48s in a /32) the /20 and the
//!   /32 above them become wide and a /48 is two entries below the direct
//!   one. The Internet-table mix of the bench has no subtree that dense.
//! - A 6-bit node whose 64 slots are one leaf (the prefixes below it fill
//!   it with one next hop, as /48s via one gateway fill their /44) is not
//!   stored: its entry in the direct table or a wide node is that leaf.
//! - `nodes`: 32-byte nodes, each for 6 address bits (64 slots):
//!   `vector` has bit `v` set when slot `v` goes on to a child node,
//!   `leafvec` has bit `v` set when slot `v` is a leaf whose value differs
//!   from the leaf slot before it (a run of equal leaves is stored once).
//!   A node's children are contiguous from `base1`, so the child of slot `v`
//!   is `base1 + popcount(vector & bits 0..=v) - 1`, and its leaf is number
//!   `popcount(leafvec & bits 0..=v) - 1` of the node's leaves: held in the
//!   node when there are at most three, else from `base0` in `leaves`.
//! - Buckets: a subtree that holds at most three prefixes, none more than
//!   32 bits longer than the node's offset, is one node of its own kind
//!   (`base1` bit 31): each prefix's bits below the offset as a `u32` key,
//!   its length and leaf, and the leaf inherited from above. A lookup that
//!   reaches a bucket ends there, with the longest entry that matches. This
//!   is where a /48 under its /32 ends (the subtree at offset 32 usually
//!   holds one or two prefixes), so it removes the deepest level of the
//!   trie.
//! - `leaves`: `u32` leaf slots (`0` no route, `nh + 1`) of the nodes with
//!   more than three.
//!
//! Each of the four arrays lives in an anonymous mapping of whole 2 MiB
//! pages advised `MADV_HUGEPAGE` (through `memmap2`, no `unsafe` here):
//! with 4 KiB pages the 30 MiB of nodes span 7,400 pages and nearly every
//! deep read is a TLB miss as well as a cache miss. Where the kernel has
//! transparent huge pages off, small pages serve, slower (figures below).
//!
//! Strides: 20 bits direct, then 6 bits per node at bit offsets 20, 26, ...,
//! 122 (the last node covers bits 122..128), a wide node 12 where it
//! stands. A /32 ends in the node at offset 26; a /48 below it usually in
//! the bucket at offset 32: the direct entry and three nodes.
//!
//! # Why a Poptrie (measured, `cargo bench -p benches --bench route6`)
//!
//! Three structures on the same 1M prefixes with the length mix of the
//! Internet table (`benches/src/prefix6.rs`: 45% /48, 10% /32, 2.5%
//! /29../31, 37% /33../47 with peaks at /36, /40, /44, 5% /56../64, carved
//! out of the shorter prefixes as real allocations are), lookups of random
//! addresses of which 91% hit a route, one core of the shared 2-core VM
//! the project is built on (AMD EPYC, 32 MiB L3, THP `madvise`), as first
//! chosen:
//!
//! | structure                          | lookups/s       | bytes/prefix | build   |
//! |------------------------------------|-----------------|--------------|---------|
//! | hash per prefix length (baseline)  | 2.99M           | 41.5         | 51 ms   |
//! | DIR-16-8-8 (uncompressed 8-bit trie) | not built      | 1173.5       | -       |
//! | Poptrie 18 + 6k, `lookup`          | 3.69M           | 59.6         | 352 ms  |
//! | Poptrie 18 + 6k, `lookup_batch`    | 6.70M           | 59.6         | 352 ms  |
//!
//! The baseline ([`HashRouteTable6`]) probes one hash table per distinct
//! length from the longest down: compact, but every longer length costs a
//! probe and the mix has 36 lengths. DIR-16-8-8's memory is fixed by the
//! prefixes alone (the bench counts its nodes: 1,144,827 of 1 KiB), 1.1
//! GiB, twelve times the 100 B/prefix budget, so it was not built. The
//! Poptrie keeps the multibit trie's fixed stride and stores a node in 32
//! bytes (with up to three leaves inline, so most lookups never read the
//! leaf array).
//!
//! # Making it faster (issue 15: 30M lookups/s per core, 100 B/prefix, 5 s)
//!
//! Same bench, same session, before (the table above's code, main at
//! 56e981f, with the bench of today) and after, criterion's estimate; the
//! `zipf` cases draw the prefix with Zipf's law (exponent 1: the most
//! popular 1% of the prefixes get about half of the lookups, as real
//! traffic concentrates on few destinations), the others every prefix
//! alike (the worst case for the caches). Runs on this shared VM swing by
//! 10-40% (single `lookup` most: 5.0M to 9.7M/s over the same code), so
//! the ratios below are from runs next to each other:
//!
//! | case                    | before (2 runs) | after (2 runs) | after/before |
//! |-------------------------|-----------------|----------------|--------------|
//! | `lookup`, uniform       | 4.24M, 4.14M    | 5.74M, 5.43M   | 1.3-1.4x     |
//! | `lookup_batch`, uniform | 8.42M, 6.54M    | 23.3M, 20.9M   | 2.5-3.6x     |
//! | `lookup`, zipf          | -, 6.19M        | 10.6M, 9.22M   | 1.5-1.7x     |
//! | `lookup_batch`, zipf    | -, 10.4M        | 24.4M, 22.6M   | 2.2-2.3x     |
//! | hash baseline (noise)   | 3.35M, 2.54M    | 2.67M, 2.91M   | -            |
//! | bytes/prefix            | 59.6            | 42.0           | 0.7x         |
//! | build, 1M prefixes      | 351 ms, 353 ms  | 181 ms, 182 ms | 0.5x         |
//!
//! (After: 31.9 of the 42.0 bytes/prefix are data, the rest is the
//! rounding of the three arrays to whole huge pages plus one for the
//! alignment; pages never touched are not resident.)
//!
//! The levers, each measured against the step before it:
//! - Buckets (above): nodes 1.8M to 0.94M, 59.6 to 31.9 bytes/prefix,
//!   build 351 to 177 ms, `lookup` 1.32x, `lookup_batch` 1.30x.
//! - `lookup_batch` loads every lane's node (and direct entry) before it
//!   branches on any: a mispredicted branch on one lane's data no longer
//!   discards the loads issued for the lanes after it, so all the misses
//!   of a level are in flight at once. 16 lanes: 10.9M to 15.3M/s; 32
//!   lanes: 21.1M/s; 64 lanes: 21.4M/s (not worth the stack; the pipeline's
//!   bursts are 32 to 64).
//! - Huge pages: with the advice against without it in back-to-back runs,
//!   `lookup` 6.9M against 5.7M/s, `lookup_batch` 22.5M against 18.7M/s,
//!   zipf `lookup` 10.9M against 7.4M/s.
//!
//! Tried and dropped: a 2^24-entry direct table (64 MiB; removes the node
//! at offset 18 from every path but makes the direct table itself a miss:
//! 97 bytes/prefix, `lookup` 6.0M/s, `lookup_batch` 18.7M/s against 21M/s
//! with 2^18); refilling a lane as soon as its lookup ends instead of lock
//! step (17.5M against 21.1M/s: the bookkeeping costs more than the idle
//! lanes); 64-bit instead of 128-bit shifts for the nodes above /64 (no
//! change). Software prefetch (`_mm_prefetch`) needs `unsafe` on this
//! rustc (1.95: a `#[target_feature]` function), so it was not used then;
//! the fourth round (below) takes it from `safe_arch`.
//!
//! The work per level, next (the bench's medians, two binaries run in
//! turn, before: main at cdb7398):
//! - POPCNT (`.cargo/config.toml`: x86-64's baseline lacks it, and
//!   `count_ones` was some 16 instructions of software);
//! - the address shifted by the stride at each level (a constant shift,
//!   not one by a variable offset), only the vector and the child base
//!   read on the way down, the leaf read from the node's words (no `Node`
//!   on the stack, so no stack frame);
//! - a [`Reader`] holding the arrays' slices: making them checks each
//!   mapping's alignment and length, 40 instructions, once a burst now
//!   instead of once a lookup.
//!
//! | case                    | before  | after   | after/before |
//! |-------------------------|---------|---------|--------------|
//! | `lookup`, uniform       | 5.66M   | 9.65M   | 1.70x        |
//! | `lookup_batch`, uniform | 20.7M   | 25.9M   | 1.25x        |
//! | `lookup`, zipf          | 9.67M   | 12.0M   | 1.24x        |
//! | `lookup_batch`, zipf    | 23.2M   | 25.4M   | 1.09x        |
//!
//! (A run alone on the idle VM: 10.3M, 25.4M, 15.1M and 28.3M; 42.0
//! bytes/prefix, 183 ms to build.) In the pipeline the IPv6 transit case
//! (`benches/callgrind.sh`) went from 586.7 to 344.6 instructions a
//! packet with these and the fast path's own changes; its lookup is about
//! 130 of them, some 19 a level.
//!
//! 30M lookups/s per core was still not reached on this machine.
//! `lookup_batch` was at 25-28M/s with uniform and zipf addresses alike,
//! read then as bound by the work per lane and level, not by the misses:
//! wrongly, as the fourth round measured (below). A single `lookup` is a chain of four to five
//! dependent reads of a table larger than this VM's share of L3 (a /48:
//! direct, nodes at 18, 24, 30, bucket at 36) and stays at 8-15M/s; the
//! transit path calls `lookup_slot` per packet, and looking the burst up
//! with `lookup_batch` would overlap its misses (it saves no instruction).
//!
//! Levels, next (issue 15's third round; before: main at 0211182, two
//! binaries in turn, two runs each, criterion's estimate):
//! - 20 direct bits instead of 18: a /32 now ends at the end of a node
//!   (26..32), so the /48s below it are a bucket at 32 and a /48 is three
//!   nodes below the direct entry instead of four;
//! - wide nodes and one-leaf nodes stored as their leaf (Layout): none in
//!   the bench's table, which is sparse below its /20s; in the pipeline's
//!   table (1,000 /48s in a /32) the lookup of a /48 is the direct entry
//!   and two wide entries, or a 6-bit node more where neighbouring /48s
//!   have other next hops;
//! - nodes read as `u64` words, base and leaves as their `u32` halves in
//!   memory order (one load for a leaf), the direct table a fixed-size
//!   array (no bounds check).
//!
//! | case                    | before         | after          | after/before |
//! |-------------------------|----------------|----------------|--------------|
//! | `lookup`, uniform       | 6.35M, 7.08M   | 7.68M, 8.40M   | 1.19x        |
//! | `lookup_batch`, uniform | 20.9M, 22.9M   | 23.1M, 23.2M   | 1.05x        |
//! | `lookup`, zipf          | 9.56M, 10.9M   | 11.5M, 11.4M   | 1.1x         |
//! | `lookup_batch`, zipf    | 25.5M, 25.4M   | 25.5M, 25.2M   | 1.0x         |
//! | bytes/prefix            | 42.0           | 48.3           |              |
//! | build, 1M prefixes      | 183 ms         | 195 ms         |              |
//!
//! (The VM was slower that day: the same old binary gave 25.4M against
//! 28.3M for the zipf batch before.) `lookup_batch` stays at 23-26M/s:
//! 30M lookups/s per core is not reached here. Tried and dropped: a step
//! without branches in the batch (both answers and all three kinds of
//! leaf computed, one selected by masks): 17.1M and 18.1M against 21.8M
//! and 21.4M uniform, 18.1M and 18.4M against 23.8M and 26.2M zipf;
//! loading only the pending lanes' vectors at each level (no change). In
//! the pipeline's IPv6 transit case the lookup went from about 130
//! instructions a packet to about 25 (two wide entries) and 60 (with the
//! 6-bit node).
//!
//! Prefetch (issue 15's fourth round; before: main at c2d5f19, two
//! binaries in turn, three runs each, criterion's estimate). The bench's
//! `hot` case, the same batch over 4,096 addresses whose nodes stay in
//! the core's caches, ran at 65.5M/s where the 1M addresses ran at 21-24M:
//! two thirds of the batch's time was spent waiting for memory, not
//! computing. A round of the lock-step loop loaded every pending lane's
//! node, then stepped them; the next round's loads could start only when
//! the last step was done, and a load that misses holds its place in the
//! core's reorder window, so each round cost about one miss latency, five
//! to six rounds a batch. Now:
//! - each lane's next node is prefetched (`PREFETCHT0`, `safe_arch`'s
//!   safe wrapper: `_mm_prefetch` itself needs `unsafe`) as soon as its
//!   step finds it, and read a round later; a prefetch holds nothing, so
//!   all of a round's misses are in flight while its steps run;
//! - no load of every lane's vector before a round (the node is in the
//!   cache by then, and those loads were what filled the window);
//! - 64 lanes instead of 32, so that a round outlasts the prefetches it
//!   issues.
//!
//! | case                    | before (3 runs)     | after (3 runs)      | after/before |
//! |-------------------------|---------------------|---------------------|--------------|
//! | `lookup_batch`, uniform | 20.8M, 23.6M, 21.7M | 41.0M, 45.8M, 36.3M | 1.7-2.0x     |
//! | `lookup_batch`, zipf    | 25.9M, 25.4M, 24.7M | 47.7M, 46.4M, 46.1M | 1.8-1.9x     |
//! | `lookup_batch`, hot     | 65.5M, 66.2M, 65.4M | 85.7M, 87.7M, 87.1M | 1.3x         |
//! | `lookup`, uniform       | 7.94M, 7.85M, 8.34M | 7.82M, 10.3M, 7.87M | (same code)  |
//!
//! callgrind: 190 instructions per lookup in `lookup_batch` before, 162
//! after. Each change against the step before it (two or three runs in
//! turn, uniform): the prefetch with 32 lanes and the load before each
//! round kept, 1.2x (22.3M, 22.9M to 26.5M, 27.6M); 64 lanes, 1.1x (25.9M,
//! 27.3M to 28.7M, 29.9M); no load before the round, 1.0-1.3x uniform and
//! 1.25x zipf (36-38M to 46-48M); 32 lanes again with the rest kept, 0.85x
//! zipf. A single `lookup` is one chain of dependent reads and gains
//! nothing from a prefetch.
//!
//! Tried and dropped this round, each correct by the property tests and
//! measured against the code it would replace:
//! - nodes in breadth-first order (every node one level below the direct
//!   table, then two, ...: the upper levels packed together): `lookup`
//!   7.6M against 5.2M, the batch 23.1M against 22.0M. Depth-first
//!   placement keeps a lookup's nodes near each other.
//! - before the prefetch: path compression in the direct entry (a skip
//!   key of up to 27 bits, nodes per lookup 3.29 to 2.57, 54.6
//!   bytes/prefix): the batch 20.8M against 22.7M; sparse nodes (buckets
//!   with child pointers, 44.1 bytes/prefix): 25.0M against 28.8M; walks
//!   without branches (all lanes in step, a lane left idle on node 0):
//!   222 to 247 instructions a lookup, 13.7M to 26.8M against 22.7M to
//!   28.6M.
//!
//! # Build
//!
//! The prefixes are sorted by (address, length), duplicates dropped (the
//! last one in input order wins, as in the IPv4 table), then the trie is
//! built top-down in one pass over the sorted slice per level: in that order
//! the prefixes below one slot of a node are contiguous, so each child is
//! built from a sub-slice and no intermediate binary trie is needed. A
//! slot's leaf is the longest prefix of the node covering it, or the leaf
//! inherited from above (leaf pushing), so a lookup stops at the first leaf.

use crate::addr::Ipv6Prefix;
use bytemuck::Pod;
use core::fmt;
use core::marker::PhantomData;
use memmap2::{Advice, MmapMut, MmapOptions};
use std::collections::HashMap;

/// Bits resolved by the direct table.
const DIRECT_BITS: u32 = 20;
/// Bits per node.
const STRIDE: u32 = 6;
/// Entry flag (direct and wide tables): the low 30 bits index a node.
const NODE: u32 = 1 << 31;
/// Entry flag, with [`NODE`]: the low 30 bits index a wide node.
const WIDE: u32 = 1 << 30;
/// An entry's index bits.
const INDEX: u32 = WIDE - 1;
/// Bits per wide node: 4,096 entries, 16 KiB.
const WIDE_BITS: u32 = 12;
/// Prefixes below a subtree from which it is a wide node, not a 6-bit one:
/// at most 32 bytes of wide node per prefix below it.
const WIDE_MIN: usize = 512;
/// Lookups [`RouteTable6::lookup_batch`] runs in lock step: enough for a
/// round of steps to outlast the prefetches it issues (32: 0.85x).
const LANES: usize = 64;

/// Leaves a node holds itself; a node with more keeps them in `leaves`.
const INLINE: usize = 3;
/// `base1` flag: the node is a bucket (see [`Node::bucket`]).
const BUCKET: u32 = 1 << 31;
/// Prefixes a bucket holds.
const BUCKET_MAX: usize = 3;
/// Bits below its offset a bucket's prefixes may span (one `u32` key each).
const BUCKET_BITS: u32 = 32;

/// One 6-bit trie node (see module doc), 32 bytes: two per cache line.
/// A bucket (`base1` has [`BUCKET`]) reuses the fields: see [`Node::bucket`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(32))]
struct Node {
    vector: u64,
    leafvec: u64,
    base1: u32,
    /// With at most [`INLINE`] leaves (`leafvec` has at most 3 bits set):
    /// the leaves. With more: `leaf[0]` is `base0`, the index of the first
    /// in `leaves`.
    leaf: [u32; INLINE],
}

impl Node {
    /// The node as [`RouteTable6`]'s node array stores it.
    /// `vector`, `leafvec`, then `base1` and the three leaves as the
    /// halves of two words in memory order (leaf `k` is `u32` number
    /// `5 + k` of the node: one load, see [`halves`]).
    fn to_words(self) -> Words {
        let tail: [u32; 4] = [self.base1, self.leaf[0], self.leaf[1], self.leaf[2]];
        let tail: [u64; 2] = bytemuck::cast(tail);
        [self.vector, self.leafvec, tail[0], tail[1]]
    }

    /// [`Node::to_words`] back (inlined: only the fields used are loaded).
    #[inline(always)]
    fn from_words(w: &Words) -> Node {
        let h = halves(w);
        Node {
            vector: w[0],
            leafvec: w[1],
            base1: h[4],
            leaf: [h[5], h[6], h[7]],
        }
    }

    /// A bucket for the subtree at bit `off` holding `ps` (at most
    /// [`BUCKET_MAX`], each at most [`BUCKET_BITS`] longer than `off`),
    /// `def` the leaf from above. Entry `i`: key (the prefix's bits from
    /// `off`, left-aligned) in word `i` of `vector`/`leafvec`, length below
    /// `off` in byte `i` of `leafvec`'s high word, leaf in `leaf[i]`; longest
    /// first, unused entries of length 0 with leaf `def`.
    fn new_bucket(ps: &[Entry], off: u32, def: u32) -> Node {
        let mut e: Vec<(u32, u32, u32)> = ps
            .iter()
            .map(|&(addr, len, slot)| (window(addr, off), u32::from(len) - off, slot))
            .collect();
        e.sort_by_key(|&(_, l, _)| core::cmp::Reverse(l));
        e.resize(BUCKET_MAX, (0, 0, def));
        Node {
            vector: u64::from(e[0].0) | u64::from(e[1].0) << 32,
            leafvec: u64::from(e[2].0) | u64::from(e[0].1 | e[1].1 << 8 | e[2].1 << 16) << 32,
            base1: BUCKET | def,
            leaf: [e[0].2, e[1].2, e[2].2],
        }
    }

    /// The leaf in a bucket of the address whose bits from the bucket's
    /// offset are `rest` (left-aligned): that of its longest entry
    /// matching, else the leaf from above.
    #[inline(always)]
    fn bucket(&self, rest: u128) -> u32 {
        let x = (rest >> 96) as u32;
        let lens = (self.leafvec >> 32) as u32;
        let hit = |key: u32, i: u32| {
            let mask = !u32::MAX.checked_shr((lens >> (8 * i)) & 0xff).unwrap_or(0);
            (x ^ key) & mask == 0
        };
        if hit(self.vector as u32, 0) {
            self.leaf[0]
        } else if hit((self.vector >> 32) as u32, 1) {
            self.leaf[1]
        } else if hit(self.leafvec as u32, 2) {
            self.leaf[2]
        } else {
            self.base1 & !BUCKET
        }
    }
}

/// A node as the node array stores it ([`Node::to_words`]).
type Words = [u64; 4];

/// A stored node as eight `u32` in memory order: `base1` is number 4, the
/// leaves 5 to 7 (the cast to a smaller alignment cannot fail).
#[inline(always)]
fn halves(w: &Words) -> &[u32; 8] {
    bytemuck::cast_ref(w)
}

/// One level of a lookup: at the node stored as `w` ([`Node::to_words`]),
/// for the address bits `rest` from the node's offset (left-aligned), the
/// child to go down to, or the leaf slot where the lookup ends. One piece
/// for [`Reader::lookup_slot`] and [`Reader::lookup_batch`]: the vector
/// and the child base on the way down, the whole node where it ends.
#[inline(always)]
fn step(w: &Words, rest: u128, leaves: &[u32]) -> Result<u32, u32> {
    let (vector, base1) = (w[0], halves(w)[4]);
    if base1 & BUCKET != 0 {
        return Err(Node::from_words(w).bucket(rest));
    }
    let v = chunk(rest);
    if vector & (1 << v) == 0 {
        return Err(leaf_in(w, v, leaves));
    }
    Ok(base1 + count_upto(vector, v) - 1)
}

/// The bits `0..=v` of `x` that are set, counted (`v < 64`): `x` shifted
/// left by 63 - v (which is !v mod 64), bit `v` at the top.
#[inline(always)]
fn count_upto(x: u64, v: u32) -> u32 {
    (x << (!v & 63)).count_ones()
}

/// The leaf of slot `v` (not a child slot) of the node stored as `w`
/// ([`Node::to_words`]). Read from the words, not from a [`Node`]: its
/// leaves indexed by a variable would be built on the stack, a frame for
/// every lookup.
#[inline(always)]
fn leaf_in(w: &Words, v: u32, leaves: &[u32]) -> u32 {
    let leafvec = w[1];
    let k = count_upto(leafvec, v) as usize - 1;
    let h = halves(w);
    if leafvec.count_ones() as usize <= INLINE {
        // Leaf k (at most 2) is number 5 + k.
        h[(5 + k) & 7]
    } else {
        leaves[h[5] as usize + k]
    }
}

/// The top 6 bits of `rest`, an address shifted left to a node's offset
/// (bits past 128 read 0): the node's slot.
#[inline(always)]
fn chunk(rest: u128) -> u32 {
    (rest >> (128 - STRIDE)) as u32
}

/// The top 12 bits of `rest` (as [`chunk`]): a wide node's entry.
#[inline(always)]
fn wide_chunk(rest: u128) -> usize {
    (rest >> (128 - WIDE_BITS)) as usize
}

/// The 32 bits of `ip` from bit `off`; bits past 128 read 0.
#[inline(always)]
fn window(ip: u128, off: u32) -> u32 {
    ((ip << off) >> 96) as u32
}

/// A prefix as the build sorts it: address, length, leaf slot.
type Entry = (u128, u8, u32);

/// The children of a node (6-bit or wide) that ends at bit `end`, from its
/// prefixes `ps` (sorted): each run of prefixes longer than `end` whose
/// addresses fall in one slot (`slot_of`), with that slot. A prefix ending
/// in the node sorts before the longer ones at its address, so a run holds
/// only longer prefixes.
fn child_runs<'p>(
    ps: &'p [Entry],
    end: u32,
    slot_of: impl Fn(u128) -> usize + 'p,
) -> impl Iterator<Item = (usize, &'p [Entry])> + 'p {
    let mut i = 0;
    core::iter::from_fn(move || {
        while i < ps.len() && u32::from(ps[i].1) <= end {
            i += 1;
        }
        let c = slot_of(ps.get(i)?.0);
        let mut j = i + 1;
        while j < ps.len() && slot_of(ps[j].0) == c {
            j += 1;
        }
        let run = &ps[i..j];
        i = j;
        Some((c, run))
    })
}

/// Starts loading the cache line holding `x` into the caches, without
/// waiting for it: a hint, which never faults and changes no result.
/// `safe_arch`'s safe wrapper of `PREFETCHT0` (the intrinsic itself
/// needs `unsafe`); a no-op where the target has no SSE.
#[inline(always)]
fn prefetch<T>(x: &T) {
    // SSE is an x86 feature (x86_64 always has it).
    #[cfg(target_feature = "sse")]
    safe_arch::prefetch_t0(x);
    #[cfg(not(target_feature = "sse"))]
    let _ = x;
}

/// Size of a transparent huge page (x86_64, aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// An array in an anonymous mapping of its own that starts on a huge page
/// and is advised `MADV_HUGEPAGE`: with 4 KiB pages nearly every deep node
/// of a lookup is a TLB miss (the node array spans thousands of pages),
/// with 2 MiB pages a few dozen TLB entries cover the whole table. Where
/// the kernel gives no huge pages (THP off) small pages serve, slower.
struct HugeSlice<T> {
    map: MmapMut,
    /// Offset of element 0 in `map` (its first huge-page boundary).
    start: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> HugeSlice<T> {
    fn new(data: &[T]) -> HugeSlice<T> {
        let bytes = core::mem::size_of_val(data);
        // Whole huge pages (a partial one gets small pages), and one more to
        // start on a boundary wherever the map lands.
        let mut map = MmapOptions::new()
            .len(bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE)
            .map_anon()
            .expect("route table: cannot map memory");
        // A hint: without it (THP disabled, other kernels) small pages serve.
        let _ = map.advise(Advice::HugePage);
        let start = (map.as_ptr() as usize).wrapping_neg() % HUGE_PAGE;
        map[start..start + bytes].copy_from_slice(bytemuck::cast_slice(data));
        HugeSlice {
            map,
            start,
            len: data.len(),
            _t: PhantomData,
        }
    }

    /// The elements, then zeros to the end of the mapping. The whole
    /// mapping is cast (page-aligned and whole pages long, so the cast
    /// cannot fail) and cut once at the front: cheaper per lookup than
    /// cutting the exact range, and the lookups never read past it.
    #[inline(always)]
    fn get(&self) -> &[T] {
        &bytemuck::cast_slice::<u8, T>(&self.map)[self.start / core::mem::size_of::<T>()..]
    }
}

/// IPv6 route table mapping prefixes to next-hop ids, a Poptrie (see
/// module doc).
pub struct RouteTable6 {
    direct: HugeSlice<u32>,
    /// [`Node::to_words`].
    nodes: HugeSlice<Words>,
    leaves: HugeSlice<u32>,
    /// The wide nodes' entries.
    wide: HugeSlice<u32>,
    /// Distinct prefixes.
    len: usize,
}

/// The nodes and out-of-node leaves while [`RouteTable6::build`] runs.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    leaves: Vec<u32>,
    /// The wide nodes' entries, [`WIDE_BITS`] of them each.
    wide: Vec<u32>,
}

impl Builder {
    /// The entry (as the direct table holds them) for the subtree at bit
    /// `off` holding `ps` (sorted, all longer than `off` and inside the
    /// subtree), `def` the leaf from above: a wide node where the subtree
    /// holds at least [`WIDE_MIN`] prefixes, else a 6-bit node.
    fn build_entry(&mut self, ps: &[Entry], off: u32, def: u32) -> u32 {
        if ps.len() >= WIDE_MIN && off + WIDE_BITS <= 128 {
            return self.build_wide(ps, off, def);
        }
        let idx = self.nodes.len();
        assert!(idx < WIDE as usize, "route table too large");
        self.nodes.push(Node::default());
        self.build_node(idx, ps, off, def);
        let n = self.nodes[idx];
        // One leaf for all 64 slots (prefixes that fill the node with one
        // next hop, as /48s of one operator via one gateway often do): the
        // entry is that leaf, the node goes (it has no children).
        if n.base1 & BUCKET == 0 && n.vector == 0 && n.leafvec.count_ones() == 1 {
            self.nodes.truncate(idx);
            return n.leaf[0];
        }
        NODE | idx as u32
    }

    /// [`Builder::build_entry`]'s wide node: one entry per value of the
    /// 12 bits from `off`, a leaf slot or the entry of the subtree below.
    fn build_wide(&mut self, ps: &[Entry], off: u32, def: u32) -> u32 {
        let w = self.wide.len() >> WIDE_BITS;
        assert!(w < WIDE as usize, "route table too large");
        let end = off + WIDE_BITS;
        let mut vals = vec![def; 1 << WIDE_BITS];
        // In (address, length) order a prefix comes after every prefix that
        // holds it, so a longer one overwrites the shorter it is inside.
        for &(addr, len, slot) in ps.iter().filter(|e| u32::from(e.1) <= end) {
            let span = 1usize << (end - u32::from(len));
            let start = wide_chunk(addr << off) & !(span - 1);
            vals[start..start + span].fill(slot);
        }
        self.wide.resize(self.wide.len() + vals.len(), 0);
        for (c, run) in child_runs(ps, end, |a| wide_chunk(a << off)) {
            vals[c] = self.build_entry(run, end, vals[c]);
        }
        self.wide[w << WIDE_BITS..(w + 1) << WIDE_BITS].copy_from_slice(&vals);
        NODE | WIDE | w as u32
    }

    /// Fills node `idx` for bits `off..off + 6` from `ps` (sorted, all longer
    /// than `off` and inside this node's span), `def` the leaf from above.
    fn build_node(&mut self, idx: usize, ps: &[Entry], off: u32, def: u32) {
        if ps.len() <= BUCKET_MAX && ps.iter().all(|e| u32::from(e.1) - off <= BUCKET_BITS) {
            self.nodes[idx] = Node::new_bucket(ps, off, def);
            return;
        }
        let end = off + STRIDE;
        let mut vals = [def; 64];
        let mut lens = [0u8; 64];
        let mut vector = 0u64;
        for &(addr, len, slot) in ps {
            let c = chunk(addr << off);
            let len32 = u32::from(len);
            if len32 <= end {
                let span = 1u32 << (end - len32);
                let start = c & !(span - 1);
                for s in start..start + span {
                    if len >= lens[s as usize] {
                        vals[s as usize] = slot;
                        lens[s as usize] = len;
                    }
                }
            } else {
                vector |= 1 << c;
            }
        }
        // Leaves: one per run of equal values over the leaf slots.
        let mut runs = [0u32; 64];
        let mut nruns = 0;
        let mut leafvec = 0u64;
        let mut prev: Option<u32> = None;
        for (s, &v) in vals.iter().enumerate() {
            if vector & (1 << s) != 0 {
                continue;
            }
            if prev != Some(v) {
                leafvec |= 1 << s;
                runs[nruns] = v;
                nruns += 1;
                prev = Some(v);
            }
        }
        let mut leaf = [0u32; INLINE];
        if nruns <= INLINE {
            leaf[..nruns].copy_from_slice(&runs[..nruns]);
        } else {
            leaf[0] = self.leaves.len() as u32;
            self.leaves.extend_from_slice(&runs[..nruns]);
        }
        let base1 = self.nodes.len();
        let children = vector.count_ones() as usize;
        assert!(
            base1 + children < WIDE as usize && self.leaves.len() <= u32::MAX as usize,
            "route table too large"
        );
        self.nodes.resize(base1 + children, Node::default());
        self.nodes[idx] = Node {
            vector,
            leafvec,
            base1: base1 as u32,
            leaf,
        };
        // Children in slot order, each from its contiguous run of prefixes.
        let mut k = 0;
        for (c, run) in child_runs(ps, end, |a| chunk(a << off) as usize) {
            self.build_node(base1 + k, run, end, vals[c]);
            k += 1;
        }
        debug_assert_eq!(k, children);
    }
}

impl RouteTable6 {
    /// Largest next-hop id the table can store.
    pub const MAX_NEXT_HOP: u32 = WIDE - 2;

    /// Build from `(prefix, next_hop_id)`; a later duplicate prefix wins.
    ///
    /// # Panics
    ///
    /// If a next-hop id is above [`RouteTable6::MAX_NEXT_HOP`].
    pub fn build(routes: &[(Ipv6Prefix, u32)]) -> RouteTable6 {
        let mut sorted: Vec<Entry> = routes
            .iter()
            .map(|&(p, nh)| {
                assert!(
                    nh <= Self::MAX_NEXT_HOP,
                    "next-hop id {nh} above RouteTable6::MAX_NEXT_HOP"
                );
                (p.addr(), p.len(), nh + 1)
            })
            .collect();
        // Stable: duplicates keep input order, so the last one comes last.
        sorted.sort_by_key(|&(a, l, _)| (a, l));
        let mut w = 0;
        for r in 0..sorted.len() {
            let last_of_key = sorted
                .get(r + 1)
                .is_none_or(|n| (n.0, n.1) != (sorted[r].0, sorted[r].1));
            if last_of_key {
                sorted[w] = sorted[r];
                w += 1;
            }
        }
        sorted.truncate(w);

        let mut direct = vec![0u32; 1 << DIRECT_BITS].into_boxed_slice();
        let mut t = Builder::default();
        // Short prefixes fill the direct table, shorter first so longer win.
        let mut short: Vec<Entry> = sorted
            .iter()
            .copied()
            .filter(|e| u32::from(e.1) <= DIRECT_BITS)
            .collect();
        short.sort_by_key(|e| e.1);
        for (addr, len, slot) in short {
            let first = (addr >> (128 - DIRECT_BITS)) as usize;
            let n = 1usize << (DIRECT_BITS - u32::from(len));
            direct[first..first + n].fill(slot);
        }
        // Longer prefixes: one node per direct slot they fall in, built from
        // the contiguous run of them in address order.
        let mut i = 0;
        while i < sorted.len() {
            if u32::from(sorted[i].1) <= DIRECT_BITS {
                i += 1;
                continue;
            }
            let d = (sorted[i].0 >> (128 - DIRECT_BITS)) as usize;
            let mut j = i;
            while j < sorted.len() && (sorted[j].0 >> (128 - DIRECT_BITS)) as usize == d {
                j += 1;
            }
            // The run may hold short prefixes only at its start (they sort
            // first at their address); skip them, they are in `direct`.
            let run: Vec<Entry> = sorted[i..j]
                .iter()
                .copied()
                .filter(|e| u32::from(e.1) > DIRECT_BITS)
                .collect();
            direct[d] = t.build_entry(&run, DIRECT_BITS, direct[d]);
            i = j;
        }
        let words: Vec<Words> = t.nodes.iter().map(|n| n.to_words()).collect();
        RouteTable6 {
            direct: HugeSlice::new(&direct),
            nodes: HugeSlice::new(&words),
            leaves: HugeSlice::new(&t.leaves),
            wide: HugeSlice::new(&t.wide),
            len: sorted.len(),
        }
    }

    /// Next-hop id of the longest matching prefix; `ip` in host byte order.
    #[inline]
    pub fn lookup(&self, ip: u128) -> Option<u32> {
        self.lookup_slot(ip).checked_sub(1)
    }

    /// [`RouteTable6::lookup`] as a table slot: 0 for no route, next-hop id
    /// plus one otherwise.
    #[inline]
    pub fn lookup_slot(&self, ip: u128) -> u32 {
        self.reader().lookup_slot(ip)
    }

    /// [`Reader::lookup_batch`].
    pub fn lookup_batch(&self, ips: &[u128], out: &mut [u32]) {
        self.reader().lookup_batch(ips, out)
    }

    /// The table's arrays as slices, for many lookups: a burst takes one
    /// and looks up each packet with it. Making the slices checks each
    /// mapping's alignment and length (some 40 instructions), once a
    /// reader instead of once a lookup.
    #[inline]
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            direct: self.direct.get()[..1 << DIRECT_BITS]
                .try_into()
                .expect("the direct table has 2^DIRECT_BITS entries"),
            nodes: self.nodes.get(),
            leaves: self.leaves.get(),
            wide: self.wide.get(),
        }
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated for the lookup structure: the 1 MiB direct table,
    /// the nodes' mapping (32 bytes per node and a huge page to align them;
    /// its pages are resident only where touched) and 4 per leaf stored out
    /// of its node.
    pub fn memory_bytes(&self) -> usize {
        self.direct.map.len() + self.nodes.map.len() + self.leaves.map.len() + self.wide.map.len()
    }

    /// Number of wide nodes (for the figures).
    pub fn wide_nodes(&self) -> usize {
        self.wide.len >> WIDE_BITS
    }

    /// Number of trie nodes (for the figures).
    pub fn nodes(&self) -> usize {
        self.nodes.len
    }

    /// Number of leaves stored out of their node (for the figures).
    pub fn leaves(&self) -> usize {
        self.leaves.len
    }
}

/// Lookups in a [`RouteTable6`]: its arrays as slices
/// ([`RouteTable6::reader`]).
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    /// A fixed-size array: its index (the top bits of the address) needs no
    /// bounds check.
    direct: &'a [u32; 1 << DIRECT_BITS],
    /// [`Node::to_words`].
    nodes: &'a [Words],
    leaves: &'a [u32],
    wide: &'a [u32],
}

impl Reader<'_> {
    /// Down the wide nodes from entry `e` (of the direct table or a wide
    /// node) for the address bits `rest` from its offset: the first entry
    /// that is not a wide node, and the bits from its offset.
    #[inline(always)]
    fn wide_down(&self, mut e: u32, mut rest: u128) -> (u32, u128) {
        while e & WIDE != 0 {
            e = self.wide[((e & INDEX) as usize) << WIDE_BITS | wide_chunk(rest)];
            rest <<= WIDE_BITS;
        }
        (e, rest)
    }

    /// [`RouteTable6::lookup_slot`].
    #[inline(always)]
    pub fn lookup_slot(&self, ip: u128) -> u32 {
        let d = self.direct[(ip >> (128 - DIRECT_BITS)) as usize];
        // The address from the node's offset on, left-aligned: each level
        // shifts it by a constant instead of by a variable offset.
        let (e, mut rest) = self.wide_down(d, ip << DIRECT_BITS);
        if e & NODE == 0 {
            return e;
        }
        let mut n = (e & INDEX) as usize;
        loop {
            match step(&self.nodes[n], rest, self.leaves) {
                Ok(child) => n = child as usize,
                Err(slot) => return slot,
            }
            rest <<= STRIDE;
        }
    }

    /// [`RouteTable6::lookup_slot`] for every address of `ips` into the same
    /// place of `out`, 64 at a time in lock step (one level of all of them,
    /// then the next) so that their cache misses overlap: each lane's next
    /// node is prefetched when the lane steps to it, and read a round of
    /// the other lanes later, when it has (mostly) arrived.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than `ips`.
    pub fn lookup_batch(&self, ips: &[u128], out: &mut [u32]) {
        assert!(out.len() >= ips.len(), "lookup_batch: out shorter than ips");
        let (direct_table, nodes) = (self.direct, self.nodes);
        for (ic, oc) in ips.chunks(LANES).zip(out.chunks_mut(LANES)) {
            // The direct entries: loads with no branch between them, so
            // their misses go out together.
            let mut entry = [0u32; LANES];
            for (d, &ip) in entry.iter_mut().zip(ic) {
                *d = direct_table[(ip >> (128 - DIRECT_BITS)) as usize];
            }
            // Each lane's address from its node's offset on, left-aligned
            // (shifted by the stride a level, as in `lookup_slot`).
            let mut rest = [0u128; LANES];
            for (r, &ip) in rest.iter_mut().zip(ic) {
                *r = ip << DIRECT_BITS;
            }
            // The wide nodes, a level of every lane at a time.
            let mut wide = entry.iter().fold(0, |a, &e| a | e) & WIDE != 0;
            while wide {
                wide = false;
                for (e, r) in entry.iter_mut().zip(rest.iter_mut()) {
                    if *e & WIDE != 0 {
                        *e = self.wide[((*e & INDEX) as usize) << WIDE_BITS | wide_chunk(*r)];
                        *r <<= WIDE_BITS;
                        wide |= *e & WIDE != 0;
                    }
                }
            }
            let mut node = [0u32; LANES];
            let mut pending = 0u64;
            for (l, (&d, o)) in entry.iter().zip(oc.iter_mut()).enumerate() {
                if d & NODE == 0 {
                    *o = d;
                } else {
                    node[l] = d & INDEX;
                    prefetch(&nodes[(d & INDEX) as usize]);
                    pending |= 1 << l;
                }
            }
            // A round: one step of every pending lane. A prefetch has no
            // load to wait for, so the misses of a round's lanes are all in
            // flight while it runs, without a branch of one lane holding
            // up the others (a load used as one would stall the core once
            // its reorder window fills).
            while pending != 0 {
                let mut p = pending;
                while p != 0 {
                    let l = p.trailing_zeros() as usize;
                    p &= p - 1;
                    match step(&nodes[node[l] as usize], rest[l], self.leaves) {
                        Ok(child) => {
                            prefetch(&nodes[child as usize]);
                            node[l] = child;
                            rest[l] <<= STRIDE;
                        }
                        Err(slot) => {
                            oc[l] = slot;
                            pending &= !(1 << l);
                        }
                    }
                }
            }
        }
    }
}

impl Default for RouteTable6 {
    /// The empty table (no route for any address).
    fn default() -> Self {
        RouteTable6::build(&[])
    }
}

impl fmt::Debug for RouteTable6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable6")
            .field("len", &self.len)
            .field("nodes", &self.nodes.len)
            .field("leaves", &self.leaves.len)
            .field("wide_nodes", &self.wide_nodes())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// The baseline the Poptrie was measured against: one hash map per distinct
/// prefix length, probed from the longest length down. Correct and compact
/// but a probe per length; kept for the bench comparison and as a second
/// reference in the property tests.
#[derive(Debug, Default)]
pub struct HashRouteTable6 {
    /// (length, mask, prefixes of that length), longest first.
    by_len: Vec<(u8, u128, HashMap<u128, u32, ahash::RandomState>)>,
}

impl HashRouteTable6 {
    /// Build from `(prefix, next_hop_id)`; a later duplicate prefix wins.
    pub fn build(routes: &[(Ipv6Prefix, u32)]) -> HashRouteTable6 {
        let mut maps: Vec<Option<HashMap<u128, u32, ahash::RandomState>>> =
            (0..=128).map(|_| None).collect();
        for &(p, nh) in routes {
            maps[usize::from(p.len())]
                .get_or_insert_with(HashMap::default)
                .insert(p.addr(), nh);
        }
        let by_len = maps
            .into_iter()
            .enumerate()
            .rev()
            .filter_map(|(len, m)| {
                let len = len as u8;
                m.map(|m| {
                    (
                        len,
                        Ipv6Prefix::new(u128::MAX, len).expect("len <= 128").mask(),
                        m,
                    )
                })
            })
            .collect();
        HashRouteTable6 { by_len }
    }

    /// Next-hop id of the longest matching prefix.
    #[inline]
    pub fn lookup(&self, ip: u128) -> Option<u32> {
        self.by_len
            .iter()
            .find_map(|(_, mask, m)| m.get(&(ip & mask)).copied())
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.by_len.iter().map(|(_, _, m)| m.len()).sum()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the hash maps hold (buckets of key, value and control byte;
    /// hashbrown's layout, an estimate from its capacity).
    pub fn memory_bytes(&self) -> usize {
        self.by_len
            .iter()
            .map(|(_, _, m)| m.capacity() * (core::mem::size_of::<(u128, u32)>() + 1))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn empty_table_has_no_route() {
        let t = RouteTable6::build(&[]);
        assert!(t.is_empty());
        for a in [0, 1, ip("2001:db8::1"), u128::MAX] {
            assert_eq!(t.lookup(a), None);
        }
        // The direct table's 4 MiB in two huge pages, and one page for the
        // alignment of each of the four arrays.
        assert_eq!(t.memory_bytes(), 6 * HUGE_PAGE);
        assert_eq!(t.nodes(), 0);
    }

    #[test]
    fn default_route_matches_everything() {
        let t = RouteTable6::build(&[(Ipv6Prefix::DEFAULT, 7)]);
        for a in [0, 1, ip("2001:db8::1"), u128::MAX] {
            assert_eq!(t.lookup(a), Some(7));
        }
    }

    #[test]
    fn single_prefix_of_each_length_covers_exactly_its_range() {
        let base = ip("2001:db8:aaaa:5555:f0f0:0f0f:1234:5678");
        for len in 0..=128u8 {
            let pre = Ipv6Prefix::new(base, len).unwrap();
            let t = RouteTable6::build(&[(pre, 3)]);
            let (first, last) = (pre.addr(), pre.last());
            assert_eq!(t.lookup(first), Some(3), "/{len} first");
            assert_eq!(t.lookup(last), Some(3), "/{len} last");
            assert_eq!(t.lookup(base), Some(3), "/{len} base");
            if let Some(below) = first.checked_sub(1) {
                assert_eq!(t.lookup(below), None, "/{len} below");
            }
            if let Some(above) = last.checked_add(1) {
                assert_eq!(t.lookup(above), None, "/{len} above");
            }
        }
    }

    #[test]
    fn nested_prefixes_of_all_lengths() {
        let base = ip("2001:db8:aaaa:5555:f0f0:0f0f:1234:5678");
        let routes: Vec<_> = (0..=128u8)
            .map(|len| (Ipv6Prefix::new(base, len).unwrap(), u32::from(len)))
            .collect();
        let t = RouteTable6::build(&routes);
        assert_eq!(t.len(), 129);
        assert!(t.leaves() > 0, "nodes with more than 3 leaf runs: {t:?}");
        assert_eq!(t.lookup(base), Some(128));
        for k in 0..128u32 {
            // Differs from `base` first in bit k: matches /0 ..= /k only.
            assert_eq!(t.lookup(base ^ (1 << (127 - k))), Some(k), "bit {k}");
        }
        let mut out = [0u32; 128];
        let probes: Vec<u128> = (0..128u32).map(|k| base ^ (1 << (127 - k))).collect();
        t.lookup_batch(&probes, &mut out);
        for k in 0..128u32 {
            assert_eq!(out[k as usize], k + 1, "batch bit {k}");
        }
    }

    #[test]
    fn more_specific_wins_and_duplicates_last_wins() {
        let routes = [
            (p("::/0"), 0),
            (p("2001:db8::/32"), 1),
            (p("2001:db8:1::/48"), 2),
            (p("2001:db8:1:2::/64"), 3),
            (p("2001:db8:1:2::1/128"), 4),
            (p("2001:db8::/32"), 5),
        ];
        let t = RouteTable6::build(&routes);
        assert_eq!(t.len(), 5);
        let checks = [
            ("2001:db9::", 0),
            ("2001:db8::1", 5),
            ("2001:db8:1::", 2),
            ("2001:db8:1:3::", 2),
            ("2001:db8:1:2::", 3),
            ("2001:db8:1:2::1", 4),
            ("2001:db8:1:2::2", 3),
            ("2001:db8:2::", 5),
        ];
        for (a, nh) in checks {
            assert_eq!(t.lookup(ip(a)), Some(nh), "{a}");
        }
        let h = HashRouteTable6::build(&routes);
        assert_eq!(h.len(), 5);
        for (a, nh) in checks {
            assert_eq!(h.lookup(ip(a)), Some(nh), "hash {a}");
        }
    }

    #[test]
    fn leaf_runs_are_stored_once() {
        // Four nested prefixes from a /32 down: nodes at offsets 20 and 26
        // (where the /32 ends), then a bucket at 32 for the three longer
        // ones; each node's leaves are runs (no route, the /32's), not 64.
        let routes = [
            (p("2001:db8::/32"), 1),
            (p("2001:db8:ab::/48"), 2),
            (p("2001:db8:ab:cd00::/56"), 3),
            (p("2001:db8:ab:cd00::/64"), 4),
        ];
        let t = RouteTable6::build(&routes);
        assert_eq!(t.nodes(), 3, "{t:?}");
        assert_eq!(
            t.leaves(),
            0,
            "runs of at most 3 leaves stay in their node: {t:?}"
        );
        assert_eq!(t.lookup(ip("2001:db8:ab::9")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:ab:cd00::9")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:ab:cd01::9")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:ac::")), Some(1));
        assert_eq!(t.lookup(ip("2001:db9::")), None);
    }

    #[test]
    fn buckets_hold_three_prefixes_within_32_bits_of_their_node() {
        // Alone in its /20, a /52 ends 32 bits below the first node: one
        // bucket. A /53 (33 bits) takes a node at /20 and a bucket at /26.
        for (len, nodes) in [(52u8, 1), (53, 2)] {
            let pre = Ipv6Prefix::new(ip("2001:db8:aaaa:5555::"), len).unwrap();
            let t = RouteTable6::build(&[(pre, 9)]);
            assert_eq!(t.nodes(), nodes, "/{len}: {t:?}");
            assert_eq!(t.lookup(pre.addr()), Some(9), "/{len}");
            assert_eq!(t.lookup(pre.last()), Some(9), "/{len}");
            assert_eq!(t.lookup(pre.addr() - 1), None, "/{len}");
            assert_eq!(t.lookup(pre.last() + 1), None, "/{len}");
        }
        // Three /128s under a /48 share one bucket below the nodes that
        // lead to them; a fourth needs a node of its own above the bucket.
        let mut routes = vec![(p("2001:db8:1::/48"), 1)];
        let hosts = [
            "2001:db8:1::1",
            "2001:db8:1::2",
            "2001:db8:1::3",
            "2001:db8:1::4",
        ];
        let mut nodes = Vec::new();
        for (k, h) in hosts.iter().enumerate() {
            routes.push((format!("{h}/128").parse().unwrap(), 10 + k as u32));
            let t = RouteTable6::build(&routes);
            for (j, h) in hosts.iter().enumerate() {
                let want = if j <= k { 10 + j as u32 } else { 1 };
                assert_eq!(t.lookup(ip(h)), Some(want), "{h} with {} hosts", k + 1);
                let mut out = [0u32; 1];
                t.lookup_batch(&[ip(h)], &mut out);
                assert_eq!(out[0], want + 1, "batch {h} with {} hosts", k + 1);
            }
            assert_eq!(t.lookup(ip("2001:db8:1::5")), Some(1));
            nodes.push(t.nodes());
        }
        assert!(nodes[0] == nodes[1] && nodes[1] == nodes[2], "{nodes:?}");
        assert!(nodes[3] > nodes[2], "{nodes:?}");
    }

    #[test]
    fn dense_subtrees_are_wide_nodes() {
        // 1,000 /48s in a /32 (a large operator's customers): the /20 and
        // the /32 above them hold more than WIDE_MIN, so each is a wide
        // node of 12 bits (20..32, 32..44) and one 6-bit level is left.
        let base = ip("2001:db8:100::");
        let mut routes: Vec<_> = (0..1000u128)
            .map(|i| (Ipv6Prefix::new(base + (i << 80), 48).unwrap(), i as u32))
            .collect();
        routes.push((p("2001:db8::/32"), 5000));
        routes.push((p("2001:db8:100:7::/64"), 5001));
        let t = RouteTable6::build(&routes);
        assert_eq!(t.wide_nodes(), 2, "{t:?}");
        // Each /44 below the wide node at 32 holds up to 16 /48s of
        // distinct next hops: a 6-bit node each (63), and the /64 a bucket
        // below its /48.
        assert_eq!(t.nodes(), 63 + 1, "{t:?}");
        let h = HashRouteTable6::build(&routes);
        let mut probes = vec![ip("2001:db8::1"), ip("2001:db9::"), ip("2001:db7:ffff::")];
        for &(pre, _) in &routes {
            probes.extend([
                pre.addr(),
                pre.last(),
                pre.addr().wrapping_sub(1),
                pre.last() + 1,
            ]);
        }
        let mut out = vec![0u32; probes.len()];
        t.lookup_batch(&probes, &mut out);
        for (&a, &o) in probes.iter().zip(&out) {
            assert_eq!(t.lookup(a), h.lookup(a), "{a:#x}");
            assert_eq!(o.checked_sub(1), h.lookup(a), "batch {a:#x}");
        }
        assert_eq!(t.lookup(ip("2001:db8:100:7::1")), Some(5001));
        assert_eq!(t.lookup(ip("2001:db8:100:8::1")), Some(0));
        assert_eq!(t.lookup(ip("2001:db8:4e8::1")), Some(5000));
    }

    #[test]
    fn a_node_of_one_next_hop_is_a_leaf() {
        // 1,024 /48s via one next hop fill each /44 below the wide node at
        // 32: its entries are leaves, no 6-bit node is left. Another next
        // hop for one /48 brings back the node of its /44 only.
        let base = ip("2001:db8:400::");
        let mut routes: Vec<_> = (0..1024u128)
            .map(|i| (Ipv6Prefix::new(base + (i << 80), 48).unwrap(), 7))
            .collect();
        let t = RouteTable6::build(&routes);
        assert_eq!((t.wide_nodes(), t.nodes()), (2, 0), "{t:?}");
        routes[100].1 = 8;
        let t = RouteTable6::build(&routes);
        assert_eq!((t.wide_nodes(), t.nodes()), (2, 1), "{t:?}");
        for (k, (pre, nh)) in routes.iter().enumerate() {
            assert_eq!(t.lookup(pre.addr()), Some(*nh), "/48 {k}");
            assert_eq!(t.lookup(pre.last()), Some(*nh), "/48 {k}");
        }
        assert_eq!(t.lookup(base - 1), None);
        assert_eq!(t.lookup(routes[1023].0.last() + 1), None);
    }

    #[test]
    fn max_next_hop_is_stored() {
        let t = RouteTable6::build(&[(p("2001:db8::/32"), RouteTable6::MAX_NEXT_HOP)]);
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(RouteTable6::MAX_NEXT_HOP));
    }

    #[test]
    #[should_panic(expected = "MAX_NEXT_HOP")]
    fn next_hop_above_max_panics() {
        RouteTable6::build(&[(p("2001:db8::/32"), RouteTable6::MAX_NEXT_HOP + 1)]);
    }
}
