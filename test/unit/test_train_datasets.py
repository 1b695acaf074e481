"""Torch datasets: chunk/pad/time convention, normalisation stats, VL loss masks, split separation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uam_ros.model.config import UAMConfig
from uam_ros.model.tokenizer import EOS_ID, UNK_ID
from uam_ros.train.dataset_format import DatasetError
from uam_ros.train.datasets import (
    STATS_MIN_STD,
    ActionChunkDataset,
    EpisodeStore,
    FramePairDataset,
    VLData,
    VLPairDataset,
    build_tokenizer,
    make_processor,
    resize_frames,
)
from uam_ros.train.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("ds") / "d", episodes=2, length=6, image_size=16, vl_pairs=6)


def _config(**overrides):
    fields = dict(image_size=16, patch_size=8, chunk_size=4, future_offset=2, max_text_len=12)
    fields.update(overrides)
    return UAMConfig(**fields)


def test_action_chunks_follow_the_time_convention_and_pad_at_the_end(data_dir):
    store = EpisodeStore.load([data_dir], image_size=16)
    config = _config()
    processor = make_processor(build_tokenizer(store.instructions), config, store.compute_stats([0, 1]))
    dataset = ActionChunkDataset(store, [1], processor, config.chunk_size, config.future_offset)
    assert len(dataset) == 6
    start = int(store.starts[1])
    raw_actions = store.actions[start:start + 6]
    sample = dataset[4]  # t = 4 of 6: chunk = actions[4], actions[5], then two pads
    expected = processor.normalize_actions(raw_actions[[4, 5, 5, 5]])
    np.testing.assert_allclose(sample["actions"].numpy(), expected, rtol=1e-6)
    assert sample["action_is_pad"].tolist() == [False, False, True, True]
    torch.testing.assert_close(sample["future_image"], store.frames[start + 5].float() / 255)  # t+k clamped
    torch.testing.assert_close(sample["image"], store.frames[start + 4].float() / 255)
    np.testing.assert_allclose(sample["state"].numpy(), processor.normalize_state(store.states[start + 4]), rtol=1e-6)
    assert sample["tokens"][0].item() == 1 and UNK_ID not in sample["tokens"].tolist()
    first = dataset[0]
    assert not first["action_is_pad"].any()
    torch.testing.assert_close(first["future_image"], store.frames[start + 2].float() / 255)


def test_first_frames_of_each_episode_are_repeated_and_nothing_else_is(data_dir):
    store = EpisodeStore.load([data_dir], image_size=16)
    config = _config()
    processor = make_processor(build_tokenizer(store.instructions), config, store.compute_stats([0, 1]))
    plain = ActionChunkDataset(store, [0, 1], processor, config.chunk_size, config.future_offset)
    dense = ActionChunkDataset(store, [0, 1], processor, config.chunk_size, config.future_offset,
                               first_steps=2, first_steps_repeat=5)
    assert len(plain) == 12 and len(dense) == 12 + 2 * 2 * 4
    steps = [(int(e), int(t)) for e, t, _ in dense.index]
    for episode in (0, 1):
        per_step = [steps.count((episode, t)) for t in range(6)]
        assert per_step == [5, 5, 1, 1, 1, 1]
    # A repeated row is the same sample as in the plain dataset (same frame, chunk and instruction).
    repeat = dense[4]
    same = plain[[(int(e), int(t)) for e, t, _ in plain.index].index(steps[4])]
    for key in ("image", "state", "actions", "tokens"):
        torch.testing.assert_close(repeat[key], same[key])


def test_stats_come_from_the_training_episodes_with_a_std_floor(data_dir):
    store = EpisodeStore.load([data_dir], image_size=16)
    stats = store.compute_stats([0])
    rows = slice(int(store.starts[0]), int(store.starts[0] + store.lengths[0]))
    np.testing.assert_allclose(stats["action_mean"], store.actions[rows].mean(0))
    assert stats["state_std"][-1] == STATS_MIN_STD  # the gripper never moves in this data
    assert min(stats["action_std"]) >= STATS_MIN_STD


def test_frame_pairs_are_t_and_t_plus_k(data_dir):
    store = EpisodeStore.load([data_dir], image_size=16)
    pairs = FramePairDataset(store, [0], future_offset=2)
    torch.testing.assert_close(pairs[1]["future_image"], store.frames[3].float() / 255)


def test_vl_tokens_mask_only_the_answer(data_dir):
    data = VLData.load([data_dir], image_size=16)
    tokenizer = build_tokenizer(data.texts())
    dataset = VLPairDataset(data, list(range(len(data.pairs))), tokenizer, max_text_len=12)
    sample = dataset[0]
    pair = data.pairs[0]
    prompt_len = len(tokenizer.encode(pair["prompt"], 12, add_eos=False, pad=False))
    answer_ids = tokenizer.encode(pair["answer"], 12, add_bos=False, pad=False)
    mask = sample["loss_mask"].tolist()
    assert mask[:prompt_len] == [False] * prompt_len
    assert mask[prompt_len:prompt_len + len(answer_ids)] == [True] * len(answer_ids)
    assert not any(mask[prompt_len + len(answer_ids):])
    assert sample["tokens"][prompt_len + len(answer_ids) - 1].item() == EOS_ID
    short = VLPairDataset(data, [0], tokenizer, max_text_len=4)  # does not fit: dropped, counted
    assert len(short) == 0 and short.dropped == 1


def test_training_never_reads_heldout_data(tmp_path):
    heldout = make_synthetic_dataset(tmp_path / "heldout", episodes=1, length=4, image_size=8, split="heldout")
    with pytest.raises(DatasetError, match="held-out"):
        EpisodeStore.load([heldout], image_size=8)  # split="train" is the default, as in training
    assert EpisodeStore.load([heldout], image_size=8, split="heldout").num_episodes == 1


def test_tokenizer_knows_training_words_but_not_heldout_paraphrases():
    from uam_ros.sim.tasks import TASKS

    tokenizer = build_tokenizer([])
    for task in TASKS.values():
        for template in task.train_templates:
            text = template.format(obj="purple cross", goal="orange bin", color="yellow")
            assert UNK_ID not in tokenizer.encode(text, 40), text
    assert UNK_ID in tokenizer.encode("hoist the red block above the table", 40)  # "hoist": held-out only


def test_resize_matches_the_runtime_processor():
    frames = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    processor = make_processor(build_tokenizer([]), _config())
    expected = processor.image_to_tensor(frames[1])[0]
    got = resize_frames(frames, 16)[1].float() / 255
    assert float((got - expected).abs().max()) <= 0.5 / 255 + 1e-6


def test_future_point_is_the_chunks_last_target(data_dir):
    """The pointer target of a sample is the tool point of the chunk's last (clamped) action row."""
    store = EpisodeStore.load([data_dir], image_size=16)
    config = _config()
    processor = make_processor(build_tokenizer(store.instructions), config, store.compute_stats([0, 1]))
    n = store.actions.shape[0]
    points = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32) / n
    valid = np.arange(n) % 2 == 0
    dataset = ActionChunkDataset(store, [1], processor, config.chunk_size, config.future_offset, (points, valid))
    start = int(store.starts[1])
    for t, last in ((0, 3), (4, 5)):  # t=4 of 6: the chunk is clamped at the episode's last row
        sample = dataset[t]
        np.testing.assert_allclose(sample["future_point"].numpy(), points[start + last])
        assert bool(sample["future_point_valid"]) == bool(valid[start + last])
    # The goal point is the episode's last target for every sample of the episode.
    end = start + int(store.lengths[1]) - 1
    for t in range(int(store.lengths[1])):
        np.testing.assert_allclose(dataset[t]["goal_point"].numpy(), points[end])
        assert bool(dataset[t]["goal_point_valid"]) == bool(valid[end])


def test_tool_image_points_land_where_the_camera_sees_the_tool():
    """FK + projection of a joint target agrees with the kinematics' own projected TCP pixel."""
    pytest.importorskip("mujoco")
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.kinematics import RobotKinematics
    from uam_ros.train.datasets import tool_image_points

    robot = load_robot_config("franka_panda")
    home = np.asarray(robot.action_home, dtype=np.float64)
    reach_down = home.copy()
    reach_down[3] += 0.6  # bend the elbow: the tool moves in the image
    actions = np.stack([home, reach_down])
    points, valid = tool_image_points(actions, robot, "scene", 128, 128)
    pixels = RobotKinematics(robot).project_tcp_path(actions[:, :7], "scene", 128, 128)
    np.testing.assert_allclose(points, (pixels + 0.5) / 128 * 2 - 1, atol=1e-5)
    assert valid.tolist() == list(((np.abs(points) <= 1).all(1)))
    assert np.abs(points[0] - points[1]).max() > 0.02


def test_training_needs_no_simulator(tmp_path):
    """The tokenizer's vocabulary comes from the sim's colour/shape/task tables; training on a
    machine without MuJoCo (a GPU box) must still work, so those tables may not import it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['mujoco'] = None\n"  # any 'import mujoco' now raises ImportError
            "from uam_ros.train.datasets import build_tokenizer\n"
            "tokenizer = build_tokenizer(['reach the red cube'])\n"
            "assert tokenizer.encode('reach the red cube', 8)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
