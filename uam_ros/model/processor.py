"""UAMProcessor: raw robot data <-> model tensors (LeRobot processor_smolvla style).

The model only ever sees normalised, fixed-shape tensors; everything robot-facing (uint8 camera
images of any size, instruction strings, joint positions in radians) goes through here, in one
order, both at training and at run time -- so the two can never disagree. The processor is saved
inside the checkpoint (tokenizer vocabulary + normalisation stats + image size).

Input pipeline (to_model_inputs):  image -> float [0,1], resize (bilinear, antialias) to S x S
                                    instruction -> tokens (bos ... eos pad..., max_text_len)
                                    state -> (state - mean) / std
Output pipeline:                    actions_norm -> actions_norm * std + mean (float64, H x A)
                                    frame [0,1] -> uint8 H x W x 3
Images are squashed to a square, not cropped or padded: the sim cameras are square, and a squash
keeps every object in view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from uam_ros.model.tokenizer import WordTokenizer

MIN_STD = 1e-6


def _stats(name: str, values: Sequence[float] | np.ndarray | None, size: int, default: float) -> np.ndarray:
    """A float64 stats vector of the right size, finite, with std clamped later."""
    if values is None:
        return np.full(size, default, dtype=np.float64)
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (size,):
        raise ValueError(f"UAMProcessor.{name}: expected {size} values, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"UAMProcessor.{name}: values must be finite, got {array.tolist()}")
    return array


class UAMProcessor:
    """Tokenizer + normalisation stats + image size; turns observations into model inputs and back."""

    def __init__(
        self,
        tokenizer: WordTokenizer,
        *,
        image_size: int,
        max_text_len: int,
        state_dim: int,
        action_dim: int,
        state_mean: Sequence[float] | None = None,
        state_std: Sequence[float] | None = None,
        action_mean: Sequence[float] | None = None,
        action_std: Sequence[float] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.max_text_len = int(max_text_len)
        self.state_dim = int(state_dim)
        self.action_dim = int(action_dim)
        self.state_mean = _stats("state_mean", state_mean, state_dim, 0.0)
        self.state_std = np.maximum(_stats("state_std", state_std, state_dim, 1.0), MIN_STD)
        self.action_mean = _stats("action_mean", action_mean, action_dim, 0.0)
        self.action_std = np.maximum(_stats("action_std", action_std, action_dim, 1.0), MIN_STD)

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "max_text_len": self.max_text_len,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "tokenizer": self.tokenizer.to_dict(),
            "normalization": {
                "state_mean": self.state_mean.tolist(),
                "state_std": self.state_std.tolist(),
                "action_mean": self.action_mean.tolist(),
                "action_std": self.action_std.tolist(),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UAMProcessor:
        stats = data["normalization"]
        return cls(
            WordTokenizer.from_dict(data["tokenizer"]),
            image_size=data["image_size"],
            max_text_len=data["max_text_len"],
            state_dim=data["state_dim"],
            action_dim=data["action_dim"],
            state_mean=stats["state_mean"],
            state_std=stats["state_std"],
            action_mean=stats["action_mean"],
            action_std=stats["action_std"],
        )

    # --- input steps ----------------------------------------------------------------------------
    def image_to_tensor(self, image_rgb_uint8: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, S, S) float32 in [0, 1]."""
        image = np.asarray(image_rgb_uint8)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"UAMProcessor: image must be an HxWx3 uint8 RGB array, "
                f"got shape {image.shape} dtype {image.dtype}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        size = (self.image_size, self.image_size)
        if tuple(tensor.shape[-2:]) == size:
            return tensor
        resized = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
        return resized.clamp(0.0, 1.0)

    def tokenize(self, instruction: str) -> torch.Tensor:
        """Instruction -> (1, max_text_len) long, padded."""
        return torch.tensor([self.tokenizer.encode(instruction, self.max_text_len)], dtype=torch.long)

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """(..., state_dim) raw -> normalised float32."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape[-1:] != (self.state_dim,):
            raise ValueError(f"UAMProcessor: state must have {self.state_dim} values, got shape {state.shape}")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"UAMProcessor: state has non-finite values: {state.tolist()}")
        return ((state - self.state_mean) / self.state_std).astype(np.float32)

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """(..., action_dim) raw joint targets -> normalised float32 (training targets)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape[-1:] != (self.action_dim,):
            raise ValueError(
                f"UAMProcessor: actions must have {self.action_dim} values per step, got shape {actions.shape}"
            )
        return ((actions - self.action_mean) / self.action_std).astype(np.float32)

    def to_model_inputs(
        self, image_rgb_uint8: np.ndarray, instruction: str, state: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """One observation -> {"image": (1,3,S,S), "tokens": (1,L), "state": (1,state_dim)} (batch of 1).

        The noise input is not made here: the caller owns it (fixed for parity checks, fresh per call
        in deployment).
        """
        return {
            "image": self.image_to_tensor(image_rgb_uint8),
            "tokens": self.tokenize(instruction),
            "state": torch.from_numpy(self.normalize_state(state)).reshape(1, self.state_dim),
        }

    # --- output steps ---------------------------------------------------------------------------
    def actions_from_model(self, actions_norm: torch.Tensor | np.ndarray) -> np.ndarray:
        """(1, H, A) or (H, A) normalised -> (H, A) float64 joint targets in robot units."""
        array = actions_norm.detach().cpu().double().numpy() if torch.is_tensor(actions_norm) else np.asarray(
            actions_norm, dtype=np.float64
        )
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 2 or array.shape[1] != self.action_dim:
            raise ValueError(
                f"UAMProcessor: actions must be (H, {self.action_dim}) or (1, H, {self.action_dim}), "
                f"got {array.shape}"
            )
        return array * self.action_std + self.action_mean

    @staticmethod
    def frame_from_model(frame: torch.Tensor | np.ndarray) -> np.ndarray:
        """(1, 3, f, f) or (3, f, f) in [0, 1] -> (f, f, 3) uint8 RGB (for the ~/imagined_future topic)."""
        array = frame.detach().cpu().float().numpy() if torch.is_tensor(frame) else np.asarray(frame, np.float32)
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3 or array.shape[0] != 3:
            raise ValueError(f"UAMProcessor: frame must be (3, f, f) or (1, 3, f, f), got {array.shape}")
        pixels = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.ascontiguousarray(pixels.transpose(1, 2, 0))
