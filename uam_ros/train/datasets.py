"""Torch datasets for the three training stages, built on the on-disk format of dataset_format.py.

    ActionChunkDataset   stage 3: (image_t, instruction tokens, state_t, actions t..t+H-1, image_{t+k})
    FramePairDataset     stage 2: (image_t, image_{t+k}) for the dorsal expert's visual-dynamics pretraining
    VLPairDataset        stage 1: (image, [bos] prompt answer [eos], loss mask on the answer) for the ventral VLM

Everything the model sees goes through the same steps as at run time (UAMProcessor): frames are
resized with the processor's exact interpolation, states and actions normalised with its stats, and
instructions tokenised with its tokenizer. Frames are resized once at load time and kept in memory
as uint8 (96x96x3 = 27 kB a frame), so __getitem__ is only indexing.

Time convention (matches control/chunk_scheduler.py: chunk point i is reached at t_obs + (i+1)*dt):
``actions[t]`` in an episode is the target commanded after observing step t, reached at step t+1.
The chunk for observation t is therefore ``actions[t : t+H]`` -- the targets for times t+1..t+H. Past
the end of the episode it is padded with the last target (holding still is the right thing to do
there) and those steps are flagged in ``action_is_pad`` so they are left out of the loss.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from uam_ros.model.config import UAMConfig
from uam_ros.model.processor import UAMProcessor
from uam_ros.model.tokenizer import PAD_ID, WordTokenizer
from uam_ros.train.dataset_format import DatasetError, DatasetMeta, DatasetReader

STATS_MIN_STD = 1e-2
"""Floor on the normalisation std [rad or m]: a dimension that barely moves in the data (the gripper
in a reach-only dataset) is treated as constant instead of blowing small deviations up by 1e6."""


# ------------------------------------------------------------------------------------- images


def resize_frames(frames: np.ndarray, size: int, batch: int = 256) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, S, S) uint8, with UAMProcessor.image_to_tensor's interpolation
    (bilinear, antialias, align_corners=False), so training frames match run-time frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    out = torch.empty((frames.shape[0], 3, size, size), dtype=torch.uint8)
    for start in range(0, frames.shape[0], batch):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch])).permute(0, 3, 1, 2).float() / 255.0
        if tuple(chunk.shape[-2:]) != (size, size):
            chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + batch] = (chunk.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return out


def to_float_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, S, S) -> float32 in [0, 1] (what the model takes)."""
    return image.float() / 255.0


# ------------------------------------------------------------------------------------- tokenizer


def training_vocabulary_texts() -> list[str]:
    """Words the tokenizer must know for the *training* instructions: the train-split paraphrase
    templates with every colour and shape name. Held-out paraphrases are deliberately not included:
    their new words map to <unk>, which is what the instruction-variation probe is about."""
    from uam_ros.sim.objects import COLORS, SHAPES
    from uam_ros.sim.tasks import TASKS

    texts = [re.sub(r"\{\w+\}", " ", t) for task in TASKS.values() for t in task.train_templates]
    return texts + [" ".join(COLORS), " ".join(SHAPES)]


def build_tokenizer(*text_lists: Sequence[str]) -> WordTokenizer:
    """The vocabulary of the training instructions plus every text given (VL prompts and answers,
    dataset instructions); sorted, so the same texts always give the same ids."""
    texts = list(training_vocabulary_texts())
    for items in text_lists:
        texts.extend(items)
    return WordTokenizer.build(texts)


# ------------------------------------------------------------------------------------- episodes


@dataclass
class EpisodeStore:
    """All episodes of some datasets, in memory: frames at model resolution, raw states and actions.

    Frames of every episode are concatenated; episode e spans ``starts[e] : starts[e] + lengths[e]``.
    """

    meta: DatasetMeta
    roots: list[str]
    frames: torch.Tensor  # (N, 3, S, S) uint8
    states: np.ndarray  # (N, J) float64 raw joint positions (arm joints, gripper)
    actions: np.ndarray  # (N, A) float64 raw targets
    starts: np.ndarray  # (E,)
    lengths: np.ndarray  # (E,)
    instructions: list[str]
    tasks: list[str]
    seeds: list[int]

    @property
    def num_episodes(self) -> int:
        return len(self.instructions)

    @classmethod
    def load(
        cls,
        roots: Sequence[str | Path],
        image_size: int,
        *,
        split: str = "train",
        joint_names: Sequence[str] | None = None,
        max_episodes: int | None = None,
    ) -> EpisodeStore:
        """Load the episodes of datasets that all have ``split`` and the same robot layout.

        Training passes split="train" and so can never read held-out episodes.
        """
        if not roots:
            raise DatasetError("no dataset directories given")
        readers = [DatasetReader(root) for root in roots]
        meta = readers[0].meta
        for reader in readers:
            if reader.meta.split != split:
                raise DatasetError(
                    f"{reader.root}: dataset split is {reader.meta.split!r}, expected {split!r}"
                    + (" (held-out data is for evaluation only, never for training)" if split == "train" else "")
                )
            if joint_names is not None and list(reader.meta.joint_names) != list(joint_names):
                raise DatasetError(
                    f"{reader.root}: joint layout {reader.meta.joint_names} does not match the robot's "
                    f"{list(joint_names)}"
                )
            if reader.meta.joint_names != meta.joint_names or reader.meta.robot != meta.robot:
                raise DatasetError(f"{reader.root}: robot/joint layout differs from {readers[0].root}")
        frames, states, actions, lengths = [], [], [], []
        instructions, tasks, seeds = [], [], []
        for reader in readers:
            for episode in reader.episodes():
                if max_episodes is not None and len(lengths) >= max_episodes:
                    break
                frames.append(resize_frames(episode.frames, image_size))
                states.append(episode.joint_positions.astype(np.float64))
                actions.append(episode.actions.astype(np.float64))
                lengths.append(episode.length)
                instructions.append(episode.info.instruction)
                tasks.append(episode.info.task)
                seeds.append(episode.info.seed)
        if not lengths:
            raise DatasetError(f"datasets {list(map(str, roots))} contain no episodes")
        lengths_arr = np.asarray(lengths, dtype=np.int64)
        return cls(
            meta=meta,
            roots=[str(r) for r in roots],
            frames=torch.cat(frames),
            states=np.concatenate(states),
            actions=np.concatenate(actions),
            starts=np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64),
            lengths=lengths_arr,
            instructions=instructions,
            tasks=tasks,
            seeds=seeds,
        )

    def split_episodes(self, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
        """Episode ids for training and validation: whole episodes, a seeded shuffle, at least one
        training episode; no validation episodes when val_fraction is 0 or there is only one episode."""
        ids = np.random.default_rng(seed).permutation(self.num_episodes).tolist()
        n_val = int(round(val_fraction * self.num_episodes))
        n_val = min(n_val, self.num_episodes - 1)
        return sorted(ids[n_val:]), sorted(ids[:n_val])

    def compute_stats(self, episode_ids: Sequence[int]) -> dict[str, list[float]]:
        """Mean/std of state and action over the given (training) episodes' frames."""
        rows = np.concatenate([np.arange(self.starts[e], self.starts[e] + self.lengths[e]) for e in episode_ids])
        stats = {}
        for name, values in (("state", self.states[rows]), ("action", self.actions[rows])):
            stats[f"{name}_mean"] = values.mean(axis=0).tolist()
            stats[f"{name}_std"] = np.maximum(values.std(axis=0), STATS_MIN_STD).tolist()
        return stats


def make_processor(
    tokenizer: WordTokenizer, config: UAMConfig, stats: dict[str, Sequence[float]] | None = None
) -> UAMProcessor:
    """The processor saved with a checkpoint: tokenizer + image size + normalisation stats."""
    stats = stats or {}
    return UAMProcessor(
        tokenizer,
        image_size=config.image_size,
        max_text_len=config.max_text_len,
        state_dim=config.state_dim,
        action_dim=config.action_dim,
        state_mean=stats.get("state_mean"),
        state_std=stats.get("state_std"),
        action_mean=stats.get("action_mean"),
        action_std=stats.get("action_std"),
    )


def tool_image_points(actions: np.ndarray, robot: Any, camera: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each joint target puts the tool in the camera image: (N, 2) (x, y) in [-1, 1] and a
    (N,) bool mask of targets that land inside the image.

    The training target of the dorsal pointer (UAM.loss, pointer_terms). Forward kinematics of the
    targets on the robot's MuJoCo model, projected with the fixed camera's intrinsics/extrinsics --
    nothing but the action data and the calibration the node already has.
    """
    from uam_ros.kinematics import RobotKinematics

    kinematics = RobotKinematics(robot)
    if camera != kinematics.info.scene_camera:
        raise DatasetError(f"pointer targets need the fixed scene camera; this data was recorded with {camera!r}")
    pixels = kinematics.project_tcp_path(np.asarray(actions)[:, : kinematics.arm_dof], camera, width, height)
    points = np.stack([(pixels[:, 0] + 0.5) / width, (pixels[:, 1] + 0.5) / height], axis=1) * 2.0 - 1.0
    valid = np.isfinite(points).all(axis=1) & (np.abs(points) <= 1.0).all(axis=1)
    return np.nan_to_num(points, nan=0.0).astype(np.float32), valid


def _frame_index(store: EpisodeStore, episode_ids: Sequence[int], first_steps: int = 0,
                 first_steps_repeat: int = 1) -> np.ndarray:
    """(n, 3) rows of (episode, t, global frame index) for every frame of the given episodes, the
    frames t < first_steps repeated first_steps_repeat times (DataConfig.first_steps)."""
    rows = []
    for e in episode_ids:
        t = np.arange(store.lengths[e])
        if first_steps > 0 and first_steps_repeat > 1:
            t = np.concatenate([np.repeat(t[:first_steps], first_steps_repeat), t[first_steps:]])
        rows.append(np.stack([np.full_like(t, e), t, store.starts[e] + t], 1))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), np.int64)


class ActionChunkDataset(Dataset):
    """One sample per frame of the chosen episodes (see the module docstring for the time convention)."""

    def __init__(
        self,
        store: EpisodeStore,
        episode_ids: Sequence[int],
        processor: UAMProcessor,
        chunk_size: int,
        future_offset: int,
        tool_points: tuple[np.ndarray, np.ndarray] | None = None,
        first_steps: int = 0,
        first_steps_repeat: int = 1,
    ) -> None:
        """tool_points: tool_image_points() of store.actions; adds future_point(_valid) to samples.
        first_steps, first_steps_repeat: oversample each episode's first frames (DataConfig.first_steps)."""
        if store.frames.shape[-1] != processor.image_size:
            raise ValueError(f"store frames are {store.frames.shape[-1]} px, processor wants {processor.image_size}")
        self.store = store
        self.chunk_size = int(chunk_size)
        self.future_offset = int(future_offset)
        self.index = _frame_index(store, episode_ids, first_steps, first_steps_repeat)
        self.states = torch.from_numpy(processor.normalize_state(store.states))
        self.actions = torch.from_numpy(processor.normalize_actions(store.actions))
        self.tokens = torch.cat([processor.tokenize(text) for text in store.instructions])
        self.tool_points = None
        if tool_points is not None:
            self.tool_points = (torch.from_numpy(tool_points[0]), torch.from_numpy(tool_points[1]))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        episode, t, g = (int(v) for v in self.index[i])
        start, length = int(self.store.starts[episode]), int(self.store.lengths[episode])
        steps = t + np.arange(self.chunk_size)
        is_pad = steps >= length
        rows = start + np.minimum(steps, length - 1)
        future = start + min(t + self.future_offset, length - 1)
        sample = {
            "image": to_float_image(self.store.frames[g]),
            "tokens": self.tokens[episode],
            "state": self.states[g],
            "actions": self.actions[torch.from_numpy(rows)],
            "action_is_pad": torch.from_numpy(is_pad),
            "future_image": to_float_image(self.store.frames[future]),
        }
        if self.tool_points is not None:
            last = int(rows[-1])  # the chunk's last target (the episode's last one past its end)
            sample["future_point"] = self.tool_points[0][last]
            sample["future_point_valid"] = self.tool_points[1][last]
            end = start + length - 1  # the episode's last target: where the task took the tool
            sample["goal_point"] = self.tool_points[0][end]
            sample["goal_point_valid"] = self.tool_points[1][end]
        return sample


class FramePairDataset(Dataset):
    """(frame t, frame t+k) pairs for the dorsal expert's generative pretraining (k clamped at the end)."""

    def __init__(self, store: EpisodeStore, episode_ids: Sequence[int], future_offset: int) -> None:
        self.store = store
        self.future_offset = int(future_offset)
        self.index = _frame_index(store, episode_ids)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        episode, t, g = (int(v) for v in self.index[i])
        start, length = int(self.store.starts[episode]), int(self.store.lengths[episode])
        future = start + min(t + self.future_offset, length - 1)
        return {
            "image": to_float_image(self.store.frames[g]),
            "future_image": to_float_image(self.store.frames[future]),
        }


# ------------------------------------------------------------------------------------- VL pairs


@dataclass
class VLData:
    images: torch.Tensor  # (N, 3, S, S) uint8 at model resolution
    pairs: list[dict[str, Any]]
    roots: list[str]

    @classmethod
    def load(cls, roots: Sequence[str | Path], image_size: int) -> VLData:
        if not roots:
            raise DatasetError("no VL dataset directories given")
        images, pairs = [], []
        offset = 0
        for root in roots:
            reader = DatasetReader(root)
            raw_images, raw_pairs = reader.load_vl()
            images.append(resize_frames(raw_images, image_size))
            pairs.extend({**p, "image": p["image"] + offset} for p in raw_pairs)
            offset += raw_images.shape[0]
        return cls(torch.cat(images), pairs, [str(r) for r in roots])

    def texts(self) -> list[str]:
        return [text for p in self.pairs for text in (p["prompt"], p["answer"])]

    def split_images(self, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
        """Pair ids for training and validation, split by *image* (no image in both)."""
        n_images = self.images.shape[0]
        order = np.random.default_rng(seed).permutation(n_images)
        n_val = min(int(round(val_fraction * n_images)), n_images - 1)
        val_images = set(order[:n_val].tolist())
        train = [i for i, p in enumerate(self.pairs) if p["image"] not in val_images]
        val = [i for i, p in enumerate(self.pairs) if p["image"] in val_images]
        return train, val


def encode_vl_pair(
    tokenizer: WordTokenizer, prompt: str, answer: str, max_len: int
) -> tuple[list[int], list[bool]] | None:
    """[bos] prompt answer [eos] [pad...] and a mask that is True on the answer and eos (the tokens
    the loss is on); None when it does not fit in max_len."""
    prompt_ids = tokenizer.encode(prompt, max_len, add_eos=False, pad=False)
    answer_ids = tokenizer.encode(answer, 10 * max_len, add_bos=False, pad=False)
    ids = prompt_ids + answer_ids
    if len(ids) > max_len:
        return None
    mask = [False] * len(prompt_ids) + [True] * len(answer_ids)
    pad = max_len - len(ids)
    return ids + [PAD_ID] * pad, mask + [False] * pad


class VLPairDataset(Dataset):
    """Vision-language pairs for the ventral VLM: image, tokens, loss_mask (True on the answer)."""

    def __init__(self, data: VLData, pair_ids: Sequence[int], tokenizer: WordTokenizer, max_text_len: int) -> None:
        self.data = data
        tokens, masks, keep = [], [], []
        self.dropped = 0
        for i in pair_ids:
            pair = data.pairs[i]
            encoded = encode_vl_pair(tokenizer, pair["prompt"], pair["answer"], max_text_len)
            if encoded is None:
                self.dropped += 1
                continue
            tokens.append(encoded[0])
            masks.append(encoded[1])
            keep.append(i)
        self.pair_ids = keep
        self.tokens = torch.tensor(tokens, dtype=torch.long).reshape(-1, max_text_len)
        self.loss_mask = torch.tensor(masks, dtype=torch.bool).reshape(-1, max_text_len)

    def __len__(self) -> int:
        return len(self.pair_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pair = self.data.pairs[self.pair_ids[i]]
        return {
            "image": to_float_image(self.data.images[pair["image"]]),
            "tokens": self.tokens[i],
            "loss_mask": self.loss_mask[i],
        }
