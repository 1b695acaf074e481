"""Checkpoints: safetensors-only round trip, tamper detection, shape and layout errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from uam_ros.model.checkpoint import (
    CheckpointError,
    ensure_layout,
    init_checkpoint,
    load_checkpoint,
    recommended_replan_steps,
    resolve_replan_steps,
    save_checkpoint,
    sha256_file,
)

torch.set_num_threads(1)

from tiny_model import JOINTS, TINY  # noqa: E402  (shared tiny config)


def make_checkpoint(directory, kind="uam", seed=0, **extra):
    return init_checkpoint(
        directory, state_dim=4, action_dim=4, joint_names=JOINTS, robot_name="toy", seed=seed, kind=kind,
        instructions=["pick up the red cube", "put the cube in the bowl"], config_overrides=TINY, **extra,
    )


def run(loaded, image, instruction, state, noise):
    inputs = loaded.processor.to_model_inputs(image, instruction, state)
    with torch.no_grad():
        actions, frame = loaded.model(inputs["image"], inputs["tokens"], inputs["state"], noise)
    return loaded.processor.actions_from_model(actions), loaded.processor.frame_from_model(frame)


@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_round_trip_gives_identical_outputs(tmp_path, kind, monkeypatch):
    first = load_checkpoint(make_checkpoint(tmp_path / "a", kind=kind, action_mean=[0.1, 0.2, 0.3, 0.04]))
    resaved = save_checkpoint(tmp_path / "b", first.model, first.processor, first.kind, first.meta)

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load must never be used for checkpoints")

    monkeypatch.setattr(torch, "load", no_pickle)
    second = load_checkpoint(resaved)
    assert second.kind == kind and second.config == first.config
    assert second.meta["joint_names"] == JOINTS and second.meta["robot_name"] == "toy"
    assert second.meta["trained"] is False
    assert second.weights_sha256 == first.weights_sha256 == sha256_file(resaved / "model.safetensors")
    assert not second.model.training
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    noise = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(0))
    a1, f1 = run(first, image, "pick up the cube", np.zeros(4), noise)
    a2, f2 = run(second, image, "pick up the cube", np.zeros(4), noise)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(f1, f2)
    assert a1.shape == (6, 4) and f1.shape == (8, 8, 3)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = load_checkpoint(make_checkpoint(tmp_path / "a", seed=1)).weights_sha256
    b = load_checkpoint(make_checkpoint(tmp_path / "b", seed=1)).weights_sha256
    c = load_checkpoint(make_checkpoint(tmp_path / "c", seed=2)).weights_sha256
    assert a == b != c


def test_tampered_weights_are_refused(tmp_path):
    directory = make_checkpoint(tmp_path / "ckpt")
    weights = load_file(str(directory / "model.safetensors"))
    weights["action_head.action_out.bias"] = weights["action_head.action_out.bias"] + 1.0
    save_file(weights, str(directory / "model.safetensors"))  # still a valid safetensors file
    with pytest.raises(CheckpointError, match="sha256 .* does not match .*modified or corrupted"):
        load_checkpoint(directory)


def test_shape_mismatch_lists_every_bad_tensor(tmp_path):
    directory = make_checkpoint(tmp_path / "ckpt")
    document = json.loads((directory / "config.json").read_text())
    document["model_config"]["chunk_size"] = 7  # config no longer describes the stored weights
    (directory / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory)
    message = str(info.value)
    assert "action_head.chunk_pos: checkpoint shape (1, 6, 32) != model shape (1, 7, 32)" in message


def test_missing_files_and_bad_meta_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(tmp_path)
    loaded = load_checkpoint(make_checkpoint(tmp_path / "ckpt"))
    with pytest.raises(CheckpointError, match="joint_names has 2 names .* action_dim is 4"):
        save_checkpoint(tmp_path / "x", loaded.model, loaded.processor, "uam", {"joint_names": ["a", "b"]})
    with pytest.raises(CheckpointError, match="kind must be one of"):
        save_checkpoint(tmp_path / "x", loaded.model, loaded.processor, "vla", {})


def test_layout_mismatch_says_what_differs(tmp_path):
    loaded = load_checkpoint(make_checkpoint(tmp_path / "ckpt"))
    ensure_layout(loaded, JOINTS)  # matching layout passes
    with pytest.raises(ValueError, match=r"only in checkpoint: \['j3'\]; only in robot config: \['elbow'\]"):
        ensure_layout(loaded, ["j1", "j2", "elbow", "gripper"])
    with pytest.raises(ValueError, match="checkpoint has 4 joints, robot has 3"):
        ensure_layout(loaded, ["j1", "j2", "j3"])
    with pytest.raises(ValueError, match="different order .* index 0: checkpoint 'j1', robot 'j2'"):
        ensure_layout(loaded, ["j2", "j1", "j3", "gripper"])


def test_recommended_replan_steps_comes_from_the_checkpoint_meta(tmp_path):
    from uam_ros.resources import models_dir

    directory = make_checkpoint(tmp_path / "ckpt")
    assert recommended_replan_steps(directory) == 0  # records none: replan on every image
    assert recommended_replan_steps("expert://reach?seed=0") == 0  # not a checkpoint directory
    assert recommended_replan_steps("") == 0  # the demo's per-episode expert (never the cwd's config.json)
    config_path = directory / "config.json"
    document = json.loads(config_path.read_text())
    for value, expected in ((3, 3), (0, 0)):
        document["meta"]["replan_steps"] = value
        config_path.write_text(json.dumps(document))
        assert recommended_replan_steps(directory) == expected
    load_checkpoint(directory)  # a deployment hint, not part of the weights' hash
    for bad in (-1, 2.5, "2", True):
        document["meta"]["replan_steps"] = bad
        config_path.write_text(json.dumps(document))
        with pytest.raises(CheckpointError, match="replan_steps"):
            recommended_replan_steps(directory)
    # The shipped default does best at 8 steps per chunk (training notes, experiments 13-14).
    default = models_dir() / "default" / "franka_panda"
    assert recommended_replan_steps(default) == 8
    assert (resolve_replan_steps(-1, default), resolve_replan_steps(0, default), resolve_replan_steps(5, default)) \
        == (8, 0, 5)


def test_shipped_default_starts_from_the_shipped_ventral_and_trains_every_part():
    """models/pretrained/franka_panda_ventral is the "before" of the default model's VQA retention
    figure: the default's recorded init must be exactly those weights (a ventral-stage checkpoint),
    and the default itself an action-stage UAM with every part trained and the ventral's vocabulary."""
    from uam_ros.resources import models_dir

    default = load_checkpoint(models_dir() / "default" / "franka_panda")
    ventral = load_checkpoint(models_dir() / "pretrained" / "franka_panda_ventral")
    assert ventral.meta["stage"] == "ventral" and ventral.meta["trained_modules"] == ["ventral"]
    assert default.meta["init_from"]["weights_sha256"] == ventral.weights_sha256
    assert default.meta["stage"] == "action" and default.kind == "uam"
    assert default.meta["trained_modules"] == ["action_head", "dorsal", "ventral"]
    assert default.processor.tokenizer.itos == ventral.processor.tokenizer.itos
    moved = [name for name, tensor in ventral.model.ventral.state_dict().items()
             if not torch.equal(tensor, default.model.ventral.state_dict()[name])]
    assert moved  # slowed, not frozen
