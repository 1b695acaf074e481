"""Keep DDS on this machine unless the user says otherwise.

Every entry point that starts nodes (CLI, demo, tests) calls localhost_defaults() before rclpy
initialises, so a policy run never discovers, or talks to, another host by accident.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping


def localhost_defaults(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    env = os.environ if env is None else env
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not env.get("AMENT_PREFIX_PATH"):
        # pip-installed ROS wheels put their ament index under the venv's prefix.
        env["AMENT_PREFIX_PATH"] = sys.prefix
    return env
