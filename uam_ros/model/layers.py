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

    Nothing is zero-initialised on purpose: a zero output layer would block the gradient to
    everything before it on the first step, and the training contract is that every weight learns.
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
