"""Training configs: the shipped YAMLs load, and every error names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from uam_ros.config_errors import ConfigError
from uam_ros.train.config import STAGES, load_train_config, parse_overrides

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "train"


@pytest.mark.parametrize("stage", STAGES)
def test_shipped_configs_load(stage):
    cfg = load_train_config(CONFIG_DIR / f"{stage}.yaml")
    assert cfg.stage == stage and cfg.data.train


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "stage.yaml"
    path.write_text("stage: action\nout_dir: runs/x\ndata: {train: [d]}\n" + text)
    return path


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ("lr: -0.1\n", "lr", "must be > 0"),
        ("batch_size: 2.5\n", "batch_size", "expected an integer"),
        ("device: tpu\n", "device", "is not one of"),
        ("kind: single_stream\nstage_typo: 1\n", "stage_typo", "unknown field"),
        ("min_lr: 0.1\nlr: 0.01\n", "min_lr", "must be <= lr"),
        ("model: {d_model: 30, n_heads: 4}\n", "model.n_heads", "must divide d_model"),
        ("model: {wings: 2}\n", "model.wings", "unknown UAMConfig field"),
        ("model: {action_dim: 3}\n", "model.action_dim", "joint layout"),
        ("data: {train: []}\n", "data.train", "at least one"),
        ("data: {train: [d], val_fraction: 1.5}\n", "data.val_fraction", "must be < 1"),
        ("data: {train: [d], first_steps_repeat: 0}\n", "data.first_steps_repeat", "must be >= 1"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, extra, field, problem):
    path = _write(tmp_path, extra)
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert problem in str(info.value) and str(path) in str(info.value)


def test_single_stream_has_no_dorsal_stage(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("stage: dorsal\nkind: single_stream\nout_dir: x\ndata: {train: [d]}\n")
    with pytest.raises(ConfigError, match="'kind'"):
        load_train_config(path)


def test_first_step_oversampling_is_an_action_stage_option(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("stage: dorsal\nout_dir: x\ndata: {train: [d], first_steps: 2}\n")
    with pytest.raises(ConfigError, match="only the action stage") as info:
        load_train_config(path)
    assert info.value.field == "data.first_steps"


def test_command_line_overrides_are_validated_and_say_so(tmp_path):
    path = _write(tmp_path, "")
    cfg = load_train_config(path, parse_overrides(["lr=1e-3", "data.val_fraction=0.2", "model.d_model=64"], "cli"))
    assert cfg.lr == 1e-3 and cfg.data.val_fraction == 0.2 and cfg.model == {"d_model": 64}
    with pytest.raises(ConfigError) as info:
        load_train_config(path, parse_overrides(["warmup_steps=-3"], "cli"))
    assert info.value.field == "warmup_steps" and "command-line overrides" in info.value.source
    with pytest.raises(ConfigError, match="field=value"):
        parse_overrides(["lr"], "cli")
