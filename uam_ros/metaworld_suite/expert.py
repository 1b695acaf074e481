"""Meta-World's scripted policies, recorded as joint targets, and replayed as a Policy.

A scripted policy (metaworld.policies) reads Meta-World's privileged observation and outputs mocap
deltas. ``run_scripted`` plays it in a scene (until a few steps past its first success) and keeps the
arm's joint positions after every env step; ``joint_targets`` turns that into the policy's action
layout: target i is the arm position reached ``stride`` env steps after recording step i, plus the
gripper target of the scripted effort commanded in the last of those steps (the gripper closes when
the scripted policy closes it, never early).

``MetaWorldExpertPolicy`` is the counterpart of uam_ros.sim.expert_policy for this suite: it plays
its episode once in a private scene and replays the joint targets on their schedule through the same
FK + tracker path a learned policy's targets take. Comparing its success with the scripted policy's
own is the check that the conversion loses nothing. Build it through the runtime factory::

    python://uam_ros.metaworld_suite.expert:MetaWorldExpertPolicy?task=reach-v3&seed=100000
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from uam_ros.metaworld_suite.scene import MetaWorldScene
from uam_ros.metaworld_suite.tasks import env_name
from uam_ros.runtime.policy import ActionChunk, Observation


@dataclass
class ScriptedRun:
    """One scripted episode at env-step resolution (T env steps)."""

    task: str
    seed: int
    success: bool
    arm_positions: np.ndarray  # (T + 1, arm_dof): before step 0 .. after step T-1
    efforts: np.ndarray  # (T,) scripted gripper effort of each step, clipped to [-1, 1]
    actions: np.ndarray  # (T, 4) the scripted actions as sent to the env
    success_step: int | None = None  # env steps until the first success (None: no success)

    @property
    def env_steps(self) -> int:
        return int(self.actions.shape[0])


def scripted_policy(task: str):
    """A fresh instance of Meta-World's scripted policy for the task."""
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[env_name(task)]()


# Env steps the scripted policy keeps playing after its first success (0.1 s). A demonstration that
# stops exactly at the success boundary leaves its last target there, and a replay holding that target
# can settle a few mm short (a button spring, a door): on 200 evaluation episodes 3 replays failed so,
# all 3 succeeded with this tail of 8 steps (16 gave the same).
SUCCESS_TAIL_ENV_STEPS = 8


def run_scripted(scene: MetaWorldScene, seed: int, before_step: Callable[[int], None] | None = None,
                 tail_steps: int = SUCCESS_TAIL_ENV_STEPS) -> ScriptedRun:
    """Play the scripted policy on episode ``seed`` until ``tail_steps`` env steps after its first
    success, or Meta-World's horizon. ``before_step(t)`` runs before env step t (recording hooks)."""
    obs = scene.reset(seed)
    policy = scripted_policy(scene.task)
    arm = [scene.arm.arm_positions(scene.data)]
    efforts, actions = [], []
    after_success = 0
    success_step = None
    while scene.steps < scene.max_steps:
        if scene.success:
            success_step = scene.steps if success_step is None else success_step
            if after_success >= tail_steps:
                break
            after_success += 1
        if before_step is not None:
            before_step(scene.steps)
        action = np.clip(np.asarray(policy.get_action(obs), dtype=np.float64), -1.0, 1.0)
        scene.step_native(action)
        obs = scene.obs
        arm.append(scene.arm.arm_positions(scene.data))
        efforts.append(float(action[3]))
        actions.append(action)
    if scene.success and success_step is None:  # succeeded on the horizon's last step
        success_step = scene.steps
    return ScriptedRun(scene.task, seed, scene.success, np.asarray(arm), np.asarray(efforts),
                       np.asarray(actions).reshape(-1, 4), success_step)


def joint_targets(run: ScriptedRun, scene: MetaWorldScene) -> np.ndarray:
    """(ceil(T / stride), action_dim) targets: arm positions reached one recording step later + gripper."""
    stride, steps = scene.stride, run.env_steps
    ends = np.minimum(np.arange(1, -(-steps // stride) + 1) * stride, steps)
    grip = np.array([scene.arm.gripper_target(run.efforts[end - 1]) for end in ends])
    return np.column_stack([run.arm_positions[ends], grip])


_PRIVATE_SCENES: dict[tuple[str, str], MetaWorldScene] = {}


def _private_scene(task: str, robot: str) -> MetaWorldScene:
    """One private scene per (task, robot) and process, reused across episodes (envs are slow to build)."""
    key = (env_name(task), robot)
    if key not in _PRIVATE_SCENES:
        _PRIVATE_SCENES[key] = MetaWorldScene(key[0], robot)
    return _PRIVATE_SCENES[key]


class MetaWorldExpertPolicy:
    """Replays the scripted policy's joint targets for one (task, seed) episode on their schedule."""

    name = "metaworld-expert"

    def __init__(self, *, joint_names: Sequence[str], chunk_size: int, robot: str = "sawyer", task: str,
                 seed: int = 0) -> None:
        scene = _private_scene(task, robot or "sawyer")
        if list(joint_names) != scene.robot.action_joint_names:
            raise ValueError(f"joint_names {list(joint_names)} are not the Sawyer's "
                             f"{scene.robot.action_joint_names}")
        run = run_scripted(scene, int(seed))
        self.task, self.seed = scene.task, int(seed)
        self.scripted_success = run.success
        self.scripted_env_steps = run.success_step if run.success_step is not None else run.env_steps
        self.targets = joint_targets(run, scene)
        self.chunk_size = int(chunk_size)
        self.dt_s = scene.action_dt
        self._first_stamp_ns: int | None = None

    def infer(self, observation: Observation) -> ActionChunk:
        start = time.perf_counter()
        if self._first_stamp_ns is None:
            self._first_stamp_ns = observation.stamp_ns
        step = int(round((observation.stamp_ns - self._first_stamp_ns) * 1e-9 / self.dt_s))
        index = np.minimum(max(step, 0) + np.arange(self.chunk_size), len(self.targets) - 1)
        return ActionChunk(positions=self.targets[index].copy(), dt_s=self.dt_s,
                           observation_stamp_ns=observation.stamp_ns, inference_s=time.perf_counter() - start)

    def warmup(self) -> float:
        return 0.0


def expert_model(task: str, seed: int) -> str:
    """The runtime-factory model string of the expert for one episode."""
    return f"python://uam_ros.metaworld_suite.expert:MetaWorldExpertPolicy?task={env_name(task)}&seed={int(seed)}"
