//! Arbitrary bytes through the IPv6 wire views (IPv6 header and extension
//! header walk, ICMPv6, NDP): panics on any crash and on any broken
//! invariant that `wire6::fuzz_one` asserts. The proptests in
//! `tests/wire_ipv6.rs` run the same checks on stable in CI. Seeds:
//! `corpus/wire_ipv6/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/wire6/mod.rs"]
mod wire6;

fuzz_target!(|data: &[u8]| {
    wire6::fuzz_one(data);
});
