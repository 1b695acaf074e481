"""Small synthetic datasets in the real on-disk format, without the simulator.

For tests and throughput benchmarks: every code path after collection (reading, datasets, training,
resuming, DDP) can be exercised in seconds. The frames are not random noise: a coloured square moves
with the first joint, so there is something for the image encoders and the dynamics loss to learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uam_ros.train.dataset_format import DatasetMeta, DatasetWriter, Episode, EpisodeInfo

ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
GRIPPER_JOINT = "panda_finger_joint1"
INSTRUCTIONS = ("reach the red block", "pick up the blue cylinder", "touch the green hexagon")
COLOR_RGB = {"red": (220, 30, 25), "blue": (30, 75, 230), "green": (30, 180, 50)}


def synthetic_meta(split: str = "train", image_size: int = 32, robot: str = "franka_panda") -> DatasetMeta:
    return DatasetMeta(
        robot=robot,
        joint_names=ARM_JOINTS + [GRIPPER_JOINT],
        arm_joints=list(ARM_JOINTS),
        gripper_joint=GRIPPER_JOINT,
        image_height=image_size,
        image_width=image_size,
        camera="scene",
        action_rate_hz=10.0,
        split=split,
        tasks=["reach"],
        notes="synthetic (uam_ros.train.synthetic)",
    )


def synthetic_episode(seed: int, length: int, image_size: int, split: str = "train") -> Episode:
    rng = np.random.default_rng(seed)
    home = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
    goal = home + np.concatenate([rng.uniform(-0.5, 0.5, 7), [0.0]])
    alpha = np.linspace(0.0, 1.0, length + 1)[:, None]
    path = (1 - alpha) * home + alpha * goal  # positions at steps 0..T
    instruction = INSTRUCTIONS[seed % len(INSTRUCTIONS)]
    color = instruction.split()[-2]
    frames = np.full((length, image_size, image_size, 3), 200, np.uint8)
    for t in range(length):
        cx = int((0.5 + 0.8 * (path[t, 0] - home[0])) * (image_size - 6)) + 3
        cx = int(np.clip(cx, 3, image_size - 4))
        frames[t, image_size // 2 - 3 : image_size // 2 + 3, cx - 3 : cx + 3] = COLOR_RGB[color]
    velocities = np.diff(path, axis=0) * 10.0
    return Episode(
        frames=frames,
        joint_positions=path[:-1],
        joint_velocities=velocities,
        gripper_opening=np.ones(length),
        ee_positions=np.zeros((length, 3)),
        actions=path[1:],
        time_s=np.arange(length) * 0.1,
        info=EpisodeInfo(task="reach", split=split, seed=seed, instruction=instruction, success=True, steps=length,
                         objects=[{"name": "target", "shape": "block", "color": color, "pos": [0.5, 0.0], "yaw": 0.0}],
                         target="target", expert="synthetic"),
    )


def make_synthetic_dataset(
    root: str | Path,
    episodes: int = 3,
    length: int = 12,
    image_size: int = 32,
    split: str = "train",
    vl_pairs: int = 0,
    seeds: Sequence[int] | None = None,
) -> Path:
    """Write a dataset of straight-line reaching episodes (and optional VL pairs about its frames)."""
    writer = DatasetWriter(root, synthetic_meta(split, image_size))
    for seed in seeds if seeds is not None else range(episodes):
        writer.write_episode(synthetic_episode(int(seed), length, image_size, split))
    if vl_pairs:
        images, pairs = [], []
        rng = np.random.default_rng(1234)
        while len(pairs) < vl_pairs:
            seed = int(rng.integers(1 << 30))
            episode = synthetic_episode(seed, 2, image_size, split)
            color = episode.info.objects[0]["color"]
            index = len(images)
            images.append(episode.frames[0])
            pairs.append({"image": index, "kind": "color", "prompt": "what color is the square?", "answer": color})
            if len(pairs) < vl_pairs:
                pairs.append({"image": index, "kind": "count", "prompt": "how many objects are there?",
                              "answer": "one"})
        writer.write_vl(np.stack(images), pairs)
    writer.finalize()
    return Path(root)
