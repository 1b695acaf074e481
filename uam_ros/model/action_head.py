"""Flow-matching action head: a chunk of H joint targets from conditioning tokens (pi0 style).

Convention (rectified flow): x_t = (1 - t) * noise + t * actions, t in [0, 1]; the network predicts
the velocity v = actions - noise. Sampling integrates dx/dt = v from t=0 (noise) to t=1 (actions)
with num_steps Euler steps. The loop runs a fixed, config-given number of times in Python, so a
traced/exported graph is the unrolled loop: static, and deterministic given the explicit noise input
(the runtime feeds noise as an input, so it can fix it for parity checks).

The velocity network: action tokens (one per chunk step: action + time embedding through an MLP,
plus a learned position) with self-attention over the chunk and cross-attention into the condition
(the dorsal tokens plus one token for the normalised state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uam_ros.model.config import UAMConfig
from uam_ros.model.layers import Block, init_weights, sinusoidal_embedding


class FlowMatchingHead(nn.Module):
    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.state_proj = nn.Linear(config.state_dim, d)
        self.action_in = nn.Linear(config.action_dim, d)
        self.action_time_mlp = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.chunk_pos = nn.Parameter(torch.randn(1, config.chunk_size, d) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, config.mlp_ratio, config.dropout, cross=True)
            for _ in range(config.action_layers)
        )
        self.ln_out = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, config.action_dim)
        init_weights(self, config.action_layers)

    def condition(
        self, tokens: Tensor, state: Tensor, token_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Condition = [tokens; state token]; returns (cond (B, N+1, d), cond_mask (B, N+1) or None)."""
        cond = torch.cat([tokens, self.state_proj(state)[:, None]], dim=1)
        if token_mask is None:
            return cond, None
        return cond, torch.cat([token_mask, torch.ones_like(token_mask[:, :1])], dim=1)

    def cond_kv(self, cond: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-block cross-attention keys/values of the condition: it is the same at every Euler
        step, so sample() projects it once (pi0's prefix KV cache)."""
        return [block.cross_attn.project_kv(cond) for block in self.blocks]

    def velocity(
        self,
        cond: Tensor,
        x_t: Tensor,
        t: Tensor,
        cond_mask: Tensor | None = None,
        cond_kv: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """Predicted velocity (B, H, A) at noisy chunk x_t (B, H, A) and flow time t (B,)."""
        a = self.action_in(x_t)
        time = sinusoidal_embedding(t, a.shape[-1]).to(a.dtype)[:, None].expand_as(a)
        x = self.action_time_mlp(torch.cat([a, time], dim=-1)) + self.chunk_pos
        mask = None if cond_mask is None else cond_mask[:, None, None, :]
        kvs = self.cond_kv(cond) if cond_kv is None else cond_kv
        for block, kv in zip(self.blocks, kvs):
            x = block(x, context_mask=mask, context_kv=kv)
        return self.action_out(self.ln_out(x))

    def flow_loss(
        self,
        cond: Tensor,
        actions: Tensor,
        noise: Tensor,
        t: Tensor,
        cond_mask: Tensor | None = None,
        action_is_pad: Tensor | None = None,
    ) -> Tensor:
        """MSE between predicted and true velocity; actions/noise (B, H, A) normalised, t (B,) in [0, 1].

        action_is_pad (B, H) bool drops chunk steps past the end of an episode from the loss.
        """
        tt = t[:, None, None].to(actions.dtype)
        x_t = (1.0 - tt) * noise + tt * actions
        error = F.mse_loss(self.velocity(cond, x_t, t, cond_mask), actions - noise, reduction="none")
        if action_is_pad is None:
            return error.mean()
        keep = (~action_is_pad).to(error.dtype)[:, :, None].expand_as(error)
        return (error * keep).sum() / keep.sum().clamp_min(1.0)

    def sample(self, cond: Tensor, noise: Tensor, cond_mask: Tensor | None = None) -> Tensor:
        """Integrate from noise (B, H, A) to an action chunk with exactly num_steps Euler steps."""
        dt = 1.0 / self.config.num_steps
        kv = self.cond_kv(cond)
        x = noise
        for step in range(self.config.num_steps):  # fixed count: unrolled when traced
            t = torch.full_like(noise[:, 0, 0], step * dt)
            x = x + dt * self.velocity(cond, x, t, cond_mask, kv)
        return x
