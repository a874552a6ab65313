#!/usr/bin/env bash
# Instructions per packet in `Pipeline::process_burst` for the pipeline
# bench cases, IPv4 and IPv6 (transit untracked, established tracked to the
# router's SSH port; the IPv6 frames are the smallest: 62 bytes of UDP,
# 74 of TCP; `_2gw`: the 1,000 IPv6 routes over two gateways in turn
# instead of one, so that the route table keeps its deepest level), and,
# for a packet handed to the worker owning its flow, the whole way
# through both workers' pipelines and the hand-off queue),
# counted by valgrind's callgrind (repeatable on a noisy machine, unlike
# time); and one loop of the worker per burst over the fake kernel
# (`worker_poll_untracked_64`). In the pipeline cases only the pipeline is
# counted: building the burst and restoring the rewritten headers between
# runs are outside the toggle; in the worker case the fake kernel's
# delivery and sending are. The last two lines are the worker's idle
# trace/capture switch: the instructions per packet it adds to the same
# bursts.
# Usage: benches/callgrind.sh [BURSTS]   (default 2000 bursts of 64)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install -y valgrind" >&2; exit 1; }
cargo build -q --profile bench -p benches --bin pipeline_iter
bin=target/release/pipeline_iter
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ir() { # $1 case, $2 the function whose instructions count
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$1.out" \
    --collect-atstart=no --toggle-collect="$2" "$bin" "$1" "$n" >/dev/null 2>"$tmp/log"
  callgrind_annotate "$tmp/$1.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}
# One warm-up burst runs before the measured ones.
packets=$(((n + 1) * 64))
printf '%-36s %10s\n' case "instr/pkt"
for c in untracked:pipeline_forward_untracked_64 established:pipeline_established_tracked_64 \
  untracked6:pipeline6_forward_untracked_64 untracked6_2gw:pipeline6_forward_untracked_2gw_64 \
  established6:pipeline6_established_tracked_64; do
  printf '%-36s %10.1f\n' "${c#*:}" "$(echo "$(ir "${c%%:*}" '*Pipeline*process_burst*') / $packets" | bc -l)"
done
# A tracked packet on the worker that does not own its flow: both workers'
# pipelines and the copy through the hand-off queue.
printf '%-36s %10.1f\n' handoff_established_tracked_64 \
  "$(echo "$(ir handoff '*afxdp_measured_handoff*') / $packets" | bc -l)"
# One loop of a worker per burst over the fake kernel (zero-copy): RX ring,
# pipeline, TX ring and kick, completions, runtime accounting.
printf '%-36s %10.1f\n' worker_poll_untracked_64 \
  "$(echo "$(ir worker '*afxdp_measured_poll*') / $packets" | bc -l)"
# The worker's per-burst call with no trace or capture armed
# (worker::process_burst_traced), against the same bursts straight into the
# pipeline: the instructions per packet the idle switch adds.
for c in untracked:pipeline_forward_untracked_64 established:pipeline_established_tracked_64; do
  tap=$(ir "${c%%:*}_tap" '*afxdp_measured_switch*')
  plain=$(ir "${c%%:*}_plain" '*afxdp_measured_switch*')
  printf '%-36s %10.2f\n' "${c#*:}_tap_idle" "$(echo "($tap - $plain) / $packets" | bc -l)"
done
