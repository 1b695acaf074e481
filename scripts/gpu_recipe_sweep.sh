#!/usr/bin/env bash
# The default recipe's second phase (G2: reach + recovery episodes, goal pointer, fresh weights) as a
# seed sweep on one GPU machine, next to the same recipe at several times the compute -- the comparison
# this 2-core CPU cannot afford (docs/training_notes.md, experiment 6). One script, so it runs as one
# device call: it collects the data there (16 cores), trains every run concurrently on the GPU, and
# evaluates every checkpoint (and the shipped model, as the renderer check) on 100 unseen layouts.
# On one H100 the default settings took 313 s, data collection included.
#
#   OUT=/tmp/sweep XFER=.xfer bash scripts/gpu_recipe_sweep.sh
#
# Needs python3 with torch (CUDA), numpy, pyyaml, safetensors, opencv, matplotlib; MuJoCo wheels in
# .whl/, EGL libraries as .deb in .gl/ (only where the machine lacks them), robosuite's Panda assets as
# $XFER/robosuite_panda.tar.xz, and the phase-1 checkpoint (E3) as $XFER/E3 for the recovery episodes.
# Every stage checks the clock (SWEEP_BUDGET_S, default 570 s) and writes what it has to $OUT, so a
# cut-off run still returns its finished evaluations. Summary: $OUT/sweep.json.
set -uo pipefail
T0=$SECONDS
OUT="${OUT:-/tmp/sweep}"
X="${XFER:-.xfer}"
BUDGET="${SWEEP_BUDGET_S:-570}"
SEEDS="${SWEEP_SEEDS:-0 1 2}"
EPISODES="${SWEEP_EPISODES:-300}"       # expert episodes, seeds 0.. (the recipe: 300)
RECOVERY="${SWEEP_RECOVERY:-$EPISODES}"  # recovery episodes, seeds $EPISODES.. (the recipe: 300)
KINDS="${SWEEP_KINDS:-base big}"        # base: the recipe's 1500 steps at batch 32; big: BIG_STEPS at BIG_BATCH
SHIPPED="${SWEEP_SHIPPED:-1}"           # 1: evaluate models/default too (same layouts: the renderer check)
EVAL_EPISODES="${SWEEP_EVAL:-100}"
EVAL_PROCS="${SWEEP_EVAL_PROCS:-6}"     # processes per evaluated checkpoint
BIG_STEPS="${SWEEP_BIG_STEPS:-2500}"
BIG_BATCH="${SWEEP_BIG_BATCH:-128}"
BASE_STEPS="${SWEEP_BASE_STEPS:-1500}"
# Runs and evaluations start clean; the data folders resume (a warm machine keeps /tmp between calls),
# and are named by their sizes so that another setting never mixes into them.
rm -rf /tmp/sweep_runs /tmp/sweep_eval
mkdir -p "$OUT"
log() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$OUT/sweep.log"; }
left() { echo $((BUDGET - (SECONDS - T0))); }

DEVICE="${SWEEP_DEVICE:-cuda}"
# --- set-up: MuJoCo (wheels), EGL (debs), the robot's meshes (a robosuite-shaped folder) ---------------
if [ -z "${SWEEP_SKIP_SETUP:-}" ]; then  # SWEEP_SKIP_SETUP=1: a machine that has them (a dry run here)
  if ! ldconfig -p | grep -q libEGL.so.1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || { log "wheel install failed"; exit 1; }
  tar -C /tmp/site -xJf "$X/robosuite_panda.tar.xz" || { log "assets failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
fi
export MUJOCO_GL=egl PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1
# `uam collect|train|eval` without the CLI's other subcommands (they import ROS, which is not there)
UAM=(python3 -c 'import argparse, importlib, sys
from uam_ros.ros_env import localhost_defaults
localhost_defaults()
module = importlib.import_module("uam_ros.train." + {"collect": "collect", "train": "trainer", "eval": "evaluate"}[sys.argv[1]])
parser = argparse.ArgumentParser(prog="uam " + sys.argv[1])
module.add_arguments(parser)
sys.exit(module.run(parser.parse_args(sys.argv[2:])))')
if ! python3 -c "import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); print('egl ok', mujoco.__version__)"; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  python3 -c "import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); print('egl ok (vendor file)')" \
    || { log "no EGL context"; exit 1; }
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/sweep.log"
log "set-up done"

# --- data: the recipe's 300 expert layouts and 300 recovery episodes (E3 acts first) ---------------------
D=/tmp/sweep_data/expert${EPISODES}_recovery${RECOVERY}
"${UAM[@]}" collect --robot franka_panda --tasks reach --episodes "$EPISODES" --seed 0 --split train \
  --out "$D/reach" --workers 15 --quiet > "$OUT/collect.log" 2>&1 || { log "collect failed"; tail -20 "$OUT/collect.log"; exit 1; }
log "expert episodes: $(ls "$D/reach" | grep -c npz)"
"${UAM[@]}" collect --robot franka_panda --tasks reach --episodes "$RECOVERY" --seed "$EPISODES" --split train \
  --recovery-from "$X/E3" --handoff 4 56 --out "$D/recovery" --workers 15 --quiet >> "$OUT/collect.log" 2>&1 \
  || { log "recovery collect failed"; tail -20 "$OUT/collect.log"; exit 1; }
log "recovery episodes: $(ls "$D/recovery" | grep -c npz)"

E=/tmp/sweep_eval
mkdir -p "$E"
# --- evaluation: EVAL_PROCS processes per checkpoint, each a slice of the 100 layouts -------------------
evaluate() {  # evaluate NAME CHECKPOINT: background jobs writing $OUT/eval/NAME_<first seed>.json
  local name=$1 ckpt=$2 per=$(( (EVAL_EPISODES + EVAL_PROCS - 1) / EVAL_PROCS )) i
  for ((i = 0; i < EVAL_EPISODES; i += per)); do
    local n=$(( EVAL_EPISODES - i < per ? EVAL_EPISODES - i : per ))
    "${UAM[@]}" eval --checkpoint "$ckpt" --tasks reach --split train --episodes "$n" --seed $((100000 + i)) \
      --n-action-steps 2 --quiet --json "$E/${name}_$((100000 + i)).json" > /dev/null 2>> "$E/eval.log" &
  done
}
[ "$SHIPPED" = 1 ] && evaluate shipped models/default/franka_panda

# --- training: every run at once on the GPU (each is launch-bound at this model size) --------------------
train() {  # train NAME SEED STEPS BATCH WARMUP
  local dir=/tmp/sweep_runs/$1
  mkdir -p "$dir"
  cat > "$dir.yaml" <<EOF
stage: action
out_dir: $dir
data:
  train: [$D/reach, $D/recovery]
  val_fraction: 0.05
robot: franka_panda
kind: uam
max_steps: $3
batch_size: $4
lr: 1.0e-3
min_lr: 1.0e-4
warmup_steps: $5
threads: 1
device: $DEVICE
amp: false
save_every: 0
model: {dorsal_stem: conv, position_init: sincos, pointer_points: 8, pointer_loss_weight: 1.0, goal_pointer_weight: 1.0}
seed: $2
EOF
  "${UAM[@]}" train --stage action --config "$dir.yaml" --quiet > "$dir.log" 2>&1 &
}
for s in $SEEDS; do
  [[ " $KINDS " == *" base "* ]] && train "base_s$s" "$s" "$BASE_STEPS" 32 100
  [[ " $KINDS " == *" big "* ]] && train "big_s$s" "$s" "$BIG_STEPS" "$BIG_BATCH" 200
done
declare -A evaluated=()
while :; do
  pending=0
  for yaml in /tmp/sweep_runs/*.yaml; do
    name=$(basename "$yaml" .yaml)
    if [ -f "/tmp/sweep_runs/$name/checkpoint/model.safetensors" ] && [ -z "${evaluated[$name]:-}" ] \
       && ! pgrep -f "config $yaml" > /dev/null; then
      evaluated[$name]=1
      log "trained $name; evaluating"
      evaluate "$name" "/tmp/sweep_runs/$name/checkpoint"
    elif [ -z "${evaluated[$name]:-}" ]; then
      pending=1
    fi
  done
  [ "$pending" = 0 ] && break
  if [ "$(left)" -lt 45 ]; then log "out of time with training still running"; break; fi
  sleep 5
done
while pgrep -f "eval --checkpoint" > /dev/null; do
  if [ "$(left)" -lt 10 ]; then log "out of time: stopping evaluations"; pkill -f "eval --checkpoint"; break; fi
  sleep 3
done

# --- summary ------------------------------------------------------------------------------------------
python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
runs = {}
for path in sorted(glob.glob("/tmp/sweep_eval/*.json")):
    name = os.path.basename(path).rsplit("_", 1)[0]
    tasks = json.load(open(path))["closed_loop"]["tasks"]["reach"]
    run = runs.setdefault(name, {"successes": 0, "episodes": 0, "wrong_object": 0})
    run["successes"] += tasks["successes"]
    run["episodes"] += tasks["episodes"]
    run["wrong_object"] += sum(1 for e in tasks["episodes_detail"]
                               if not e["success"] and not e["final_tcp_nearest_is_target"])
for name, run in sorted(runs.items()):
    run["success_rate"] = run["successes"] / max(run["episodes"], 1)
    print(f"{name:10s} {run['successes']:3d}/{run['episodes']:3d} = {run['success_rate']:.2f}  wrong object {run['wrong_object']}")
json.dump(runs, open(os.path.join(out, "sweep.json"), "w"), indent=1)
EOF
# $OUT returns at most 8 files: the evaluations, curves and logs as one archive, the big runs' checkpoints
tar -C /tmp -czf "$OUT/sweep_files.tar.gz" sweep_eval $(cd /tmp && ls -d sweep_runs/*.yaml sweep_runs/*.log sweep_runs/*/curves.* 2>/dev/null)
for s in $SEEDS; do
  [ -f "/tmp/sweep_runs/big_s$s/checkpoint/model.safetensors" ] && tar -C /tmp/sweep_runs/big_s$s -cf "$OUT/big_s$s.tar" checkpoint
done
log "done"
