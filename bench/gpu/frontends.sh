#!/usr/bin/env bash
# Engine frontends at 1,000 streams on the lent H200 (issue 19). ON THE DEVICE, from the repo root.
#
#   bash bench/gpu/frontends.sh go   # resumable steps, like bench/gpu/run.sh go (same bundle, same stash)
#
# The stack's deployment runs vLLM's OpenAI server in FRONTENDS (default 4) processes beside the engine
# replica (`engine_frontends`), raw `vllm serve` runs beside it on the same GPU with the same engine args.
# Steps: setup -> up (raw default + the stack, in parallel; time to ready recorded) -> ready -> 1,000
# 64 and 1 streams (ABBA vs raw default) -> diagnosis: the replica's own in-process vLLM app (the layout
# without frontends, no router) vs raw, py-spy on both -> 1,000 streams vs raw default (2 + 2 ABBA rounds of
# 2,000 prompts; py-spy on every serving process in the first two, a 1-s CPU sampler throughout) -> raw
# restarted with --api-server-count 4 -> 1,000 streams vs that (2 + 2 rounds, first two profiled) ->
# start-up of four 7B replicas on the one GPU -> done.
# Every compare uses its own seed, so no round meets prompts an earlier run left in a prefix cache.
# Env as run.sh (LIMIT, STEPS, GPU_WORK, ...); FRONTENDS.
set -uo pipefail
export GPU_WORK=${GPU_WORK:-/root/bench-fe}
# shellcheck source=bench/gpu/run.sh
source "$(dirname "$0")/run.sh" lib
FRONTENDS=${FRONTENDS:-4}

stamp() { date +%s.%N > "$W/$1.t0"; }
since() { python3 -c 'import sys,time; print(round(time.time() - float(open(sys.argv[1]).read()), 1))' "$W/$1.t0"; }

fe_raw_up() {  # API_SERVERS
  http_ok "$RAW/v1/models" && return 0
  alive raw && return 0
  plan raw-cmd dense --api-server-count "$1" > "$W/raw.cmd"
  echo "$1" > "$W/raw.api"
  log "raw vLLM (api servers $1): $(cat "$W/raw.cmd")"
  stamp "raw-$1"
  VLLM_CACHE_ROOT=/root/vc-raw setsid bash -c "echo \$\$ > $W/raw.pid; exec $(cat "$W/raw.cmd")" \
    > "$LOGS/raw-api$1.log" 2>&1 < /dev/null &
  sleep 1
}

fe_stack_up() {
  http_ok "$STACK/ready" && return 0
  alive stack && return 0
  STACK_VLLM_CACHE_ROOT=/root/vc-stack plan fleet dense "$W/fleet.yaml" --frontends "$FRONTENDS" \
    && cp "$W/fleet.yaml" "$LOGS/fleet-frontends.yaml"
  log "stack (engine_frontends $FRONTENDS): qwen-serve up --config $W/fleet.yaml"
  stamp stack
  setsid bash -c "echo \$\$ > $W/stack.pid; exec python3 -m serve.cli up --config $W/fleet.yaml --detach \
    --timeout 1500" > "$LOGS/stack-up.log" 2>&1 < /dev/null &
  sleep 1
}

fe_up() {
  [ -d /root/vc-raw ] && echo "compile cache /root/vc-raw present" || echo "compile cache /root/vc-raw cold"
  [ -d /root/vc-stack ] && echo "compile cache /root/vc-stack present" || echo "compile cache /root/vc-stack cold"
  fe_raw_up 1 && fe_stack_up
}

wait_mark() {  # NAME URL PIDNAME: wait_ready, then record the time to ready since the server's start
  wait_ready "$1" "$2" "$3"; local r=$?
  [ $r -eq 0 ] && echo "{\"server\": \"$1\", \"ready_s\": $(since "$1")}" >> "$RES/ready.jsonl"
  return $r
}

fe_stack_wait() {  # like wait_ready, but fails at once when the engine replica's start raised
  local t=$SECONDS
  while [ "$(left)" -gt 5 ]; do
    if http_ok "$STACK/ready"; then
      log "stack ready (waited $((SECONDS - t)) s here)"
      echo "{\"server\": \"stack\", \"ready_s\": $(since stack)}" >> "$RES/ready.jsonl"; return 0
    fi
    if grep -qs -E "Traceback|engine frontend" /tmp/ray/session_latest/logs/serve/replica_*engine*.log; then
      log "stack: the engine replica failed to start"; return 2
    fi
    if ! alive stack && ! http_ok "$STACK/ready"; then log "qwen-serve up exited without a ready stack"; return 2; fi
    sleep 3
  done
  log "stack not ready yet (out of time in this call)"; return 1
}

fe_ready() {
  wait_mark "raw-$(cat "$W/raw.api")" "$RAW/v1/models" raw; local r=$?; [ $r -ne 0 ] && return $r
  fe_stack_wait; r=$?; [ $r -ne 0 ] && return $r
  python3 -c 'import sys,urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1]+"/v1/status", timeout=10).read().decode())' \
    "$STACK" > "$RES/status-ready.json"
  nvidia-smi > "$LOGS/nvidia-smi-ready.txt" 2>&1; return 0
}

fe_switch_raw() {  # API_SERVERS: replace raw vLLM by one with that many API servers
  raw_down; sleep 2; fe_raw_up "$1"
}

fe_raw_ready() { wait_mark "raw-$(cat "$W/raw.api")" "$RAW/v1/models" raw; }

pids_by() { pgrep -f "$1" | tr '\n' ' '; }

fe_compare() {  # NAME STREAMS PROMPTS ROUNDS WARMUP SEED [profile]: stack vs the raw vLLM now running
  local name=$1 d=$RES/$1 prof=$RES/profile-$1 pids=() who p
  mkdir -p "$d"
  local raw_label; raw_label="raw-api$(cat "$W/raw.api")"
  if [ "${7:-}" = profile ]; then
    mkdir -p "$prof"
    declare -A roles=(
      [router]="$(pids_by "ServeReplica:qwen-serve:router")" [replica]="$(pids_by "ServeReplica:qwen-serve:engine-")"
      [frontend]="$(pids_by "qwen-frontend:")" [rayworker]="$(pids_by "ray::RayWorkerProc")"
      [enginecore]="$(pids_by "VLLM::EngineCore")" [rawapi]="$(cat "$W/raw.pid") $(pids_by "VLLM::APIServer")")
    for who in "${!roles[@]}"; do echo "$who: ${roles[$who]}"; done | tee "$prof/pids.txt"
    ps -eo pid,ppid,args | cut -c1-160 > "$prof/ps.txt"
    for who in "${!roles[@]}"; do
      for p in ${roles[$who]}; do
        py-spy record -p "$p" -r 40 -d 900 --nonblocking -f raw -o "$prof/$who-$p.folded" \
          > "$prof/py-spy-$who-$p.log" 2>&1 & pids+=($!)
      done
    done
  fi
  python3 bench/gpu/cpumon.py run "$d/cpu.jsonl" & local mon=$!
  log "compare $name: stack vs $raw_label, $2 streams, $3 prompts, $4 rounds, seed $6"
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli compare --a-base-url "$STACK" --a-label stack --a-model qwen2.5-7b \
    --b-base-url "$RAW" --b-label "$raw_label" --b-model qwen2.5-7b --dataset random --random-input-len 512 \
    --random-output-len 256 --ignore-eos --tokenizer "$MODELS/qwen2.5-7b-instruct" --percentiles 50,90,99 \
    --no-progress --seed "$6" --num-prompts "$3" --max-concurrency "$2" --rounds "$4" --warmup "$5" \
    --metadata "model=dense" "load=$name" "frontends=$FRONTENDS" "raw=$raw_label" --output "$d" 2>&1 \
    | grep -v "^\[transformers\]" | tail -n 40 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  kill -INT "$mon" 2>/dev/null
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
  sleep 2
  python3 bench/gpu/cpumon.py summarize "$d/cpu.jsonl" "$d/cpu.json" 10 | head -n 16 | tee -a "$LOGS/run.log"
  gzip -f "$d/cpu.jsonl"
  return "$rc"
}

fe_diag() {  # STREAMS PROMPTS SEED: the replica's own in-process vLLM app (no router) vs raw vLLM, profiled
  local d=$RES/diag-inreplica prof=$RES/profile-diag-inreplica url pids=() p who
  url=$(python3 -c 'import json,sys,urllib.request as u; e=json.load(u.urlopen(sys.argv[1]+"/v1/status"))["endpoints"]; print(next(iter(e.values()))[0]["url"])' "$STACK")
  mkdir -p "$d" "$prof"
  declare -A roles=([replica]="$(pids_by "ServeReplica:qwen-serve:engine-")" [rawapi]="$(cat "$W/raw.pid")"
    [enginecore]="$(pids_by "VLLM::EngineCore")" [rayworker]="$(pids_by "ray::RayWorkerProc")")
  for who in "${!roles[@]}"; do echo "$who: ${roles[$who]}"; done | tee "$prof/pids.txt"
  ps -eo pid,ppid,args | cut -c1-160 > "$prof/ps.txt"
  for who in "${!roles[@]}"; do for p in ${roles[$who]}; do
    py-spy record -p "$p" -r 40 -d 900 --nonblocking -f raw -o "$prof/$who-$p.folded" > /dev/null 2>&1 & pids+=($!)
  done; done
  python3 bench/gpu/cpumon.py run "$d/cpu.jsonl" & local mon=$!
  log "diag: replica in-process app $url vs raw-api1, $1 streams, $2 prompts, 1 round"
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli compare --a-base-url "$url" --a-label replica-app --a-model qwen2.5-7b \
    --b-base-url "$RAW" --b-label raw-api1 --b-model qwen2.5-7b --dataset random --random-input-len 512 \
    --random-output-len 256 --ignore-eos --tokenizer "$MODELS/qwen2.5-7b-instruct" --percentiles 50,90,99 \
    --no-progress --seed "$3" --num-prompts "$2" --max-concurrency "$1" --rounds 1 --warmup 32 \
    --metadata "model=dense" "load=diag-inreplica" --output "$d" 2>&1 | grep -v "^\[transformers\]" | tail -n 30 \
    | tee "$LOGS/diag-inreplica.log"
  local rc=${PIPESTATUS[0]}
  kill -INT "$mon" 2>/dev/null; for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done; sleep 2
  python3 bench/gpu/cpumon.py summarize "$d/cpu.jsonl" "$d/cpu.json" 10 | head -n 12 | tee -a "$LOGS/run.log"
  gzip -f "$d/cpu.jsonl"; return "$rc"
}

fe_startup4() {  # time to ready of four 7B replicas sharing the GPU (the torch.distributed port race)
  stack_down dense; raw_down; gpu_free
  STACK_VLLM_CACHE_ROOT=/root/vc-stack plan fleet dense "$W/fleet4.yaml" --replicas 4 && cp "$W/fleet4.yaml" "$LOGS/"
  log "stack of four 7B replicas: qwen-serve up --config $W/fleet4.yaml (compile cache /root/vc-stack warm)"
  stamp stack4
  setsid bash -c "echo \$\$ > $W/stack.pid; exec python3 -m serve.cli up --config $W/fleet4.yaml --detach \
    --timeout 1500" > "$LOGS/stack4-up.log" 2>&1 < /dev/null &
  sleep 1
}

fe_startup4_ready() {
  local t=$SECONDS
  while [ "$(left)" -gt 5 ]; do
    if python3 - "$STACK" <<'EOF'
import json, sys, urllib.request as u
try:
    eps = json.load(u.urlopen(sys.argv[1] + "/v1/status", timeout=3))["endpoints"]
except Exception:
    sys.exit(1)
sys.exit(0 if len(eps.get("qwen2.5-7b", [])) >= 4 else 1)
EOF
    then
      echo "{\"server\": \"stack-4-replicas\", \"ready_s\": $(since stack4)}" >> "$RES/ready.jsonl"
      log "four replicas ready after $(since stack4) s (waited $((SECONDS - t)) s here)"
      save_ray_logs startup4; grep -h -c "EADDRINUSE" "$LOGS"/ray-startup4/* 2>/dev/null | paste -sd+ | bc \
        > "$RES/startup4-eaddrinuse.txt" 2>/dev/null
      return 0
    fi
    sleep 3
  done
  log "four replicas not ready yet (out of time in this call)"; return 1
}

fe_done() { save_ray_logs final; cp "$RES/ready.jsonl" "$OUT/" 2>/dev/null; return 0; }

STEP_LIST=(
  "setup 60 setup"
  "up 20 fe_up"
  "ready 60 fe_ready"
  "c64 80 fe_compare c64 64 1024 2 64 641"
  "c1 45 fe_compare c1 1 16 2 2 11"
  "diag-inreplica 140 fe_diag 1000 2000 901"
  "c1000-default 270 fe_compare c1000-default 1000 4000 2 32 1001 profile"
  "c1000-default-b 260 fe_compare c1000-default-b 1000 4000 2 32 1004"
  "raw-api4 20 fe_switch_raw 4"
  "raw-api4-ready 60 fe_raw_ready"
  "c1000-api4 270 fe_compare c1000-api4 1000 4000 2 32 1002 profile"
  "c1000-api4-b 260 fe_compare c1000-api4-b 1000 4000 2 32 1003"
  "startup4 120 fe_startup4"
  "startup4-ready 60 fe_startup4_ready"
  "summary 10 fe_done"
)

case "${1:-}" in
  go) cmd_go ;;
  *) sed -n 2,13p "$0"; exit 2 ;;
esac
