#!/usr/bin/env bash
# ON THE DEVICE, after bench/gpu/replicas.sh: the tiny Qwen2.5-VL under raw `vllm serve` on the GPU and one image
# request (the check of issue 7 without Ray), plus the reason the stack's VL replica failed.
set -uo pipefail
export PYTHONPATH=/root/extra-vl:/root/extra:/root/site VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
grep -h -E "RuntimeError|Error:|No module" /tmp/ray/session_latest/logs/serve/replica_*qwen-vl*.log \
  /tmp/ray/session_latest/logs/worker-*.err 2>/dev/null | grep -v "_key" | sort | uniq -c | sort -rn | head -15
M=/root/bench-rep/tiny/qwen-vl
(python3 -m vllm.entrypoints.cli.main serve $M --served-model-name qwen-vl --port 8200 --gpu-memory-utilization 0.05 \
  --kv-cache-memory-bytes 1073741824 --enforce-eager --max-model-len 4096 --max-num-seqs 16 ${VL_EXTRA:-} > "$OUT/raw-vl.log" 2>&1 &)
for i in $(seq 120); do curl -sf localhost:8200/v1/models >/dev/null && break; sleep 2; done
echo "ready after ~$((i * 2)) s"
python3 - <<'EOF' | tee "$OUT/raw-vl-result.txt"
import base64, json, struct, urllib.request as u, urllib.error, zlib
def png(w, h):
    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 128)) for x in range(w)) for y in range(h))
    c = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + c(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + c(b"IDAT", zlib.compress(rows)) + c(b"IEND", b""))
url = "data:image/png;base64," + base64.b64encode(png(64, 64)).decode()
body = {"model": "qwen-vl", "max_tokens": 16, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]}]}
try:
    r = u.urlopen(u.Request("http://127.0.0.1:8200/v1/chat/completions", data=json.dumps(body).encode(),
                            headers={"content-type": "application/json"}), timeout=60)
    d = json.load(r)
    print("raw VL:", r.status, json.dumps(d.get("usage")), d["choices"][0]["finish_reason"])
except urllib.error.HTTPError as e:
    print("raw VL HTTP", e.code, e.read().decode()[:1500])
except Exception as e:  # noqa: BLE001
    print("raw VL error", repr(e)[:1500])
EOF
grep -E "Error|error" "$OUT/raw-vl.log" | head -20; tail -5 "$OUT/raw-vl.log"
