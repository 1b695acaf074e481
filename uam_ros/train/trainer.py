"""`uam train`: the training loop for all three stages, as one straight script (nanoGPT style).

    uam train --stage ventral --config config/train/ventral.yaml
    uam train --stage dorsal  --config config/train/dorsal.yaml
    uam train --stage action  --config config/train/action.yaml [--kind single_stream] [--device cuda]
    torchrun --nproc_per_node 4 -m uam_ros.train.trainer --stage action --config config/train/action.yaml --device cuda

What each stage optimises (DESIGN.md section 4; config.py says the same):
    ventral  VentralVLM.lm_loss on VL pairs (loss on the answer tokens)      trains model.ventral
    dorsal   DorsalExpert.dynamics_loss on frame pairs (t -> t+k)             trains model.dorsal
    action   UAM.loss = action flow loss + dorsal dynamics loss               trains EVERY weight
The action stage is end to end by contract: every parameter has requires_grad=True and is in the
optimizer; there is no freezing, no stop-gradient and no vision-language co-training. (Stages 1-2
optimise only the part they pretrain; the other parts are not in their loss at all.)

The loop: AdamW (decay on matrices/embeddings only), linear warm-up then cosine decay, global
grad-norm clipping, autocast on cuda (bfloat16, or float16 with a gradient scaler), DDP when
launched by torchrun (nccl on cuda, gloo on cpu).

Exact resumption: everything random is a function of (seed, step, rank) -- batch indices come from a
per-epoch seeded permutation, and the torch RNG (flow noise/time, dropout) is re-seeded every step --
so a run stopped at step k and resumed gives bit-identical weights to one that never stopped. The
resume state (out_dir/latest/) is a normal checkpoint (safetensors + config.json) plus
optimizer.safetensors (AdamW moments, flattened to named tensors) and trainer_state.json: no pickle.

Outputs in out_dir: checkpoint/ (final, for `uam run`/evaluation), latest/ (resume), curves.csv,
curves.json, curves.png, train_config.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from uam_ros.config_errors import ConfigError
from uam_ros.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    LoadedCheckpoint,
    ensure_layout,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from uam_ros.model.config import UAMConfig
from uam_ros.model.processor import UAMProcessor
from uam_ros.model.tokenizer import UNK_ID
from uam_ros.model.uam import build_model
from uam_ros.train.config import STAGES, TrainConfig, load_train_config, parse_overrides
from uam_ros.train.curves import write_curves
from uam_ros.train.dataset_format import DatasetError, DatasetReader, dataset_hash
from uam_ros.train.datasets import (
    ActionChunkDataset,
    EpisodeStore,
    FramePairDataset,
    VLData,
    VLPairDataset,
    build_tokenizer,
    make_processor,
    tool_image_points,
)
from uam_ros.train.progress import Progress
from uam_ros.train.provenance import code_revision

# Fields that may change between a run and its resumption (they do not change what is computed).
RESUMABLE_CHANGES = frozenset({
    "epochs", "max_steps", "resume", "device", "amp", "amp_dtype", "threads", "num_workers", "log_every",
    "save_every", "snapshot_every", "vqa_samples", "out_dir",
})
LATEST, FINAL, SNAPSHOTS = "latest", "checkpoint", "snapshots"
OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"


class TrainError(RuntimeError):
    """Training cannot start or continue (bad resume state, non-finite loss, missing GPU...)."""


# ============================================================================ distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistInfo:
    """Join the process group torchrun (or a test) described in RANK/WORLD_SIZE/MASTER_ADDR/PORT."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device == "cuda":
        torch.cuda.set_device(local)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistInfo(rank, world, local)


def cpu_threads(requested: int, info: DistInfo) -> int:
    """torch CPU threads per process: as requested, or by default the cores less one, shared among
    this machine's processes. The default leaves a core for the OS and data loading, and avoids the
    worst case measured on a busy 2-core box: with both cores' threads, OpenMP spin-waits cut an
    action-stage step from 50 to 3.5 samples/s."""
    if requested:
        return requested
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
    return max(1, ((os.cpu_count() or 1) - 1) // max(1, local_world))


def check_replicas_in_sync(model: nn.Module, info: DistInfo) -> None:
    """Raise unless every rank holds bit-identical parameters (DDP's promise, checked cheaply:
    the sum and the sum of squares of every parameter tensor, compared exactly)."""
    if not info.enabled:
        return
    digest = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in model.parameters()])
    if torch_dist.get_backend() != "nccl":  # gloo gathers CPU tensors, nccl GPU tensors
        digest = digest.cpu()
    gathered = [torch.empty_like(digest) for _ in range(info.world_size)]
    torch_dist.all_gather(gathered, digest)
    for rank, other in enumerate(gathered):
        if not torch.equal(other, gathered[0]):
            raise TrainError(f"DDP replicas diverged: rank {rank}'s parameters differ from rank 0's")


# ============================================================================ stage set-up


@dataclass
class StageSetup:
    model: nn.Module
    processor: UAMProcessor
    config: UAMConfig
    train_ds: Dataset
    val_ds: Dataset | None
    trained_modules: list[str]  # cumulative: what the checkpoint written by this stage has trained
    meta: dict[str, Any]
    vl_val: tuple[VLData, list[int]] | None = None  # ventral: data + pair ids for VQA accuracy


def _joint_layout(robot: Any) -> list[str]:
    return robot.action_joint_names


# Modules that never see a joint: a checkpoint that trained only these carries no action layout.
LAYOUT_FREE_MODULES = frozenset({"ventral"})


def layout_trained(init: LoadedCheckpoint) -> bool:
    """Whether the checkpoint trained anything tied to its robot's joints (state/action layout and
    normalisation): everything but a ventral-only VLM. An old checkpoint without trained_modules counts
    as trained."""
    trained = init.meta.get("trained_modules")
    return not trained or not set(trained) <= LAYOUT_FREE_MODULES


def stage_modules(stage: str, model: nn.Module) -> list[str]:
    """Top-level submodules a stage optimises: ventral/dorsal pretrain their part, action trains all."""
    children = [name for name, _ in model.named_children()]
    if stage == "action":
        return children
    return [stage] if stage in children else []


def load_init_weights(model: nn.Module, init: LoadedCheckpoint) -> list[str]:
    """Copy the parts the previous stage trained (meta trained_modules, else everything that fits)
    into model; returns the top-level modules loaded. Shape mismatches are an error, not a skip."""
    children = {name for name, _ in model.named_children()}
    prefixes = set(init.meta.get("trained_modules") or [name for name, _ in init.model.named_children()]) & children
    source, target = init.model.state_dict(), model.state_dict()
    chosen = {k: v for k, v in source.items() if k.split(".")[0] in prefixes and k in target}
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}"
           for k, v in chosen.items() if v.shape != target[k].shape]
    if bad:
        raise CheckpointError(f"init_from {init.directory}: tensors do not fit this model's config: {bad[:5]}")
    missing = [k for k in target if k.split(".")[0] in prefixes and k not in chosen]
    if missing:
        raise CheckpointError(f"init_from {init.directory}: lacks tensors {missing[:5]} of {sorted(prefixes)}")
    model.load_state_dict(chosen, strict=False)
    return sorted(prefixes)


def _model_config(fields: dict[str, Any], cfg: TrainConfig) -> UAMConfig:
    """The init checkpoint's UAMConfig with cfg.model on top; a combination that does not hold together
    (e.g. pointer_offsets on a model without pointers) is a TrainError naming both sources."""
    try:
        return UAMConfig(**fields)
    except (TypeError, ValueError) as error:
        source = f"{cfg.init_from}'s config + " if cfg.init_from else ""
        raise TrainError(f"model = {source}model overrides {cfg.model}: {error}") from None


def build_stage(cfg: TrainConfig, robot: Any, log=print) -> StageSetup:
    """Data, tokenizer, processor and model for cfg.stage (same on every rank: it is all seeded)."""
    joint_names = _joint_layout(robot)
    init = load_checkpoint(cfg.init_from) if cfg.init_from else None
    dims = len(joint_names)
    base = init.config.to_dict() if init else UAMConfig(state_dim=dims, action_dim=dims).to_dict()
    inherit_layout = init is not None and layout_trained(init)
    if inherit_layout:
        ensure_layout(init, joint_names)
    elif init is not None:
        # Nothing of the init checkpoint has seen a joint (a ventral-only VLM): the same pretrained VLM
        # can start any robot's policy (the embodiment-tax study's Meta-World Sawyer runs).
        if list(init.meta.get("joint_names") or []) != joint_names:
            log(f"note: {cfg.init_from} trained no action layout ({init.meta.get('trained_modules')}); "
                f"taking robot {robot.name}'s joints {joint_names}")
        base.update(state_dim=dims, action_dim=dims)
    base.update(cfg.model)
    image_size = int(base["image_size"])
    val_split = cfg.data.val_fraction if not cfg.data.val else 0.0
    vl_val = None

    if cfg.stage == "ventral":
        vl = VLData.load(cfg.data.train, image_size)
        tokenizer = init.processor.tokenizer if init else build_tokenizer(vl.texts())
        base["vocab_size"] = base["vocab_size"] if init else len(tokenizer)
        config = _model_config(base, cfg)
        train_ids, val_ids = vl.split_images(val_split, cfg.seed)
        val_data = VLData.load(cfg.data.val, image_size) if cfg.data.val else vl
        if cfg.data.val:
            val_ids = list(range(len(val_data.pairs)))
        train_ds = VLPairDataset(vl, train_ids, tokenizer, config.max_text_len)
        val_ds = VLPairDataset(val_data, val_ids, tokenizer, config.max_text_len) if val_ids else None
        if train_ds.dropped:
            log(f"note: {train_ds.dropped} VL pairs do not fit max_text_len={config.max_text_len} and are skipped")
        vl_val = (val_data, val_ds.pair_ids) if val_ds is not None else None
        stats = _processor_stats(init.processor) if inherit_layout else None
        processor = make_processor(tokenizer, config, stats)
    else:
        store = EpisodeStore.load(cfg.data.train, image_size, split="train", joint_names=joint_names)
        tokenizer = init.processor.tokenizer if init else build_tokenizer(store.instructions)
        base["vocab_size"] = base["vocab_size"] if init else len(tokenizer)
        config = _model_config(base, cfg)
        train_ids, val_ids = store.split_episodes(val_split, cfg.seed)
        val_store = EpisodeStore.load(cfg.data.val, image_size, split="train", joint_names=joint_names) \
            if cfg.data.val else store
        if cfg.data.val:
            val_ids = list(range(val_store.num_episodes))
        unknown = sum(UNK_ID in tokenizer.encode(t, 10 * config.max_text_len) for t in set(store.instructions))
        if unknown:
            log(f"note: {unknown} training instructions have words the tokenizer does not know (<unk>)")
        if cfg.stage == "action":
            stats = store.compute_stats(train_ids)
        else:
            stats = _processor_stats(init.processor) if inherit_layout else None
        processor = make_processor(tokenizer, config, stats)
        if cfg.stage == "dorsal":
            train_ds = FramePairDataset(store, train_ids, config.future_offset)
            val_ds = FramePairDataset(val_store, val_ids, config.future_offset) if val_ids else None
        else:
            points = val_points = None
            if (config.pointer_loss_weight > 0 or config.goal_pointer_weight > 0) and cfg.kind == "uam":
                size = (store.meta.image_width, store.meta.image_height)
                points = tool_image_points(store.actions, robot, store.meta.camera, *size)
                val_points = points if val_store is store else \
                    tool_image_points(val_store.actions, robot, val_store.meta.camera, *size)
            train_ds = ActionChunkDataset(store, train_ids, processor, config.chunk_size, config.future_offset, points,
                                          cfg.data.first_steps, cfg.data.first_steps_repeat)
            val_ds = ActionChunkDataset(val_store, val_ids, processor, config.chunk_size, config.future_offset,
                                        val_points) if val_ids else None
        if store.meta.action_rate_hz != robot.chunk.action_rate_hz:
            raise DatasetError(f"{cfg.data.train[0]}: recorded at {store.meta.action_rate_hz} Hz, robot "
                               f"{robot.name} runs chunks at {robot.chunk.action_rate_hz} Hz")
    data_roots = list(cfg.data.train)
    source_meta = DatasetReader(data_roots[0]).meta
    # The tasks the policy was trained on (what `uam demo` runs it on by default); a ventral-stage
    # checkpoint has none.
    trained_tasks = sorted(set(store.tasks)) if cfg.stage != "ventral" else []

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(config, cfg.kind)
    loaded = load_init_weights(model, init) if init is not None else []
    trained_here = stage_modules(cfg.stage, model)
    if not trained_here:
        raise TrainError(f"a {cfg.kind} model has no '{cfg.stage}' part to train")
    for name, param in model.named_parameters():
        param.requires_grad_(name.split(".")[0] in trained_here)
    if cfg.stage == "action" and not all(p.requires_grad for p in model.parameters()):
        raise TrainError("action stage must train every weight end to end")  # the contract; never relaxed
    meta = {
        "robot_name": robot.name,
        "joint_names": joint_names,
        "action_rate_hz": float(robot.chunk.action_rate_hz),
        "stage": cfg.stage,
        "kind": cfg.kind,
        "trained": True,
        "trained_modules": sorted(set(loaded) | set(trained_here)),
        "init_from": {"path": str(cfg.init_from), "weights_sha256": init.weights_sha256,
                      "stage": init.meta.get("stage")} if init else None,
        "camera": source_meta.camera,  # what evaluation and the sim must render for this policy
        "camera_size": [source_meta.image_height, source_meta.image_width],
        "data": [str(Path(r).resolve()) for r in data_roots],
        "data_hash": dataset_hash(data_roots),
        "tasks": trained_tasks,
        "code_revision": code_revision(),
        "seed": cfg.seed,
        "created_by": "uam train",
    }
    return StageSetup(model, processor, config, train_ds, val_ds, meta["trained_modules"], meta, vl_val)


def _processor_stats(processor: UAMProcessor) -> dict[str, list[float]]:
    return {k: v for k, v in processor.to_dict()["normalization"].items()}


class StageObjective(nn.Module):
    """The loss of one stage as a forward() (DDP synchronises gradients of forward's graph)."""

    def __init__(self, model: nn.Module, stage: str) -> None:
        super().__init__()
        self.model = model
        self.stage = stage

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.stage == "ventral":
            return {"loss": self.model.ventral.lm_loss(batch["image"], batch["tokens"], batch["loss_mask"])}
        if self.stage == "dorsal":
            terms = self.model.dorsal.dynamics_loss(batch["image"], batch["future_image"])
            return {"loss": terms["dynamics_loss"], **terms}
        return self.model.loss(batch)


# ============================================================================ optimiser, schedule, data order


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.AdamW, list[str]]:
    """AdamW over the trainable parameters; weight decay on >= 2-D tensors only (nanoGPT).

    One group per (top-level module scale, decay) so cfg.lr_scale can slow a pretrained stream down;
    each group carries its "lr_scale", which the loop multiplies into the scheduled lr."""
    children = {name for name, _ in model.named_children()}
    unknown = sorted(set(cfg.lr_scale) - children)
    if unknown:
        raise TrainError(f"lr_scale names {unknown}, which are not modules of this model (it has {sorted(children)})")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    buckets: dict[tuple[float, bool], list[tuple[str, nn.Parameter]]] = {}
    for n, p in named:
        scale = float(cfg.lr_scale.get(n.split(".")[0], 1.0))
        buckets.setdefault((scale, p.dim() >= 2), []).append((n, p))
    groups, order = [], []
    for (scale, decay), members in sorted(buckets.items(), key=lambda kv: (kv[0][0] != 1.0, kv[0][0], not kv[0][1])):
        groups.append({"params": [p for _, p in members], "weight_decay": cfg.weight_decay if decay else 0.0,
                       "lr_scale": scale})
        order += [n for n, _ in members]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]))
    return optimizer, order


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.min_lr at total_steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 1_009 + rank * 7_919_017) % (2**63 - 1)


class StepBatchSampler(Sampler[list[int]]):
    """Batches as a pure function of the step: epoch e shuffles with a generator seeded by (seed, e);
    each rank takes its stride of the global batch. Every batch is full (the epoch's last one wraps
    to its start), so all ranks always run the same number of steps."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, total_steps: int, info: DistInfo) -> None:
        if n < 1:
            raise DatasetError("the training set is empty")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.total_steps, self.info = start_step, total_steps, info
        self.global_batch = batch_size * info.world_size
        self.steps_per_epoch = math.ceil(n / self.global_batch)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator)
        positions = (k * self.global_batch + torch.arange(self.global_batch)) % self.n
        return self._perm[positions][self.info.rank :: self.info.world_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


# ============================================================================ saving and resuming


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, names: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """AdamW state as named tensors (safetensors) + JSON-able param groups; no pickle involved."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{names[index]}::{slot}"] = tensor.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "param_names": names}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, names: list[str], tensors: dict[str, torch.Tensor],
                           info: dict[str, Any], device: torch.device) -> None:
    if info.get("param_names") != names:
        raise TrainError("resume: the optimizer state was saved for a different set of trainable parameters")
    index = {name: i for i, name in enumerate(names)}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        name, slot = key.split("::")
        state.setdefault(index[name], {})[slot] = tensor if slot == "step" else tensor.to(device)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in info["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted((set(saved) | set(current)) - RESUMABLE_CHANGES)
    return [f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def save_training_state(out_dir: Path, setup: StageSetup, cfg: TrainConfig, optimizer: torch.optim.Optimizer,
                        names: list[str], step: int, history: dict[str, list], scaler: Any) -> Path:
    """out_dir/latest = checkpoint + optimizer + trainer state, swapped in whole (a crash mid-save
    leaves the previous latest/ or latest.old/ intact; load_training_state takes either)."""
    latest, tmp, old = out_dir / LATEST, out_dir / f"{LATEST}.tmp", out_dir / f"{LATEST}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, setup.model, setup.processor, cfg.kind, {**setup.meta, "final": False, "step": step})
    tensors, opt_info = optimizer_to_tensors(optimizer, names)
    save_file(tensors, str(tmp / OPTIMIZER_FILE), metadata={"format": "pt"})
    state = {
        "step": step,
        "config": cfg.to_dict(),
        "history": history,
        "optimizer": opt_info,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
    }
    (tmp / STATE_FILE).write_text(json.dumps(state) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if latest.exists():
        latest.rename(old)
    tmp.rename(latest)
    shutil.rmtree(old, ignore_errors=True)
    return latest


def find_training_state(out_dir: Path) -> Path | None:
    for name in (LATEST, f"{LATEST}.old"):
        path = out_dir / name
        if (path / STATE_FILE).is_file() and (path / CONFIG_FILE).is_file():
            return path
    return None


# ============================================================================ evaluation during training


def _autocast(device: torch.device, cfg: TrainConfig):
    if device.type == "cuda" and cfg.amp:
        dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(objective: StageObjective, dataset: Dataset, cfg: TrainConfig, device: torch.device,
                    info: DistInfo) -> dict[str, float]:
    """Mean of every loss term over the validation set (sharded over ranks, fixed noise)."""
    objective.eval()
    sums: dict[str, float] = {}
    count = 0
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed + 424_242)
        indices = list(range(info.rank, len(dataset), info.world_size))
        for start in range(0, len(indices), cfg.batch_size):
            items = [dataset[i] for i in indices[start:start + cfg.batch_size]]
            batch = _to_device({k: torch.stack([it[k] for it in items]) for k in items[0]}, device)
            with _autocast(device, cfg):
                out = objective(batch)
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.float()) * len(items)
            count += len(items)
    objective.train()
    keys = sorted(sums)
    totals = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
    if info.enabled:
        totals = totals.to(device) if torch_dist.get_backend() == "nccl" else totals
        torch_dist.all_reduce(totals)
        totals = totals.cpu()
    n = max(1.0, float(totals[-1]))
    return {k: float(totals[i]) / n for i, k in enumerate(keys)}


# ============================================================================ the loop


@dataclass
class TrainResult:
    model: nn.Module
    processor: UAMProcessor
    step: int
    total_steps: int
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checkpoint: Path | None = None  # the final checkpoint, None when stopped early
    samples_per_s: float = 0.0


def train(cfg: TrainConfig, *, stop_after: int | None = None, quiet: bool = False) -> TrainResult:
    """Run (or resume) one stage. stop_after: leave after this many steps of this invocation, saving
    the resume state first (what a preemption or a time-limited job does)."""
    from uam_ros.control.robot_config import load_robot_config

    info = setup_distributed(cfg.device)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' requested but torch.cuda.is_available() is False")
    device = torch.device("cuda", info.local_rank) if cfg.device == "cuda" else torch.device("cpu")
    torch.set_num_threads(cpu_threads(cfg.threads, info))
    log = print if info.is_main and not quiet else (lambda *a, **k: None)
    out_dir = cfg.out_path
    robot = load_robot_config(cfg.robot)

    setup = build_stage(cfg, robot, log=lambda m: log(m, file=sys.stderr))
    model = setup.model.to(device)
    optimizer, names = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(setup.train_ds) / (cfg.batch_size * info.world_size))
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    start_step, history = 0, {"train": [], "val": []}
    use_scaler = device.type == "cuda" and cfg.amp and cfg.amp_dtype == "float16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if device.type == "cuda" else None

    resume_dir = find_training_state(out_dir) if cfg.resume else None
    if resume_dir is not None:
        state = json.loads((resume_dir / STATE_FILE).read_text())
        differences = _config_differences(state["config"], cfg.to_dict())
        if differences:
            raise TrainError(f"{resume_dir} was trained with a different config ({'; '.join(differences)}); "
                             f"use another out_dir or resume: false")
        loaded = load_checkpoint(resume_dir)
        if loaded.weights_sha256 != state["weights_sha256"]:
            raise TrainError(f"{resume_dir}: weights do not belong to its {STATE_FILE}")
        model.load_state_dict(loaded.model.state_dict())
        setup.processor = loaded.processor
        optimizer_tensors = load_file(str(resume_dir / OPTIMIZER_FILE))
        optimizer_from_tensors(optimizer, names, optimizer_tensors, state["optimizer"], device)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_step, history = int(state["step"]), state["history"]
        log(f"resuming {cfg.stage} from {resume_dir} at step {start_step}/{total_steps}", file=sys.stderr)
    elif info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "train_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    objective = StageObjective(model, cfg.stage)
    wrapped: nn.Module = objective
    if info.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            objective, device_ids=[info.local_rank] if device.type == "cuda" else None,
            find_unused_parameters=cfg.stage == "dorsal",  # pretraining skips the cross-attention into the VLM
        )
    sampler = StepBatchSampler(len(setup.train_ds), cfg.batch_size, cfg.seed, start_step, total_steps, info)
    loader = DataLoader(setup.train_ds, batch_sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda")
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{cfg.stage} stage, {cfg.kind}: {n_params / 1e6:.2f} M parameters, "
        f"{sum(p.numel() for p in trainable) / 1e6:.2f} M trained ({stage_modules(cfg.stage, model)}); "
        f"{len(setup.train_ds)} training samples, {steps_per_epoch} steps/epoch, {total_steps} steps, "
        f"{info.world_size} process(es) on {device}", file=sys.stderr)

    bar = Progress(total_steps, f"train {cfg.stage}", initial=start_step, unit="step",
                   enabled=info.is_main and not quiet)
    objective.train()
    step, saved_at = start_step, start_step
    acc: dict[str, torch.Tensor] = {}  # loss terms summed since the last log row (kept on device: no sync)
    acc_n, busy_s, total_busy_s = 0, 0.0, 0.0  # busy: time in training steps, not validation or saving
    t_mark = time.monotonic()
    try:
        for cpu_batch in loader:
            lr = lr_at(step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = _to_device(cpu_batch, device)
            torch.manual_seed(step_seed(cfg.seed, step, info.rank))
            with _autocast(device, cfg):
                out = wrapped(batch)
            loss = out["loss"]
            if not torch.isfinite(loss.detach()):
                raise TrainError(f"loss is {float(loss)} at step {step}")
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            for key, value in {**out, "grad_norm": grad_norm}.items():
                acc[key] = acc.get(key, 0.0) + value.detach().float()
            acc_n += 1
            now = time.monotonic()
            busy_s, total_busy_s, t_mark = busy_s + now - t_mark, total_busy_s + now - t_mark, now
            if step % cfg.log_every == 0 or step == total_steps:
                row = {"step": step, "epoch": (step - 1) // steps_per_epoch + 1, "lr": lr,
                       **{k: float(v) / acc_n for k, v in acc.items()},
                       "samples_per_s": acc_n * cfg.batch_size * info.world_size / max(busy_s, 1e-9)}
                history["train"].append(row)
                bar.update(1, loss=row["loss"], lr=lr)
                acc, acc_n, busy_s = {}, 0, 0.0
            else:
                bar.update(1)

            epoch_end = step % steps_per_epoch == 0 or step == total_steps
            if epoch_end and setup.val_ds is not None and len(setup.val_ds):
                val = validation_loss(objective, setup.val_ds, cfg, device, info)
                row = {"step": step, "epoch": (step - 1) // steps_per_epoch + 1, **val}
                if cfg.stage == "ventral" and cfg.vqa_samples and setup.vl_val is not None and info.is_main:
                    from uam_ros.train.evaluate import vqa_accuracy_for_model

                    data, pair_ids = setup.vl_val
                    row["vqa_accuracy"] = vqa_accuracy_for_model(
                        model, setup.processor, data, pair_ids[: cfg.vqa_samples], device)["accuracy"]
                history["val"].append(row)
                bar.write(f"epoch {row['epoch']} step {step}: val " +
                          " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("step", "epoch")))
            if cfg.snapshot_every and step % cfg.snapshot_every == 0 and info.is_main:
                save_checkpoint(snapshot_dir(out_dir, step), model, setup.processor, cfg.kind,
                                {**setup.meta, "final": step == total_steps, "step": step})
            stopping = stop_after is not None and step - start_step >= stop_after and step < total_steps
            periodic = cfg.save_every and step % cfg.save_every == 0
            if (epoch_end or periodic or stopping) and step < total_steps:
                check_replicas_in_sync(model, info)
                if info.is_main:
                    save_training_state(out_dir, setup, cfg, optimizer, names, step, history, scaler)
                    write_curves(out_dir, history, f"{cfg.stage} ({cfg.kind})")
                saved_at = step
                if info.enabled:
                    torch_dist.barrier()
            if stopping:
                break
            t_mark = time.monotonic()
    finally:
        bar.close()
    done = (step - start_step) * cfg.batch_size * info.world_size
    result = TrainResult(model, setup.processor, step, total_steps, history,
                         samples_per_s=done / total_busy_s if total_busy_s > 0 else 0.0)
    if step >= total_steps:
        check_replicas_in_sync(model, info)
        if info.is_main:
            if step > saved_at or start_step == total_steps:
                save_training_state(out_dir, setup, cfg, optimizer, names, step, history, scaler)
            result.checkpoint = save_checkpoint(out_dir / FINAL, model, setup.processor, cfg.kind,
                                                {**setup.meta, "final": True, "step": step})
            write_curves(out_dir, history, f"{cfg.stage} ({cfg.kind})")
            log(f"wrote {result.checkpoint} ({result.samples_per_s:.1f} samples/s)", file=sys.stderr)
        else:
            result.checkpoint = out_dir / FINAL
        if info.enabled:
            torch_dist.barrier()
    return result


# ============================================================================ CLI


def snapshot_dir(out_dir: Path, step: int) -> Path:
    return out_dir / SNAPSHOTS / f"step_{step:06d}"


def default_config_path(stage: str) -> Path:
    from uam_ros.resources import share_dir

    return share_dir() / "config" / "train" / f"{stage}.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=STAGES, help="stage to train (must match the config's 'stage')")
    parser.add_argument("--config", type=Path, help="stage YAML (default: config/train/<stage>.yaml)")
    parser.add_argument("--kind", choices=("uam", "single_stream"), help="override the config's model kind")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="override the config's device")
    parser.add_argument("--out-dir", help="override the config's out_dir")
    parser.add_argument("--init-from", help="override the config's init_from")
    parser.add_argument("--max-steps", type=int, help="override the config's max_steps")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--batch-size", type=int, help="override the config's batch_size")
    parser.add_argument("--lr", type=float, help="override the config's lr")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--no-resume", action="store_true", help="start over even if out_dir/latest exists")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set model.d_model=64 --set data.train=[data/a]")
    parser.add_argument("--stop-after", type=int, help="save and exit after this many steps (resume later)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.config is None and args.stage is None:
        raise ConfigError("<command line>", "--config", "give --config FILE or --stage STAGE")
    path = args.config or default_config_path(args.stage)
    overrides = parse_overrides(args.overrides, f"{path} (--set)")
    for flag, key in (("kind", "kind"), ("device", "device"), ("out_dir", "out_dir"), ("init_from", "init_from"),
                      ("max_steps", "max_steps"), ("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                      ("seed", "seed")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if args.no_resume:
        overrides["resume"] = False
    cfg = load_train_config(path, overrides)
    if args.stage is not None and args.stage != cfg.stage:
        raise ConfigError(str(path), "stage", f"config is for stage {cfg.stage!r}, --stage says {args.stage!r}")
    return cfg


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        result = train(cfg, stop_after=args.stop_after, quiet=args.quiet)
    except (ConfigError, DatasetError, CheckpointError, TrainError) as error:
        print(f"uam train: {error}", file=sys.stderr)
        return 2
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    if result.checkpoint is None:
        print(f"uam train: stopped at step {result.step}/{result.total_steps}; run again to resume", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uam train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
