"""The on-disk dataset format: round trip, atomic pickle-free files, identity checks, held-out separation."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from uam_ros.train.dataset_format import (
    DatasetError,
    DatasetReader,
    DatasetWriter,
    dataset_hash,
    episode_filename,
    load_episode,
)
from uam_ros.train.synthetic import make_synthetic_dataset, synthetic_episode, synthetic_meta


def test_round_trip_episodes_and_vl_pairs(tmp_path):
    root = tmp_path / "data"
    writer = DatasetWriter(root, synthetic_meta(image_size=16))
    written = [synthetic_episode(seed, length=5 + seed, image_size=16) for seed in (3, 7)]
    for episode in written:
        writer.write_episode(episode)
    writer.record_failure("reach", 4, steps=80)
    images = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    pairs = [{"image": 1, "kind": "color", "prompt": "what color is the block?", "answer": "red"}]
    writer.write_vl(images, pairs)
    writer.finalize()

    reader = DatasetReader(root)
    assert reader.meta.num_episodes == 2 and reader.meta.failures == [{"task": "reach", "seed": 4, "steps": 80}]
    assert reader.meta.joint_names[-1] == reader.meta.gripper_joint
    assert [p.name for p in reader.episode_files] == [episode_filename("reach", 3), episode_filename("reach", 7)]
    for original, loaded in zip(written, reader.episodes()):
        for name in original.ARRAYS:
            np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
            assert getattr(loaded, name).dtype == getattr(original, name).dtype
        assert loaded.info == original.info
    vl_images, vl_pairs = reader.load_vl()
    np.testing.assert_array_equal(vl_images, images)
    assert vl_pairs == pairs
    meta_on_disk = json.loads((root / "meta.json").read_text())
    assert meta_on_disk["num_vl_pairs"] == 1 and meta_on_disk["format"] == "uam_dataset"


def test_episode_files_hold_no_pickled_objects(tmp_path):
    root = make_synthetic_dataset(tmp_path / "d", episodes=1, length=4, image_size=8)
    path = next(root.glob("episode_*.npz"))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'descr': '|O'" not in header, f"{name} is an object array"
    load_episode(path)  # np.load(..., allow_pickle=False) inside


def test_writer_refuses_a_dataset_of_another_split_or_layout(tmp_path):
    root = make_synthetic_dataset(tmp_path / "train", episodes=1, length=4, image_size=8, split="train")
    with pytest.raises(DatasetError, match="'split'"):
        DatasetWriter(root, synthetic_meta(split="heldout", image_size=8))
    with pytest.raises(DatasetError, match="'image_height'"):
        DatasetWriter(root, synthetic_meta(split="train", image_size=16))
    writer = DatasetWriter(root, synthetic_meta(split="train", image_size=8))
    with pytest.raises(DatasetError, match="split"):
        writer.write_episode(synthetic_episode(9, 4, 8, split="heldout"))


def test_malformed_episode_is_rejected(tmp_path):
    writer = DatasetWriter(tmp_path / "d", synthetic_meta(image_size=8))
    episode = synthetic_episode(0, 4, 8)
    episode.actions = episode.actions[:, :5]
    with pytest.raises(DatasetError, match="actions has shape"):
        writer.write_episode(episode)
    episode = synthetic_episode(1, 4, 8)
    episode.joint_positions[1, 2] = np.nan
    with pytest.raises(DatasetError, match="non-finite"):
        writer.write_episode(episode)
    assert not list((tmp_path / "d").glob("episode_*"))


def test_dataset_hash_changes_with_the_data(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", episodes=2, length=4, image_size=8)
    b = make_synthetic_dataset(tmp_path / "b", episodes=2, length=4, image_size=8)
    assert dataset_hash([a]) == dataset_hash([b])
    make_synthetic_dataset(tmp_path / "b", seeds=[5], length=4, image_size=8)
    assert dataset_hash([a]) != dataset_hash([b])
