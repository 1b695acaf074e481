"""UAMProcessor: observation -> model tensors and model outputs -> robot units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uam_ros.model.processor import UAMProcessor
from uam_ros.model.tokenizer import BOS_ID, PAD_ID, WordTokenizer

torch.set_num_threads(1)


def make_processor(**stats) -> UAMProcessor:
    return UAMProcessor(
        WordTokenizer.build(["pick up the red cube"]),
        image_size=32,
        max_text_len=8,
        state_dim=3,
        action_dim=2,
        **stats,
    )


def test_model_inputs_shapes_dtypes_and_values():
    processor = make_processor(state_mean=[1.0, 2.0, 3.0], state_std=[2.0, 2.0, 0.5])
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red survives the resize
    inputs = processor.to_model_inputs(image, "Pick up the red cube", np.array([3.0, 2.0, 2.0]))
    assert set(inputs) == {"image", "tokens", "state"}
    assert inputs["image"].shape == (1, 3, 32, 32) and inputs["image"].dtype == torch.float32
    torch.testing.assert_close(inputs["image"][0, 0], torch.ones(32, 32))
    torch.testing.assert_close(inputs["image"][0, 1:], torch.zeros(2, 32, 32))
    assert inputs["tokens"].shape == (1, 8) and inputs["tokens"].dtype == torch.long
    assert inputs["tokens"][0, 0] == BOS_ID and inputs["tokens"][0, -1] == PAD_ID
    assert inputs["state"].shape == (1, 3) and inputs["state"].dtype == torch.float32
    torch.testing.assert_close(inputs["state"], torch.tensor([[1.0, 0.0, -2.0]]))


def test_resize_is_antialiased():
    """A 1-pixel checkerboard downsampled 4x averages to grey instead of aliasing to black/white."""
    processor = make_processor()
    board = ((np.indices((128, 128)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = processor.image_to_tensor(np.repeat(board[..., None], 3, axis=2))
    assert abs(image.mean().item() - 0.5) < 0.01 and image.std().item() < 0.05


def test_actions_and_frames_come_back_in_robot_units():
    processor = make_processor(action_mean=[0.5, -1.0], action_std=[2.0, 0.1])
    raw = np.array([[1.5, -1.2], [0.5, -0.9]])
    normalised = torch.from_numpy(processor.normalize_actions(raw))[None]
    back = processor.actions_from_model(normalised)
    assert back.dtype == np.float64 and back.shape == (2, 2)
    np.testing.assert_allclose(back, raw, atol=1e-6)
    frame = torch.tensor([0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    pixels = processor.frame_from_model(frame)
    assert pixels.shape == (2, 2, 3) and pixels.dtype == np.uint8
    assert pixels[..., 0].tolist() == [[0, 128], [255, 255]]


def test_tiny_std_is_clamped_so_normalisation_never_divides_by_zero():
    processor = make_processor(state_std=[0.0, 1.0, 1e-12], action_std=[0.0, 1.0])
    assert processor.state_std.min() >= 1e-6 and processor.action_std.min() >= 1e-6
    state = processor.normalize_state(np.array([1e-7, 0.0, 0.0]))
    assert np.all(np.isfinite(state))


def test_bad_inputs_rejected_with_reasons():
    processor = make_processor()
    with pytest.raises(ValueError, match="uint8"):
        processor.image_to_tensor(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="3 values"):
        processor.normalize_state(np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        processor.normalize_state(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="state_mean: expected 3 values, got 2"):
        make_processor(state_mean=[0.0, 0.0])


def test_dict_round_trip_through_json():
    processor = make_processor(state_mean=[1.0, 2.0, 3.0], action_std=[0.5, 4.0])
    again = UAMProcessor.from_dict(json.loads(json.dumps(processor.to_dict())))
    assert again.to_dict() == processor.to_dict()
