//! The TCP state machine of netfilter's `nf_conntrack_proto_tcp`, without
//! sequence-window tracking: the same states, transitions and default
//! timeouts, driven by the flags of each segment and its direction.

/// TCP conntrack states, numbered as in netfilter (`TCP_CONNTRACK_*`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    /// Simultaneous open: SYN seen in both directions.
    SynSent2 = 9,
}

impl TcpState {
    /// From the stored byte; unknown values map to `Close`.
    pub const fn from_u8(v: u8) -> TcpState {
        match v {
            0 => TcpState::None,
            1 => TcpState::SynSent,
            2 => TcpState::SynRecv,
            3 => TcpState::Established,
            4 => TcpState::FinWait,
            5 => TcpState::CloseWait,
            6 => TcpState::LastAck,
            7 => TcpState::TimeWait,
            9 => TcpState::SynSent2,
            _ => TcpState::Close,
        }
    }

    /// Name as `conntrack -L` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }
}

/// Result of a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Move to this state.
    To(TcpState),
    /// The segment does not fit the connection: INVALID.
    Invalid,
    /// Accept the segment but leave the state alone (netfilter `sIG`: e.g. a
    /// SYN retransmitted into an established connection).
    Ignore,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// Whether the flag combination is one a real TCP sends (netfilter
/// `tcp_valid_flags`; PSH, ECE and CWR are ignored). SYN+FIN, no flags and
/// all flags are not.
pub const fn valid_flags(flags: u8) -> bool {
    let f = flags & !(PSH | ECE | CWR);
    matches!(
        f,
        x if x == SYN
            || x == SYN | URG
            || x == SYN | ACK
            || x == RST
            || x == RST | ACK
            || x == FIN | ACK
            || x == FIN | ACK | URG
            || x == ACK
            || x == ACK | URG
    )
}

/// Row of the transition table for a segment.
#[derive(Clone, Copy)]
enum Index {
    Syn = 0,
    SynAck = 1,
    Fin = 2,
    Ack = 3,
    Rst = 4,
    None = 5,
}

const fn index(flags: u8) -> Index {
    if flags & RST != 0 {
        Index::Rst
    } else if flags & SYN != 0 {
        if flags & ACK != 0 {
            Index::SynAck
        } else {
            Index::Syn
        }
    } else if flags & FIN != 0 {
        Index::Fin
    } else if flags & ACK != 0 {
        Index::Ack
    } else {
        Index::None
    }
}

use TcpState as S;
const IV: Transition = Transition::Invalid;
const IG: Transition = Transition::Ignore;
const NO: Transition = Transition::To(S::None);
const SS: Transition = Transition::To(S::SynSent);
const SR: Transition = Transition::To(S::SynRecv);
const ES: Transition = Transition::To(S::Established);
const FW: Transition = Transition::To(S::FinWait);
const CW: Transition = Transition::To(S::CloseWait);
const LA: Transition = Transition::To(S::LastAck);
const TW: Transition = Transition::To(S::TimeWait);
const CL: Transition = Transition::To(S::Close);
const S2: Transition = Transition::To(S::SynSent2);

// Columns are the current state in `TcpState` order:
//              NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
/// Segments in the original direction (from the side that opened).
const ORIGINAL: [[Transition; 10]; 6] = [
    /* syn    */ [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
    /* synack */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
    /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
    /* ack    */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
    /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
];

/// Segments in the reply direction.
const REPLY: [[Transition; 10]; 6] = [
    /* syn    */ [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
    /* synack */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
    /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
    /* ack    */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
    /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
];

// `NO` is named for the table's symmetry with netfilter; no transition
// leads back to NONE.
const _: Transition = NO;

/// The table row for each value of the six classic flag bits: the rows of
/// [`index`] for flag sets [`valid_flags`] accepts, `None` (all invalid)
/// for the others. ECE and CWR never matter.
const ROW: [u8; 64] = {
    let mut r = [Index::None as u8; 64];
    let mut f = 0;
    while f < 64 {
        if valid_flags(f as u8) {
            r[f] = index(f as u8) as u8;
        }
        f += 1;
    }
    r
};

/// The row of the transition table a segment's flags select, as
/// netfilter's `get_conntrack_index` (for flag sets [`valid_flags`]
/// accepts; [`ROW_NONE`] for the others): conntrack remembers the row of
/// the last segment (`last_index`) to tell a reopening SYN from a stray one.
#[inline]
pub fn row(flags: u8) -> u8 {
    ROW[(flags & 0x3f) as usize]
}

/// [`row`] of a SYN.
pub const ROW_SYN: u8 = Index::Syn as u8;
/// [`row`] of a SYN+ACK.
pub const ROW_SYNACK: u8 = Index::SynAck as u8;
/// [`row`] of a RST.
pub const ROW_RST: u8 = Index::Rst as u8;
/// [`row`] of no known flag.
pub const ROW_NONE: u8 = Index::None as u8;

/// The transition for a segment with `flags` in direction `reply` on a
/// connection in `state`: two table loads.
#[inline]
pub fn transition(state: TcpState, reply: bool, flags: u8) -> Transition {
    let table = if reply { &REPLY } else { &ORIGINAL };
    table[ROW[(flags & 0x3f) as usize] as usize][state as usize]
}

/// [`transition`] of a segment whose flags select table row `row` (a
/// [`row`] value).
pub const fn transition_at(state: TcpState, reply: bool, row: u8) -> Transition {
    let table = if reply { &REPLY } else { &ORIGINAL };
    table[row as usize][state as usize]
}

/// The state a connection starts in when its first segment has `flags`, or
/// `None` when that segment cannot start one. With `loose`, an ACK picks up
/// a connection already established (netfilter `nf_conntrack_tcp_loose`).
#[inline]
pub fn initial(flags: u8, loose: bool) -> Option<TcpState> {
    match transition(TcpState::None, false, flags) {
        Transition::To(TcpState::SynSent) => Some(TcpState::SynSent),
        Transition::To(TcpState::Established) if loose => Some(TcpState::Established),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_table_agrees_with_the_flag_rules_for_every_flag_byte() {
        for f in 0..=255u8 {
            for state in 0..10u8 {
                let state = TcpState::from_u8(state);
                for reply in [false, true] {
                    let table = if reply { &REPLY } else { &ORIGINAL };
                    let want = if valid_flags(f) {
                        table[index(f & !(PSH | ECE | CWR)) as usize][state as usize]
                    } else {
                        Transition::Invalid
                    };
                    assert_eq!(
                        transition(state, reply, f),
                        want,
                        "flags {f:#04x} {state:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn impossible_flag_sets_are_invalid() {
        assert!(!valid_flags(SYN | FIN));
        assert!(!valid_flags(0));
        assert!(!valid_flags(0xff));
        assert!(!valid_flags(SYN | RST));
        assert!(valid_flags(SYN));
        assert!(valid_flags(SYN | ACK | ECE | CWR));
        assert!(valid_flags(ACK | PSH));
        assert!(valid_flags(FIN | ACK));
    }

    #[test]
    fn three_way_handshake_then_close() {
        let mut s = initial(SYN, false).unwrap();
        assert_eq!(s, TcpState::SynSent);
        let step = |s: TcpState, reply: bool, f: u8| match transition(s, reply, f) {
            Transition::To(n) => n,
            t => panic!("{s:?} reply={reply} flags={f:#x}: {t:?}"),
        };
        s = step(s, true, SYN | ACK);
        assert_eq!(s, TcpState::SynRecv);
        s = step(s, false, ACK);
        assert_eq!(s, TcpState::Established);
        s = step(s, false, FIN | ACK);
        assert_eq!(s, TcpState::FinWait);
        s = step(s, true, ACK);
        assert_eq!(s, TcpState::CloseWait);
        s = step(s, true, FIN | ACK);
        assert_eq!(s, TcpState::LastAck);
        s = step(s, false, ACK);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn no_pickup_without_loose_and_synack_never_starts() {
        assert_eq!(initial(ACK, false), None);
        assert_eq!(initial(ACK, true), Some(TcpState::Established));
        assert_eq!(initial(SYN | ACK, true), None);
        assert_eq!(initial(RST, true), None);
        assert_eq!(initial(FIN | ACK, true), None);
    }

    #[test]
    fn rst_closes_and_syn_in_established_is_ignored() {
        assert_eq!(
            transition(TcpState::Established, true, RST),
            Transition::To(TcpState::Close)
        );
        assert_eq!(
            transition(TcpState::Established, false, SYN),
            Transition::Ignore
        );
        assert_eq!(
            transition(TcpState::SynSent, true, SYN),
            Transition::To(TcpState::SynSent2)
        );
        assert_eq!(
            transition(TcpState::Established, false, SYN | FIN),
            Transition::Invalid
        );
    }
}
