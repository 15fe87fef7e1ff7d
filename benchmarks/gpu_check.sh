#!/usr/bin/env bash
# Every GPU check of the recorded step (cuda_graph), bf16 and GPU sampling, in one call that writes
# its logs under OUT: benchmarks/gpu_check.py (recorded vs eager weights, ms per step, bf16 profile,
# onnxruntime CUDA into torch buffers), then benchmarks/train_speed.py at batch 64 and 128 against
# the canonical PyTorch DCGAN loop (fp32 eager, fp32 recorded, bf16 + channels-last recorded), then
# benchmarks/sampling.py on CUDA. About 6 minutes on one H100/H200; with --pipeline, the CIFAR-10
# c vs c' experiment with recorded steps too (benchmarks/gpu_cifar10.sh; DATA_ROOT as there).
#
#   benchmarks/gpu_check.sh [--dry-run] [--pipeline [DATA_ROOT]]
#
# OUT: $OUT/gpu_check (default /tmp/gpu_check). --dry-run: the same steps on the CPU, tiny, with
# the CPU rehearsal standing in for CUDA graphs (the test suite runs it). PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0; pipeline=0; root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --pipeline) pipeline=1; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then root=$2; shift; fi ;;
    *) echo "gpu_check.sh: unknown argument $1; expected --dry-run or --pipeline [DATA_ROOT]" >&2; exit 2 ;;
  esac
  shift
done
out=${OUT:-/tmp}/gpu_check
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
start=$(date +%s)
if [ "$dry" = 0 ] && command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
"$py" -m gan_edu doctor || echo "gpu_check: gan-edu doctor found the problems above; going on"  # versions, devices, providers that run

echo "== 1. recorded vs eager, bf16, sampling (gpu_check.py)"
"$py" benchmarks/gpu_check.py --out "$out" $([ "$dry" = 1 ] && echo --dry-run)

echo "== 2. training speed against the canonical loop (train_speed.py)"
if [ "$dry" = 1 ]; then
  speed=(--device cpu --num-images 256 --width 4 --steps 2 --warmup 5 --batch-sizes 8 --repeats 1 --workers 0)
else
  speed=(--device cuda --num-images 20000 --steps 300 --warmup 20 --batch-sizes 64,128 --repeats 1)
fi
# one run, so the three gan-edu settings share its baseline runs (and their ratios one machine state)
"$py" benchmarks/train_speed.py "${speed[@]}" --variants default,cuda-graph,cuda-graph+bf16+channels-last

echo "== 3. sampling: onnxruntime CUDA vs torch (sampling.py)"
if [ "$dry" = 1 ]; then
  "$py" benchmarks/sampling.py --quick --no-compile
else
  "$py" benchmarks/sampling.py --device cuda --no-compile --stream 0 --batch-sizes 1,64,512,4096
fi

if [ "$pipeline" = 1 ]; then
  echo "== 4. the CIFAR-10 experiment with recorded steps (gpu_cifar10.sh)"
  # the GAN budget in steps (the landed run's 31,707), so a faster step shows as a shorter run
  flags=(-- --cuda-graph --gan-max-steps 31707 --gan-max-seconds 480)
  [ "$dry" = 1 ] && flags=(-- --cuda-graph)
  OUT="$out" benchmarks/gpu_cifar10.sh $([ "$dry" = 1 ] && echo --dry-run) "${root:-${GAN_EDU_DATA_ROOT:-/root/data}}" "$out/cifar10" "${flags[@]}"
fi
echo "gpu_check: done in $(( $(date +%s) - start )) s; logs and gpu_check.json in $out"
