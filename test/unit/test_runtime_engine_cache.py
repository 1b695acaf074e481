"""TensorRT engine cache without TensorRT: key, layout, corrupt/mismatched entries, rebuild/refuse
decisions, and the parity comparison they rely on. The one test that builds a real engine needs
tensorrt + CUDA and is skipped (with the reason) elsewhere."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from uam_ros.runtime.engine_cache import (
    ENGINE_FILE,
    SIDECAR_FILE,
    EngineBuildError,
    EngineCache,
    EngineKey,
    EngineRefused,
    obtain_engine,
)
from uam_ros.runtime.parity import (
    ONNX_THRESHOLDS,
    ParityThresholds,
    compare_outputs,
    cosine_similarity,
    thresholds_for,
)
from uam_ros.runtime.tensorrt_backend import tensorrt_status

SHAPES = {"image": ((1, 3, 96, 96), "float32"), "tokens": ((1, 24), "int64"),
          "state": ((1, 8), "float32"), "noise": ((1, 16, 8), "float32")}


def make_key(**changes) -> EngineKey:
    fields = dict(model_hash="ab" * 32, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
                  tensorrt_version="10.8.0.43", precision="fp16", input_shapes=SHAPES)
    fields.update(changes)
    return EngineKey.create(**fields)


REFERENCE = {"actions": np.linspace(-1, 1, 32).reshape(1, 4, 8), "future_frame": np.full((1, 3, 4, 4), 0.5)}


class FakeEngine:
    """Stands in for a deserialized engine: 'runs' by returning the reference plus an error."""

    def __init__(self, data: bytes, error: float = 0.0) -> None:
        if not data.startswith(b"PLAN"):
            raise RuntimeError("not a plan")
        self.data, self.error = data, error

    def outputs(self):
        return {k: v + self.error for k, v in REFERENCE.items()}


def verify(engine):
    return compare_outputs(REFERENCE, engine.outputs(), thresholds_for("fp16"))


# --- the key ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"model_hash": "cd" * 32},
    {"gpu_name": "NVIDIA GeForce RTX 4090"},
    {"compute_capability": (8, 9)},
    {"tensorrt_version": "10.3.0.26"},
    {"precision": "fp32"},
    {"precision": "bf16"},
    {"input_shapes": {**SHAPES, "image": ((1, 3, 128, 128), "float32")}},
    {"input_shapes": {**SHAPES, "tokens": ((1, 24), "int32")}},
])
def test_every_key_component_changes_the_digest_and_the_entry(change, tmp_path):
    base, other = make_key(), make_key(**change)
    assert base.digest() != other.digest()
    cache = EngineCache(tmp_path)
    assert cache.entry_dir(base) != cache.entry_dir(other)
    field = next(iter(change))
    assert [d.split(":")[0] for d in base.differences(other)] == [field]


def test_key_is_canonical_and_round_trips():
    shuffled = dict(reversed(list(SHAPES.items())))
    assert make_key().digest() == make_key(input_shapes=shuffled).digest()  # input order is irrelevant
    key = make_key()
    assert key.compute_capability == "9.0"
    again = EngineKey.from_dict(json.loads(json.dumps(key.to_dict())))
    assert again == key and again.digest() == key.digest()
    with pytest.raises(ValueError, match="precision must be one of"):
        make_key(precision="int8")
    with pytest.raises(ValueError, match="gpu_name must not be empty"):
        make_key(gpu_name="")


def test_layout_engine_file_and_sidecar_with_the_key(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    directory = cache.store(key, b"PLAN-1", {"parity": {"ok": True}})
    assert directory == tmp_path / key.model_hash[:16] / key.digest()[:16]
    assert sorted(p.name for p in directory.iterdir()) == sorted([ENGINE_FILE, SIDECAR_FILE])
    sidecar = json.loads((directory / SIDECAR_FILE).read_text())
    assert sidecar["key"] == key.to_dict() and sidecar["digest"] == key.digest()
    assert sidecar["engine_bytes"] == 6 and sidecar["parity"] == {"ok": True}
    found = cache.lookup(key)
    assert found.status == "hit" and found.engine == b"PLAN-1"
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    timing = cache.timing_cache_path(key)
    assert timing.parent == tmp_path / "timing" and "sm9.0" in timing.name and "10.8.0.43" in timing.name


@pytest.mark.parametrize("damage, reason", [
    (lambda d: (d / ENGINE_FILE).write_bytes(b"PLAN-"), "has 5 bytes"),
    (lambda d: (d / ENGINE_FILE).write_bytes(b"PLAN-2"), "sha256 does not match"),
    (lambda d: (d / ENGINE_FILE).unlink(), "unreadable"),
    (lambda d: (d / SIDECAR_FILE).write_text("{not json"), "key.json is unreadable"),
    (lambda d: (d / SIDECAR_FILE).unlink(), "key.json is missing"),
])
def test_corrupt_entries_are_detected_and_rebuilt(tmp_path, damage, reason):
    cache, key = EngineCache(tmp_path), make_key()
    directory = cache.store(key, b"PLAN-1")
    damage(directory)
    found = cache.lookup(key)
    assert found.status == "corrupt" and reason in found.reason
    built = []
    result = obtain_engine(cache, key, build=lambda: built.append(1) or b"PLAN-new", deserialize=FakeEngine,
                           verify=verify)
    assert built == [1] and result.source == "built" and result.engine.data == b"PLAN-new"
    assert any("corrupt" in e and reason in e for e in result.events)
    assert cache.lookup(key).status == "hit"


def test_plan_that_does_not_deserialize_is_deleted_and_rebuilt(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, b"garbage that TensorRT refuses")  # sidecar consistent, plan unusable
    result = obtain_engine(cache, key, build=lambda: b"PLAN-new", deserialize=FakeEngine, verify=verify)
    assert result.source == "built"
    assert any("does not deserialize" in e for e in result.events)
    assert cache.lookup(key).engine == b"PLAN-new"


def test_key_mismatch_in_place_is_rebuilt(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    directory = cache.store(key, b"PLAN-1")
    sidecar = json.loads((directory / SIDECAR_FILE).read_text())
    sidecar["key"]["tensorrt_version"] = "10.3.0.26"  # e.g. an engine copied from another machine
    (directory / SIDECAR_FILE).write_text(json.dumps(sidecar))
    found = cache.lookup(key)
    assert found.status == "mismatch" and "tensorrt_version: cached 10.3.0.26, now 10.8.0.43" in found.reason
    result = obtain_engine(cache, key, build=lambda: b"PLAN-2", deserialize=FakeEngine, verify=verify)
    assert result.source == "built" and cache.lookup(key).status == "hit"


def test_miss_names_how_other_engines_for_the_model_differ(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(make_key(tensorrt_version="10.3.0.26"), b"PLAN-old")
    found = cache.lookup(make_key())
    assert found.status == "miss"
    assert "1 other engine(s) for this model differ" in found.reason
    assert "tensorrt_version: cached 10.3.0.26, now 10.8.0.43" in found.reason
    assert "no cached engine for this model" in EngineCache(tmp_path / "empty").lookup(make_key()).reason


def test_hit_uses_the_cache_and_never_builds(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, b"PLAN-1")

    def build():
        raise AssertionError("a valid cached engine must not be rebuilt")

    result = obtain_engine(cache, key, build=build, deserialize=FakeEngine, verify=verify)
    assert result.source == "cache" and result.engine.data == b"PLAN-1" and result.report.ok


def test_cached_engine_failing_parity_is_rebuilt_once(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, b"PLAN-bad")

    def deserialize(data):
        return FakeEngine(data, error=1.0 if data == b"PLAN-bad" else 0.0)

    result = obtain_engine(cache, key, build=lambda: b"PLAN-good", deserialize=deserialize, verify=verify)
    assert result.source == "built" and result.report.ok
    assert any("fails the parity check" in e for e in result.events)


def test_new_engine_failing_parity_is_refused_and_not_stored(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()
    with pytest.raises(EngineRefused, match=r"refused: .*actions: max abs difference 0\.2 > 0\.05") as info:
        obtain_engine(cache, key, build=lambda: b"PLAN-x", deserialize=lambda d: FakeEngine(d, error=0.2),
                      verify=verify)
    assert not info.value.report.ok
    assert cache.lookup(key).status == "miss"


def test_build_failures_are_build_errors(tmp_path):
    cache, key = EngineCache(tmp_path), make_key()

    def parser_error():
        raise RuntimeError("TensorRT's ONNX parser rejected model.onnx: Unique is unsupported")

    with pytest.raises(EngineBuildError, match="parser rejected"):
        obtain_engine(cache, key, build=parser_error, deserialize=FakeEngine, verify=verify)
    with pytest.raises(EngineBuildError, match="does not deserialize"):
        obtain_engine(cache, key, build=lambda: b"junk", deserialize=FakeEngine, verify=verify)
    assert cache.lookup(key).status == "miss"


# --- parity ---------------------------------------------------------------------------------------
def test_parity_thresholds_cosine_and_max_abs():
    limits = ParityThresholds(0.999, {"actions": 0.05})
    assert compare_outputs(REFERENCE, REFERENCE, limits).ok
    scaled = {**REFERENCE, "actions": REFERENCE["actions"] * -1}
    report = compare_outputs(REFERENCE, scaled, limits)
    assert not report.ok and any("cosine" in f for f in report.failures)
    noisy = {**REFERENCE, "actions": REFERENCE["actions"] + 0.06}
    assert "max abs difference 0.06 > 0.05" in compare_outputs(REFERENCE, noisy, limits).describe()
    nan = {**REFERENCE, "actions": np.full_like(REFERENCE["actions"], np.nan)}
    assert "non-finite" in compare_outputs(REFERENCE, nan, limits).describe()
    wrong = {**REFERENCE, "future_frame": np.zeros((1, 3, 8, 8))}
    assert "shape" in compare_outputs(REFERENCE, wrong, limits).describe()
    assert "missing" in compare_outputs(REFERENCE, {"actions": REFERENCE["actions"]}, limits).describe()
    assert cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0 and cosine_similarity(np.zeros(3), np.ones(3)) == 0.0
    assert ONNX_THRESHOLDS.max_abs["actions"] <= 1e-4 and thresholds_for("fp16").min_cosine >= 0.999
    with pytest.raises(ValueError, match="precision must be one of"):
        thresholds_for("int8")
    assert dataclasses.asdict(thresholds_for("fp32"))["max_abs"]["actions"] == 1e-3


# --- real TensorRT ----------------------------------------------------------------------------------
TRT_OK, TRT_WHY = tensorrt_status()


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"needs TensorRT and a CUDA GPU: {TRT_WHY}")
def test_tensorrt_engine_builds_caches_and_matches_torch(tmp_path):  # pragma: no cover - GPU only
    from uam_ros.model.checkpoint import init_checkpoint
    from uam_ros.runtime.policy import Observation
    from uam_ros.runtime.tensorrt_backend import TensorRTPolicy
    from uam_ros.runtime.torch_backend import TorchPolicy

    tiny = dict(image_size=32, patch_size=8, max_text_len=10, d_model=32, n_heads=2, mlp_ratio=2,
                vision_layers=1, ventral_layers=1, dorsal_layers=1, action_layers=1, chunk_size=6,
                num_steps=3, future_latent_grid=2, latent_dim=8, future_frame_size=8, decoder_channels=8)
    joints = ["j1", "j2", "j3", "gripper"]
    ckpt = init_checkpoint(tmp_path / "ckpt", state_dim=4, action_dim=4, joint_names=joints, robot_name="toy",
                           instructions=["pick up the red cube"], config_overrides=tiny)
    first = TensorRTPolicy(ckpt, joints, precision="fp32", cache_dir=tmp_path / "cache", seed=5)
    assert first.engine_source == "built" and first.parity.ok
    second = TensorRTPolicy(ckpt, joints, precision="fp32", cache_dir=tmp_path / "cache", seed=5)
    assert second.engine_source == "cache"
    reference = TorchPolicy(ckpt, joints, seed=5, device="cpu")
    obs = Observation(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8), np.zeros(4),
                      "pick up the red cube", 1)
    assert np.max(np.abs(second.infer(obs).positions - reference.infer(obs).positions)) < 1e-3
