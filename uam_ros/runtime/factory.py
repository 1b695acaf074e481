"""Pick and build a backend by name; 'auto' falls back from TensorRT to ONNX Runtime to torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class BackendChoice:
    policy: object
    name: str
    reason: str


def create_policy(
    backend: str, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
    default_dt_s: float = 0.1, robot: str = "", chunk_size: int = 16,
) -> BackendChoice:
    if str(checkpoint_dir).startswith("expert://"):
        # The privileged scripted expert (sim only): proves the ROS loop before a model is trained.
        from uam_ros.sim.expert_policy import ExpertPolicy, ExpertSpec

        policy = ExpertPolicy(robot, ExpertSpec.parse(str(checkpoint_dir)), chunk_size)
        return BackendChoice(policy, "expert", "model is a scripted sim expert")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("tensorrt", "onnxruntime"):
        raise NotImplementedError(
            f"backend '{backend}' is not available in this version of uam_ros yet; use 'torch' or 'auto'"
        )
    from uam_ros.runtime.torch_backend import TorchPolicy

    policy = TorchPolicy(checkpoint_dir, joint_names, threads=threads, seed=seed, default_dt_s=default_dt_s)
    reason = "requested" if backend == "torch" else "auto: TensorRT and ONNX Runtime backends not built yet"
    return BackendChoice(policy, "torch", reason)
