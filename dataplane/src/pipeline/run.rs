//! Runs: fast-path packets in a row with the same decision, counted once
//! when the run ends instead of once a packet. The decision is a
//! [`RunKey`], whose layout is written here and nowhere else.

use crate::dispatch::LocalRules;
use crate::packet::PortId;

/// Most packets in a run: a run's byte sums fit 32 bits each below 65,536
/// packets (see [`Run::bytes`]).
pub(super) const RUN_MAX: usize = 1 << 16;

/// The decision a run of fast-path packets shares, in one word:
///
/// ```text
/// bits  0..8   input port
/// bits  8..16  output port; PortId::HOST: delivered to the router
/// transit:     bits 16..48  the FastCode code (raw rule, forward rule)
///              bit  48      IPv6 (else IPv4)
/// to the host: bits 16..32  raw prerouting rule, as a LocalRules code
///              bits 32..48  input rule, as a LocalRules code
///              bit  48      tracked (else NOTRACK)
///              bit  49      IPv6 (else IPv4)
/// ```
/// [`RunKey::NONE`], which no decision packs to, is no run: the packet was
/// counted one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RunKey(u64);

/// What a [`RunKey`] says.
pub(super) enum Decision {
    /// Forwarded by the transit fast path: ports and the fast code.
    Transit {
        in_port: PortId,
        out: PortId,
        code: u32,
        v6: bool,
    },
    /// Delivered to the router by the local path.
    Local(LocalKey),
}

impl RunKey {
    /// No run.
    pub(super) const NONE: RunKey = RunKey(u64::MAX);
    const OUT: u32 = 8;
    const RULES: u32 = 16;
    const INPUT: u32 = 32;
    const TRACKED: u32 = 48;
    const LOCAL_V6: u32 = 49;

    /// A transit packet's decision: its ports and
    /// [`crate::dispatch::FastCode`] code.
    #[inline(always)]
    pub(super) fn transit(in_port: PortId, out: PortId, code: u32) -> RunKey {
        RunKey(
            u64::from(in_port.0) | u64::from(out.0) << Self::OUT | u64::from(code) << Self::RULES,
        )
    }

    /// An IPv6 transit packet's decision, as [`RunKey::transit`].
    #[inline(always)]
    pub(super) fn transit6(in_port: PortId, out: PortId, code: u32) -> RunKey {
        RunKey(Self::transit(in_port, out, code).0 | 1 << Self::TRACKED)
    }

    /// A delivered packet's decision.
    #[inline(always)]
    pub(super) fn local(k: LocalKey) -> RunKey {
        RunKey(
            u64::from(k.in_port.0 & 63)
                | u64::from(PortId::HOST.0) << Self::OUT
                | u64::from(k.raw) << Self::RULES
                | u64::from(k.input) << Self::INPUT
                | u64::from(k.tracked) << Self::TRACKED
                | u64::from(k.v6) << Self::LOCAL_V6,
        )
    }

    /// The decision packed in the key (not [`RunKey::NONE`]).
    pub(super) fn decision(self) -> Decision {
        let key = self.0;
        let in_port = PortId((key & 63) as u8);
        if (key >> Self::OUT) & 0xff == u64::from(PortId::HOST.0) {
            return Decision::Local(LocalKey {
                in_port,
                raw: (key >> Self::RULES) as u16,
                input: (key >> Self::INPUT) as u16,
                tracked: (key >> Self::TRACKED) & 1 == 1,
                v6: (key >> Self::LOCAL_V6) & 1 == 1,
            });
        }
        Decision::Transit {
            in_port,
            out: PortId(((key >> Self::OUT) & 63) as u8),
            code: (key >> Self::RULES) as u32,
            v6: (key >> Self::TRACKED) & 1 == 1,
        }
    }
}

/// The rules a packet delivered to the router took: the local half of a
/// [`RunKey`]. Rules as [`LocalRules`] codes.
#[derive(Clone, Copy)]
pub(super) struct LocalKey {
    pub(super) in_port: PortId,
    /// Raw prerouting rule ([`LocalRules::NONE`]: no rule matched).
    pub(super) raw: u16,
    /// Through conntrack (else NOTRACK).
    pub(super) tracked: bool,
    /// Input rule ([`LocalRules::NONE`]: the policy).
    pub(super) input: u16,
    /// An IPv6 packet (its family's counters too).
    pub(super) v6: bool,
}

impl LocalKey {
    /// The raw rule, whether tracked, and the input rule, for
    /// `State::count_local`.
    pub(super) fn rules(self) -> (Option<usize>, bool, Option<usize>) {
        (
            LocalRules::rule(self.raw),
            self.tracked,
            LocalRules::rule(self.input),
        )
    }
}

/// A run in progress in a chunk of a burst.
#[derive(Clone, Copy)]
pub(super) struct Run {
    /// Its decision.
    pub(super) key: RunKey,
    /// Its first packet.
    pub(super) start: usize,
    /// Its received bytes (high half) and IP bytes (low half).
    pub(super) bytes: u64,
}

impl Run {
    /// No run yet.
    pub(super) const NONE: Run = Run {
        key: RunKey::NONE,
        start: 0,
        bytes: 0,
    };

    /// A run of `key` from packet `start`.
    #[inline(always)]
    pub(super) fn new(key: RunKey, start: usize) -> Run {
        Run {
            key,
            start,
            bytes: 0,
        }
    }

    /// Add a packet of `len` bytes received and `total` IP bytes.
    #[inline(always)]
    pub(super) fn add(&mut self, len: usize, total: usize) {
        self.bytes += (len as u64) << 32 | total as u64;
    }

    /// The run with packets numbered from `first` on (packet `first` is
    /// number 0): `start` moved back by `first`, wrapping (below zero when
    /// the run began before it; differences of indices stay right).
    #[inline(always)]
    pub(super) fn rebased(self, first: usize) -> Run {
        Run {
            start: self.start.wrapping_sub(first),
            ..self
        }
    }

    /// [`Run::rebased`] undone: packets numbered from the chunk's first.
    #[inline(always)]
    pub(super) fn rebased_back(self, first: usize) -> Run {
        Run {
            start: self.start.wrapping_add(first),
            ..self
        }
    }

    /// Received bytes and IP bytes of a run's [`Run::bytes`].
    #[inline(always)]
    pub(super) fn byte_sums(bytes: u64) -> (u64, u64) {
        (bytes >> 32, bytes & 0xffff_ffff)
    }
}
