"""The PyTorch backend: runs a safetensors checkpoint in eager mode under inference_mode.

Noise for the flow-matching head comes from a seeded generator, so a run is reproducible, and
is an explicit input (the same graph ONNX/TensorRT backends export).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uam_ros.model.checkpoint import ensure_layout, load_checkpoint
from uam_ros.runtime.policy import ActionChunk, Observation


def default_thread_count() -> int:
    """Leave one core for the control loop (DESIGN §1: a loaded second core triples timer jitter)."""
    return max(1, (os.cpu_count() or 2) - 1)


class TorchPolicy:
    name = "torch"

    def __init__(
        self, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        device: str = "cpu", default_dt_s: float = 0.1,
    ) -> None:
        self.threads = threads or default_thread_count()
        torch.set_num_threads(self.threads)
        self.device = torch.device(device)
        self.checkpoint = load_checkpoint(checkpoint_dir, map_location=str(self.device))
        ensure_layout(self.checkpoint, list(joint_names))
        self.model = self.checkpoint.model.to(self.device).eval()
        self.processor = self.checkpoint.processor
        config = self.checkpoint.config
        self.noise_shape = (1, config.chunk_size, config.action_dim)
        rate = self.checkpoint.meta.get("action_rate_hz")
        self.dt_s = 1.0 / float(rate) if rate else default_dt_s
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self.weights_sha256 = self.checkpoint.weights_sha256

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.noise_shape, generator=self._generator).to(self.device)

    @torch.inference_mode()
    def infer(self, observation: Observation) -> ActionChunk:
        start = time.perf_counter()
        inputs = self.processor.to_model_inputs(observation.image, observation.instruction, observation.state)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        actions, future = self.model(inputs["image"], inputs["tokens"], inputs["state"], self._noise())
        positions = self.processor.actions_from_model(actions.cpu())
        frame = self.processor.frame_from_model(future.cpu())
        return ActionChunk(
            positions=np.asarray(positions, dtype=np.float64),
            dt_s=self.dt_s,
            observation_stamp_ns=observation.stamp_ns,
            imagined_future=frame,
            inference_s=time.perf_counter() - start,
        )

    def warmup(self, iterations: int = 3) -> float:
        start = time.perf_counter()
        size = self.checkpoint.config.image_size
        dummy = Observation(
            image=np.zeros((size, size, 3), dtype=np.uint8),
            state=np.zeros(self.noise_shape[2], dtype=np.float64),
            instruction="",
            stamp_ns=0,
        )
        for _ in range(iterations):
            self.infer(dummy)
        return time.perf_counter() - start
