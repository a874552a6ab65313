//! afxdp-router dataplane: the packet path.
//!
//! Owns wire views, the pipeline stages (raw, conntrack, filter, route,
//! neighbour, rewrite), AF_XDP ports and poll-mode workers. Knows nothing of
//! YAML or the CLI: the control plane hands it compiled [`tables::Tables`].
//! Nothing on the transit path allocates, locks or makes a syscall per packet.

pub mod addr;
pub mod capture;
pub mod conntrack;
pub mod counters;
pub mod dispatch;
pub mod drop;
pub mod host;
pub mod meta;
pub mod neighbour;
pub mod owner;
pub mod packet;
pub mod pipeline;
pub mod reply;
pub mod reply6;
pub mod rewrite;
pub mod route;
pub mod route6;
pub mod rules;
pub mod tables;
pub mod tables6;
pub mod trace;
pub mod trace_capture;
pub mod wire;
pub mod worker;
pub mod xsk;
