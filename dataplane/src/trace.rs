//! Per-packet decision records for `routerctl explain` and `trace`.
//!
//! The pipeline is generic over a [`Tracer`]; the packet path uses `()`,
//! whose methods are empty and inlined away, so tracing off costs nothing.

use crate::conntrack::{CtState, FlowRef};
use crate::drop::DropReason;
use crate::packet::{PortId, Verdict};
use crate::rules::{ChainId, FilterAction, RawAction, RawHook};
use crate::tables::NextHop;
use crate::tables6::NextHop6;

/// One stage's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The raw stage: the deciding rule (None: no rule, tracked) and action.
    Raw {
        hook: RawHook,
        rule: Option<usize>,
        action: RawAction,
    },
    /// Connection tracking state of the packet.
    Conntrack {
        state: CtState,
        flow: Option<FlowRef>,
    },
    /// Route lookup (None: no route).
    Route { next_hop: Option<NextHop> },
    /// IPv6 route lookup (None: no route).
    Route6 { next_hop: Option<NextHop6> },
    /// Filter chain, deciding rule (None: policy) and action.
    Filter {
        chain: ChainId,
        rule: Option<usize>,
        action: FilterAction,
    },
    /// The NEW flow was inserted in the table.
    Confirmed { flow: FlowRef },
    /// Next hop's link-layer address (None: unresolved).
    Neighbour {
        addr: u32,
        port: PortId,
        resolved: bool,
    },
    /// IPv6 next hop's link-layer address (None: unresolved, NDP asked).
    Neighbour6 {
        addr: u128,
        port: PortId,
        resolved: bool,
    },
    /// What happened to the packet.
    Done {
        verdict: Verdict,
        drop: Option<DropReason>,
        /// A reply was generated in place (ICMP error, TCP RST, ARP reply).
        generated: bool,
    },
}

/// Receives stage decisions.
pub trait Tracer {
    /// Record one decision.
    fn event(&mut self, e: Event);
}

impl Tracer for () {
    #[inline(always)]
    fn event(&mut self, _e: Event) {}
}

impl Tracer for Vec<Event> {
    fn event(&mut self, e: Event) {
        self.push(e);
    }
}
