"""Headless rendering works whichever uam_ros module imports MuJoCo first (MuJoCo reads MUJOCO_GL
once, at its first import)."""

import os
import subprocess
import sys

SCRIPT = """
import uam_ros.kinematics  # imports mujoco before anything in uam_ros.sim
import os
from uam_ros.sim.tasks import sample_episode
from uam_ros.sim.world import SimWorld
world = SimWorld("franka_panda", sample_episode("reach", "train", 0))
image = world.render("scene", 32, 32)
print(os.environ["MUJOCO_GL"], image.shape, int(image.max()))
"""


def test_rendering_without_a_display_or_mujoco_gl():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    gl, *rest = out.stdout.split()
    assert gl == "egl" and "(32, 32, 3)" in out.stdout and int(rest[-1]) > 0, out.stdout
