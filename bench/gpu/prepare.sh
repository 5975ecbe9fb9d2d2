#!/usr/bin/env bash
# Here (not on the device): build what the H200 needs for bench/gpu/run.sh, as chunks the device tool carries.
#
#   bash bench/gpu/prepare.sh        # -> .gpu/c1 .. .gpu/cN (+ .gpu/extra), git-ignored
#
# 1. the bundle builder ($BUNDLE_BUILDER, default ../shared/gpu/build_bundle.sh: not in this repository) with Ray (vLLM 0.26 + its missing deps, Ray 2.58, the two model configs
#    with the Qwen tokenizer files), unless .gpu already holds a bundle;
# 2. re-cut it into CHUNK_MB-sized chunks (default 45: one chunk, .gpu/extra and the ~6 MB working tree stay
#    under the 64 MiB a call carries; 4 calls for the 180 MB bundle);
# 3. .gpu/extra: wheels the project needs there that neither the image nor the bundle has: orjson and
#    pyahocorasick (router) and py-spy (profiling the router under load).
# Then, back to back (the machine is given back 30 s after a reply):
#   run(carry=[".gpu/c1"], command="bash bench/gpu/run.sh stash 1")            ... up to c(N-1)
#   run(carry=[".gpu/cN", ".gpu/extra"], command="bash bench/gpu/run.sh go", timeout_s=600)
#   run(command="bash bench/gpu/run.sh go", timeout_s=600)  # again while it prints CONTINUE
set -euo pipefail
cd "$(dirname "$0")/../.."
CHUNK=$(( ${CHUNK_MB:-45} * 1000000 ))
if ! ls .gpu/c*/part.* >/dev/null 2>&1; then
  builder=${BUNDLE_BUILDER:-../shared/gpu/build_bundle.sh}  # the development machine's, outside this repository
  [ -x "$builder" ] || { echo "no bundle in .gpu/c*/part.* and no bundle builder at $builder (set BUNDLE_BUILDER)" >&2; exit 1; }
  WITH_RAY=1 "$builder"
fi
tmp=$(mktemp -d)
cat $(ls .gpu/c*/part.* | sort -V) > "$tmp/bundle.tar"
cp "$(ls .gpu/c*/unpack.sh | head -1)" "$tmp/"
rm -rf .gpu/c* && split -b "$CHUNK" -d -a 2 "$tmp/bundle.tar" "$tmp/part."
i=1; for p in "$tmp"/part.*; do mkdir -p ".gpu/c$i"; mv "$p" ".gpu/c$i/"; i=$((i + 1)); done
n=$((i - 1)); cp "$tmp/unpack.sh" ".gpu/c$n/"; rm -rf "$tmp"
mkdir -p .gpu/extra
[ -f .gpu/extra/orjson-*.whl ] 2>/dev/null || python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .gpu/extra orjson==3.11.5 py-spy==0.4.1 \
  pyahocorasick==2.3.1
du -sh .gpu/* && echo "chunks: $n (stash 1..$((n - 1)), then go with .gpu/c$n and .gpu/extra)"
