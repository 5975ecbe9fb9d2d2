#!/usr/bin/env bash
# Replica routing on the lent H200 (issue 9) and Qwen2.5-VL through the stack on the GPU (issue 7). ON THE DEVICE.
#
#   bash bench/gpu/replicas.sh go    # resumable steps, like bench/gpu/run.sh go (same bundle, same stash)
#
# One stack (bench/gpu/replicas.py fleet): q7-rr and q7-aff, the same Qwen2.5-7B-shaped engine with two
# replicas each on the one GPU (a fifth of it per replica), round-robin vs prefix affinity; qwen-vl, a tiny
# random-weight Qwen2.5-VL that `qwen-serve up` builds there. Steps: setup (+ torchvision from .gpu/vl) -> up
# -> ready (four 7B replicas) -> vl (an image to `auto`) -> per workload: /v1/status snapshot, `qwen-loadtest
# compare` rr vs affinity in ABBA rounds, snapshot -> summary. Carry .gpu/vl and .gpu/vl-pil on the first go call.
set -uo pipefail
export GPU_WORK=${GPU_WORK:-/root/bench-rep}
# shellcheck source=bench/gpu/run.sh
source "$(dirname "$0")/run.sh" lib
export PYTHONPATH=/root/extra-vl:$PYTHONPATH
rplan() { python3 bench/gpu/replicas.py "$@"; }

setup_vl() {
  setup || return $?
  if [ ! -d /root/extra-vl/torchvision ]; then
    ls .gpu/vl/*.whl >/dev/null 2>&1 || { log "no .gpu/vl wheels carried: carry .gpu/vl on this call"; return 3; }
    python3 -m pip install -q --no-index --no-deps --no-compile --target /root/extra-vl .gpu/vl/*.whl || return 3
  fi
  if ! python3 -c "import PIL" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /root/extra-vl .gpu/vl-pil/*.whl \
      || log "no PIL on the device and none carried (.gpu/vl-pil): the VL check will fail"
  fi
  python3 -c "import torchvision, PIL; print('torchvision', torchvision.__version__, 'PIL', PIL.__version__)" \
    2>&1 | tail -n 3 | tee -a "$LOGS/run.log"
  return 0
}

rep_up() {
  http_ok "$STACK/health" && return 0
  alive stack && return 0
  mkdir -p "$W/tiny"
  VL_MODEL_DIR=$W/tiny/qwen-vl STACK_VLLM_CACHE_ROOT=/root/vc-stack rplan fleet "$W/fleet.yaml" \
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

vl_check() {  # an image (64x64 PNG data URL) to `auto`: must be routed to qwen-vl and answered
  local t=$SECONDS
  until replicas_ready qwen-vl=1; do
    [ $((SECONDS - t)) -gt 120 ] && { log "qwen-vl has no endpoint after 120 s"; break; }; sleep 3; done
  mkdir -p "$RES/vl"
  python3 bench/gpu/vl_request.py "$STACK" auto > "$RES/vl/result.json"
  log "vision: $(tr -d ' \n' < "$RES/vl/result.json" | head -c 600)"
  return 0
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

rsummary() { rplan summarize "$RES" && cp "$RES/results.md" "$RES/summary.json" "$OUT/" 2>/dev/null; return 0; }

STEP_LIST=(
  "setup-vl 120 setup_vl"
  "up 20 rep_up"
  "ready 60 rep_ready"
  "vl 150 vl_check"
  "shared-prefix 200 rcompare shared-prefix 4"
  "multi-turn 150 rcompare multi-turn 2"
  "random 120 rcompare random 2"
  "summary 20 rsummary"
)

case "${1:-}" in
  go) cmd_go ;;
  *) sed -n 2,11p "$0"; exit 2 ;;
esac
