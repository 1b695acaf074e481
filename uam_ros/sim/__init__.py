"""MuJoCo tabletop simulation (no ROS): scene composition, language tasks, the world, scripted experts.

- ``scene``: the MjSpec scene from a robot YAML (robosuite's bundled MJCF + meshes), joint-limit check.
- ``tasks``: six language tasks, their success predicates, seeded train/held-out episode sampling.
- ``world``: ``SimWorld`` -- step, joint targets, joint states in YAML order, rendering, success.
- ``expert``: scripted experts (damped-least-squares IK on MuJoCo Jacobians) and ``run_expert_episode``.

Without a display, MuJoCo's rendering backend defaults to EGL (uam_ros/__init__.py; set MUJOCO_GL to
override).
"""
