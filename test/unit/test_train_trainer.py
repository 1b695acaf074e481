"""The training loop: it learns, it resumes exactly, stage 3 is end to end, the stages chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from uam_ros.control.robot_config import load_robot_config
from uam_ros.model.checkpoint import load_checkpoint
from uam_ros.schema import from_dict
from uam_ros.train.config import TrainConfig
from uam_ros.train.synthetic import make_synthetic_dataset
from uam_ros.train.trainer import (
    StageObjective,
    TrainError,
    build_stage,
    lr_at,
    make_optimizer,
    train,
)

from tiny_model import TRAIN_TINY as TINY_MODEL  # noqa: E402


def tiny_config(out_dir: Path, dataset: Path, stage: str = "action", **fields) -> TrainConfig:
    raw = {
        "stage": stage, "out_dir": str(out_dir), "data": {"train": [str(dataset)], "val_fraction": 0.0},
        "batch_size": 4, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2, "max_steps": 6, "seed": 3, "threads": 1,
        "log_every": 1, "vqa_samples": 4, "model": dict(TINY_MODEL),
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return from_dict(TrainConfig, raw, "test")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("train") / "d", episodes=2, length=10, image_size=16,
                                  vl_pairs=12)


def test_a_few_steps_reduce_the_loss(tmp_path, data):
    cfg = tiny_config(tmp_path / "run", data, max_steps=36, warmup_steps=0, lr=3e-3, min_lr=3e-3,
                      data={"val": [str(data)]})  # validate on the training data: is it being fitted?
    result = train(cfg, quiet=True)
    val = [row["loss"] for row in result.history["val"]]
    assert len(val) == 36 // 5 + 1  # 20 samples / batch 4 = 5 steps per epoch, plus the final step
    assert val[-1] < 0.8 * val[0], val  # measured: 2.25 -> 1.42 (a broken optimizer stays at ~2.25)
    action = [row["action_loss"] for row in result.history["val"]]
    assert action[-1] < action[0], action
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert (tmp_path / "run" / "curves.csv").read_text().startswith("split,step,epoch")


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, data):
    straight = train(tiny_config(tmp_path / "a", data, max_steps=7), quiet=True)
    stopped = train(tiny_config(tmp_path / "b", data, max_steps=7), stop_after=3, quiet=True)
    assert stopped.checkpoint is None and stopped.step == 3
    state = json.loads((tmp_path / "b" / "latest" / "trainer_state.json").read_text())
    assert state["step"] == 3
    resumed = train(tiny_config(tmp_path / "b", data, max_steps=7), quiet=True)
    assert resumed.step == 7 and resumed.checkpoint is not None
    a = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    a_opt = load_file(str(tmp_path / "a" / "latest" / "optimizer.safetensors"))
    b_opt = load_file(str(tmp_path / "b" / "latest" / "optimizer.safetensors"))
    assert all(torch.equal(a_opt[k], b_opt[k]) for k in a_opt)
    assert [r["loss"] for r in straight.history["train"]] == [r["loss"] for r in resumed.history["train"]]


def test_snapshots_keep_loadable_checkpoints_along_the_run(tmp_path, data):
    result = train(tiny_config(tmp_path / "run", data, max_steps=6, snapshot_every=2), quiet=True)
    snapshots = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots == ["step_000002", "step_000004", "step_000006"]
    final = load_file(str(result.checkpoint / "model.safetensors"))
    last = load_file(str(tmp_path / "run" / "snapshots" / "step_000006" / "model.safetensors"))
    first = load_file(str(tmp_path / "run" / "snapshots" / "step_000002" / "model.safetensors"))
    assert all(torch.equal(final[k], last[k]) for k in final)  # the last snapshot is the final model
    assert any(not torch.equal(final[k], first[k]) for k in final)  # an earlier one is an earlier model
    loaded = load_checkpoint(tmp_path / "run" / "snapshots" / "step_000002")
    assert loaded.meta["step"] == 2 and loaded.meta["final"] is False


def test_resume_refuses_a_changed_config(tmp_path, data):
    train(tiny_config(tmp_path / "r", data, max_steps=4), stop_after=1, quiet=True)
    with pytest.raises(TrainError, match="lr"):
        train(tiny_config(tmp_path / "r", data, max_steps=4, lr=1e-3), quiet=True)


@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_action_stage_is_end_to_end(tmp_path, data, kind):
    cfg = tiny_config(tmp_path / "e2e", data, kind=kind)
    setup = build_stage(cfg, load_robot_config(cfg.robot), log=lambda m: None)
    frozen = [n for n, p in setup.model.named_parameters() if not p.requires_grad]
    assert frozen == []
    _, names = make_optimizer(setup.model, cfg)
    assert sorted(names) == sorted(n for n, _ in setup.model.named_parameters())
    batch = {k: torch.stack([setup.train_ds[i][k] for i in range(4)]) for k in setup.train_ds[0]}
    StageObjective(setup.model, "action")(batch)["loss"].backward()
    no_gradient = [n for n, p in setup.model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_gradient == []  # no stop-gradient anywhere: every weight is reached by the loss


def test_stages_chain_and_record_their_provenance(tmp_path, data):
    ventral = train(tiny_config(tmp_path / "v", data, stage="ventral", max_steps=2, data={"val_fraction": 0.3}),
                    quiet=True)
    dorsal = train(tiny_config(tmp_path / "d", data, stage="dorsal", max_steps=2,
                               init_from=str(ventral.checkpoint)), quiet=True)
    action = train(tiny_config(tmp_path / "a", data, stage="action", max_steps=2,
                               init_from=str(dorsal.checkpoint)), quiet=True)
    v, d, a = (load_checkpoint(r.checkpoint) for r in (ventral, dorsal, action))
    assert v.meta["trained_modules"] == ["ventral"] and d.meta["trained_modules"] == ["dorsal", "ventral"]
    v_weights, d_weights = v.model.state_dict(), d.model.state_dict()
    assert all(torch.equal(v_weights[k], d_weights[k]) for k in v_weights if k.startswith("ventral."))
    assert not torch.equal(v_weights["dorsal.queries"], d_weights["dorsal.queries"])
    assert a.processor.tokenizer.itos == v.processor.tokenizer.itos  # the ventral vocabulary carries through
    meta = a.meta
    for key in ("robot_name", "joint_names", "action_rate_hz", "data_hash", "code_revision", "stage", "kind"):
        assert key in meta, key
    assert meta["trained"] is True and meta["stage"] == "action" and meta["kind"] == "uam"
    assert meta["joint_names"][-1] == "panda_finger_joint1" and meta["action_rate_hz"] == 10.0
    assert meta["init_from"]["weights_sha256"] == d.weights_sha256
    assert 0.0 <= ventral.history["val"][-1]["vqa_accuracy"] <= 1.0


def test_schedule_warms_up_then_decays_to_min_lr(tmp_path, data):
    cfg = tiny_config(tmp_path, data, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, cfg, 100) == pytest.approx(0.1)
    assert lr_at(9, cfg, 100) == pytest.approx(1.0)
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)
    assert lr_at(55, cfg, 100) == pytest.approx(0.55)


def test_lr_scale_slows_one_stream_without_freezing_it(tmp_path, data):
    cfg = tiny_config(tmp_path / "s", data, lr_scale={"ventral": 0.1}, warmup_steps=0, lr=3e-3, min_lr=3e-3)
    setup = build_stage(cfg, load_robot_config(cfg.robot), log=lambda m: None)
    optimizer, names = make_optimizer(setup.model, cfg)
    assert sorted(names) == sorted(n for n, _ in setup.model.named_parameters())  # still every weight
    by_param = {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}
    for name, param in setup.model.named_parameters():
        assert by_param[id(param)] == (0.1 if name.startswith("ventral.") else 1.0), name
    before = {n: p.detach().clone() for n, p in setup.model.named_parameters()}
    result = train(cfg, quiet=True)
    after = load_checkpoint(result.checkpoint).model.state_dict()
    moved = [n for n in before if n.startswith("ventral.") and not torch.equal(before[n], after[n])]
    assert moved  # slowed, not frozen


@pytest.mark.parametrize("scale, match", [(0.0, "freeze"), (-1.0, "freeze"), ("x", "number")])
def test_lr_scale_rejects_freezing_and_junk(tmp_path, data, scale, match):
    from uam_ros.schema import ConfigError
    with pytest.raises(ConfigError, match=match):
        tiny_config(tmp_path / "x", data, lr_scale={"ventral": scale})


def test_lr_scale_names_must_be_modules(tmp_path, data):
    cfg = tiny_config(tmp_path / "m", data, lr_scale={"ventrl": 0.1})
    setup = build_stage(cfg, load_robot_config(cfg.robot), log=lambda m: None)
    with pytest.raises(TrainError, match="ventrl"):
        make_optimizer(setup.model, cfg)


def test_model_overrides_are_checked_against_the_init_checkpoint(tmp_path, data):
    # A ventral-pretrained checkpoint whose config has pointers (its dorsal is not trained yet, so the
    # action stage may add the offsets). pointer_offsets alone would fail: no pointers by default.
    base = train(tiny_config(tmp_path / "p", data, stage="ventral", max_steps=1, model={"pointer_points": 2},
                             data={"val_fraction": 0.3}), quiet=True)
    cfg = tiny_config(tmp_path / "o", data, max_steps=1, init_from=str(base.checkpoint), model={"pointer_offsets": True})
    assert load_checkpoint(train(cfg, quiet=True).checkpoint).config.pointer_offsets is True
    no_pointers = train(tiny_config(tmp_path / "n", data, stage="ventral", max_steps=1,
                                    data={"val_fraction": 0.3}), quiet=True)
    bad = tiny_config(tmp_path / "b", data, max_steps=1, init_from=str(no_pointers.checkpoint),
                      model={"pointer_offsets": True})
    with pytest.raises(TrainError, match="pointer_offsets needs pointer_points"):
        build_stage(bad, load_robot_config(bad.robot), log=lambda m: None)


def test_action_stage_from_a_ventral_checkpoint_keeps_the_dorsal_word_table_its_own(tmp_path, data):
    """film_source "dorsal_words" from a ventral-pretrained checkpoint: the ventral's weights are
    loaded, the dorsal's FiLM word table is not the ventral's embeddings (the pretrained ventral's unused
    words share one vector), and an action checkpoint carries the table it trained."""
    film = {"language_film": True, "film_source": "dorsal_words"}
    ventral = train(tiny_config(tmp_path / "v", data, stage="ventral", max_steps=1, data={"val_fraction": 0.3}),
                    quiet=True)
    words = load_checkpoint(ventral.checkpoint).model.ventral.tok_embed.weight
    cfg = tiny_config(tmp_path / "a", data, max_steps=1, init_from=str(ventral.checkpoint), model=film)
    model = build_stage(cfg, load_robot_config(cfg.robot), log=lambda m: None).model
    assert torch.equal(model.ventral.tok_embed.weight, words)
    assert not torch.allclose(model.dorsal.word_embed.weight, words, atol=1e-3)
    action = train(cfg, quiet=True)
    trained = load_checkpoint(action.checkpoint).model
    again = tiny_config(tmp_path / "b", data, max_steps=1, init_from=str(action.checkpoint))
    resumed = build_stage(again, load_robot_config(again.robot), log=lambda m: None).model
    assert torch.equal(resumed.dorsal.word_embed.weight, trained.dorsal.word_embed.weight)


def test_a_ventral_only_vlm_starts_another_robots_policy_but_an_action_checkpoint_does_not(tmp_path, data):
    """The ventral VLM never sees a joint, so one pretrained on the UR5e's layout (7 joints + gripper)
    starts a Panda policy (8) with the ventral's weights; a checkpoint that trained the action layout
    is refused for another robot (its state/action normalisation belongs to its joints)."""
    ventral = train(tiny_config(tmp_path / "v", data, stage="ventral", robot="ur5e", max_steps=1,
                                data={"val_fraction": 0.3}), quiet=True)
    assert len(load_checkpoint(ventral.checkpoint).meta["joint_names"]) == 7
    words = load_checkpoint(ventral.checkpoint).model.ventral.tok_embed.weight
    notes: list[str] = []
    cfg = tiny_config(tmp_path / "a", data, max_steps=1, init_from=str(ventral.checkpoint))
    setup = build_stage(cfg, load_robot_config(cfg.robot), log=notes.append)
    assert torch.equal(setup.model.ventral.tok_embed.weight, words)
    assert setup.config.action_dim == setup.config.state_dim == 8
    assert any("trained no action layout" in n for n in notes), notes
    action = train(cfg, quiet=True)
    assert load_checkpoint(action.checkpoint).meta["joint_names"] == load_robot_config("franka_panda").action_joint_names
    other = tiny_config(tmp_path / "b", data, stage="ventral", robot="ur5e", max_steps=1,
                        init_from=str(action.checkpoint), data={"val_fraction": 0.3})
    with pytest.raises(Exception, match="action layout"):
        build_stage(other, load_robot_config("ur5e"), log=lambda m: None)
