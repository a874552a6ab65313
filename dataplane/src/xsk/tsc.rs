//! The CPU's time-stamp counter, read for the workers' runtime accounting
//! ([`crate::worker::runtime`]).
//!
//! One instruction (`rdtsc`), so no crate: `quanta` would add a clock
//! source chosen at run time behind every read for the same instruction.
//! On other architectures the counter is nanoseconds of a monotonic clock
//! (one `Instant` read: the vDSO, no syscall).

/// The time-stamp counter now: cycles at the TSC's constant rate
/// (`constant_tsc`), or nanoseconds where there is no TSC.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` reads a register and touches no memory; every
        // x86_64 CPU has it (CPUID's TSC bit is part of the x86_64 baseline).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Whether [`now`] counts nanoseconds rather than TSC cycles.
pub const IS_NANOS: bool = !cfg!(target_arch = "x86_64");
