#!/usr/bin/env bash
# Qwen2.5-VL on the lent H200 (issue 7): the real Qwen2.5-VL-3B config (catalog), dummy weights, the real Qwen
# tokenizer and the VL processor files, under raw `vllm serve` and through the stack, one image each. ON THE DEVICE.
#   bash bench/gpu/vl.sh     # after the bundle is unpacked (bench/gpu/run.sh stash 1..3, then setup with .gpu/c4); carry .gpu/vl
#                            # (torchvision) and .gpu/vlm (the model folder, made by bench/gpu/README.md's recipe)
set -uo pipefail
export GPU_WORK=${GPU_WORK:-/root/bench-vl}
# shellcheck source=bench/gpu/run.sh
source "$(dirname "$0")/run.sh" lib
export PYTHONPATH=/root/extra-vl:$PYTHONPATH
mkdir -p "$RES" "$LOGS" "$OUT" /root/vlm
setup >/dev/null || exit 3
[ -d /root/extra-vl/torchvision ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --target /root/extra-vl .gpu/vl/*.whl
cp -r .gpu/vlm/* /root/vlm/
M=/root/vlm/qwen2.5-vl-3b-instruct
ENG="--load-format dummy --dtype bfloat16 --max-model-len 8192 --enforce-eager --max-num-seqs 32"
( setsid python3 -m vllm.entrypoints.cli.main serve $M --served-model-name qwen-vl --port 8100 $ENG \
  --gpu-memory-utilization 0.3 > "$LOGS/raw-vl.log" 2>&1 & )
cat > "$W/fleet.yaml" <<EOF
name: gpu-vl
host: 127.0.0.1
port: 8000
deployments:
  - name: qwen-vl
    variant: qwen2.5-vl-3b-instruct
    model_path: $M
    accelerator: {type: gpu, count: 1}
    engine: {load_format: dummy, dtype: bfloat16, max_model_len: 8192, enforce_eager: true, max_num_seqs: 32,
             gpu_memory_utilization: 0.3}
router:
  default_task: general
  aliases: {auto: null}
  tasks:
    general: {candidates: [qwen-vl]}
    vision: {candidates: [qwen-vl]}
ray: {num_cpus: 16, env: {VLLM_USE_FLASHINFER_SAMPLER: "0"}}
EOF
( setsid python3 -m serve.cli up --config "$W/fleet.yaml" --detach --timeout 400 > "$LOGS/stack-up.log" 2>&1 & )
t=$SECONDS
until http_ok "$RAW/v1/models" && http_ok "$STACK/ready"; do
  [ $((SECONDS - t)) -gt 420 ] && { echo "not ready after 420 s"; break; }; sleep 3; done
echo "ready after $((SECONDS - t)) s (raw: $(http_ok "$RAW/v1/models" && echo up), stack: $(http_ok "$STACK/ready" && echo up))"
python3 bench/gpu/vl_request.py "$RAW" qwen-vl "$STACK" auto | tee "$RES/vl.json"
grep -h -E "Resolved architecture|Error" "$LOGS/raw-vl.log" | head -5
tail -n 5 "$LOGS/stack-up.log"
cp "$RES/vl.json" "$LOGS/raw-vl.log" "$W/fleet.yaml" "$OUT/" 2>/dev/null
save_ray_logs vl; (cd "$W" && tar -czf "$OUT/vl-logs.tar.gz" results)
