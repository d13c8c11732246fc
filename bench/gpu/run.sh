#!/usr/bin/env bash
# Engine benchmark on an NVIDIA GPU, finishing within ten minutes. It runs bench/run.ts through
# Dawn on the system Vulkan driver (the engine and the TensorFlow.js baseline), then PyTorch eager
# fp32 (GPT2LMHeadModel, random weights) on the same shapes. It prints the ratios and the
# fraction of the GPU's fp32 peak that each implementation reaches. Last, it repairs the demo
# model on the GPU and checks that the export loads into transformers with the same perplexity
# (bench/gpu/check_export.py).
#
# It installs nothing. It needs Node.js 20 or later with `npm ci` done in this checkout (NODE may
# name a node binary that is not on PATH), the Vulkan loader (libvulkan.so.1) with NVIDIA's
# Vulkan driver, and a python3 with PyTorch (CUDA) and transformers.
# NOTE: not yet run on a GPU; the stage time limits (330 s, 240 s and the export stages) are estimates.
#
# Usage: bench/gpu/run.sh [--batch B] [--seq-len T] [--iterations N] [--peak-tflops X]
#                         [--config tiny,gpt2-small] [--skip-tfjs] [--out DIR]
set -euo pipefail

cd "$(dirname "$0")/../.."

batch=8
seq_len=512
iterations=10
peak_tflops=""
skip_tfjs=""
configs="tiny,gpt2-small"
out="bench/results/gpu-$(date +%Y%m%d-%H%M%S)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --batch) batch="$2"; shift 2 ;;
    --seq-len) seq_len="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    --peak-tflops) peak_tflops="$2"; shift 2 ;;
    --config) configs="$2"; shift 2 ;;
    --skip-tfjs) skip_tfjs="--skip-tfjs"; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "error: unknown option $1; see --help" >&2; exit 64 ;;
  esac
done

fail() {
  echo "error: $*" >&2
  exit 1
}

# Prerequisites, checked before any GPU time is spent.
python3 -c 'import torch, transformers' 2>/dev/null \
  || fail "python3 cannot import torch and transformers. Use a Python environment that has PyTorch with CUDA and Hugging Face transformers; this script installs nothing."
node="${NODE:-node}"
command -v "$node" >/dev/null || fail "Node.js not found. Install Node.js 20 or later, or set NODE to its binary."
node_major="$("$node" -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 20 ]] || fail "Node.js $("$node" --version) is too old; version 20 or later is needed."
[[ -d node_modules/webgpu && -d node_modules/@tensorflow/tfjs-backend-webgpu ]] \
  || fail "node_modules is incomplete. Run 'npm ci' in $(pwd) first."
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' \
  || fail "the Vulkan loader libvulkan.so.1 is not installed (Debian and Ubuntu package: libvulkan1)."

# Container images often mount NVIDIA's Vulkan driver manifest outside the loader's search path.
if [[ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  for manifest in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    if [[ -f "$manifest" ]]; then
      export VK_ICD_FILENAMES="$manifest"
      echo "Vulkan driver manifest: $manifest"
      break
    fi
  done
fi

mkdir -p "$out"
echo "results in $out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

echo
echo "== Engine and TensorFlow.js through Dawn (Vulkan), batch $batch x sequence length $seq_len"
# A loss mismatch with tfjs (exit code 1) still writes the JSON, and so the PyTorch stage below
# runs whenever that file exists.
set +e
IREPAIR_VULKAN=system timeout 330 "$node" bin/run-ts.js bench/run.ts \
  --config "$configs" --batch "$batch" --seq-len "$seq_len" --iterations "$iterations" $skip_tfjs --json "$out/engine.json" 2>&1 | tee "$out/engine.log"
engine_status=${PIPESTATUS[0]}
set -e
[[ -f "$out/engine.json" ]] || fail "the engine benchmark exited with status $engine_status and wrote no results; see $out/engine.log."
adapter="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["machine"]["adapter"])' "$out/engine.json")"
if [[ "${adapter,,}" == *swiftshader* || "${adapter,,}" == *llvmpipe* ]]; then
  fail "Dawn used the software adapter '$adapter', not the GPU. Check the NVIDIA Vulkan driver (vulkaninfo --summary) and VK_ICD_FILENAMES."
fi

echo
echo "== PyTorch eager fp32 on CUDA, same shapes"
peak_option=()
[[ -n "$peak_tflops" ]] && peak_option=(--peak-tflops "$peak_tflops")
set +e
PYTHONUNBUFFERED=1 timeout 240 python3 bench/gpu/pytorch_gpt2.py --engine-results "$out/engine.json" --iterations "$iterations" \
  "${peak_option[@]}" --json "$out/pytorch.json" 2>&1 | tee "$out/pytorch.log"
torch_status=${PIPESTATUS[0]}
set -e

echo
echo "== Export check: irepair repair on the demo model, then the export loaded into transformers"
# A model repaired on the GPU must load into Hugging Face transformers and give the perplexity
# that irepair eval --ppl gives, and only the blocks run.json lists may differ from the input.
set +e
IREPAIR_VULKAN=system timeout 120 "$node" bin/irepair.js repair --model public/demo --data public/demo/repair.jsonl \
  --out "$out/export" --method irepair --steps 5 --seed 1 --quiet 2>&1 | tee "$out/export.log" \
  && IREPAIR_VULKAN=system timeout 60 "$node" bin/irepair.js eval --model "$out/export" --ppl public/demo/clean.txt > "$out/export-ppl.json" \
  && PYTHONUNBUFFERED=1 timeout 120 python3 bench/gpu/check_export.py --original public/demo --exported "$out/export" \
    --text public/demo/clean.txt --engine-ppl "$out/export-ppl.json" 2>&1 | tee -a "$out/export.log"
export_status=${PIPESTATUS[0]}
set -e

[[ "$torch_status" -eq 0 ]] || fail "the PyTorch baseline exited with status $torch_status; see $out/pytorch.log."
[[ "$engine_status" -eq 0 ]] || fail "the engine benchmark exited with status $engine_status (a loss mismatch with tfjs makes the tfjs ratios invalid); see $out/engine.log."
[[ "$export_status" -eq 0 ]] || fail "the export check failed; see $out/export.log."
