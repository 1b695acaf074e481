"""Checkpoints: model.safetensors (weights only) + config.json (everything needed to rebuild and use them).

Why this shape: a checkpoint directory must be safe to load from anywhere (safetensors holds only
tensors, never pickled code -- torch.load is never called), self-describing (model kind, UAMConfig,
tokenizer vocabulary, normalisation stats, the robot's action layout) and tamper-evident (config.json
records the sha256 of the weights file; a mismatch is refused with a clear error). The sha256 also
serves runtime/ as the model hash in TensorRT engine-cache keys.

config.json:
  {"format_version": 1, "kind": "uam" | "single_stream", "model_config": {...UAMConfig...},
   "processor": {image_size, max_text_len, state_dim, action_dim, tokenizer, normalization},
   "meta": {"robot_name": ..., "joint_names": [...], ...}, "weights_sha256": "..."}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from uam_ros.model.config import UAMConfig
from uam_ros.model.processor import UAMProcessor
from uam_ros.model.tokenizer import WordTokenizer
from uam_ros.model.uam import MODEL_KINDS, build_model

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint directory is missing, inconsistent, tampered with, or for another robot."""


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    processor: UAMProcessor
    config: UAMConfig
    kind: str
    meta: dict[str, Any]
    weights_sha256: str
    directory: Path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    directory: str | Path, model: nn.Module, processor: UAMProcessor, kind: str, meta: dict[str, Any]
) -> Path:
    """Write model.safetensors + config.json into directory (created if needed); returns the directory."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"save_checkpoint: kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
    config: UAMConfig = model.config
    joint_names = meta.get("joint_names")
    if joint_names is not None and len(joint_names) != config.action_dim:
        raise CheckpointError(
            f"save_checkpoint: meta joint_names has {len(joint_names)} names {list(joint_names)} "
            f"but the model's action_dim is {config.action_dim}"
        )
    if (processor.state_dim, processor.action_dim) != (config.state_dim, config.action_dim):
        raise CheckpointError(
            f"save_checkpoint: processor (state_dim={processor.state_dim}, action_dim={processor.action_dim}) "
            f"does not match model (state_dim={config.state_dim}, action_dim={config.action_dim})"
        )
    try:
        meta_json = json.loads(json.dumps(meta))
    except TypeError as error:
        raise CheckpointError(f"save_checkpoint: meta must be JSON-serialisable: {error}") from error

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    weights_path = directory / WEIGHTS_FILE
    # One metadata key only: safetensors writes its metadata map in hash order, and more than one key
    # would make the file bytes (and so the sha256 / engine-cache key) differ between identical saves.
    save_file(weights, str(weights_path), metadata={"format": "pt"})
    document = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_config": config.to_dict(),
        "processor": processor.to_dict(),
        "meta": meta_json,
        "weights_sha256": sha256_file(weights_path),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return directory


def load_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild model + processor from a checkpoint directory, in eval mode.

    Weights are read only through safetensors. Raises CheckpointError when a file is missing, the
    weights' sha256 differs from config.json's, or tensor names/shapes do not fit the config.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory}: missing {path.name}")
    try:
        document = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"checkpoint {directory}: {CONFIG_FILE} is not valid JSON: {error}") from error
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {directory}: format_version {document.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    kind = document.get("kind")
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"checkpoint {directory}: kind {kind!r} is not one of {list(MODEL_KINDS)}")

    expected = document.get("weights_sha256")
    actual = sha256_file(weights_path)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {directory}: {WEIGHTS_FILE} sha256 {actual} does not match {expected} recorded in "
            f"{CONFIG_FILE}; the weights were modified or corrupted -- refusing to load them"
        )

    try:
        config = UAMConfig.from_dict(document["model_config"])
        processor = UAMProcessor.from_dict(document["processor"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {directory}: bad {CONFIG_FILE}: {error}") from error
    model = build_model(config, kind)
    try:
        weights = load_file(str(weights_path), device=str(map_location))
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError types
        raise CheckpointError(f"{weights_path}: not a readable safetensors file: {exc}") from exc
    _check_state_dict(directory, model.state_dict(), weights)
    model.load_state_dict(weights, strict=True)
    model.to(map_location).eval()
    return LoadedCheckpoint(
        model=model,
        processor=processor,
        config=config,
        kind=kind,
        meta=dict(document.get("meta", {})),
        weights_sha256=actual,
        directory=directory,
    )


def _check_state_dict(directory: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """Raise one CheckpointError listing every missing, unexpected and wrongly shaped tensor."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors: {missing}")
    if unexpected:
        problems.append(f"unexpected tensors: {unexpected}")
    for name in sorted(set(expected) & set(found)):
        if tuple(expected[name].shape) != tuple(found[name].shape):
            problems.append(
                f"{name}: checkpoint shape {tuple(found[name].shape)} != model shape {tuple(expected[name].shape)}"
            )
    if problems:
        raise CheckpointError(
            f"checkpoint {directory}: weights do not fit the model built from {CONFIG_FILE}:\n  "
            + "\n  ".join(problems)
        )


def ensure_layout(loaded: LoadedCheckpoint, joint_names: Sequence[str]) -> None:
    """Raise ValueError (CheckpointError) unless the checkpoint's action layout is exactly joint_names."""
    trained = list(loaded.meta.get("joint_names") or [])
    robot = list(joint_names)
    if trained == robot:
        return
    if not trained:
        raise CheckpointError(
            f"checkpoint {loaded.directory}: records no joint_names (action layout unknown); "
            f"robot joints are {robot}"
        )
    details = []
    if len(trained) != len(robot):
        details.append(f"checkpoint has {len(trained)} joints, robot has {len(robot)}")
    only_checkpoint = [name for name in trained if name not in robot]
    only_robot = [name for name in robot if name not in trained]
    if only_checkpoint:
        details.append(f"only in checkpoint: {only_checkpoint}")
    if only_robot:
        details.append(f"only in robot config: {only_robot}")
    if not only_checkpoint and not only_robot:
        index = next(i for i, (a, b) in enumerate(zip(trained, robot)) if a != b)
        details.append(f"same joints in a different order (first difference at index {index}: "
                       f"checkpoint {trained[index]!r}, robot {robot[index]!r})")
    raise CheckpointError(
        f"checkpoint {loaded.directory} (robot {loaded.meta.get('robot_name')!r}) action layout {trained} "
        f"does not match robot joint_names {robot}: " + "; ".join(details)
    )


def init_checkpoint(
    directory: str | Path,
    *,
    state_dim: int,
    action_dim: int,
    joint_names: Sequence[str],
    robot_name: str,
    instructions: list[str],
    seed: int = 0,
    kind: str = "uam",
    config_overrides: dict[str, Any] | None = None,
    state_mean: Sequence[float] | None = None,
    state_std: Sequence[float] | None = None,
    action_mean: Sequence[float] | None = None,
    action_std: Sequence[float] | None = None,
) -> Path:
    """Save a seeded, randomly initialised model (meta "trained": false) until a trained one exists.

    The vocabulary is built from instructions; normalisation is identity unless stats are given (an
    untrained model's actions then sit near action_mean, e.g. a home pose). Same seed -> same weights.
    """
    tokenizer = WordTokenizer.build(instructions)
    fields = {"state_dim": state_dim, "action_dim": action_dim, "vocab_size": len(tokenizer)}
    fields.update(config_overrides or {})
    config = UAMConfig(**fields)
    if config.vocab_size < len(tokenizer):
        raise CheckpointError(
            f"init_checkpoint: config_overrides vocab_size={config.vocab_size} is smaller than the "
            f"tokenizer's {len(tokenizer)} words"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config, kind)
    processor = UAMProcessor(
        tokenizer,
        image_size=config.image_size,
        max_text_len=config.max_text_len,
        state_dim=state_dim,
        action_dim=action_dim,
        state_mean=state_mean,
        state_std=state_std,
        action_mean=action_mean,
        action_std=action_std,
    )
    meta = {
        "robot_name": robot_name,
        "joint_names": list(joint_names),
        "trained": False,
        "seed": seed,
        "created_by": "init_checkpoint",
    }
    return save_checkpoint(directory, model, processor, kind, meta)


def recommended_replan_steps(model: str | Path) -> int:
    """The execution horizon a checkpoint was chosen at (its meta ``replan_steps``: action steps of a
    chunk run before the next inference), 0 (replan on every image) when it records none or the model
    is not a checkpoint directory (``expert://``, ``python://``).

    Why a checkpoint field: how many steps of a chunk to run is part of the policy, as LeRobot keeps
    ``n_action_steps`` in its policy configs -- the default model succeeds on 75 % of layouts through
    the node at 2 steps and 52 % when it replans on every image (training notes, experiment 10).
    Reads config.json only; a malformed value is a CheckpointError, not a silent default.
    """
    config_path = Path(model) / CONFIG_FILE
    if not str(model) or not config_path.is_file():
        return 0
    try:
        meta = json.loads(config_path.read_text()).get("meta") or {}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"checkpoint {model}: {CONFIG_FILE} is not valid JSON: {error}") from error
    value = meta.get("replan_steps", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"checkpoint {model}: meta.replan_steps must be an integer >= 0, got {value!r}")
    return value


def resolve_replan_steps(requested: int, model: str | Path) -> int:
    """replan_steps as asked (>= 0), or for -1 the model's own (recommended_replan_steps)."""
    return requested if requested >= 0 else recommended_replan_steps(model)
