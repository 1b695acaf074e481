"""ONNX Runtime backend: same chunks as the torch backend (<= 1e-4) for the same seed and inputs,
session options as configured, IO binding equal to plain run, refusal of another model's graph."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from uam_ros.model.checkpoint import init_checkpoint
from uam_ros.runtime.ort_backend import OrtPolicy, choose_providers
from uam_ros.runtime.policy import Observation, Policy
from uam_ros.runtime.torch_backend import TorchPolicy

torch.set_num_threads(1)

from tiny_model import JOINTS, TINY  # noqa: E402  (shared tiny config)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "uam-runtime-cache"  # shared with the export tests
    ckpt = init_checkpoint(
        tmp_path_factory.mktemp("ort") / "ckpt", state_dim=4, action_dim=4, joint_names=JOINTS, robot_name="toy",
        seed=0, instructions=["pick up the red cube", "put the cube in the bowl"], config_overrides=TINY,
        action_mean=[0.1, -0.4, 0.3, 0.04], action_std=[0.5, 0.5, 0.5, 0.02],
        state_mean=[0.1, -0.4, 0.3, 0.04], state_std=[0.5, 0.5, 0.5, 0.02],
    )
    return ckpt, cache


def observations(n=4):
    rng = np.random.default_rng(7)
    texts = ["pick up the red cube", "put the cube in the bowl", "", "an unseen instruction"]
    for i in range(n):
        size = (32, 32) if i % 2 else (48, 64)  # model size, and a resize in the processor
        yield Observation(rng.integers(0, 256, (*size, 3), dtype=np.uint8), rng.normal(0, 0.3, 4),
                          texts[i % len(texts)], stamp_ns=1000 + i)


def test_ort_matches_torch_within_1e4(setup):
    ckpt, cache = setup
    torch_policy = TorchPolicy(ckpt, JOINTS, threads=1, seed=11, device="cpu")
    ort_policy = OrtPolicy(ckpt, JOINTS, threads=1, seed=11, cache_dir=cache)
    assert isinstance(ort_policy, Policy) and ort_policy.name == "onnxruntime"
    previous = None
    for obs in observations():
        a, b = torch_policy.infer(obs), ort_policy.infer(obs)
        assert b.positions.shape == (6, 4) and b.observation_stamp_ns == obs.stamp_ns and b.dt_s == a.dt_s
        # compare in normalised model units (the bound of the issue), then in robot units
        diff = np.max(np.abs((a.positions - b.positions) / np.array([0.5, 0.5, 0.5, 0.02])))
        assert diff <= 1e-4, diff
        assert np.max(np.abs(a.imagined_future.astype(int) - b.imagined_future.astype(int))) <= 1
        assert previous is None or not np.allclose(previous, b.positions)  # inputs really reach the graph
        previous = b.positions


def test_session_options_and_io_binding(setup):
    ckpt, cache = setup
    bound = OrtPolicy(ckpt, JOINTS, threads=1, seed=3, cache_dir=cache)
    plain = OrtPolicy(ckpt, JOINTS, threads=1, seed=3, cache_dir=cache, io_binding=False)
    options = bound.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert bound.providers[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert bound.providers[0] == "CUDAExecutionProvider"
    for obs in observations(2):
        np.testing.assert_array_equal(bound.infer(obs).positions, plain.infer(obs).positions)
    assert choose_providers("cpu") == ["CPUExecutionProvider"]


def test_warmup_does_not_shift_the_seeded_noise(setup):
    ckpt, cache = setup
    cold = OrtPolicy(ckpt, JOINTS, threads=1, seed=5, cache_dir=cache)
    warm = OrtPolicy(ckpt, JOINTS, threads=1, seed=5, cache_dir=cache)
    assert warm.warmup() > 0
    obs = next(observations(1))
    np.testing.assert_array_equal(cold.infer(obs).positions, warm.infer(obs).positions)


def test_a_graph_from_another_model_is_refused(setup, tmp_path):
    ckpt, cache = setup
    path = OrtPolicy(ckpt, JOINTS, threads=1, cache_dir=cache).onnx_path
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "uam.model_hash":
            prop.value = "0" * 64
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match="exported from another model"):
        OrtPolicy(ckpt, JOINTS, threads=1, onnx_path=tmp_path / "other.onnx")


def test_the_localising_dorsal_options_export_and_match_torch(tmp_path):
    """The shipped model's dorsal options (conv stem, sin-cos positions, pointers with sub-patch
    offsets) and the instruction FiLM: the same chunks in ORT as in torch, and only TensorRT-supported
    operators."""
    from uam_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from uam_ros.runtime.onnx_export import cached_onnx_path, graph_ops, tensorrt_unsupported_ops

    ckpt = init_checkpoint(
        tmp_path / "ckpt", state_dim=4, action_dim=4, joint_names=JOINTS, robot_name="toy", seed=0,
        instructions=["pick up the red cube"], config_overrides={
            **TINY, "dorsal_stem": "conv", "position_init": "sincos", "pointer_points": 2,
            "pointer_offsets": True, "pointer_loss_weight": 1.0, "language_film": True})
    loaded = load_checkpoint(ckpt)
    with torch.no_grad():  # offsets and FiLM start at zero; give them values so that the comparison covers them
        torch.manual_seed(1)
        loaded.model.dorsal.pointer.offset.weight.normal_(0.0, 0.5)
        loaded.model.dorsal.film.weight.normal_(0.0, 0.5)
    save_checkpoint(ckpt, loaded.model, loaded.processor, loaded.kind, loaded.meta)
    torch_policy = TorchPolicy(ckpt, JOINTS, threads=1, seed=5, device="cpu")
    ort_policy = OrtPolicy(ckpt, JOINTS, threads=1, seed=5, cache_dir=tmp_path / "cache")
    for obs in observations(2):
        a, b = torch_policy.infer(obs), ort_policy.infer(obs)
        assert np.max(np.abs(a.positions - b.positions)) <= 1e-4
    path = cached_onnx_path(load_checkpoint(ckpt), tmp_path / "cache")
    assert path.is_file()
    assert tensorrt_unsupported_ops(graph_ops(path)) == []
