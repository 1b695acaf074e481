#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a GPU machine (README, "Inference backends"):
# the gpu-marked tests (CUDA inference parity, CUDA training with autocast, nccl DDP where there are
# two GPUs), the backend-choice and process-worker tests (torch runs on the GPU there by default),
# and the GPU-side benchmarks (inference backends, inference CPU cost per thread count, training
# throughput per precision). Writes the logs and results to $OUT (default: benchmarks/results/gpu).
# Needs python3 with torch (CUDA build), numpy, pyyaml, safetensors, opencv-python-headless, onnx,
# onnxruntime, matplotlib and pytest; no ROS, no simulator. Each step has its own time limit and a
# failed step does not stop the others; the exit status is non-zero if any step failed.
# GPU_CHECK_STEPS picks steps (default: "pytest backends inference_cpu train_throughput"). The steps
# node_overhead, node_overhead_31m and node_overhead_240m (not defaults: they need rclpy in $PYTHON)
# run benchmarks/node_overhead.py with the node's torch backend on the GPU against the shipped model,
# a 31 M and a 240 M-parameter one; without MuJoCo they need GPU_CHECK_SCENE, an .npz that
# node_overhead.py --scene wrote on a machine with it, and run with ~/predicted_path off.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/benchmarks/results/gpu}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
cd "$ROOT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
STEPS=" ${GPU_CHECK_STEPS:-pytest backends inference_cpu train_throughput} "
failed=0
step() {  # step NAME SECONDS CMD...: run with a limit, log to $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  [[ "$STEPS" == *" $name "* ]] || { echo "== $name: not selected"; return; }
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0))s"
  [ "$rc" -eq 0 ] || failed=1
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || failed=1
"$PYTHON" -c 'import torch, onnxruntime, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "ort", onnxruntime.__version__, onnxruntime.get_available_providers())'
step pytest "${GPU_CHECK_PYTEST_S:-120}" "$PYTHON" -m pytest -q -ra -p no:cacheprovider \
  test/unit/test_gpu.py test/unit/test_runtime_factory.py test/unit/test_process_worker.py
step backends "${GPU_CHECK_BACKENDS_S:-170}" "$PYTHON" benchmarks/backends.py --rounds 4 --iters 20 \
  --out "$OUT" --backends torch-eager torch-eager-cpu torch-compile torch-cuda-graphs ort-cpu ort-cuda tensorrt-fp16
step inference_cpu "${GPU_CHECK_INFERENCE_CPU_S:-120}" "$PYTHON" benchmarks/inference_cpu.py --out "$OUT"
step train_throughput "${GPU_CHECK_TRAIN_S:-150}" "$PYTHON" benchmarks/train_throughput.py --rounds 2 --steps 40 \
  --warmup 8 --out "$OUT" \
  --model "$("$PYTHON" -c 'import mujoco' 2>/dev/null && echo recipe || echo default)"
mujoco_or_scene=(--scene "${GPU_CHECK_SCENE:-$OUT/scene_franka_panda.npz}")
"$PYTHON" -c 'import mujoco' 2>/dev/null || mujoco_or_scene+=(--no-predicted-path)
overhead=("$PYTHON" benchmarks/node_overhead.py --out "$OUT" "${mujoco_or_scene[@]}")
step node_overhead "${GPU_CHECK_NODE_OVERHEAD_S:-150}" "${overhead[@]}" --name node_overhead
step node_overhead_31m "${GPU_CHECK_NODE_OVERHEAD_S:-150}" "${overhead[@]}" --name node_overhead_31m \
  --backends torch --model-set d_model=512 --model-set n_heads=8
step node_overhead_240m "${GPU_CHECK_NODE_OVERHEAD_S:-150}" "${overhead[@]}" --name node_overhead_240m \
  --backends torch --model-set d_model=1024 --model-set n_heads=16 --model-set vision_layers=4 \
  --model-set ventral_layers=4 --model-set dorsal_layers=4 --model-set action_layers=4
exit "$failed"
