"""UAMConfig validation and serialisation."""

from __future__ import annotations

import json

import pytest

from uam_ros.model.config import UAMConfig


def test_defaults_are_valid_and_derived_sizes_match():
    config = UAMConfig()
    assert config.num_patches == (config.image_size // config.patch_size) ** 2
    assert config.future_frame_size == config.future_latent_grid * 2**config.upsample_steps
    assert config.num_steps == 4 and config.chunk_size == 16


@pytest.mark.parametrize(
    "field, value",
    [
        ("d_model", 0),
        ("d_model", 33),
        ("chunk_size", -1),
        ("num_steps", 0),
        ("num_steps", 2.5),
        ("patch_size", 7),  # does not divide 96
        ("n_heads", 3),  # does not divide 128
        ("vocab_size", 3),
        ("future_frame_size", 24),  # 24 / 4 = 6 is not a power of 2
        ("dropout", 1.0),
        ("dynamics_loss_weight", -0.1),
        ("image_size", True),
    ],
)
def test_bad_values_rejected_naming_field_and_value(field, value):
    with pytest.raises(ValueError) as info:
        UAMConfig(**{field: value})
    message = str(info.value)
    assert f"UAMConfig.{field}" in message
    assert str(value) in message


def test_dict_round_trip_through_json():
    config = UAMConfig(d_model=64, n_heads=2, chunk_size=8, dropout=0.1)
    again = UAMConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_unknown_field_rejected():
    with pytest.raises(ValueError, match="unknown field.*'hidden_size'"):
        UAMConfig.from_dict({**UAMConfig().to_dict(), "hidden_size": 3})
