"""UAMConfig: every size of the UAM network in one dataclass (LeRobot configuration_smolvla style).

The config is saved next to the weights (config.json), so a checkpoint always rebuilds the exact
network it was trained as. Bad values are rejected here, at construction, with a message naming the
field and the value -- not later as a shape error deep inside a matmul.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

FILM_SOURCES = ("features", "words", "dorsal_words")  # what the dorsal's language FiLM reads (film_source)


@dataclass
class UAMConfig:
    # --- inputs -------------------------------------------------------------------------------
    image_size: int = 96
    """Square side the camera image is resized to before the model sees it [px]."""
    patch_size: int = 12
    """ViT patch side [px]; image_size // patch_size patches per side (96 / 12 = 8x8 = 64 tokens)."""
    vocab_size: int = 256
    """Word-level vocabulary size, special tokens included (set from the tokenizer when built)."""
    max_text_len: int = 24
    """Instruction length in tokens, bos/eos/padding included; every input is padded to it."""
    state_dim: int = 8
    """Proprioceptive state size (arm joint positions, then the gripper)."""
    action_dim: int = 8
    """Action size per chunk step (absolute joint targets, same layout as the checkpoint's joint_names)."""

    # --- widths and depths --------------------------------------------------------------------
    d_model: int = 128
    """Width shared by the ventral, dorsal and action-head transformers (so attention between them is free)."""
    n_heads: int = 4
    """Attention heads in every transformer; d_model must be divisible by it."""
    mlp_ratio: int = 4
    """MLP hidden width = mlp_ratio * d_model."""
    vision_layers: int = 2
    """Depth of the ventral ViT image encoder."""
    ventral_layers: int = 2
    """Depth of the ventral language model over [image tokens; text tokens]."""
    dorsal_layers: int = 2
    """Depth of the dorsal expert (self-attention + cross-attention into the ventral features)."""
    action_layers: int = 2
    """Depth of the flow-matching action head's velocity network."""
    dropout: float = 0.0
    """Dropout in attention and MLPs (training only; eval and export are deterministic)."""
    dorsal_stem: str = "linear"
    """How the dorsal expert turns the image into patch tokens: "linear" (ViT patch projection) or
    "conv" (overlapping 3x3 convs first; patch_size must be divisible by 4)."""
    pointer_points: int = 0
    """K spatial soft-argmax pointers in the dorsal expert (0 = none): K extra dorsal tokens, each an
    instruction-conditioned image point (see layers.SpatialPointer)."""
    pointer_loss_weight: float = 0.0
    """Weight of the dorsal's future end-effector point loss: pointer 0 is trained to point at where
    the tool will be in the image at the end of the chunk (needs pointer_points >= 1)."""
    goal_pointer_weight: float = 0.0
    """Weight of the goal-point loss: pointer 1 is trained to point at where the tool is at the END of
    the episode (needs pointer_points >= 2). Why: pointer 0 looks 1.6 s ahead, so at the start of a
    reach it points mid-way; the episode's end point is where the named object is -- grounding taught
    by the action data itself (forward kinematics of the episode's last target), no extra labels."""
    pointer_offsets: bool = False
    """Each pointer also regresses a sub-patch offset per patch (the point is the softmax-weighted mean
    of patch centre + offset). Why: with 12 px patches a patch spans ~8 cm of table, and a soft-argmax
    over patch centres alone left reach episodes ending 5-10 cm short of the object."""
    language_film: bool = False
    """FiLM the dorsal's patch tokens with the instruction (RT-1 style): a scale and shift per channel
    from a mean over the instruction's tokens (film_source), zero-initialised. Why: cross-attention
    into 64 image tokens and ~6 text tokens left every trained policy blind to which object the
    instruction names (the grounding probe, docs/training_notes.md experiment 7); FiLM puts the
    instruction into every patch token the action is computed from. Not enough alone: the shipped
    policy also needed its episodes' first frames oversampled (TrainConfig data.first_steps, experiment 8)."""
    film_source: str = "features"
    """What the FiLM reads: "features" (the ventral LM's final text states) or "words" (the mean of the
    instruction's word embeddings). Why "words": in a small VLM trained from scratch the text states
    are dominated by what the text attends to in the image, and the words differ by ~1 % of their
    norm; the embeddings of two words differ by their whole norm. "dorsal_words": the same mean over a
    word table of the dorsal's own (vocab_size x d_model, freshly initialised). Why: with a
    VL-pretrained ventral slowed down to keep its VQA skill (TrainConfig.lr_scale), the ventral's
    embeddings -- tied to its text head -- barely move, and a FiLM reading them left the policy
    choosing the wrong object in half of its episodes (experiment 14). Not a copy of the ventral's:
    the tied head pushes every word its VL data never uses to one shared vector (press, reach, touch,
    push: cosine 0.99-1.00 in the pretrained ventral), so a copy starts with the task verbs alike."""
    instruction_norm: bool = False
    """Normalise the instruction vector the FiLM reads to unit RMS per channel (layer norm, no affine).
    Why: the FiLM starts at zero, so its weight's first gradients are proportional to that vector,
    and the mean of freshly initialised word embeddings has a norm of ~0.08 (std 0.02 per channel):
    the language path starts on a plateau that training leaves late, and how late depends on the seed
    (docs/training_notes.md, experiments 12-13). Normalised, the first gradients are ~100x larger."""
    position_init: str = "random"
    """Initial patch positions of both streams: "random" (N(0, 0.02)) or "sincos" (2D sin/cos)."""

    # --- action chunk (LeRobot vocabulary) ----------------------------------------------------
    chunk_size: int = 16
    """H: number of future joint targets predicted per inference."""
    num_steps: int = 4
    """Euler integration steps of the flow-matching sampler, fixed so the exported graph is static."""

    # --- dorsal visual dynamics ---------------------------------------------------------------
    future_latent_grid: int = 4
    """The dorsal predicts a future_latent_grid x future_latent_grid grid of latents of the future frame."""
    latent_dim: int = 32
    """Channels per future-frame latent cell."""
    future_frame_size: int = 32
    """Side of the rendered imagined frame [px]; future_frame_size / future_latent_grid must be a power of 2."""
    decoder_channels: int = 32
    """Channel width of the small conv frame encoder/decoder."""
    future_offset: int = 8
    """k: how many control steps ahead the predicted frame is (used by the data pipeline; stored so a
    checkpoint says what its imagined frame means)."""
    dynamics_loss_weight: float = 1.0
    """Weight of the dorsal visual-dynamics loss next to the action flow loss in UAM.loss()."""

    def __post_init__(self) -> None:
        positive_ints = [
            "image_size", "patch_size", "vocab_size", "max_text_len", "state_dim", "action_dim",
            "d_model", "n_heads", "mlp_ratio", "vision_layers", "ventral_layers", "dorsal_layers",
            "action_layers", "chunk_size", "num_steps", "future_latent_grid", "latent_dim",
            "future_frame_size", "decoder_channels", "future_offset",
        ]
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UAMConfig.{name} must be a positive integer, got {value!r}")
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"UAMConfig.patch_size={self.patch_size} must divide image_size={self.image_size}"
            )
        if self.d_model % 2 != 0:
            raise ValueError(f"UAMConfig.d_model must be even (sin/cos time embedding), got {self.d_model}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"UAMConfig.n_heads={self.n_heads} must divide d_model={self.d_model}")
        if self.vocab_size < 4:
            raise ValueError(
                f"UAMConfig.vocab_size must be >= 4 (pad, bos, eos, unk), got {self.vocab_size}"
            )
        if self.max_text_len < 2:
            raise ValueError(f"UAMConfig.max_text_len must be >= 2 (bos + eos), got {self.max_text_len}")
        ratio = self.future_frame_size / self.future_latent_grid
        if ratio < 1 or ratio != int(ratio) or not math.log2(ratio).is_integer():
            raise ValueError(
                f"UAMConfig.future_frame_size={self.future_frame_size} must be future_latent_grid="
                f"{self.future_latent_grid} times a power of 2"
            )
        if self.film_source not in FILM_SOURCES:
            raise ValueError(f"UAMConfig.film_source must be one of {FILM_SOURCES}, got {self.film_source!r}")
        if self.film_source != "features" and not self.language_film:
            raise ValueError(f"UAMConfig.film_source={self.film_source!r} has no effect without language_film=True "
                             "(it picks what the language FiLM reads)")
        if self.instruction_norm and not self.language_film:
            raise ValueError("UAMConfig.instruction_norm=True has no effect without language_film=True "
                             "(it normalises what the language FiLM reads)")
        if self.dorsal_stem not in ("linear", "conv"):
            raise ValueError(f"UAMConfig.dorsal_stem must be 'linear' or 'conv', got {self.dorsal_stem!r}")
        if self.dorsal_stem == "conv" and self.patch_size % 4 != 0:
            raise ValueError(
                f"UAMConfig.patch_size={self.patch_size} must be divisible by 4 with dorsal_stem='conv'"
            )
        if not isinstance(self.pointer_points, int) or isinstance(self.pointer_points, bool) or self.pointer_points < 0:
            raise ValueError(f"UAMConfig.pointer_points must be an integer >= 0, got {self.pointer_points!r}")
        pw = self.pointer_loss_weight
        if not isinstance(pw, (int, float)) or not math.isfinite(pw) or pw < 0:
            raise ValueError(f"UAMConfig.pointer_loss_weight must be finite and >= 0, got {pw!r}")
        if pw > 0 and self.pointer_points < 1:
            raise ValueError("UAMConfig.pointer_loss_weight > 0 needs pointer_points >= 1")
        gw = self.goal_pointer_weight
        if not isinstance(gw, (int, float)) or not math.isfinite(gw) or gw < 0:
            raise ValueError(f"UAMConfig.goal_pointer_weight must be finite and >= 0, got {gw!r}")
        if gw > 0 and self.pointer_points < 2:
            raise ValueError("UAMConfig.goal_pointer_weight > 0 needs pointer_points >= 2 (pointer 1 is the goal)")
        if not isinstance(self.pointer_offsets, bool):
            raise ValueError(f"UAMConfig.pointer_offsets must be true or false, got {self.pointer_offsets!r}")
        if self.pointer_offsets and self.pointer_points < 1:
            raise ValueError("UAMConfig.pointer_offsets needs pointer_points >= 1")
        if self.position_init not in ("random", "sincos"):
            raise ValueError(f"UAMConfig.position_init must be 'random' or 'sincos', got {self.position_init!r}")
        if self.position_init == "sincos" and self.d_model % 4 != 0:
            raise ValueError(f"UAMConfig.d_model must be divisible by 4 with position_init='sincos', got {self.d_model}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UAMConfig.dropout must be in [0, 1), got {self.dropout!r}")
        weight = self.dynamics_loss_weight
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"UAMConfig.dynamics_loss_weight must be finite and >= 0, got {weight!r}")

    # --- derived sizes ------------------------------------------------------------------------
    @property
    def num_patches(self) -> int:
        """Image tokens per frame."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_future_latents(self) -> int:
        """Learned dorsal queries, one per future-latent cell."""
        return self.future_latent_grid**2

    @property
    def upsample_steps(self) -> int:
        """Stride-2 stages between the latent grid and the rendered frame."""
        return int(round(math.log2(self.future_frame_size // self.future_latent_grid)))

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UAMConfig:
        """Inverse of to_dict; unknown keys are an error (a checkpoint from a newer/other model)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"UAMConfig: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**data)
