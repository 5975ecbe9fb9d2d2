#!/usr/bin/env bash
# Replica policies on this CPU with real tiny vLLM engines (issue 9): round-robin vs prefix affinity on a
# workload WITHOUT shared prefixes (random) and one with (shared-prefix), ABBA rounds, one stack.
#   bash bench/replicas_cpu/run.sh      # ~10 min on 2 cores; writes bench/results/replicas_cpu/
# Two deployments of the same tiny Qwen3 (2 replicas each, 4 engines): c-rr (round_robin), c-aff
# (prefix_affinity). On 2 cores the active deployment's two engines share the cores with the router and the
# load tester, so only large differences mean anything; the H200 run is bench/gpu/replicas.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python; OUT=bench/results/replicas_cpu; PORT=${PORT:-8031}
MODEL=${QWEN_SERVE_MODELS:-$HOME/.cache/qwen-serve/tiny}/qwen3-general
mkdir -p "$OUT"
dep() { printf '  - {name: %s, variant: qwen3-0.6b, tiny: qwen3, model_path: %s, accelerator: {type: cpu}, replicas: 2, replica_routing: {policy: %s}, max_ongoing_requests: 64, engine: {max_model_len: 2048, enforce_eager: true, dtype: bfloat16}}\n' "$1" "$MODEL" "$2"; }
{
  printf 'name: replicas-cpu\nhost: 127.0.0.1\nport: %s\nray: {num_cpus: 10, env: {VLLM_CPU_KVCACHE_SPACE: "1"}}\ndeployments:\n' "$PORT"
  dep c-rr round_robin; dep c-aff prefix_affinity
  printf 'router: {tasks: {general: {candidates: [c-aff]}}}\n'
} > "$OUT/fleet.yaml"
$PY -m serve.cli up --config "$OUT/fleet.yaml" --port "$PORT" --detach --timeout 900
trap '$PY -m serve.cli down --timeout 10 >/dev/null 2>&1 || true' EXIT
URL=http://127.0.0.1:$PORT
common=(--a-base-url "$URL" --a-label round-robin --a-model c-rr --b-base-url "$URL" --b-label affinity
        --b-model c-aff --ignore-eos --tokenizer "$MODEL" --percentiles 50,90,99 --seed 0 --no-progress)
$PY -m loadtest.cli compare "${common[@]}" --dataset random --random-input-len 256 --random-output-len 32 \
  --num-prompts 160 --max-concurrency 16 --warmup 8 --rounds 4 --output "$OUT/random" | tail -n 25
$PY -m loadtest.cli compare "${common[@]}" --dataset shared-prefix --num-prefixes 8 --prefix-len 1024 \
  --random-input-len 32 --random-output-len 16 --num-prompts 160 --max-concurrency 16 --warmup 8 --rounds 2 \
  --output "$OUT/shared-prefix" | tail -n 25
curl -s "$URL/v1/status" > "$OUT/status-after.json"
