#!/usr/bin/env bash
# Instructions per packet for the two pipeline bench cases, counted by
# valgrind's callgrind (repeatable on a noisy machine, unlike time).
# Usage: benches/callgrind.sh [BURSTS]   (default 2000 bursts of 64)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install -y valgrind" >&2; exit 1; }
cargo build -q --profile bench -p benches --bin pipeline_iter
bin=target/release/pipeline_iter
[ -x "$bin" ] || bin=$(ls -t target/*/pipeline_iter | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ir() { # $1 case, $2 function
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$1.$2.out" \
    --collect-atstart=no --toggle-collect="*$2*" "$bin" "$1" "$n" >/dev/null 2>"$tmp/log"
  callgrind_annotate "$tmp/$1.$2.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}
packets=$((n * 64))
fwd=$(ir untracked afxdp_measured_bursts)
restore=$(ir untracked afxdp_measured_restore)
est=$(ir established afxdp_measured_bursts)
printf '%-36s %10s\n' case "instr/pkt"
printf '%-36s %10.1f\n' pipeline_forward_untracked_64 "$(echo "($fwd - $restore) / $packets" | bc -l)"
printf '%-36s %10.1f\n' "  (header restore, subtracted)" "$(echo "$restore / $packets" | bc -l)"
printf '%-36s %10.1f\n' pipeline_established_tracked_64 "$(echo "$est / $packets" | bc -l)"
