"""The on-disk dataset format: plain numpy + JSON, never pickle.

Why this shape: a dataset must be safe to open from anywhere (``np.load(..., allow_pickle=False)``
and ``json`` only: no code runs on load), inspectable with nothing but numpy, resumable while it is
being written (one file per episode, written atomically, so a killed collection leaves only whole
files), and self-describing (the robot and joint layout travel with the data, so a dataset can never
be trained into a checkpoint for another arm).

One directory per dataset::

    DATASET/
      meta.json                       what the dataset is (DatasetMeta below)
      episode_<task>_<seed>.npz       one successful expert episode (Episode below)
      vl_pairs.jsonl                  optional: vision-language pairs, one JSON object per line
      vl_images.npz                   optional: the images those pairs are about

Episode file (``np.savez_compressed``; every array is plain, the JSON sidecar is a 0-d unicode array)::

    frames            (T, H, W, 3) uint8   camera image seen before step t (the policy camera)
    joint_positions   (T, J) float32       arm joints then the gripper joint (meta.joint_names), before step t
    joint_velocities  (T, J) float32
    gripper_opening   (T,)   float32       0 = closed .. 1 = open
    ee_positions      (T, 3) float32       tool centre point in the world frame [m] (for plots / path checks)
    actions           (T, A) float32       the target commanded after seeing step t, reached at t + 1:
                                           arm joint targets then the gripper target (A == J)
    time_s            (T,)   float64       sim time of step t
    info_json         ()     unicode       EpisodeInfo as JSON (task, split, seed, instruction, success, objects, ...)

The file is named after (task, seed) rather than a running number: resuming a collection with a
different task list, or in parallel, can never overwrite or renumber an episode.

Vision-language pairs: ``vl_images.npz`` holds ``images`` (N, H, W, 3) uint8; every line of
``vl_pairs.jsonl`` is ``{"image": i, "kind": "caption"|"color"|"shape"|"count"|"exists"|"spatial",
"prompt": ..., "answer": ..., "scene": {...}}`` about ``images[i]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "uam_dataset"
FORMAT_VERSION = 1
META_FILE = "meta.json"
VL_PAIRS_FILE = "vl_pairs.jsonl"
VL_IMAGES_FILE = "vl_images.npz"
SPLITS = ("train", "heldout")
_EPISODE_RE = re.compile(r"^episode_([a-z_]+)_(\d{6,})\.npz$")
# The meta fields that must agree between a dataset on disk and a writer adding to it.
_IDENTITY_FIELDS = ("robot", "joint_names", "image_height", "image_width", "camera", "action_rate_hz", "split")


def _current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class DatasetError(ValueError):
    """A dataset directory is missing, malformed, or does not fit what it is used for."""


def episode_filename(task: str, seed: int) -> str:
    """``episode_<task>_<seed:06d>.npz``: stable under resumption and parallel writers."""
    if not re.fullmatch(r"[a-z_]+", task):
        raise DatasetError(f"task name {task!r} must be lowercase letters and underscores")
    if seed < 0:
        raise DatasetError(f"episode seed must be >= 0, got {seed}")
    return f"episode_{task}_{seed:06d}.npz"


# ------------------------------------------------------------------------------------------ meta


@dataclass
class DatasetMeta:
    """Contents of meta.json. The identity fields say what the data *is*; the rest is bookkeeping."""

    robot: str
    joint_names: list[str]  # layout of joint_positions / joint_velocities / actions: arm joints, then gripper
    arm_joints: list[str]
    gripper_joint: str | None
    image_height: int
    image_width: int
    camera: str
    action_rate_hz: float
    split: str
    tasks: list[str] = field(default_factory=list)
    num_episodes: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # [{"task", "seed", "steps"}] not kept
    num_vl_pairs: int = 0
    num_vl_images: int = 0
    created: dict[str, Any] = field(default_factory=dict)  # time, code revision, command line, seeds
    notes: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise DatasetError(f"meta.split must be one of {list(SPLITS)}, got {self.split!r}")
        expected = list(self.arm_joints) + ([self.gripper_joint] if self.gripper_joint else [])
        if list(self.joint_names) != expected:
            raise DatasetError(
                f"meta.joint_names {self.joint_names} must be arm_joints then gripper_joint ({expected})"
            )
        for name in ("image_height", "image_width"):
            if int(getattr(self, name)) < 1:
                raise DatasetError(f"meta.{name} must be >= 1, got {getattr(self, name)}")
        if not self.action_rate_hz > 0:
            raise DatasetError(f"meta.action_rate_hz must be > 0, got {self.action_rate_hz}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = META_FILE) -> DatasetMeta:
        if data.get("format") != FORMAT_NAME or data.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{source}: format {data.get('format')!r} version {data.get('format_version')!r} is not "
                f"{FORMAT_NAME!r} version {FORMAT_VERSION}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise DatasetError(f"{source}: unknown field(s) {unknown}")
        try:
            return cls(**data)
        except TypeError as error:  # a required field is missing
            raise DatasetError(f"{source}: {error}") from None

    def check_same_identity(self, other: DatasetMeta, where: str) -> None:
        """Raise naming the first identity field on which two metas disagree."""
        for name in _IDENTITY_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                raise DatasetError(f"{where}: meta.json field '{name}' is {theirs!r}, this writer has {mine!r}")


def read_meta(root: str | Path) -> DatasetMeta:
    path = Path(root) / META_FILE
    if not path.is_file():
        raise DatasetError(f"{root}: not a dataset (no {META_FILE})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: invalid JSON: {error}") from None
    return DatasetMeta.from_dict(data, str(path))


def _atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file in the same directory and rename: readers and resumed
    collections only ever see whole files."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_meta(root: str | Path, meta: DatasetMeta) -> None:
    text = (json.dumps(meta.to_dict(), indent=2) + "\n").encode()
    _atomic_write_bytes(Path(root) / META_FILE, lambda handle: handle.write(text))


# ------------------------------------------------------------------------------------------ episodes


@dataclass
class EpisodeInfo:
    task: str
    split: str
    seed: int
    instruction: str
    success: bool
    steps: int
    objects: list[dict[str, Any]]  # [{"name", "shape", "color", "pos": [x, y], "yaw"}] as laid out
    target: str = ""
    goal: str | None = None
    expert: str = "scripted"
    # Recovery episodes (`uam collect --recovery-from`): the policy acted for ``handoff_step`` steps
    # (not recorded) before the expert took over from the state it left; 0 = an expert-only episode.
    handoff_step: int = 0
    handoff_policy: str = ""


@dataclass
class Episode:
    """One recorded episode (arrays in the layout of the module docstring)."""

    frames: np.ndarray
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    gripper_opening: np.ndarray
    ee_positions: np.ndarray
    actions: np.ndarray
    time_s: np.ndarray
    info: EpisodeInfo

    ARRAYS = ("frames", "joint_positions", "joint_velocities", "gripper_opening", "ee_positions", "actions", "time_s")
    _DTYPES = {
        "frames": np.uint8, "joint_positions": np.float32, "joint_velocities": np.float32,
        "gripper_opening": np.float32, "ee_positions": np.float32, "actions": np.float32, "time_s": np.float64,
    }

    def __post_init__(self) -> None:
        for name in self.ARRAYS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=self._DTYPES[name]))

    @property
    def length(self) -> int:
        return int(self.frames.shape[0])

    def check(self, meta: DatasetMeta, where: str = "episode") -> None:
        """Raise DatasetError unless shapes, dtypes and values fit meta (and are finite)."""
        t, j = self.length, meta.num_joints
        expected = {
            "frames": (t, meta.image_height, meta.image_width, 3),
            "joint_positions": (t, j), "joint_velocities": (t, j), "gripper_opening": (t,),
            "ee_positions": (t, 3), "actions": (t, j), "time_s": (t,),
        }
        if t < 1:
            raise DatasetError(f"{where}: has no steps")
        for name, shape in expected.items():
            array = getattr(self, name)
            if array.shape != shape:
                raise DatasetError(f"{where}: {name} has shape {array.shape}, expected {shape}")
            if name != "frames" and not np.all(np.isfinite(array)):
                raise DatasetError(f"{where}: {name} has non-finite values")
        if self.info.split != meta.split:
            raise DatasetError(
                f"{where}: episode split {self.info.split!r} does not match the dataset's split {meta.split!r}"
            )
        if meta.tasks and self.info.task not in meta.tasks:
            raise DatasetError(f"{where}: task {self.info.task!r} is not one of the dataset's tasks {meta.tasks}")


def save_episode(path: str | Path, episode: Episode) -> None:
    """np.savez_compressed, atomically; the info goes in as a 0-d unicode array (no pickle)."""
    arrays = {name: getattr(episode, name) for name in Episode.ARRAYS}
    arrays["info_json"] = np.array(json.dumps(asdict(episode.info)))
    _atomic_write_bytes(Path(path), lambda handle: np.savez_compressed(handle, **arrays))


def load_episode(path: str | Path) -> Episode:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in (*Episode.ARRAYS, "info_json") if name not in data.files]
            if missing:
                raise DatasetError(f"{path}: missing arrays {missing}")
            arrays = {name: data[name] for name in Episode.ARRAYS}
            info = EpisodeInfo(**json.loads(str(data["info_json"][()])))
    except (OSError, ValueError, TypeError, json.JSONDecodeError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot read episode: {error}") from None
    return Episode(**arrays, info=info)


class DatasetWriter:
    """Creates a dataset directory or adds to one whose identity (robot, layout, camera, split) matches.

    Safe for several processes writing different episodes at once: each episode is its own file,
    written atomically. meta.json is rewritten only by ``finalize()`` (call it from one process).
    """

    def __init__(self, root: str | Path, meta: DatasetMeta) -> None:
        self.root = Path(root)
        self.meta = meta
        if (self.root / META_FILE).is_file():
            existing = read_meta(self.root)
            meta.check_same_identity(existing, str(self.root))
            # Keep what the existing dataset already knows (failures, creation info, tasks).
            self.meta.failures = existing.failures + [f for f in meta.failures if f not in existing.failures]
            self.meta.tasks = sorted(set(existing.tasks) | set(meta.tasks))
            self.meta.created = existing.created or meta.created
            self.meta.num_vl_pairs, self.meta.num_vl_images = existing.num_vl_pairs, existing.num_vl_images
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            foreign = [p.name for p in self.root.glob("episode_*.npz")]
            if foreign:
                raise DatasetError(f"{self.root}: has episode files {foreign[:3]} but no {META_FILE}")
        write_meta(self.root, self.meta)

    def path(self, task: str, seed: int) -> Path:
        return self.root / episode_filename(task, seed)

    def has_episode(self, task: str, seed: int) -> bool:
        return self.path(task, seed).is_file()

    def has_failure(self, task: str, seed: int) -> bool:
        return any(f["task"] == task and f["seed"] == seed for f in self.meta.failures)

    def write_episode(self, episode: Episode) -> Path:
        where = f"{self.root}/{episode_filename(episode.info.task, episode.info.seed)}"
        episode.check(self.meta, where)
        path = self.path(episode.info.task, episode.info.seed)
        save_episode(path, episode)
        return path

    def record_failure(self, task: str, seed: int, steps: int, reason: str = "") -> None:
        if not self.has_failure(task, seed):
            self.meta.failures.append({"task": task, "seed": int(seed), "steps": int(steps),
                                       **({"reason": reason} if reason else {})})

    def write_vl(self, images: np.ndarray, pairs: Sequence[dict[str, Any]]) -> None:
        """Replace the dataset's vision-language pairs (written whole: they are generated in one go)."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.ndim != 4 or images.shape[3] != 3:
            raise DatasetError(f"vl images must be (N, H, W, 3) uint8, got {images.shape}")
        for i, pair in enumerate(pairs):
            check_vl_pair(pair, images.shape[0], f"{self.root}/{VL_PAIRS_FILE} line {i + 1}")
        _atomic_write_bytes(self.root / VL_IMAGES_FILE, lambda handle: np.savez_compressed(handle, images=images))
        text = "".join(json.dumps(pair, sort_keys=True) + "\n" for pair in pairs).encode()
        _atomic_write_bytes(self.root / VL_PAIRS_FILE, lambda handle: handle.write(text))
        self.meta.num_vl_pairs, self.meta.num_vl_images = len(pairs), int(images.shape[0])

    def finalize(self) -> DatasetMeta:
        """Recount the episodes on disk and write meta.json."""
        self.meta.num_episodes = len(list(self.root.glob("episode_*.npz")))
        self.meta.failures.sort(key=lambda f: (f["task"], f["seed"]))
        write_meta(self.root, self.meta)
        return self.meta


def check_vl_pair(pair: dict[str, Any], num_images: int, where: str) -> None:
    for key, kind in (("image", int), ("kind", str), ("prompt", str), ("answer", str)):
        if not isinstance(pair.get(key), kind) or isinstance(pair.get(key), bool):
            raise DatasetError(f"{where}: field '{key}' must be a {kind.__name__}, got {pair.get(key)!r}")
    if not 0 <= pair["image"] < num_images:
        raise DatasetError(f"{where}: image index {pair['image']} is outside 0..{num_images - 1}")


# ------------------------------------------------------------------------------------------ reading


class DatasetReader:
    """Read-only view of a dataset directory: meta, episode files, vision-language pairs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        files = sorted(p for p in self.root.glob("episode_*.npz") if _EPISODE_RE.match(p.name))
        self.episode_files: list[Path] = files

    def __len__(self) -> int:
        return len(self.episode_files)

    def load(self, index: int) -> Episode:
        path = self.episode_files[index]
        episode = load_episode(path)
        episode.check(self.meta, str(path))
        match = _EPISODE_RE.match(path.name)
        if match is None or (match.group(1), int(match.group(2))) != (episode.info.task, episode.info.seed):
            raise DatasetError(f"{path}: file name does not match its info (task {episode.info.task!r}, "
                               f"seed {episode.info.seed})")
        return episode

    def episodes(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.load(index)

    @property
    def has_vl(self) -> bool:
        return (self.root / VL_PAIRS_FILE).is_file() and (self.root / VL_IMAGES_FILE).is_file()

    def load_vl(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(images (N, H, W, 3) uint8, pairs) -- pairs index into images."""
        if not self.has_vl:
            raise DatasetError(f"{self.root}: has no vision-language pairs ({VL_PAIRS_FILE} + {VL_IMAGES_FILE})")
        with np.load(self.root / VL_IMAGES_FILE, allow_pickle=False) as data:
            images = data["images"]
        pairs = []
        for i, line in enumerate((self.root / VL_PAIRS_FILE).read_text().splitlines()):
            if not line.strip():
                continue
            where = f"{self.root / VL_PAIRS_FILE} line {i + 1}"
            try:
                pair = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: invalid JSON: {error}") from None
            check_vl_pair(pair, images.shape[0], where)
            pairs.append(pair)
        return images, pairs


def dataset_hash(roots: Sequence[str | Path]) -> str:
    """sha256 over the *contents* of every data file of the given datasets: names a checkpoint's
    training data, so two checkpoints can be told to come from the same data or not.

    npz members are hashed decompressed (zip headers carry write times; the data does not)."""
    digest = hashlib.sha256()
    for root in sorted(str(Path(r).resolve()) for r in roots):
        root_path = Path(root)
        names = sorted(
            p.name for p in root_path.iterdir()
            if p.is_file() and (_EPISODE_RE.match(p.name) or p.name in (VL_PAIRS_FILE, VL_IMAGES_FILE))
        )
        for name in names:
            digest.update(name.encode() + b"\0")
            if name.endswith(".npz"):
                with zipfile.ZipFile(root_path / name) as archive:
                    for member in sorted(archive.namelist()):
                        digest.update(member.encode() + b"\0" + archive.read(member))
            else:
                digest.update((root_path / name).read_bytes())
    return digest.hexdigest()
