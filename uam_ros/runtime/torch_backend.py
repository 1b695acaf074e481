"""The PyTorch backend, and CheckpointPolicy: the pre/post-processing every backend shares.

CheckpointPolicy loads a safetensors checkpoint, checks its action layout against the robot's
joints, turns an Observation into model inputs with the checkpoint's UAMProcessor, draws the
flow-matching noise from a seeded torch generator (CPU, so every backend given the same seed sees
the same noise and their outputs are comparable), and turns model outputs into an ActionChunk.
A backend only implements _forward(inputs) -> (actions_norm (1,H,A), future_frame (1,3,f,f)).

TorchPolicy devices: "auto" (default: the GPU when torch sees one), "cpu", "cuda", "cuda:N".
TorchPolicy modes:
  auto         cuda_graphs on a GPU, eager on the CPU (default; on an H200, CUDA graphs took the
               default model from 7.6 ms eager, bound by kernel launches, to 1.8 ms per chunk)
  eager        the nn.Module as is
  compile      torch.compile(dynamic=False): the first inference compiles (a minute on a 2-core CPU;
               warmup() pays it), later ones run the generated kernels
  cuda_graphs  CUDA only: the forward is captured once into a CUDA graph on static input buffers and
               replayed (no per-kernel launch cost)
Inference runs under torch.inference_mode() (or no_grad with inference_mode=False), with a fixed
intra-op thread count (default: cores - 1 on the CPU, DESIGN.md section 1; 1 on a GPU).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uam_ros.model.checkpoint import LoadedCheckpoint, ensure_layout, load_checkpoint
from uam_ros.runtime.policy import ActionChunk, Observation

TORCH_MODES = ("auto", "eager", "compile", "cuda_graphs")


def default_thread_count(device: str | torch.device = "cpu") -> int:
    """Intra-op threads when none are configured. Inference on the CPU: all cores but one, left for
    the control loop (DESIGN §1: a loaded second core triples timer jitter). On a GPU: one -- the CPU
    only prepares the inputs and waits, and idle intra-op threads spin between calls (H100 box, torch
    CUDA graphs at 15 inferences/s: 15 threads use 3.4 cores, p50 14 ms, p99 21 ms; 1 thread 0.05 cores,
    p50 3.3 ms, p99 4.1 ms; benchmarks/results/gpu/inference_cpu.json)."""
    if torch.device(device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 2) - 1)


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when torch sees a GPU, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_mode(mode: str, device: torch.device) -> str:
    """'auto' -> cuda_graphs on a CUDA device (batch-1 inference of a small model is launch-bound
    there), eager elsewhere; other modes as given."""
    if mode == "auto":
        return "cuda_graphs" if device.type == "cuda" else "eager"
    return mode


class CheckpointPolicy:
    """Shared by the torch, ONNX Runtime and TensorRT backends; subclasses implement _forward."""

    name = "checkpoint"

    def __init__(
        self, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        default_dt_s: float = 0.1, map_location: str = "cpu", checkpoint: LoadedCheckpoint | None = None,
        compute_device: str = "cpu",
    ) -> None:
        self.threads = threads or default_thread_count(compute_device)  # compute_device: where inference runs
        torch.set_num_threads(self.threads)  # preprocessing (image resize) runs in torch for every backend
        self.checkpoint = checkpoint if checkpoint is not None else load_checkpoint(checkpoint_dir, map_location)
        ensure_layout(self.checkpoint, list(joint_names))
        self.processor = self.checkpoint.processor
        config = self.checkpoint.config
        self.config = config
        self.noise_shape = (1, config.chunk_size, config.action_dim)
        rate = self.checkpoint.meta.get("action_rate_hz")
        self.dt_s = 1.0 / float(rate) if rate else default_dt_s
        self.seed = seed
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self.weights_sha256 = self.checkpoint.weights_sha256

    # --- shared steps ---------------------------------------------------------------------------
    def _noise(self) -> torch.Tensor:
        return torch.randn(self.noise_shape, generator=self._generator)

    def reset_noise(self, seed: int | None = None) -> None:
        """Restart the noise sequence (same seed -> the same sequence of chunks for the same inputs)."""
        self._generator.manual_seed(self.seed if seed is None else seed)

    def model_inputs(self, observation: Observation) -> dict[str, torch.Tensor]:
        """CPU tensors image, tokens, state (processor) and noise (the seeded generator)."""
        inputs = self.processor.to_model_inputs(observation.image, observation.instruction, observation.state)
        inputs["noise"] = self._noise()
        # Contiguous whatever the camera size: an HWC image the processor did not resize arrives as a
        # permuted view, and a compiled graph guards on strides (a camera-sized image after a
        # model-sized warm-up would recompile, seconds, on the control path).
        return {name: tensor.contiguous() for name, tensor in inputs.items()}

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[object, object]:
        raise NotImplementedError

    def infer(self, observation: Observation) -> ActionChunk:
        start = time.perf_counter()
        actions, future = self._forward(self.model_inputs(observation))
        return ActionChunk(
            positions=np.asarray(self.processor.actions_from_model(actions), dtype=np.float64),
            dt_s=self.dt_s,
            observation_stamp_ns=observation.stamp_ns,
            imagined_future=self.processor.frame_from_model(future),
            inference_s=time.perf_counter() - start,
        )

    def dummy_observation(self) -> Observation:
        size = self.config.image_size
        return Observation(
            image=np.zeros((size, size, 3), dtype=np.uint8),
            state=np.asarray(self.processor.state_mean, dtype=np.float64),
            instruction="",
            stamp_ns=0,
        )

    def warmup(self, iterations: int = 3) -> float:
        """Run the first (slow: allocation, compilation, autotuning) inferences now; seconds spent.
        The noise sequence is restarted afterwards, so warm-up does not shift a seeded run."""
        start = time.perf_counter()
        dummy = self.dummy_observation()
        for _ in range(iterations):
            self.infer(dummy)
        self.reset_noise()
        return time.perf_counter() - start


class TorchPolicy(CheckpointPolicy):
    name = "torch"

    def __init__(
        self, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        device: str = "auto", default_dt_s: float = 0.1, mode: str = "auto", inference_mode: bool = True,
        compile_mode: str | None = None, compile_backend: str = "inductor",
        checkpoint: LoadedCheckpoint | None = None,
    ) -> None:
        if mode not in TORCH_MODES:
            raise ValueError(f"TorchPolicy: mode must be one of {TORCH_MODES}, got {mode!r}")
        self.device = resolve_device(device)
        mode = resolve_mode(mode, self.device)
        if mode == "cuda_graphs" and self.device.type != "cuda":
            raise ValueError(f"TorchPolicy: mode 'cuda_graphs' needs a CUDA device, got device '{self.device}'"
                             + ("" if torch.cuda.is_available() else " (torch sees no CUDA GPU)"))
        super().__init__(checkpoint_dir, joint_names, threads=threads, seed=seed, default_dt_s=default_dt_s,
                         map_location=str(self.device), checkpoint=checkpoint, compute_device=self.device.type)
        self.mode = mode
        self.model = self.checkpoint.model.to(self.device).eval()
        self._grad_context = torch.inference_mode if inference_mode else torch.no_grad
        self._run = self.model
        if mode == "compile":
            self._run = torch.compile(self.model, dynamic=False, mode=compile_mode, backend=compile_backend)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_in: dict[str, torch.Tensor] = {}
        self._static_out: tuple[torch.Tensor, torch.Tensor] | None = None

    def _capture(self, inputs: dict[str, torch.Tensor]) -> None:
        """Record one forward into a CUDA graph over static input/output buffers."""
        self._static_in = {k: v.to(self.device).clone() for k, v in inputs.items()}
        args = [self._static_in[k] for k in ("image", "tokens", "state", "noise")]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # allocator / cuBLAS warm-up must happen outside the capture
                self.model(*args)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_out = self.model(*args)
        self._graph = graph

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with self._grad_context():
            if self.mode == "cuda_graphs":
                if self._graph is None:
                    self._capture(inputs)
                for name, tensor in inputs.items():
                    self._static_in[name].copy_(tensor, non_blocking=True)
                self._graph.replay()
                actions, future = self._static_out
                return actions.cpu(), future.cpu()  # .cpu() synchronises the stream
            on_device = {k: v.to(self.device) for k, v in inputs.items()}
            actions, future = self._run(on_device["image"], on_device["tokens"], on_device["state"],
                                        on_device["noise"])
            return actions.cpu(), future.cpu()
