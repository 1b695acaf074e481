"""UAM: ventral VLM + dorsal dynamics expert + flow-matching action head, and the single-stream baseline.

    image, tokens ─► VentralVLM.features ─(cross-attn)─► DorsalExpert ─► tokens ─► FlowMatchingHead ─► actions
                                              image, state ─►   │                 state, noise ─►
                                                                └─► future latents ─► decoder ─► imagined frame

Both models share one forward signature, pure tensors in and out, no Python branching on data, so
runtime/ can trace or export either to ONNX/TensorRT:
    forward(image (B,3,S,S) float [0,1], tokens (B,L) long, state (B,state_dim) normalised,
            noise (B,chunk_size,action_dim)) -> (actions_norm (B,chunk_size,action_dim),
                                                 future_frame (B,3,f,f) in [0,1])

Training is end to end: loss() back-propagates the action flow loss and the dorsal dynamics loss
through every weight of all three parts (no frozen weights, no stop-gradient, no VL co-training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uam_ros.model.action_head import FlowMatchingHead
from uam_ros.model.config import UAMConfig
from uam_ros.model.dorsal import DorsalExpert
from uam_ros.model.ventral import VentralVLM

MODEL_KINDS = ("uam", "single_stream")


def _flow_noise_and_time(batch: dict[str, Tensor], actions: Tensor) -> tuple[Tensor, Tensor]:
    """Noise and flow time from the batch when given (reproducible tests), else drawn here."""
    noise = batch.get("noise")
    if noise is None:
        noise = torch.randn_like(actions)
    t = batch.get("time")
    if t is None:
        t = torch.rand(actions.shape[0], device=actions.device, dtype=actions.dtype)
    return noise, t


def pointer_terms(points: Tensor, target: Tensor, valid: Tensor | None = None, index: int = 0) -> Tensor:
    """Dorsal pointer ``index`` vs a tool point: pointer 0 vs where the tool will be in the image at
    the end of the chunk; pointer 1 (goal_pointer_weight) vs where it is at the end of the episode.

    Why this objective: it is visual dynamics (where the robot will appear k steps ahead, like the
    future-frame latents) computed from the action data itself -- forward kinematics of the chunk's
    last joint target, projected through the camera -- so it adds no labels and no VL data. It
    gives the localisation the action loss alone did not teach (docs/training_notes.md).
    points (B, K, 2), target (B, 2) in [-1, 1] (x, y); valid (B,) bool drops targets outside the image.
    """
    error = F.smooth_l1_loss(points[:, index], target, beta=0.05, reduction="none").sum(-1)
    if valid is None:
        return error.mean()
    keep = valid.to(error.dtype)
    return (error * keep).sum() / keep.sum().clamp_min(1.0)


class UAM(nn.Module):
    """The dual-stream model: actions come from the dorsal side."""

    kind = "uam"

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        self.config = config
        self.ventral = VentralVLM(config)
        self.dorsal = DorsalExpert(config)
        self.action_head = FlowMatchingHead(config)

    def _streams(self, image: Tensor, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        features = self.ventral.features(image, tokens)
        mask = self.ventral.feature_mask(tokens)
        instruction = self.instruction_vector(features, mask, tokens) if self.config.language_film else None
        return self.dorsal(image, state, features, mask, instruction)

    def instruction_vector(self, features: Tensor, mask: Tensor, tokens: Tensor) -> Tensor:
        """(B, d): the mean over the instruction's real tokens of the ventral's text states, or of its
        word embeddings (UAMConfig.film_source), for the dorsal's language FiLM."""
        n = self.config.num_patches
        weight = mask[:, n:, None].to(features.dtype)
        if self.config.film_source == "dorsal_words":
            text = self.dorsal.word_embed(tokens)
        elif self.config.film_source == "words":
            embed = getattr(self.ventral, "tok_embed", None)
            if embed is None:
                raise ValueError("film_source 'words' needs a ventral stream with word embeddings (tok_embed)")
            text = embed(tokens)
        else:
            text = features[:, n:]
        vector = (text * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        return F.layer_norm(vector, vector.shape[-1:], eps=1e-6) if self.config.instruction_norm else vector

    def forward(self, image: Tensor, tokens: Tensor, state: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        dorsal_tokens, latents, _ = self._streams(image, tokens, state)
        cond, cond_mask = self.action_head.condition(dorsal_tokens, state)
        actions = self.action_head.sample(cond, noise, cond_mask)
        return actions, self.dorsal.render(latents)

    def loss(self, batch: dict[str, Tensor], dynamics_weight: float | None = None) -> dict[str, Tensor]:
        """End-to-end training loss.

        batch: image, tokens, state (normalised), actions (B,H,A normalised), future_image (B,3,S,S),
        optional action_is_pad (B,H), noise (B,H,A), time (B,), and with pointer_loss_weight > 0
        future_point (B,2) + future_point_valid (B,), with goal_pointer_weight > 0 goal_point (B,2) +
        goal_point_valid (B,) (see pointer_terms).
        Returns {"loss", "action_loss", "dynamics_loss", "latent_loss", "render_loss", "autoencode_loss"}
        (+ "point_loss", "goal_point_loss").
        """
        weight = self.config.dynamics_loss_weight if dynamics_weight is None else dynamics_weight
        dorsal_tokens, latents, points = self._streams(batch["image"], batch["tokens"], batch["state"])
        cond, cond_mask = self.action_head.condition(dorsal_tokens, batch["state"])
        noise, t = _flow_noise_and_time(batch, batch["actions"])
        action_loss = self.action_head.flow_loss(
            cond, batch["actions"], noise, t, cond_mask, batch.get("action_is_pad")
        )
        terms = self.dorsal.dynamics_terms(latents, batch["future_image"])
        total = action_loss + weight * terms["dynamics_loss"]
        if self.config.pointer_loss_weight > 0 and points is not None and "future_point" in batch:
            terms["point_loss"] = pointer_terms(points, batch["future_point"], batch.get("future_point_valid"))
            total = total + self.config.pointer_loss_weight * terms["point_loss"]
        if self.config.goal_pointer_weight > 0 and points is not None and "goal_point" in batch:
            terms["goal_point_loss"] = pointer_terms(points, batch["goal_point"], batch.get("goal_point_valid"), 1)
            total = total + self.config.goal_pointer_weight * terms["goal_point_loss"]
        return {"loss": total, "action_loss": action_loss, **terms}


class SingleStreamVLA(nn.Module):
    """Baseline: the same VLM fine-tuned single-stream; the action head reads the ventral tokens."""

    kind = "single_stream"

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        self.config = config
        self.ventral = VentralVLM(config)
        self.action_head = FlowMatchingHead(config)

    def _condition(self, image: Tensor, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor | None]:
        features = self.ventral.features(image, tokens)
        return self.action_head.condition(features, state, self.ventral.feature_mask(tokens))

    def forward(self, image: Tensor, tokens: Tensor, state: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        cond, cond_mask = self._condition(image, tokens, state)
        actions = self.action_head.sample(cond, noise, cond_mask)
        size = self.config.future_frame_size
        # No dorsal stream, no imagined future: zeros keep the output signature identical to UAM.
        frame = torch.zeros_like(image[:, :, :1, :1]).expand(-1, -1, size, size)
        return actions, frame

    def loss(self, batch: dict[str, Tensor], dynamics_weight: float | None = None) -> dict[str, Tensor]:
        """Action flow loss only (dynamics_weight is accepted and ignored, for a shared training loop)."""
        cond, cond_mask = self._condition(batch["image"], batch["tokens"], batch["state"])
        noise, t = _flow_noise_and_time(batch, batch["actions"])
        action_loss = self.action_head.flow_loss(
            cond, batch["actions"], noise, t, cond_mask, batch.get("action_is_pad")
        )
        return {"loss": action_loss, "action_loss": action_loss}


def build_model(config: UAMConfig, kind: str = "uam") -> UAM | SingleStreamVLA:
    """A freshly initialised model of the given kind ("uam" or "single_stream")."""
    if kind == "uam":
        return UAM(config)
    if kind == "single_stream":
        return SingleStreamVLA(config)
    raise ValueError(f"build_model: kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
