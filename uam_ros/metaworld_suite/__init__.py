"""Meta-World MT10 as an external suite for the UAM policy: the same comparison as on our own sim.

Meta-World's Sawyer takes end-effector (mocap) deltas; our policies output joint targets. This
package closes that gap in both directions, on Meta-World's own model and with its own success
criterion (``info["success"]``):

* demonstrations (``collect``): Meta-World's scripted policies play the task; every recorded step
  keeps the camera frame, the arm joint positions + gripper, the instruction and, as the action, the
  arm joint positions *reached* one recording step later (+ the gripper target), written with our
  DatasetWriter so ``uam train`` reads them unchanged (robot ``sawyer``, config/robots/sawyer.yaml);
* execution (``evaluate``): a joint target becomes the hand's target by forward kinematics on the
  env's own MjModel, and a PI tracker turns that into the env's mocap delta + gripper effort.

Modules: compat (MuJoCo 4 fix), tasks (MT10 names, instructions, seeds), sawyer (joint layout, FK,
gripper mapping), control (hand tracker), scene (one env: reset, render, step by joint target),
expert (scripted runs, the replay policy), collect, evaluate; ``python -m uam_ros.metaworld_suite``.
Needs requirements-metaworld.txt (installed by scripts/bootstrap.sh).
"""
