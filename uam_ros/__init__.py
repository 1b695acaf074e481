"""uam_ros: run a UAM (Unified Action Model) robot policy in real time under ROS 2.

Without a display, MuJoCo's rendering backend defaults to EGL (set MUJOCO_GL to override). It is
set here, on the package's import, because MuJoCo reads MUJOCO_GL once, when it is first imported,
and several modules import it (kinematics, the sim, the node's ~/predicted_path): a default set in
any one of them came too late when another had imported MuJoCo first (`uam eval --grounding` on a
headless machine failed so: "an OpenGL platform library has not been loaded").
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

__version__ = "0.1.0"
