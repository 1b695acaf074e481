"""Training configuration: one dataclass for all three stages, loaded from config/train/<stage>.yaml.

The three stages (DESIGN.md section 4) and what each trains:

    ventral  the ventral VLM on vision-language pairs (captions, VQA)          -> its own checkpoint
    dorsal   the dorsal expert on frame pairs (predict frame t+k from frame t) -> init_from: ventral
    action   END TO END on action data + the dorsal dynamics loss: every weight
             trainable, nothing frozen, no stop-gradient, no VL co-training     -> init_from: dorsal

The single-stream baseline (kind: single_stream) has no dorsal stream: ventral -> action.

Every field is declared once with its default, bounds and description (uam_ros.schema); a bad value
is a ConfigError naming the file and the field, e.g. ``config/train/action.yaml: field 'lr': -1.0
must be > 0``. Relative paths are relative to the working directory the command runs in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uam_ros.config_errors import ConfigError
from uam_ros.model.config import UAMConfig
from uam_ros.model.uam import MODEL_KINDS
from uam_ros.schema import FieldProblem, from_dict, spec, to_dict

STAGES = ("ventral", "dorsal", "action")
# Set from the robot's joint layout and the tokenizer, never by hand.
DERIVED_MODEL_FIELDS = ("state_dim", "action_dim", "vocab_size")


@dataclass
class DataConfig:
    train: list[str] = spec(
        default_factory=list,
        description="Dataset directories to train on (uam collect output). ventral: datasets with VL pairs; "
        "dorsal/action: datasets of train-split episodes (held-out datasets are refused)",
    )
    val: list[str] = spec(
        default_factory=list,
        description="Dataset directories to validate on; empty: hold out val_fraction of the training "
        "episodes (VL: images) instead",
    )
    val_fraction: float = spec(0.1, "Share of training episodes (or VL images) held out for validation when "
                               "val is empty", ge=0.0, lt=1.0)
    first_steps: int = spec(
        0, "action stage: the first N frames of every training episode are repeated first_steps_repeat times per "
        "epoch; 0: every frame once. Why: after a step or two the arm's own motion tells which object an "
        "episode goes to, so only its first frames make the policy read the instruction (training notes, "
        "experiment 8)", ge=0)
    first_steps_repeat: int = spec(1, "How many times each of those first frames appears per epoch", ge=1)

    def check(self) -> None:
        if not self.train:
            raise FieldProblem("train", "at least one dataset directory is required")


@dataclass
class TrainConfig:
    stage: str = spec(description="Which stage this config trains", choices=STAGES)
    out_dir: str = spec(description="Run directory: checkpoint/, latest/ (resume state), curves.{csv,json,png}")
    data: DataConfig = spec(default_factory=DataConfig, description="Training and validation data")
    robot: str = spec("franka_panda", "Robot name or YAML path; fixes state/action layout and checkpoint meta")
    kind: str = spec("uam", "Model kind: the dual-stream UAM or the single-stream baseline", choices=MODEL_KINDS)
    init_from: str = spec("", "Checkpoint directory of the previous stage (its trained parts are loaded); "
                          "empty: start from random weights")
    resume: bool = spec(True, "Continue from out_dir/latest when it exists (same config required)")

    epochs: int = spec(10, "Passes over the training data (ignored when max_steps > 0)", ge=1)
    max_steps: int = spec(0, "Total optimizer steps; 0: epochs * steps per epoch", ge=0)
    batch_size: int = spec(32, "Samples per step per process (the global batch is batch_size * world size)", ge=1)
    lr: float = spec(3e-4, "Peak learning rate (AdamW)", gt=0.0)
    min_lr: float = spec(3e-5, "Learning rate at the end of the cosine decay", ge=0.0)
    warmup_steps: int = spec(100, "Linear warm-up steps from 0 to lr", ge=0)
    weight_decay: float = spec(0.01, "AdamW weight decay (matrices and embeddings only, not biases/norms)", ge=0.0)
    betas: list[float] = spec(default_factory=lambda: [0.9, 0.95], description="AdamW betas", ge=0.0, lt=1.0)
    lr_scale: dict[str, float] = spec(
        default_factory=dict,
        description="Learning-rate multiplier per top-level module, e.g. {ventral: 0.1}: a pretrained stream "
                    "moves slower than a new one (pi0 / OpenVLA practice). Must be > 0: still trained, not frozen")
    grad_clip: float = spec(1.0, "Clip the global gradient norm to this; 0 disables", ge=0.0)
    seed: int = spec(0, "Seeds weights, data order, noise and dropout (per step, so resuming is exact)", ge=0)

    device: str = spec("cpu", "cpu or cuda (cuda: one GPU per process; torchrun for several)", choices=("cpu", "cuda"))
    amp: bool = spec(True, "Autocast mixed precision on cuda (no effect on cpu)")
    amp_dtype: str = spec("bfloat16", "Autocast dtype; float16 adds a gradient scaler", choices=("bfloat16", "float16"))
    threads: int = spec(0, "torch CPU threads per process; 0: (cores - 1) / processes on this machine", ge=0)
    num_workers: int = spec(0, "DataLoader worker processes (data is in memory; 0 is usually fine)", ge=0)

    log_every: int = spec(10, "Steps between training-loss rows in the curves", ge=1)
    save_every: int = spec(0, "Steps between resume saves; 0: at the end of every epoch", ge=0)
    snapshot_every: int = spec(0, "Steps between kept model snapshots (out_dir/snapshots/step_NNNNNN/, each a "
                               "loadable checkpoint: pick a step by closed-loop success on validation layouts, "
                               "which the validation loss does not predict); 0: none", ge=0)
    vqa_samples: int = spec(64, "ventral stage: validation pairs answered by greedy generation each epoch "
                            "(VQA accuracy); 0: skip", ge=0)
    model: dict[str, Any] = spec(default_factory=dict, description="UAMConfig overrides (e.g. d_model: 64)")

    def check(self) -> None:
        if self.data.first_steps and self.stage != "action":
            raise FieldProblem("data.first_steps", f"only the action stage samples frames by episode step "
                               f"(stage is {self.stage!r}); leave it 0")
        if self.kind == "single_stream" and self.stage == "dorsal":
            raise FieldProblem("kind", "single_stream has no dorsal stream; its stages are ventral -> action")
        if self.min_lr > self.lr:
            raise FieldProblem("min_lr", f"{self.min_lr} must be <= lr ({self.lr})")
        for name, scale in self.lr_scale.items():
            if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0.0 < float(scale) <= 10.0:
                raise FieldProblem(f"lr_scale.{name}", f"{scale!r} must be a number in (0, 10]; "
                                   "0 would freeze the module, which no stage allows")
        if len(self.betas) != 2:
            raise FieldProblem("betas", f"expected 2 values, got {len(self.betas)}")
        known = {f.name for f in dataclasses.fields(UAMConfig)}
        for name in self.model:
            if name not in known:
                raise FieldProblem(f"model.{name}", f"unknown UAMConfig field (known: {sorted(known)})")
            if name in DERIVED_MODEL_FIELDS:
                raise FieldProblem(f"model.{name}", "is set from the robot's joint layout / the tokenizer")
        if self.init_from:
            return  # the model is the init checkpoint's config + these overrides: build_stage checks that
        try:
            UAMConfig(**self.model)
        except (TypeError, ValueError) as error:
            field = next((n for n in self.model if f"UAMConfig.{n}" in str(error)), None)
            raise FieldProblem(f"model.{field}" if field else "model", str(error)) from None

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(source, dotted, f"'{key}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(items: list[str] | None, source: str) -> dict[str, Any]:
    """``["lr=1e-3", "data.train=[a, b]"]`` -> nested dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(source, item, "override must look like field=value (e.g. lr=1e-3, data.train=[d1])")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(source, key, f"invalid YAML value {text!r}: {error}") from None
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; on a command line it means a number
            try:
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "+inf") else value
            except ValueError:
                pass
        _set_dotted(out, key.strip(), value, source)
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "model":
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a stage YAML, apply overrides (CLI), validate. Errors name the file (and say when the
    bad value came from an override) and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(str(path), "<file>", f"cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(str(path), "<file>", f"invalid YAML: {error}") from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "<root>", f"expected a mapping, got {type(raw).__name__}")
    source = str(path)
    if overrides:
        raw = _merge(raw, overrides)
        source = f"{path} (with command-line overrides)"
    return from_dict(TrainConfig, raw, source)
