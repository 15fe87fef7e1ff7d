#!/usr/bin/env bash
# The CIFAR-10 c vs c' experiment with the `cifar10` preset, end to end on one GPU, then the
# report's numbers. Aim: at most 8 minutes on one H100/H200 (docs/results/ablation.md).
#
#   benchmarks/gpu_cifar10.sh [--dry-run] [DATA_ROOT] [OUT] [-- more pipeline flags]
#
# DATA_ROOT holds cifar-10-batches-py/ (default $GAN_EDU_DATA_ROOT, else /root/data). Where it holds
# the three parts cifar10.tar.xz.part0..2 instead (how the data reaches a lent GPU machine, see
# shared/data/README.md), they are unpacked first. OUT (default ${OUT:-/tmp}/gpu_cifar10) gets the
# experiment folder and the log. --dry-run: the same command with budgets of a few steps and tiny
# widths, on the CPU (the test suite runs it on home-made files). PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
root=${1:-${GAN_EDU_DATA_ROOT:-/root/data}}
out=${2:-${OUT:-/tmp}/gpu_cifar10}
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
py=${PYTHON:-python3}

if [ ! -d "$root/cifar-10-batches-py" ] && compgen -G "$root/cifar10.tar.xz.part*" >/dev/null; then
  echo "unpacking $root/cifar10.tar.xz.part* ..."
  cat "$root"/cifar10.tar.xz.part* | tar -xJ -C "$root" --strip-components=1
fi
[ -d "$root/cifar-10-batches-py" ] || { echo "gpu_cifar10.sh: no $root/cifar-10-batches-py; expected CIFAR-10's python batches (or the three parts) there" >&2; exit 2; }

args=(pipeline --preset cifar10 --data-root "$root" --no-download --out "$out/experiment" --overwrite --no-progress)
if [ "$dry" = 1 ]; then
  args+=(--device cpu --gan-max-steps 2 --gan-epochs 1 --g-channels 4 --d-channels 4 --classifier-width 4
         --classifier-epochs 1 --classifier-max-steps 2 --classifier-batch-size 10 --synthetic-images 20)
fi
mkdir -p "$out"
if [ "$dry" = 0 ] && command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
start=$(date +%s)
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$py" -m gan_edu "${args[@]}" "$@" 2>&1 | tee "$out/log.txt"
echo "wall: $(( $(date +%s) - start )) s"
"$py" - "$out/experiment/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings"]
print(f"c {r['c_accuracy']:.4f}  c' {r['c_prime_accuracy']:.4f}  GAN-test {r['gan_test_accuracy']:.4f}  Frechet(c) {r['frechet_distance']:.3f}")
print(f"GAN steps {r['gan_steps']}; synthetic: {r['synthetic']['mode']} of {r['synthetic']['images']}; device {r['hardware']['device']} {r['hardware']['cuda'] or ''}")
print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
PY
