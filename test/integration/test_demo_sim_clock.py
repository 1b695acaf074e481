"""`uam demo` end to end with the world slowed down: uam_sim owns /clock at half real time, the
policy node runs on it (use_sim_time), and the scripted expert still solves its episode through the
ROS path -- the commands are stamped and executed on the simulated clock, or the expert's replayed
schedule would miss the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_demo_solves_an_expert_episode_on_a_half_speed_world(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "uam_ros.cli", "demo", "--model", "expert", "--tasks", "reach", "--episodes", "1",
         "--seed", "3", "--real-time-factor", "0.5", "--no-overlay", "--require-success", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=dict(os.environ, MUJOCO_GL="egl"))
    logs = "\n".join(p.read_text()[-2000:] for p in out.glob("*.log")) if out.exists() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + logs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["real_time_factor"] == 0.5
    (episode,) = metrics["episodes"]
    assert episode["success"] and episode["commands"] > 0
    # Reported in world seconds: within the task's budget (reach: 80 steps at 10 Hz), and the wall
    # time the episode took is about twice its world time (plus start-up).
    assert 0.0 < episode["time_to_success_s"] <= 8.0
    assert episode["wall_s"] > 2.0 * episode["time_to_success_s"]
