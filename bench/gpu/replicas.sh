#!/usr/bin/env bash
# Replica routing on the lent H200 (issue 9). ON THE DEVICE.
#
#   bash bench/gpu/replicas.sh go    # resumable steps, like bench/gpu/run.sh go (same bundle, same stash)
#
# One stack (bench/gpu/replicas.py fleet): q7-rr and q7-aff, the same Qwen2.5-7B-shaped engine with two
# replicas each on the one GPU (a fifth of it per replica), round-robin vs prefix affinity. Steps: setup ->
# up -> ready (four 7B replicas) -> per workload: /v1/status snapshot, `qwen-loadtest compare` rr vs affinity
# in ABBA rounds, snapshot -> summary. The first go call may follow `run.sh stash 3` in the same command.
# Qwen2.5-VL through the stack on the GPU is bench/gpu/vl.sh.
set -uo pipefail
export GPU_WORK=${GPU_WORK:-/root/bench-rep}
# shellcheck source=bench/gpu/run.sh
source "$(dirname "$0")/run.sh" lib
rplan() { python3 bench/gpu/replicas.py "$@"; }

rep_up() {
  http_ok "$STACK/health" && return 0
  alive stack && return 0
  STACK_VLLM_CACHE_ROOT=/root/vc-stack rplan fleet "$W/fleet.yaml" \
    && cp "$W/fleet.yaml" "$LOGS/"
  log "stack: qwen-serve up --config $W/fleet.yaml"
  setsid bash -c "echo \$\$ > $W/stack.pid; exec python3 -m serve.cli up --config $W/fleet.yaml --detach \
    --timeout 1500" > "$LOGS/stack-up.log" 2>&1 < /dev/null &
  sleep 1
}

replicas_ready() {  # DEPLOYMENT=N ...: 0 when each has N endpoints in the router's table
  python3 - "$STACK" "$@" <<'EOF'
import json, sys, urllib.request as u
try:
    eps = json.load(u.urlopen(sys.argv[1] + "/v1/status", timeout=3))["endpoints"]
except Exception:
    sys.exit(1)
sys.exit(0 if all(len(eps.get(d, [])) >= int(n) for d, n in (a.split("=") for a in sys.argv[2:])) else 1)
EOF
}

rep_ready() {
  local t=$SECONDS
  while [ "$(left)" -gt 5 ]; do
    if replicas_ready q7-rr=2 q7-aff=2; then log "four 7B replicas ready (waited $((SECONDS - t)) s here)"
      nvidia-smi > "$LOGS/nvidia-smi-ready.txt" 2>&1; return 0; fi
    if ! alive stack && ! http_ok "$STACK/health"; then log "qwen-serve up exited without a router"; return 2; fi
    sleep 3
  done
  log "not ready yet (out of time in this call)"; return 1
}

status_snap() { python3 -c 'import sys,urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1]+"/v1/status", timeout=10).read().decode())' "$STACK" > "$1"; }

rcompare() {  # WORKLOAD ROUNDS
  local d=$RES/$1; mkdir -p "$d"
  status_snap "$d/status-before.json"
  log "compare $1: q7-rr vs q7-aff, $2 rounds: $(rplan workload "$1")"
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli compare --a-base-url "$STACK" --a-label round-robin --a-model q7-rr \
    --b-base-url "$STACK" --b-label affinity --b-model q7-aff $(rplan workload "$1") --ignore-eos \
    --tokenizer "$MODELS/qwen2.5-7b-instruct" --percentiles 50,90,99 --no-progress --seed 0 --rounds "$2" \
    --goodput ttft:2000 tpot:50 --metadata "workload=$1" --output "$d" 2>&1 | tail -n 40 | tee "$LOGS/$1.log"
  local rc=${PIPESTATUS[0]}
  status_snap "$d/status-after.json"
  return "$rc"
}

rcapacity() {  # WORKLOAD LEVELS: rr vs affinity at each stream count, one conversation per stream; capacity per SLO
  local d=$RES/capacity-$1
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli compare --a-base-url "$STACK" --a-label affinity --a-model q7-aff \
    --b-base-url "$STACK" --b-label round-robin --b-model q7-rr $(rplan workload "$1") --ignore-eos \
    --concurrency-list "$2" --prompts-per-level 1 --capacity-slo 1000 1500 2000 --rounds 2 \
    --tokenizer "$MODELS/qwen2.5-7b-instruct" --percentiles 50,90,99 --no-progress --seed 1 \
    --goodput ttft:2000 tpot:50 --output "$d" 2>&1 | grep -v "^\[transformers\]" | tail -n 16 | tee "$LOGS/capacity-$1.log"
  return "${PIPESTATUS[0]}"
}

rsummary() { rplan summarize "$RES" && cp "$RES/results.md" "$RES/summary.json" "$OUT/" 2>/dev/null; return 0; }

STEP_LIST=(
  "setup 60 setup"
  "up 20 rep_up"
  "ready 60 rep_ready"
  "random 120 rcompare random 2"
  "multi-turn-long 260 rcompare multi-turn-long 2"
  "shared-prefix 200 rcompare shared-prefix 4"
  "multi-turn 150 rcompare multi-turn 2"
  "capacity-multi-turn-long 400 rcapacity multi-turn-long 32,64,96,128"
  "summary 20 rsummary"
)

case "${1:-}" in
  go) cmd_go ;;
  *) sed -n 2,11p "$0"; exit 2 ;;
esac
