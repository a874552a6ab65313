//! The single-producer/single-consumer rings shared with the kernel (fill,
//! completion, RX, TX), batched like libxdp's `xsk.h`.
//!
//! Each ring is a `u32` producer index, a `u32` consumer index, a `u32` flags
//! word and a power-of-two array of descriptors. Indexes run freely and wrap;
//! a slot is `index & mask`. We read the peer's index with `Acquire` (so its
//! descriptor writes are visible) and publish ours with `Release` (so our
//! descriptor writes, or our reads of its descriptors, happen before). A
//! producer caches the consumer index and a consumer the producer index, and
//! only reload them when the cache says the ring looks full or empty.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::bpf::errno;

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing ties it
// to the thread that created it.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Anonymous private read-write memory of `len` bytes (page-aligned,
    /// zeroed).
    pub(crate) fn anonymous(len: usize) -> Result<Mmap, i32> {
        // SAFETY: a fresh anonymous mapping touches no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Self::checked(ptr, len)
    }

    /// A shared mapping of `len` bytes of `fd` at `offset` (a ring's page
    /// offset, e.g. `XDP_PGOFF_RX_RING`).
    pub(crate) fn shared(fd: libc::c_int, len: usize, offset: u64) -> Result<Mmap, i32> {
        // The page offsets (e.g. 0x1_8000_0000 for the completion ring) do
        // not fit a 32-bit off_t: refuse rather than map the wrong ring.
        let offset = libc::off_t::try_from(offset).map_err(|_| libc::EOVERFLOW)?;
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks `len` against the ring size and fails otherwise.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        Self::checked(ptr, len)
    }

    fn checked(ptr: *mut libc::c_void, len: usize) -> Result<Mmap, i32> {
        if ptr == libc::MAP_FAILED {
            return Err(errno());
        }
        NonNull::new(ptr.cast::<u8>())
            .map(|ptr| Mmap { ptr, len })
            .ok_or(libc::ENOMEM)
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we created and still own;
        // every reference into it borrows from an owner of this value.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Byte offsets of a ring's parts inside its mapping (`xdp_ring_offset`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RingOffsets {
    /// Producer index.
    pub producer: u64,
    /// Consumer index.
    pub consumer: u64,
    /// Descriptor array.
    pub desc: u64,
    /// Flags word (`XDP_RING_NEED_WAKEUP`).
    pub flags: u64,
}

impl From<libc::xdp_ring_offset> for RingOffsets {
    fn from(o: libc::xdp_ring_offset) -> Self {
        RingOffsets {
            producer: o.producer,
            consumer: o.consumer,
            desc: o.desc,
            flags: o.flags,
        }
    }
}

/// Pointers into one ring's memory.
#[derive(Debug)]
struct Raw<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
}

impl<T: Copy> Raw<T> {
    /// # Safety
    /// `base` must point to ring memory laid out as `off` says, with `size`
    /// (a power of two) descriptors of `T` at `off.desc`, the three `u32`
    /// words 4-byte aligned, all valid as long as the ring value lives.
    unsafe fn new(base: *mut u8, off: RingOffsets, size: u32) -> Raw<T> {
        debug_assert!(size.is_power_of_two());
        // SAFETY: the caller guarantees the offsets lie inside the mapping,
        // which is not null.
        unsafe {
            Raw {
                producer: NonNull::new_unchecked(base.add(off.producer as usize).cast()),
                consumer: NonNull::new_unchecked(base.add(off.consumer as usize).cast()),
                flags: NonNull::new_unchecked(base.add(off.flags as usize).cast()),
                descs: NonNull::new_unchecked(base.add(off.desc as usize).cast()),
                mask: size - 1,
                size,
            }
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: valid and aligned for the ring's lifetime (see `new`); the
        // kernel writes it only atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// Sets or clears `XDP_RING_NEED_WAKEUP` (the kernel's side: the fake
    /// kernel of the tests).
    fn set_need_wakeup(&self, on: bool) {
        if on {
            self.flags()
                .fetch_or(libc::XDP_RING_NEED_WAKEUP, Ordering::Release);
        } else {
            self.flags()
                .fetch_and(!libc::XDP_RING_NEED_WAKEUP, Ordering::Release);
        }
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, inside the descriptor array.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }
}

/// The side of a ring where we produce (fill, TX).
#[derive(Debug)]
pub struct ProdRing<T> {
    raw: Raw<T>,
    /// Next slot to reserve.
    cached_prod: u32,
    /// Consumer index + size, as last read.
    cached_cons: u32,
    /// Producer index as last published.
    published: u32,
    _map: Option<Mmap>,
    _t: PhantomData<T>,
}

// SAFETY: the ring is owned by one thread at a time; the kernel side is
// synchronised through the atomic indexes.
unsafe impl<T: Send> Send for ProdRing<T> {}

impl<T: Copy> ProdRing<T> {
    /// # Safety
    /// As for [`ConsRing::new`].
    pub(crate) unsafe fn new(
        base: *mut u8,
        off: RingOffsets,
        size: u32,
        map: Option<Mmap>,
    ) -> Self {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { Raw::new(base, off, size) };
        let prod = raw.producer().load(Ordering::Relaxed);
        let cons = raw.consumer().load(Ordering::Acquire);
        ProdRing {
            cached_prod: prod,
            cached_cons: cons.wrapping_add(size),
            published: prod,
            raw,
            _map: map,
            _t: PhantomData,
        }
    }

    /// Number of descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.raw.size
    }

    /// Free slots, reloading the consumer index if fewer than `want` seem
    /// free.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self
            .raw
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.raw.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves up to `n` slots; returns the first index and how many.
    pub fn reserve(&mut self, n: u32) -> (u32, u32) {
        let got = self.free(n).min(n);
        let idx = self.cached_prod;
        self.cached_prod = self.cached_prod.wrapping_add(got);
        (idx, got)
    }

    /// Writes a reserved slot.
    pub fn write(&mut self, idx: u32, value: T) {
        debug_assert!(
            idx.wrapping_sub(self.published) < self.cached_prod.wrapping_sub(self.published),
            "write to an unreserved slot"
        );
        // SAFETY: the slot is inside the ring; it is reserved and not yet
        // published, so the kernel does not read it now.
        unsafe { self.raw.slot(idx).write(value) };
    }

    /// Publishes everything reserved so far.
    pub fn submit(&mut self) {
        self.published = self.cached_prod;
        self.raw.producer().store(self.published, Ordering::Release);
    }

    /// Entries published but not yet consumed by the kernel.
    pub fn outstanding(&self) -> u32 {
        self.published
            .wrapping_sub(self.raw.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel asks for a wake-up (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.raw.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Takes back every published entry the kernel has not consumed, oldest
    /// first, through `each`, and rewinds the producer index to the
    /// kernel's consumer index. Only sound while no kernel context consumes
    /// this ring: in copy mode the kernel reads a TX ring only inside our
    /// own `sendto`/`poll` calls, so after a kick that failed before
    /// touching the ring (ENETDOWN, ENXIO) nothing else reads it.
    pub fn retract(&mut self, mut each: impl FnMut(T)) -> u32 {
        debug_assert_eq!(
            self.cached_prod, self.published,
            "retract with unsubmitted slots"
        );
        let cons = self.raw.consumer().load(Ordering::Acquire);
        let n = self.published.wrapping_sub(cons);
        for i in 0..n {
            // SAFETY: the slot is inside the ring and published by us; the
            // kernel has not consumed it and (see above) does not read it now.
            each(unsafe { self.raw.slot(cons.wrapping_add(i)).read() });
        }
        self.published = cons;
        self.cached_prod = cons;
        self.raw.producer().store(cons, Ordering::Release);
        n
    }
}

/// The side of a ring where we consume (completion, RX).
#[derive(Debug)]
pub struct ConsRing<T> {
    raw: Raw<T>,
    /// Producer index as last read.
    cached_prod: u32,
    /// Next entry to peek.
    cached_cons: u32,
    /// Consumer index as last published.
    released: u32,
    _map: Option<Mmap>,
    _t: PhantomData<T>,
}

// SAFETY: as for ProdRing.
unsafe impl<T: Send> Send for ConsRing<T> {}

impl<T: Copy> ConsRing<T> {
    /// # Safety
    /// `base` must point to ring memory laid out as `off` says, with `size`
    /// (a power of two) descriptors of `T` at `off.desc`; the memory must
    /// stay valid as long as the ring (keep the mapping in `map`), and no
    /// other ring value may use the same side of the ring.
    pub(crate) unsafe fn new(
        base: *mut u8,
        off: RingOffsets,
        size: u32,
        map: Option<Mmap>,
    ) -> Self {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { Raw::new(base, off, size) };
        let cons = raw.consumer().load(Ordering::Relaxed);
        let prod = raw.producer().load(Ordering::Acquire);
        ConsRing {
            cached_prod: prod,
            cached_cons: cons,
            released: cons,
            raw,
            _map: map,
            _t: PhantomData,
        }
    }

    /// Number of descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.raw.size
    }

    /// Up to `n` entries ready to read: the first index and how many. They
    /// stay ours until [`ConsRing::release`].
    pub fn peek(&mut self, n: u32) -> (u32, u32) {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < n {
            self.cached_prod = self.raw.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let got = avail.min(n);
        let idx = self.cached_cons;
        self.cached_cons = self.cached_cons.wrapping_add(got);
        (idx, got)
    }

    /// Reads a peeked entry.
    pub fn read(&self, idx: u32) -> T {
        debug_assert!(
            idx.wrapping_sub(self.released) < self.cached_cons.wrapping_sub(self.released),
            "read of an entry not peeked"
        );
        // SAFETY: the entry was published by the producer (Acquire in
        // `peek`) and is not released yet, so the kernel does not rewrite it.
        unsafe { self.raw.slot(idx).read() }
    }

    /// Gives back every peeked entry to the producer.
    pub fn release(&mut self) {
        self.released = self.cached_cons;
        self.raw.consumer().store(self.released, Ordering::Release);
    }

    /// Entries the producer published that we have not peeked yet.
    pub fn ready(&self) -> u32 {
        self.raw
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.cached_cons)
    }

    /// Whether the kernel asks for a wake-up (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.raw.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Sets or clears the ring's NEED_WAKEUP flag (the kernel's part).
    pub(crate) fn set_need_wakeup(&self, on: bool) {
        self.raw.set_need_wakeup(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in heap memory: producer at 0, consumer at 64, flags at 128,
    /// descriptors at 192 (the kernel's layout has them on separate lines).
    struct Mem(Vec<u64>);
    const OFF: RingOffsets = RingOffsets {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    fn mem(size: u32) -> Mem {
        Mem(vec![0u64; 24 + size as usize])
    }

    #[test]
    fn batches_cross_the_wrap_of_the_indexes() {
        let mut m = mem(8);
        let base = m.0.as_mut_ptr().cast::<u8>();
        // Start both indexes just below u32::MAX to exercise the wrap.
        m.0[0] = u64::from(u32::MAX - 2);
        m.0[8] = u64::from(u32::MAX - 2);
        // SAFETY: `m` outlives both rings and matches OFF with 8 u64 slots;
        // one ring produces, the other consumes.
        let (mut prod, mut cons) = unsafe {
            (
                ProdRing::<u64>::new(base, OFF, 8, None),
                ConsRing::<u64>::new(base, OFF, 8, None),
            )
        };
        let mut next = 0u64;
        let mut seen = Vec::new();
        for round in 0..10u32 {
            let want = 1 + round % 5;
            let (idx, got) = prod.reserve(want);
            for i in 0..got {
                prod.write(idx.wrapping_add(i), next);
                next += 1;
            }
            prod.submit();
            let (idx, got) = cons.peek(3);
            for i in 0..got {
                seen.push(cons.read(idx.wrapping_add(i)));
            }
            cons.release();
        }
        let (idx, got) = cons.peek(64);
        for i in 0..got {
            seen.push(cons.read(idx.wrapping_add(i)));
        }
        cons.release();
        assert_eq!(seen, (0..next).collect::<Vec<_>>());
        assert!(next > 8, "the test must go round the ring");
    }

    #[test]
    fn producer_stops_at_full_and_resumes_after_release() {
        let mut m = mem(4);
        let base = m.0.as_mut_ptr().cast::<u8>();
        // SAFETY: as above.
        let (mut prod, mut cons) = unsafe {
            (
                ProdRing::<u64>::new(base, OFF, 4, None),
                ConsRing::<u64>::new(base, OFF, 4, None),
            )
        };
        let (_, got) = prod.reserve(6);
        assert_eq!(got, 4);
        for i in 0..4 {
            prod.write(i, u64::from(i));
        }
        prod.submit();
        assert_eq!(prod.reserve(1).1, 0, "a full ring takes nothing");
        assert_eq!(prod.outstanding(), 4);
        assert_eq!(cons.ready(), 4);
        let (_, got) = cons.peek(2);
        assert_eq!(got, 2);
        cons.release();
        assert_eq!(prod.outstanding(), 2);
        assert_eq!(prod.reserve(4).1, 2, "released slots are free again");
    }

    #[test]
    fn retract_takes_back_what_the_consumer_has_not_read() {
        let mut m = mem(8);
        let base = m.0.as_mut_ptr().cast::<u8>();
        // SAFETY: as above.
        let (mut prod, mut cons) = unsafe {
            (
                ProdRing::<u64>::new(base, OFF, 8, None),
                ConsRing::<u64>::new(base, OFF, 8, None),
            )
        };
        let (idx, got) = prod.reserve(5);
        for i in 0..got {
            prod.write(idx.wrapping_add(i), u64::from(10 + i));
        }
        prod.submit();
        let (idx, got) = cons.peek(2);
        assert_eq!((cons.read(idx), got), (10, 2));
        cons.release();
        let mut back = Vec::new();
        assert_eq!(prod.retract(|v| back.push(v)), 3);
        assert_eq!(back, vec![12, 13, 14]);
        assert_eq!((prod.outstanding(), cons.ready()), (0, 0));
        // The ring goes on from there.
        let (idx, got) = prod.reserve(1);
        prod.write(idx, 99);
        prod.submit();
        let (idx, got2) = cons.peek(8);
        assert_eq!((got, got2, cons.read(idx)), (1, 1, 99));
    }

    #[test]
    fn a_page_offset_off_t_cannot_hold_is_refused_not_truncated() {
        // On a 32-bit target the fill and completion rings' offsets
        // (0x1_0000_0000, 0x1_8000_0000) do not fit off_t; here an offset
        // past i64::MAX stands in for them. A cast would map offset -1.
        let too_far = u64::MAX;
        assert!(libc::off_t::try_from(too_far).is_err());
        assert_eq!(
            Mmap::shared(-1, 4096, too_far).unwrap_err(),
            libc::EOVERFLOW
        );
        // The real offsets fit on this (64-bit) target.
        for off in [
            libc::XDP_UMEM_PGOFF_FILL_RING,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        ] {
            assert!(libc::off_t::try_from(off).is_ok());
        }
    }
}
