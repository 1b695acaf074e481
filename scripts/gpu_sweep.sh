#!/usr/bin/env bash
# A seed x variant sweep of the action recipe in one device call (one GPU machine, 16 cores): collect the
# recipe's data there, train every run concurrently on the GPU, probe grounding and evaluate closed loop
# there as long as the budget lasts, and return every checkpoint, so that what the budget did not
# evaluate is evaluated here. Why: the seed decides more than any setting tried on the 2-core CPU
# (docs/training_notes.md, experiments 12-13), and three seeds per setting cost it an hour each.
# Experiment 6 ran its G2 predecessor (scripts/gpu_recipe_sweep.sh as of commit 9ded971). Experiment 14
# ran it with a carried ventral (carry runs/s23/v3/checkpoint and runs/s23/data/vl_eval):
#   SWEEP_SEEDS="0 1" SWEEP_VL_EVAL=runs/s23/data/vl_eval SWEEP_VARIANTS='vl01:model.instruction_norm=true,init_from=runs/s23/v3/checkpoint,lr_scale={"ventral":0.01} ...'.
#
#   OUT=/tmp/sweep XFER=.xfer bash scripts/gpu_sweep.sh
#
# The recipe is experiment 11b's (reach + press, each layout recorded once per named object, frame 0
# x100, goal pointer 5, word FiLM, 1800 steps, fresh weights), with SWEEP_RECOVERY recovery reach
# episodes from the shipped model (experiment 13 ran 300 while C12 was shipped, and 2 steps per chunk;
# `uam recipe --preset no_vl` is the "norm" variant without them; the default preset starts from a VL-pretrained ventral, as experiment 14's variants do). SWEEP_VARIANTS lists "name:set,set" entries, each set a `uam train --set` on top of it
# ("base:" is the recipe itself; a variant may start from a carried ventral checkpoint, e.g.
# 'vl01:init_from=runs/v3/checkpoint,lr_scale={"ventral":0.01}'). SWEEP_VL_EVAL: a folder of held-out VL
# pairs; each run's VQA accuracy on them is evaluated first (retention = that / the ventral's own). Needs python3 with torch (CUDA), numpy, pyyaml, safetensors, opencv,
# matplotlib; MuJoCo wheels in .whl/, EGL libraries as .deb in .gl/ (used only where the machine lacks
# them), robosuite's Panda assets as $XFER/robosuite_panda.tar.xz. Every stage checks the clock
# (SWEEP_BUDGET_S); a cut-off run still returns its checkpoints and the evaluation slices it finished.
# $OUT: evals.tar.gz (sweep.log, sweep.json: the summary, <run>.json: each run's merged evaluation,
# every slice JSON, curves, logs) and one
# <run>.tar per checkpoint (at most 6 runs: what comes back is 8 files, 64 MiB).
set -uo pipefail
T0=$SECONDS
OUT="${OUT:-/tmp/sweep}"
X="${XFER:-.xfer}"
BUDGET="${SWEEP_BUDGET_S:-540}"
SEEDS="${SWEEP_SEEDS:-0 1 2}"
VARIANTS="${SWEEP_VARIANTS:-base: norm:model.instruction_norm=true}"
LAYOUTS="${SWEEP_LAYOUTS:-300}"        # layouts per task, each recorded once per named object
RECOVERY="${SWEEP_RECOVERY:-0}"        # recovery reach episodes (seeds $LAYOUTS..), the shipped model acting first
STEPS="${SWEEP_STEPS:-1800}"
EVAL_EPISODES="${SWEEP_EVAL:-100}"     # test layouts per task (seeds 100000..)
REPLAN="${SWEEP_REPLAN:-8}"            # targets executed per chunk in the evaluation (the shipped model's horizon)
SLICE="${SWEEP_SLICE:-20}"             # episodes per evaluation job: the unit a cut-off run keeps
WORKERS="${SWEEP_WORKERS:-15}"
VL_EVAL="${SWEEP_VL_EVAL:-}"           # held-out VL pairs: one VQA job per run (none: skip)
DEVICE="${SWEEP_DEVICE:-cuda}"
R=/tmp/sweep_runs E=/tmp/sweep_eval L=/tmp/sweep_logs D=/tmp/sweep_data/l${LAYOUTS}_r${RECOVERY}
rm -rf "$R" "$E" "$L"  # runs and evaluations start clean; the data resume (a warm machine keeps /tmp)
mkdir -p "$OUT" "$R" "$E" "$L"
log() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$L/sweep.log"; }
left() { echo $((BUDGET - (SECONDS - T0))); }

# --- set-up: MuJoCo (wheels), EGL (debs), the robot's meshes (a robosuite-shaped folder) ---------------
if [ -z "${SWEEP_SKIP_SETUP:-}" ]; then  # SWEEP_SKIP_SETUP=1: a machine that has them (a dry run here)
  if ! ldconfig -p | grep -q libEGL.so.1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || { log "wheel install failed"; exit 1; }
  tar -C /tmp/site -xJf "$X/robosuite_panda.tar.xz" || { log "assets failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
fi
export MUJOCO_GL=egl PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1
PY="${SWEEP_PYTHON:-python3}"
# `uam collect|train|eval` without the CLI's other subcommands (they import ROS, which is not there)
UAM=("$PY" -c 'import argparse, importlib, sys
from uam_ros.ros_env import localhost_defaults
localhost_defaults()
module = importlib.import_module("uam_ros.train." + {"collect": "collect", "train": "trainer", "eval": "evaluate"}[sys.argv[1]])
parser = argparse.ArgumentParser(prog="uam " + sys.argv[1])
module.add_arguments(parser)
sys.exit(module.run(parser.parse_args(sys.argv[2:])))')
if ! "$PY" -c "import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); print('egl ok', mujoco.__version__)"; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  "$PY" -c "import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); print('egl ok (vendor file)')" \
    || { log "no EGL context"; exit 1; }
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee -a "$L/sweep.log"
log "set-up done"

# --- data (experiment 11b's): reach and press once per named object, recovery reach ------------------------
collect() {  # collect NAME ARGS...: resumes a folder a warm machine kept
  "${UAM[@]}" collect --robot franka_panda --split train --out "$D/$1" --workers "$WORKERS" --quiet "${@:2}" \
    >> "$L/collect.log" 2>&1 || { log "collect $1 failed"; tail -20 "$L/collect.log"; exit 1; }
  log "$1: $(ls "$D/$1" | grep -c npz) episodes"
}
collect reach_all_targets --tasks reach --episodes "$LAYOUTS" --seed 0 --all-targets
collect press_all_targets --tasks press --episodes "$LAYOUTS" --seed 0 --all-targets
TRAIN_DATA="$D/reach_all_targets,$D/press_all_targets"
if [ "$RECOVERY" -gt 0 ]; then
  collect recovery_reach --tasks reach --episodes "$RECOVERY" --seed "$LAYOUTS" \
    --recovery-from models/default/franka_panda --handoff 4 56 --policy-steps 2
  TRAIN_DATA="$TRAIN_DATA,$D/recovery_reach"
fi

# --- training: every run at once on the GPU (each is launch-bound at this model size) --------------------
RUNS=()
for entry in $VARIANTS; do
  variant=${entry%%:*} sets=${entry#*:}
  extra=()
  IFS=, read -ra pairs <<< "$sets"
  for pair in "${pairs[@]}"; do [ -n "$pair" ] && extra+=(--set "$pair"); done
  for seed in $SEEDS; do
    name=${variant}_s$seed
    RUNS+=("$name")
    echo "${variant} seed ${seed}: ${extra[*]}" >> "$L/sweep.log"
    "${UAM[@]}" train --stage action --config config/train/action.yaml --out-dir "$R/$name" --seed "$seed" \
      --max-steps "$STEPS" --batch-size 32 --lr 1e-3 --set init_from="''" --set min_lr=1e-4 \
      --set warmup_steps=100 --set threads=1 --set device="$DEVICE" --set amp=false \
      --set "data.train=[$TRAIN_DATA]" \
      --set data.first_steps=1 --set data.first_steps_repeat=100 --set model.dorsal_stem=conv \
      --set model.position_init=sincos --set model.pointer_points=8 --set model.pointer_loss_weight=1.0 \
      --set model.goal_pointer_weight=5.0 --set model.language_film=true --set model.film_source=words \
      "${extra[@]}" --quiet > "$R/$name.log" 2>&1 &
  done
done
wait  # every training process
for name in "${RUNS[@]}"; do
  if [ -f "$R/$name/checkpoint/model.safetensors" ]; then log "trained $name"; else log "$name failed"; tail -5 "$R/$name.log"; fi
done

# --- evaluation: the grounding probe, then closed loop in slices of SLICE episodes, round robin -----------
jobs_file=$E/jobs
for name in "${RUNS[@]}"; do
  [ -n "$VL_EVAL" ] && [ -f "$R/$name/checkpoint/model.safetensors" ] && echo "$name vqa vl 0 0" >> "$jobs_file"
done
for name in "${RUNS[@]}"; do
  [ -f "$R/$name/checkpoint/model.safetensors" ] && echo "$name grounding reach 100000 100" >> "$jobs_file"
done
for ((first = 0; first < EVAL_EPISODES; first += SLICE)); do
  for task in reach press; do
    for name in "${RUNS[@]}"; do
      [ -f "$R/$name/checkpoint/model.safetensors" ] && echo "$name closed $task $((100000 + first)) $SLICE" >> "$jobs_file"
    done
  done
done
export R E PY REPLAN VL_EVAL
run_job() {  # NAME MODE TASK SEED N (a grounding job: uam eval --grounding; a vqa job: uam eval --vl)
  local mode=(--tasks "$3" --n-action-steps "$REPLAN")
  [ "$2" = grounding ] && mode=(--grounding)
  [ "$2" = vqa ] && mode=(--vl "$VL_EVAL")
  "${UAM[@]}" eval --checkpoint "$R/$1/checkpoint" --split train --episodes "$5" --seed "$4" "${mode[@]}" \
    --quiet --json "$E/$1_$2_$3_$4.json.part" > /dev/null 2>> "$E/eval.log" && mv "$E/$1_$2_$3_$4.json.part" "$E/$1_$2_$3_$4.json"
}
export -f run_job
export UAM_CODE="${UAM[2]}"
left_now=$(left)
if [ "$left_now" -gt 20 ]; then
  log "evaluating for up to $((left_now - 15)) s"
  timeout $((left_now - 15)) xargs -P 16 -L 1 bash -c 'UAM=("$PY" -c "$UAM_CODE"); run_job "$@"' _ < "$jobs_file"
fi
log "evaluation slices done: $(ls "$E" | grep -c '\.json$') of $(wc -l < "$jobs_file")"

# --- summary ------------------------------------------------------------------------------------------
# Each run's slices merged into one `uam eval --json`-shaped file (so `uam compare` pairs two runs), and
# the failure kinds counted by the evaluation report's own task_rows.
"$PY" - "$L" "$E" <<'EOF'
import glob, json, os, sys
from uam_ros.train.eval_report import task_rows
out, evals = sys.argv[1:]
runs, grounding, vqa = {}, {}, {}
for path in sorted(glob.glob(os.path.join(evals, "*.json"))):
    name, mode, task, _ = os.path.basename(path)[: -len(".json")].rsplit("_", 3)
    data = json.load(open(path))
    if mode == "vqa":
        vqa[name] = {key: data["vqa"][key] for key in ("accuracy", "pairs")}
        continue
    if mode == "grounding":
        grounding[name] = {key: data["grounding"][key] for key in ("accuracy", "distinct", "layouts")}
        continue
    result = data["closed_loop"]["tasks"][task]
    cell = runs.setdefault(name, {}).setdefault(task, {"successes": 0, "episodes": 0, "episodes_detail": []})
    for key in ("successes", "episodes", "episodes_detail"):
        cell[key] += result[key]
summary = {}
for name in sorted(set(runs) | set(grounding) | set(vqa)):
    tasks = runs.get(name, {})
    json.dump({"closed_loop": {"tasks": tasks}}, open(os.path.join(out, f"{name}.json"), "w"))
    rows = {row["task"]: row for row in task_rows({"tasks": tasks})}
    summary[name] = {**{t: {k: r[k] for k in ("successes", "episodes", "wrong_object", "near_miss")}
                        for t, r in rows.items()}, "grounding": grounding.get(name, {}),
                     "vqa": vqa.get(name, {})}
    cells = " ".join(f"{t} {rows[t]['successes']}/{rows[t]['episodes']} (wrong {rows[t]['wrong_object']})"
                     for t in ("reach", "press") if t in rows)
    g = grounding.get(name, {})
    v = vqa.get(name, {})
    print(f"{name:12s} {cells}  grounding {g.get('accuracy', '-')} / {g.get('distinct', '-')}  vqa {v.get('accuracy', '-')}")
json.dump(summary, open(os.path.join(out, "sweep.json"), "w"), indent=1)
EOF
log "done"
tar -C /tmp -czf "$OUT/evals.tar.gz" sweep_logs sweep_eval $(cd /tmp && ls -d sweep_runs/*.log sweep_runs/*/curves.* sweep_runs/*/train_config.yaml 2>/dev/null)
for name in "${RUNS[@]:0:6}"; do
  [ -f "$R/$name/checkpoint/model.safetensors" ] && tar -C "$R/$name" -cf "$OUT/$name.tar" checkpoint
done
