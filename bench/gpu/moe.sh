#!/usr/bin/env bash
# Qwen3-30B-A3B with engine frontends at 64 and 1,000 streams, then the start-up of four 7B replicas, on the
# lent H200 (issue 19, second lease). ON THE DEVICE, from the repo root.
#
#   bash bench/gpu/run.sh stash K      # chunks 1-3 of the bundle, as for run.sh
#   LIMIT=560 bash bench/gpu/moe.sh go # resumable steps (carry .gpu/c4 .gpu/c5 .gpu/extra on the first)
#
# The MoE's 57 GiB of weights do not fit twice on the GPU with a KV cache worth measuring (64 GiB each), so
# raw `vllm serve` (default, one API server) and the stack (`engine_frontends: 4`) run one after the other,
# in ABBA order so drift cancels: stack round 1 -> raw rounds 1 and 2 -> stack round 2 (the stack first: its
# slow start on 2026-12-05 is the thing to diagnose, so `moe_stack_wait` takes py-spy dumps of every serving
# process, nvidia-smi and the logs once it has waited DIAG_AT s). Each round is 64 streams (320 prompts) and
# 1,000 streams (2,000 prompts), seed k in round k on both servers; a restart empties the prefix cache and
# seeds differ between the two rounds on one server, so no run meets prompts an earlier one left.
# Both servers share one compile cache (/root/vc-moe): the first start is cold, later starts warm.
# Then: four Qwen2.5-7B-shaped replicas on the one GPU (a fifth of it each, no frontends), compile cache
# /root/vc-stack cold, time to ready (the torch.distributed port race fixed by serve/node_ports.py).
set -uo pipefail
export GPU_WORK=${GPU_WORK:-/root/bench-moe}
# shellcheck source=bench/gpu/run.sh
source "$(dirname "$0")/run.sh" lib
export STACK_FRONTENDS=${FRONTENDS:-4}
# An H100 (80 GB) instead of an H200: the MoE's pinned KV cache shrinks to what fits beside its 57 GiB of
# weights (10 GiB, ~109k tokens, for both servers alike), and the four 7B replicas take 0.23 of the card each
# with a 2 GiB KV cache. The run log says which card and which sizes were used.
GPU_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
if [ -n "$GPU_MIB" ] && [ "$GPU_MIB" -lt 100000 ]; then
  export GPU_MOE_KV_GIB=${GPU_MOE_KV_GIB:-10} GPU_MOE_UTIL=${GPU_MOE_UTIL:-0.95} \
    GPU_SHARED_FRACTION=${GPU_SHARED_FRACTION:-0.23} GPU_SHARED_KV_GIB=${GPU_SHARED_KV_GIB:-2}
  echo "80 GB card (${GPU_MIB} MiB): MoE KV ${GPU_MOE_KV_GIB} GiB at ${GPU_MOE_UTIL}; 7B replicas ${GPU_SHARED_FRACTION} + ${GPU_SHARED_KV_GIB} GiB KV"
fi

stamp() { date +%s.%N > "$W/$1.t0"; }
since() { python3 -c 'import sys,time; print(round(time.time() - float(open(sys.argv[1]).read()), 1))' "$W/$1.t0"; }

moe_raw_up() {  # LABEL
  [ -d /root/vc-moe ] && echo "compile cache /root/vc-moe present" | tee -a "$LOGS/run.log" \
    || echo "compile cache /root/vc-moe cold" | tee -a "$LOGS/run.log"
  stamp "$1"; raw_up moe /root/vc-moe
}
moe_stack_up() {  # LABEL
  [ -d /root/vc-moe ] && echo "compile cache /root/vc-moe present" | tee -a "$LOGS/run.log" \
    || echo "compile cache /root/vc-moe cold" | tee -a "$LOGS/run.log"
  stamp "$1"; stack_up moe /root/vc-moe
}
moe_ready() {  # raw|stack LABEL: wait, record the time to ready since the start command
  local r
  if [ "$1" = raw ]; then wait_ready "raw vLLM" "$RAW/v1/models" raw; r=$?
  else wait_ready stack "$STACK/ready" stack; r=$?; fi
  [ $r -eq 0 ] && echo "{\"server\": \"$2\", \"ready_s\": $(since "$2")}" >> "$RES/ready.jsonl"
  return $r
}

# Each single_run writes $RES/moe-<load>/<raw|stack>/; plan.py summarize pairs them per load. ABBA with the
# stack first (its start is the step to watch: a diagnosis is taken if it is slow): stack round 1 -> raw
# rounds 1 and 2 -> stack round 2. Round k uses seed k on both servers; the warm-up requests come first.
STEP_LIST=(
  "setup 60 setup"
  "stack1-up 10 moe_stack_up moe-stack-1"
  "stack1-ready 60 moe_stack_wait moe-stack-1"
  "stack1-c1 30 single_run moe c1 1 8 1 stack 0"
  "stack1-c64 60 single_run moe c64-r1 64 320 16 stack 1"
  "stack1-c1000 110 single_run moe c1000-r1 1000 2000 32 stack 1"
  "stack1-down 60 down_stack moe-1"
  "raw-up 10 moe_raw_up moe-raw"
  "raw-ready 60 moe_ready raw moe-raw"
  "raw-c1 30 single_run moe c1 1 8 1 raw 0"
  "raw-c64-r1 60 single_run moe c64-r1 64 320 16 raw 1"
  "raw-c1000-r1 110 single_run moe c1000-r1 1000 2000 32 raw 1"
  "raw-c1000-r2 110 single_run moe c1000-r2 1000 2000 32 raw 2"
  "raw-c64-r2 60 single_run moe c64-r2 64 320 16 raw 2"
  "raw-down 40 down_raw"
  "stack2-up 10 moe_stack_up moe-stack-2"
  "stack2-ready 60 moe_stack_wait moe-stack-2"
  "stack2-c1000 110 single_run moe c1000-r2 1000 2000 32 stack 2"
  "stack2-c64 60 single_run moe c64-r2 64 320 16 stack 2"
  "stack2-down 60 down_stack moe-2"
  "startup4 30 moe_startup4"
  "startup4-ready 60 moe_startup4_ready"
  "summary 20 moe_summary"
)

moe_stack_wait() {  # LABEL: wait for the stack; once it has taken DIAG_AT s (default 300), take a diagnosis
  local t=$SECONDS
  while [ "$(left)" -gt 8 ]; do
    if http_ok "$STACK/ready"; then
      log "stack ready (waited $((SECONDS - t)) s here)"
      echo "{\"server\": \"$1\", \"ready_s\": $(since "$1")}" >> "$RES/ready.jsonl"; return 0
    fi
    if ! alive stack && ! http_ok "$STACK/ready"; then
      sleep 3; http_ok "$STACK/ready" && continue; log "stack: qwen-serve up exited without a ready stack"
      moe_diag "$1-exited"; return 2
    fi
    if [ ! -f "$W/$1.diag" ] && [ "$(since "$1" | cut -d. -f1)" -ge "${DIAG_AT:-300}" ]; then
      touch "$W/$1.diag"; moe_diag "$1-at$(since "$1" | cut -d. -f1)s"
    fi
    sleep 3
  done
  log "stack not ready yet (out of time in this call)"; moe_diag "$1-end$(el)s"; return 1
}

moe_diag() {  # LABEL: why a stack is slow to start: the wait's output, GPU, processes, py-spy of each, logs
  local d=$LOGS/diag-$1; mkdir -p "$d"
  log "diagnosis $1 (into logs/diag-$1)"
  tail -n 12 "$LOGS"/stack-up-moe.log 2>/dev/null
  nvidia-smi > "$d/nvidia-smi.txt" 2>&1
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null | tee "$d/gpu-apps.txt"
  ps -eo pid,ppid,etimes,pcpu,rss,args --sort=-pcpu | cut -c1-220 > "$d/ps.txt"
  head -n 15 "$d/ps.txt"
  local p
  for p in $(pgrep -f "ServeReplica|qwen-frontend|EngineCore|RayWorker|ray::" | head -n 24); do
    timeout 20 py-spy dump -p "$p" > "$d/pyspy-$p.txt" 2>&1
    echo "-- pid $p $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | cut -c1-90)"
    grep -m1 -A 7 -E "^Thread .*(MainThread|main)" "$d/pyspy-$p.txt" | grep -v "^ *$" | cut -c1-160
  done
  save_ray_logs "diag-$1"
  grep -h -E "Traceback|Error|error|WARN" /tmp/ray/session_latest/logs/serve/*.log 2>/dev/null | tail -n 15 | cut -c1-300
  for f in /tmp/ray/session_latest/logs/worker-*.err; do
    [ -s "$f" ] && grep -q -E "Traceback|Error" "$f" && { echo "== $f"; grep -E -A 6 "Traceback|Error" "$f" | tail -n 14 | cut -c1-300; }
  done
  return 0
}

moe_startup4() {  # four 7B replicas sharing the GPU, no frontends, compile cache /root/vc-stack cold
  [ -d /root/vc-stack ] && echo "compile cache /root/vc-stack present" | tee -a "$LOGS/run.log" \
    || echo "compile cache /root/vc-stack cold" | tee -a "$LOGS/run.log"
  STACK_FRONTENDS=0 STACK_VLLM_CACHE_ROOT=/root/vc-stack plan fleet dense "$W/fleet4.yaml" --replicas 4 \
    && cp "$W/fleet4.yaml" "$LOGS/"
  log "stack of four 7B replicas: qwen-serve up --config $W/fleet4.yaml"
  stamp stack4
  setsid bash -c "echo \$\$ > $W/stack.pid; exec python3 -m serve.cli up --config $W/fleet4.yaml --detach \
    --timeout 1500" > "$LOGS/stack4-up.log" 2>&1 < /dev/null &
  sleep 1
}

moe_startup4_ready() {  # 0 when the router lists four endpoints; the first one's time is noted too
  local t=$SECONDS n first=""
  while [ "$(left)" -gt 5 ]; do
    n=$(python3 - "$STACK" <<'EOF'
import json, sys, urllib.request as u
try:
    eps = json.load(u.urlopen(sys.argv[1] + "/v1/status", timeout=3))["endpoints"]
    print(len(eps.get("qwen2.5-7b", [])))
except Exception:
    print(0)
EOF
)
    if [ "${n:-0}" -ge 1 ] && [ ! -f "$W/stack4.first" ]; then
      since stack4 > "$W/stack4.first"
      echo "{\"server\": \"stack-4-replicas-first\", \"ready_s\": $(cat "$W/stack4.first")}" >> "$RES/ready.jsonl"
    fi
    if [ "${n:-0}" -ge 4 ]; then
      echo "{\"server\": \"stack-4-replicas\", \"ready_s\": $(since stack4)}" >> "$RES/ready.jsonl"
      log "four replicas ready after $(since stack4) s (waited $((SECONDS - t)) s here)"
      save_ray_logs startup4
      grep -h -c "EADDRINUSE" "$LOGS"/ray-startup4/* 2>/dev/null | paste -sd+ | bc > "$RES/startup4-eaddrinuse.txt"
      return 0
    fi
    if ! alive stack && [ "${n:-0}" -lt 1 ]; then
      sleep 3; log "qwen-serve up exited before any replica was ready"; return 2
    fi
    sleep 3
  done
  log "four replicas not ready yet (out of time in this call; $n listed)"; return 1
}

moe_summary() {
  save_ray_logs final
  plan summarize "$RES" > /dev/null
  cp "$RES/results.md" "$RES/summary.json" "$RES/ready.jsonl" "$OUT/" 2>/dev/null
  return 0
}

case "${1:-}" in
  go) cmd_go ;;
  *) sed -n 2,16p "$0"; exit 2 ;;
esac
