"""The CUDA code paths, on a real GPU: inference on cuda (eager, CUDA graphs) agrees with the CPU,
training with --device cuda and autocast learns and saves a checkpoint the CPU loads, DDP on nccl
keeps its ranks in sync. Skipped (with the reason) where torch sees no CUDA GPU, e.g. in CI; run on a
lent GPU machine with `scripts/gpu_check.sh`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from uam_ros.control.robot_config import load_robot_config
from uam_ros.model.checkpoint import load_checkpoint
from uam_ros.runtime.policy import Observation
from uam_ros.runtime.torch_backend import TorchPolicy
from uam_ros.schema import from_dict
from uam_ros.train.config import TrainConfig
from uam_ros.train.synthetic import make_synthetic_dataset
from uam_ros.train.trainer import train

from tiny_model import TRAIN_TINY as TINY_MODEL  # test/unit is on sys.path (pytest rootdir insertion)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default" / "franka_panda"
# Largest CPU/GPU difference of a chunk's joint targets [rad]: cuDNN convolutions use TF32 by
# default and kernels sum in other orders, so bit-equality is not expected; a wrong device transfer,
# dtype or graph capture gives differences of the order of the chunk's motion (> 1e-2 rad).
PARITY_RAD = 2e-3


def observation(seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    robot = load_robot_config("franka_panda")
    state = np.asarray(robot.action_home) + rng.normal(0.0, 0.05, len(robot.action_home))
    return Observation(rng.integers(0, 256, (240, 320, 3), np.uint8), state, "reach the red cube", 10 ** 9)


@pytest.fixture(scope="module")
def joints() -> list[str]:
    return load_robot_config("franka_panda").action_joint_names


@pytest.mark.parametrize("mode", ["eager", "cuda_graphs"])
def test_cuda_inference_matches_cpu(joints, mode):
    cpu = TorchPolicy(DEFAULT_MODEL, joints, seed=3, threads=2, device="cpu")
    gpu = TorchPolicy(DEFAULT_MODEL, joints, seed=3, threads=2, device="cuda", mode=mode)
    assert gpu.device.type == "cuda"
    for seed in range(4):  # a CUDA graph replays on new inputs: later calls must follow them
        obs = observation(seed)
        a, b = cpu.infer(obs), gpu.infer(obs)
        assert np.isfinite(b.positions).all()
        assert np.max(np.abs(a.positions - b.positions)) < PARITY_RAD, (mode, seed, a.positions - b.positions)
    moved = np.max(np.abs(a.positions - np.asarray(observation(3).state)))
    assert moved > 10 * PARITY_RAD  # the chunk moves: the tolerance is not larger than the signal


def test_unset_threads_on_a_gpu_are_one(joints):
    """On a GPU the CPU only prepares the inputs: one intra-op thread, not cores - 1 spinning between
    calls (benchmarks/inference_cpu.py: 3.4 cores at 15 Hz with 15 threads on an H100 box)."""
    before = torch.get_num_threads()
    try:
        policy = TorchPolicy(DEFAULT_MODEL, joints, threads=0, device="cuda")
        assert policy.threads == 1 and torch.get_num_threads() == 1
        assert TorchPolicy(DEFAULT_MODEL, joints, threads=0, device="cpu").threads == max(1, os.cpu_count() - 1)
    finally:
        torch.set_num_threads(before)


def test_auto_backend_on_a_gpu_without_tensorrt(joints, tmp_path):
    """No TensorRT: auto runs torch with CUDA graphs on the GPU rather than ONNX Runtime on the CPU,
    unless onnxruntime has a CUDA provider, or the options pin torch to the CPU."""
    from uam_ros.runtime.factory import create_policy
    from uam_ros.runtime.ort_backend import has_cuda_provider
    from uam_ros.runtime.tensorrt_backend import tensorrt_status

    if tensorrt_status()[0]:
        pytest.skip("TensorRT is installed: auto picks it (test_runtime_engine_cache covers that)")
    options = {"cache_dir": tmp_path / "cache"}
    choice = create_policy("auto", DEFAULT_MODEL, joints, threads=2, seed=3, options=options)
    if has_cuda_provider():
        assert choice.name == "onnxruntime" and "CUDAExecutionProvider" in choice.reason, choice.reason
    else:
        assert choice.name == "torch" and not choice.fallback, choice.reason
        assert "no CUDA provider" in choice.reason and "torch cuda_graphs on cuda" in choice.reason, choice.reason
    cpu = TorchPolicy(DEFAULT_MODEL, joints, seed=3, threads=2, device="cpu")
    obs = observation(0)
    assert np.max(np.abs(choice.policy.infer(obs).positions - cpu.infer(obs).positions)) < PARITY_RAD
    pinned = create_policy("auto", DEFAULT_MODEL, joints, threads=2, options={**options, "device": "cpu"})
    assert pinned.name == "onnxruntime", pinned.reason


def _config(out_dir: Path, data: Path, **fields) -> TrainConfig:
    raw = {"stage": "action", "out_dir": str(out_dir), "data": {"train": [str(data)], "val": [str(data)]},
           "batch_size": 8, "lr": 3e-3, "min_lr": 3e-3, "warmup_steps": 0, "max_steps": 40, "seed": 3,
           "threads": 1, "log_every": 1, "model": dict(TINY_MODEL), "device": "cuda", **fields}
    return from_dict(TrainConfig, raw, "test")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("gpu") / "d", episodes=2, length=10, image_size=16)


@pytest.mark.parametrize("precision", [{"amp": False}, {"amp": True, "amp_dtype": "bfloat16"},
                                       {"amp": True, "amp_dtype": "float16"}], ids=["fp32", "bf16", "fp16"])
def test_cuda_training_learns_and_the_cpu_loads_its_checkpoint(tmp_path, data, precision):
    result = train(_config(tmp_path / "run", data, **precision), quiet=True)
    val = [row["loss"] for row in result.history["val"]]
    assert val[-1] < 0.8 * val[0], val
    assert next(result.model.parameters()).device.type == "cuda"
    loaded = load_checkpoint(result.checkpoint)  # map_location cpu
    trained = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    for name, tensor in loaded.model.state_dict().items():
        assert tensor.device.type == "cpu" and tensor.dtype == torch.float32, name  # saved fp32, not autocast's
        assert torch.equal(tensor, trained[name]), name


def _nccl_rank(rank: int, world: int, port: int, out_dir: str, data: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    try:
        trained = train(_config(Path(out_dir), Path(data), max_steps=4, data={"train": [data], "val_fraction": 0.0}),
                        quiet=True)
        Path(result).write_text(str(trained.step))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl DDP needs two GPUs (one rank per GPU)")
def test_ddp_on_nccl_trains(tmp_path, data, loopback_port):
    """One rank per GPU over nccl (torchrun's layout); the trainer checks the ranks' weights agree."""
    world = torch.cuda.device_count()
    torch.multiprocessing.spawn(_nccl_rank, args=(world, loopback_port, str(tmp_path / "run"), str(data),
                                                  str(tmp_path / "done")), nprocs=world, join=True)
    assert (tmp_path / "done").read_text() == "4"
    assert load_checkpoint(tmp_path / "run" / "checkpoint").meta["step"] == 4
