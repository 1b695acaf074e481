"""Backend selection: auto picks TensorRT > ONNX Runtime > torch, an unusable requested backend falls
back (with a warning reason) instead of failing, and a bad checkpoint is an error for every backend."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from uam_ros.model.checkpoint import CheckpointError, init_checkpoint
from uam_ros.runtime import ort_backend, tensorrt_backend
from uam_ros.runtime.engine_cache import EngineRefused
from uam_ros.runtime.factory import backend_status, create_policy
from uam_ros.runtime.parity import ParityReport, thresholds_for
from uam_ros.runtime.policy import Observation
from uam_ros.runtime.torch_backend import TorchPolicy, default_thread_count, resolve_mode

torch.set_num_threads(1)

from tiny_model import JOINTS, TINY  # noqa: E402  (shared tiny config)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "uam-runtime-cache"  # shared with the export tests
    ckpt = init_checkpoint(tmp_path_factory.mktemp("factory") / "ckpt", state_dim=4, action_dim=4, joint_names=JOINTS,
                           robot_name="toy", seed=0, instructions=["pick up the red cube", "put the cube in the bowl"],
                           config_overrides=TINY)
    return ckpt, {"cache_dir": cache, "device": "cpu"}  # the CPU host's chain (a GPU's: test_gpu.py)


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setattr(tensorrt_backend, "tensorrt_status", lambda: (False, "tensorrt is not installed"))


@pytest.fixture
def no_onnxruntime(monkeypatch):
    monkeypatch.setattr(ort_backend, "onnxruntime_status", lambda: (False, "onnxruntime/onnx not installed (x)"))


def test_auto_without_tensorrt_picks_onnxruntime(setup, no_tensorrt):
    ckpt, options = setup
    choice = create_policy("auto", ckpt, JOINTS, threads=1, options=options)
    assert choice.name == "onnxruntime" and not choice.fallback
    assert choice.reason.startswith("auto: TensorRT unavailable (tensorrt is not installed); using ONNX Runtime")
    assert "CPUExecutionProvider" in choice.reason
    chunk = choice.policy.infer(Observation(np.zeros((32, 32, 3), np.uint8), np.zeros(4), "pick", 5))
    assert chunk.positions.shape == (6, 4)


def test_requested_tensorrt_without_it_falls_back_with_a_warning(setup, no_tensorrt):
    ckpt, options = setup
    choice = create_policy("tensorrt", ckpt, JOINTS, threads=1, options=options)
    assert choice.name == "onnxruntime" and choice.fallback
    assert choice.reason.startswith("WARNING: fell back -- requested tensorrt: TensorRT unavailable")


def test_auto_with_nothing_but_torch(setup, no_tensorrt, no_onnxruntime):
    ckpt, options = setup
    choice = create_policy("auto", ckpt, JOINTS, threads=1, options=options)
    assert choice.name == "torch" and not choice.fallback and isinstance(choice.policy, TorchPolicy)
    assert choice.reason == ("auto: TensorRT unavailable (tensorrt is not installed); ONNX Runtime unavailable "
                             "(onnxruntime/onnx not installed (x)); using torch eager on cpu, 1 thread(s)")
    choice = create_policy("onnxruntime", ckpt, JOINTS, threads=1, options=options)
    assert choice.name == "torch" and choice.fallback and "requested onnxruntime" in choice.reason


def test_tensorrt_refusing_its_engine_falls_back_to_onnxruntime(setup, monkeypatch):
    ckpt, options = setup
    report = ParityReport(False, (), ("actions: cosine 0.90 < 0.999",), thresholds_for("fp16"))

    class RefusingPolicy:
        def __init__(self, *args, **kwargs):
            assert kwargs["precision"] == "fp16" and kwargs["cache_dir"] == options["cache_dir"]
            raise EngineRefused("TensorRT engine (fp16) refused: parity FAILED", report)

    monkeypatch.setattr(tensorrt_backend, "tensorrt_status", lambda: (True, "TensorRT 10.8 on a GPU"))
    monkeypatch.setattr(tensorrt_backend, "TensorRTPolicy", RefusingPolicy)
    choice = create_policy("auto", ckpt, JOINTS, threads=1, options={**options, "precision": "fp16"})
    assert choice.name == "onnxruntime"
    assert "TensorRT failed (EngineRefused: TensorRT engine (fp16) refused: parity FAILED)" in choice.reason


def test_torch_requested_and_its_modes(setup):
    ckpt, options = setup
    choice = create_policy("torch", ckpt, JOINTS, threads=1, options={**options, "inference_mode": False})
    assert (choice.name, choice.reason, choice.fallback) == ("torch", "requested: torch eager on cpu, 1 thread(s)",
                                                             False)
    assert TorchPolicy(ckpt, JOINTS, threads=1, device="cpu").mode == "eager"
    assert resolve_mode("auto", torch.device("cuda")) == "cuda_graphs"
    assert resolve_mode("auto", torch.device("cpu")) == "eager"
    assert resolve_mode("compile", torch.device("cuda")) == "compile"
    with pytest.raises(ValueError, match="mode 'cuda_graphs' needs a CUDA device"):
        TorchPolicy(ckpt, JOINTS, threads=1, device="cpu", mode="cuda_graphs")
    with pytest.raises(ValueError, match="mode must be one of"):
        TorchPolicy(ckpt, JOINTS, threads=1, mode="jit")
    # compile mode wiring (the 'eager' dynamo backend: same path as inductor without the minute of codegen)
    eager, compiled = TorchPolicy(ckpt, JOINTS, threads=1, seed=2, device="cpu", mode="eager"), TorchPolicy(
        ckpt, JOINTS, threads=1, seed=2, device="cpu", mode="compile", compile_backend="eager")
    obs = Observation(np.full((32, 32, 3), 90, np.uint8), np.zeros(4), "pick up the red cube", 1)
    np.testing.assert_allclose(compiled.infer(obs).positions, eager.infer(obs).positions, atol=1e-6)
    # a camera-sized image (resized by the processor) must not recompile the graph warm-up compiled
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    compiled.infer(Observation(np.full((40, 56, 3), 90, np.uint8), np.zeros(4), "pick", 2))
    assert counters["stats"]["unique_graphs"] == graphs


def test_unset_threads_follow_where_inference_runs(setup, monkeypatch):
    """threads=0: all cores but one for inference on the CPU (one is the control loop's), one on a
    GPU, where the CPU only prepares the inputs and idle intra-op threads spin (benchmarks/inference_cpu.py)."""
    ckpt, options = setup
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert default_thread_count("cpu") == default_thread_count(torch.device("cpu")) == 7
    assert default_thread_count("cuda") == default_thread_count(torch.device("cuda:0")) == 1
    try:
        policy = TorchPolicy(ckpt, JOINTS, threads=0, device="cpu")
        assert policy.threads == 7 and torch.get_num_threads() == 7
        ort = create_policy("onnxruntime", ckpt, JOINTS, threads=0, options={**options, "providers": "cpu"})
        assert ort.policy.threads == 7 and "7 thread(s)" in ort.reason, ort.reason
        assert TorchPolicy(ckpt, JOINTS, threads=3, device="cpu").threads == 3  # a configured count is kept
    finally:
        torch.set_num_threads(1)


def test_bad_checkpoint_or_layout_is_an_error_not_a_fallback(setup, tmp_path):
    ckpt, options = setup
    for backend in ("auto", "tensorrt", "onnxruntime", "torch"):
        with pytest.raises(CheckpointError, match="does not match robot joint_names"):
            create_policy(backend, ckpt, ["a", "b", "c", "d"], options=options)
    with pytest.raises(CheckpointError, match="missing config.json"):
        create_policy("auto", tmp_path, JOINTS, options=options)
    with pytest.raises(ValueError, match="backend must be one of"):
        create_policy("openvino", ckpt, JOINTS)


def test_backend_status_here():
    status = backend_status()
    assert set(status) == {"tensorrt", "onnxruntime", "torch"}
    assert status["torch"][0] and status["onnxruntime"][0]  # installed in this venv
    if not torch.cuda.is_available():
        assert not status["tensorrt"][0] and status["tensorrt"][1]
