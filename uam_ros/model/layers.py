"""Transformer pieces shared by the ventral VLM, the dorsal expert and the action head.

One Block class covers all three uses: self-attention (optionally masked), an optional
cross-attention into another stream's tokens, and an MLP, pre-LayerNorm as in nanoGPT. Masks are
boolean tensors (True = may attend) built from tensors, never Python branches on data, so the
whole network traces to a static graph.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention; queries from x, keys/values from context (x itself when None)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.out_proj.residual = True  # scaled init, see init_weights
        self.dropout = dropout

    def project_kv(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values (B, heads, M, d/heads) of context; computed once when context is reused."""
        b, m, d = context.shape
        kv = self.kv_proj(context).view(b, m, 2, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        kv: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """x (B, N, d), context (B, M, d) or its precomputed kv, mask broadcastable to
        (B, heads, N, M), True = attend."""
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)
        k, v = self.project_kv(x if context is None else context) if kv is None else kv
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, ratio * d_model)
        self.proj = nn.Linear(ratio * d_model, d_model)
        self.proj.residual = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, [cross-attention], MLP.

    With cross=True and context=None the cross-attention is skipped: that is the dorsal expert
    pretraining on video alone, before there is a ventral stream to read (a structural choice made
    by the caller, not a branch on data).
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float, cross: bool = False) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, n_heads, dropout)
        self.ln_cross = nn.LayerNorm(d_model) if cross else None
        self.cross_attn = Attention(d_model, n_heads, dropout) if cross else None
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        context_kv: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """context_kv: cross-attention keys/values precomputed with cross_attn.project_kv(context),
        for a context reused across calls (the action head's Euler steps, pi0's prefix cache)."""
        x = x + self.drop(self.self_attn(self.ln_self(x), mask=mask))
        if self.cross_attn is not None and (context is not None or context_kv is not None):
            x = x + self.drop(
                self.cross_attn(self.ln_cross(x), context=context, mask=context_mask, kv=context_kv)
            )
        return x + self.mlp(self.ln_mlp(x))


def init_weights(module: nn.Module, n_residual_layers: int) -> None:
    """nanoGPT init: N(0, 0.02) for linears/embeddings, residual projections scaled by 1/sqrt(2L).

    Nothing is zero-initialised here on purpose: a zero output layer would block the gradient to
    everything before it on the first step, and the training contract is that every weight learns.
    The exceptions are set by their owners after this and say why: identity-at-start adapters whose
    input still learns through its other path (the pointer's sub-patch offsets, the dorsal's
    language FiLM).
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            std = 0.02 / math.sqrt(2 * n_residual_layers) if getattr(sub, "residual", False) else 0.02
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, mean=0.0, std=0.02)


def sinusoidal_embedding(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """(B,) flow time in [0, 1] -> (B, dim) sin/cos features (pi0's periods, sensitive to small steps)."""
    half = dim // 2
    fraction = torch.linspace(0.0, 1.0, half, dtype=torch.float32, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.float()[:, None] * (2.0 * math.pi / period)[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def sincos_2d_positions(grid: int, dim: int, scale: float = 0.02) -> Tensor:
    """(1, grid*grid, dim) fixed 2D sin/cos position features (MAE / ViT-2D style), row-major.

    Used to *initialise* the learned patch positions: a random init makes the network learn the
    image geometry (which patch is left of which) from the data, and with a few hundred layouts it
    does not, so it cannot say where the named object is. Smooth 2D features make "target at patch
    (r, c)" a nearly linear function of position from the first step. Scaled to the size of the
    patch embeddings at init so it informs without swamping them.
    """
    if dim % 4 != 0:
        raise ValueError(f"sincos_2d_positions: dim must be divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    coords = torch.arange(grid, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for axis in (rows.reshape(-1), cols.reshape(-1)):
        angle = axis[:, None] * omega[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    table = torch.cat(parts, dim=1)  # (grid*grid, dim), entries in [-1, 1]
    return (table * scale * math.sqrt(2.0))[None]


class ConvPatchStem(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, (S/patch)^2, d): two stride-2 3x3 convs, then a patch/4 conv.

    Why not the ViT's single linear patch projection: tabletop objects are 6-8 px at 96 px, about
    one 12 px patch, and a linear patch filter sees an object cut across patch borders as two weak
    halves. Overlapping 3x3 convs first (Xiao et al., "Early convolutions help transformers see
    better") give every patch token features of what straddles its border, for ~one transformer
    layer of compute. Same token grid as the linear stem, so nothing downstream changes.
    """

    def __init__(self, d_model: int, patch_size: int, width: int = 32) -> None:
        super().__init__()
        if patch_size % 4 != 0:
            raise ValueError(f"ConvPatchStem: patch_size must be divisible by 4, got {patch_size}")
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, d_model, patch_size // 4, stride=patch_size // 4),
        )

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image * 2.0 - 1.0).flatten(2).transpose(1, 2)


class SpatialPointer(nn.Module):
    """K pointer queries -> softmax over the patch grid -> K image points (x, y) as tokens.

    Why: the action head must know *where* the named object is, as a number it can turn into joint
    targets. Through attention alone that location is only implicit (which patch token carries the
    object) and a small model trained on a few hundred layouts does not learn to decode it (see
    docs/training_notes.md). A spatial soft-argmax (Levine et al. 2016, "End-to-end training of
    deep visuomotor policies"; the keypoints of robomimic / Diffusion Policy) computes it
    explicitly: each query -- which has read the instruction through the dorsal blocks -- scores
    every patch, and the expected patch coordinate under the softmax is the point. Fully
    differentiable, static shapes (softmax + matmul), so export and TensorRT are unaffected.
    """

    def __init__(self, d_model: int, grid: int, n_points: int, n_freqs: int = 8, offsets: bool = False) -> None:
        super().__init__()
        self.scale = d_model**-0.5
        self.key = nn.Linear(d_model, d_model)
        self.query = nn.Linear(d_model, d_model)
        coords = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0  # patch centres in [-1, 1]
        rows, cols = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("coords", torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=1), persistent=False)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)
        self.point_mlp = nn.Sequential(nn.Linear(4 * n_freqs + 2, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.feature_proj = nn.Linear(d_model, d_model)
        self.n_points = n_points
        # Sub-patch refinement (UAMConfig.pointer_offsets): per patch and pointer, where inside the
        # patch the thing is, within +-half a patch. Zero-initialised: training starts from the plain
        # soft-argmax over patch centres.
        self.half_cell = 1.0 / grid
        self.offset: nn.Linear | None = None
        if offsets:
            self.offset = nn.Linear(d_model, 2 * n_points)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)

    def forward(self, queries: Tensor, patches: Tensor) -> tuple[Tensor, Tensor]:
        """queries (B, K, d), patches (B, P, d) -> (tokens (B, K, d), points (B, K, 2) in [-1, 1] as (x, y))."""
        logits = torch.matmul(self.query(queries), self.key(patches).transpose(1, 2)) * self.scale
        weights = torch.softmax(logits, dim=-1)  # (B, K, P)
        points = torch.matmul(weights, self.coords)  # (B, K, 2)
        if self.offset is not None:
            b, p, _ = patches.shape
            local = torch.tanh(self.offset(patches)).reshape(b, p, self.n_points, 2).transpose(1, 2)  # (B, K, P, 2)
            points = points + (weights.unsqueeze(-1) * local).sum(dim=2) * self.half_cell
        angles = points[..., None] * self.freqs  # (B, K, 2, F)
        fourier = torch.cat([points, torch.sin(angles).flatten(2), torch.cos(angles).flatten(2)], dim=-1)
        tokens = self.point_mlp(fourier) + self.feature_proj(torch.matmul(weights, patches))
        return tokens, points
