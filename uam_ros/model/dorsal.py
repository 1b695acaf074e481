"""The dorsal expert: a visual-dynamics transformer that reads the ventral stream and drives the actions.

Why it exists (DESIGN.md section 4): learning control inside the VLM erodes its multimodal skill. UAM
puts the control-learning burden on a parallel expert whose own objective is mid-level -- predict
how the scene will look k steps ahead, as latents -- which is the kind of knowledge control needs.

Its tokens: [future-latent queries (G*G, learned); current-frame patch tokens; one proprio token].
Each block: self-attention over those tokens, cross-attention into the ventral features (pi0
action-expert style: the expert reads the VLM, the VLM never reads the expert), MLP.

The generative model of visual dynamics it is initialised from is this same module trained with
dynamics_loss() on frame pairs alone (no ventral stream: cross-attention skipped):
  frame_encoder(frame_{t+k}) -> target latents (G x G x latent_dim, LayerNorm-ed per cell)
  queries -> predicted latents, trained to match the target latents
  decoder(latents) -> RGB frame (future_frame_size), trained on both predicted and target latents.
No stop-gradient and no EMA target: the autoencoder term decoder(encoder(frame)) ~ frame keeps the
target latents informative, and the parameter-free LayerNorm keeps their scale from collapsing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uam_ros.model.config import UAMConfig
from uam_ros.model.layers import Block, ConvPatchStem, SpatialPointer, init_weights, sincos_2d_positions


class FrameEncoder(nn.Module):
    """(B, 3, f, f) frame in [0, 1] -> (B, G*G, latent_dim) per-cell-normalised latents."""

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        c = config.decoder_channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.GELU()]
        for _ in range(config.upsample_steps):
            layers += [nn.Conv2d(c, c, 4, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(c, config.latent_dim, 1))
        self.net = nn.Sequential(*layers)
        self.latent_dim = config.latent_dim

    def forward(self, frame: Tensor) -> Tensor:
        z = self.net(frame * 2.0 - 1.0).flatten(2).transpose(1, 2)
        return F.layer_norm(z, (self.latent_dim,))


class FrameDecoder(nn.Module):
    """(B, G*G, latent_dim) latents -> (B, 3, f, f) RGB in [0, 1] (the imagined future frame)."""

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        c = config.decoder_channels
        self.grid = config.future_latent_grid
        layers: list[nn.Module] = [nn.Conv2d(config.latent_dim, c, 3, padding=1), nn.GELU()]
        for _ in range(config.upsample_steps):
            layers += [nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(c, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, latents: Tensor) -> Tensor:
        z = latents.transpose(1, 2).reshape(latents.shape[0], latents.shape[2], self.grid, self.grid)
        return torch.sigmoid(self.net(z))


class DorsalExpert(nn.Module):
    """Visual-dynamics transformer reading the ventral features; outputs tokens for the action head."""

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        if config.dorsal_stem == "conv":
            self.patch_embed: nn.Module = ConvPatchStem(d, config.patch_size)
        else:
            self.patch_embed = nn.Conv2d(3, d, kernel_size=config.patch_size, stride=config.patch_size)
        if config.position_init == "sincos":
            self.patch_pos = nn.Parameter(sincos_2d_positions(config.image_size // config.patch_size, d))
        else:
            self.patch_pos = nn.Parameter(torch.randn(1, config.num_patches, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, config.num_future_latents, d) * 0.02)
        self.proprio = nn.Linear(config.state_dim, d)
        self.pointer: SpatialPointer | None = None
        if config.pointer_points:
            self.pointer_queries = nn.Parameter(torch.randn(1, config.pointer_points, d) * 0.02)
            self.pointer = SpatialPointer(d, config.image_size // config.patch_size, config.pointer_points,
                                          offsets=config.pointer_offsets)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, config.mlp_ratio, config.dropout, cross=True)
            for _ in range(config.dorsal_layers)
        )
        self.ln_out = nn.LayerNorm(d)
        self.latent_head = nn.Linear(d, config.latent_dim)
        self.frame_encoder = FrameEncoder(config)
        self.decoder = FrameDecoder(config)
        self.film: nn.Linear | None = nn.Linear(d, 2 * d) if config.language_film else None
        # The FiLM's own word table (UAMConfig.film_source "dorsal_words"), read by UAM.instruction_vector;
        # its gradient is zero on the first step only (the FiLM starts at zero), then it learns.
        # Fresh, not the ventral's words (see UAMConfig.film_source).
        self.word_embed: nn.Embedding | None = \
            nn.Embedding(config.vocab_size, d) if config.film_source == "dorsal_words" else None
        init_weights(self, config.dorsal_layers)
        if self.film is not None:  # identity at the start: scale 1, shift 0
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(
        self,
        image: Tensor,
        state: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        instruction: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """image (B,3,S,S) in [0,1], state (B, state_dim) normalised, context (B, T, d) ventral
        features with context_mask (B, T) bool, instruction (B, d) the vector language_film scales
        and shifts the patch tokens with (UAM.instruction_vector).

        Returns (tokens (B, G*G + num_patches + 1 + pointer_points, d) for the action head,
                 predicted future latents (B, G*G, latent_dim),
                 pointer image points (B, pointer_points, 2) as (x, y) in [-1, 1], or None).
        """
        b = image.shape[0]
        patches = self.patch_tokens(image) + self.patch_pos
        if self.film is not None and instruction is not None:
            scale, shift = self.film(instruction)[:, None].chunk(2, dim=-1)
            patches = patches * (1.0 + scale) + shift
        parts = [self.queries.expand(b, -1, -1), patches, self.proprio(state)[:, None]]
        if self.pointer is not None:
            parts.append(self.pointer_queries.expand(b, -1, -1))
        x = torch.cat(parts, dim=1)
        mask = None if context_mask is None else context_mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, context=context, context_mask=mask)
        x = self.ln_out(x)
        latents = F.layer_norm(self.latent_head(x[:, : self.config.num_future_latents]), (self.config.latent_dim,))
        points = None
        if self.pointer is not None:
            k, g = self.config.pointer_points, self.config.num_future_latents
            point_tokens, points = self.pointer(x[:, -k:], x[:, g : g + self.config.num_patches])
            x = torch.cat([x[:, :-k], point_tokens], dim=1)
        return x, latents, points

    def patch_tokens(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, num_patches, d), before positions are added."""
        if isinstance(self.patch_embed, ConvPatchStem):
            return self.patch_embed(image)
        return self.patch_embed(image * 2.0 - 1.0).flatten(2).transpose(1, 2)

    def render(self, latents: Tensor) -> Tensor:
        """Predicted latents -> imagined future frame (B, 3, f, f) in [0, 1]."""
        return self.decoder(latents)

    def resize_frame(self, frame: Tensor) -> Tensor:
        """Model-resolution frame (B,3,S,S) -> decoder resolution (B,3,f,f)."""
        size = self.config.future_frame_size
        return F.interpolate(frame, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def dynamics_terms(self, predicted_latents: Tensor, future_frame: Tensor) -> dict[str, Tensor]:
        """Loss terms of predicting the frame k steps ahead (future_frame (B,3,S,S) in [0,1]).

        latent: predicted vs target-encoder latents (the mid-level objective the paper argues for);
        render: the decoder renders the predicted latents as the future frame;
        autoencode: decoder(encoder(future)) reconstructs it (anchors the latent space).
        """
        target_frame = self.resize_frame(future_frame)
        target_latents = self.frame_encoder(target_frame)
        latent = F.mse_loss(predicted_latents, target_latents)
        render = F.mse_loss(self.decoder(predicted_latents), target_frame)
        autoencode = F.mse_loss(self.decoder(target_latents), target_frame)
        return {
            "dynamics_loss": latent + render + autoencode,
            "latent_loss": latent,
            "render_loss": render,
            "autoencode_loss": autoencode,
        }

    def dynamics_loss(
        self, frames_t: Tensor, frames_t_plus_k: Tensor, state: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Standalone generative pretraining (stage 2): predict frame t+k from frame t, no ventral stream.

        state defaults to zeros (the normalised mean) for video without proprioception.
        """
        if state is None:
            state = frames_t.new_zeros(frames_t.shape[0], self.config.state_dim)
        _, latents, _ = self(frames_t, state)
        return self.dynamics_terms(latents, frames_t_plus_k)
