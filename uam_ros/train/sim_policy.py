"""A checkpoint's policy acting in a SimWorld, the way the ROS loop runs it but in-process.

One class for both users of the loop -- closed-loop evaluation (``uam eval``) and recovery-data
collection (``uam collect --recovery-from``) -- so that the states a recovery episode starts from
are exactly the states evaluation visits: the same observation (camera frame + joint state), the
same noise per episode seed, the same n_action_steps executed per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uam_ros.model.checkpoint import ensure_layout, load_checkpoint


# Flow-matching noise per inference: "fresh" draws a new sample for every chunk (what the node does);
# "held" draws one per episode and reuses it, making the policy a deterministic function of the
# observation -- the hypothesis being that a replanning policy then cannot switch objects on a new
# draw alone. Measured on the default model (C12), 100 train layouts, replanning every step: held 2 %
# (the arm stalls at a fixed point, median 0.17 m short), fresh 54 %. A diagnostic, not for control.
NOISE_MODES = ("fresh", "held")


class SimPolicy:
    """Observe -> infer one chunk -> execute its first ``n_action_steps`` targets, repeatedly."""

    def __init__(
        self,
        checkpoint: str | Path,
        robot: str | None = None,
        *,
        n_action_steps: int | None = None,
        camera: str | None = None,
        device: str = "cpu",
        noise: str = "fresh",
        latency_steps: int = 0,
        robot_limits: bool = False,
        noise_scale: float = 1.0,
    ) -> None:
        from uam_ros.control.robot_config import load_robot_config

        if latency_steps < 0:
            raise ValueError(f"latency_steps must be >= 0, got {latency_steps}")
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        if not 0.0 <= noise_scale <= 1.0:
            raise ValueError(f"noise_scale must be in [0, 1], got {noise_scale}")

        self.checkpoint = str(checkpoint)
        self.loaded = load_checkpoint(checkpoint, map_location=device)
        self.model, self.processor = self.loaded.model, self.loaded.processor
        self.robot = load_robot_config(robot or self.loaded.meta.get("robot_name") or "franka_panda")
        ensure_layout(self.loaded, self.robot.action_joint_names)
        self.requested_steps = n_action_steps  # as asked (None: the robot config's), for cache keys
        self.n_action_steps = n_action_steps or self.robot.chunk.n_action_steps
        if self.n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {self.n_action_steps}")
        self.camera = camera or self.loaded.meta.get("camera") or "scene"
        self.height, self.width = self.loaded.meta.get("camera_size") or (
            self.robot.camera.height, self.robot.camera.width)
        self.dt = 1.0 / self.robot.chunk.action_rate_hz
        self.device = device
        self.noise = noise
        # Sampling temperature of the flow-matching noise: below 1 the chunks lie nearer the mode of
        # the learned distribution. Hypothesis: less chunk-to-chunk switching and velocity clamping.
        # Measured on C12 (100 train layouts, every step, robot limits): 0.5 gave 27 % against 41 %
        # at 1, with more wrong-object failures (42). A diagnostic, like noise "held".
        self.noise_scale = noise_scale
        # Action periods between an observation and its chunk reaching the arm (camera age + inference
        # + transport, as in the node): meanwhile the arm runs on the previous chunk, and the new one
        # starts at its target `latency_steps` (the node's scheduler drops the points already due).
        self.latency_steps = latency_steps
        # The node's SafetyFilter on what the arm executes: a first target too far from the measured
        # state holds, the rest is clamped to the joint position / velocity / acceleration limits.
        # Why: without it the simulated arm follows any target, and the default model's targets
        # exceeded the Panda's velocity limits in 17 % of its steps (experiment 9).
        self.safety = None
        self.holds = 0
        if robot_limits:
            from uam_ros.control.safety import SafetyFilter

            self.safety = SafetyFilter(self.robot.limits_arrays(), self.robot.control.max_position_deviation)
        self.inference_s: list[float] = []  # every forward's wall time, for latency reports

    @property
    def wrist_camera(self) -> bool:
        return self.camera == "wrist"

    def draw_noise(self, generator: torch.Generator) -> torch.Tensor:
        config = self.loaded.config
        noise = torch.randn(1, config.chunk_size, config.action_dim, generator=generator)
        return (noise * self.noise_scale).to(self.device)  # x 1.0 is exact: the default draw is unchanged

    def chunk(self, world: Any, instruction: str, generator: torch.Generator,
              noise: torch.Tensor | None = None) -> np.ndarray:
        """The policy's chunk of joint targets (H, action_dim) for the world's current observation
        (flow-matching noise: ``noise``, else a fresh draw from ``generator``)."""
        image = world.render(self.camera, self.width, self.height)
        _, q, _ = world.joint_state()
        inputs = {k: v.to(self.device) for k, v in self.processor.to_model_inputs(image, instruction, q).items()}
        if noise is None:
            noise = self.draw_noise(generator)
        t0 = time.perf_counter()
        with torch.no_grad():
            actions_norm, _ = self.model(inputs["image"], inputs["tokens"], inputs["state"], noise)
        self.inference_s.append(time.perf_counter() - t0)
        return self.processor.actions_from_model(actions_norm)

    def run(
        self,
        world: Any,
        instruction: str,
        generator: torch.Generator,
        max_steps: int,
        stop: Callable[[], bool] | None = None,
    ) -> tuple[int, bool]:
        """Act for up to ``max_steps`` action periods; returns (steps taken, stopped early).

        ``stop`` (default: the task's success predicate) is checked after every executed target.
        With noise "held" every chunk of the episode integrates from the same noise draw."""
        stop = stop or world.success
        arm_dof = self.robot.arm_dof
        held = self.draw_noise(generator) if self.noise == "held" else None
        lag = self.latency_steps
        period = max(self.n_action_steps, lag)  # the node infers again only once the last chunk arrived
        steps = 0
        previous: np.ndarray | None = None
        while steps < max_steps:
            chunk = self.chunk(world, instruction, generator, held)
            # Observation now; until its chunk arrives (lag steps) the arm goes on with the previous
            # chunk, or stays where it is; then it runs the new one from its target `lag`.
            carry_on = previous[period: period + lag] if previous is not None else chunk[:0]
            if len(carry_on) < lag:
                carry_on = np.concatenate([carry_on, np.repeat(self._measured(world), lag - len(carry_on), axis=0)])
            targets = np.concatenate([carry_on, chunk[lag:period]])
            previous = chunk
            if self.safety is not None:
                targets = self._within_limits(world, targets)
            for target in targets:
                grip = float(target[arm_dof]) if self.robot.gripper else None
                world.move_to(target[:arm_dof], grip, self.dt)
                steps += 1
                if stop():
                    return steps, True
                if steps >= max_steps:
                    break
        return steps, False

    def _within_limits(self, world: Any, targets: np.ndarray) -> np.ndarray:
        arm_dof = self.robot.arm_dof
        _, q, v = world.joint_state()
        times = self.dt * np.arange(1, len(targets) + 1)
        result = self.safety.filter(times, targets[:, :arm_dof], q[:arm_dof], v[:arm_dof])
        if not result.ok:
            self.holds += 1
            return np.repeat(self._measured(world), len(targets), axis=0)
        return np.concatenate([result.positions, targets[:, arm_dof:]], axis=1)

    def _measured(self, world: Any) -> np.ndarray:
        """The measured joint positions (and gripper) as one target row: staying where it is."""
        _, q, _ = world.joint_state()
        return q.reshape(1, -1)
