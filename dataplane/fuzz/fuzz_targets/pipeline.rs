//! Arbitrary bytes as a frame on each port (wan, lan, a port with no
//! interface, the host path) through a fresh pipeline over the test
//! router's tables. Panics on any crash and on any broken invariant that
//! `support::check_frame` asserts (one outcome counter per frame, sent
//! frames well formed with correct checksums). Seeds: `corpus/pipeline/`.
#![no_main]

use std::sync::{Arc, OnceLock};

use dataplane::tables::Tables;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mod.rs"]
mod support;

static TABLES: OnceLock<Arc<Tables>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let tables = TABLES.get_or_init(support::tables);
    support::fuzz_one(tables, data);
});
