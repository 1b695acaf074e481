"""The ventral stream: a small VLM (ViT image encoder + prefix language model).

Its job in UAM is semantic: what is in the scene, what the instruction means. Its multimodal skill
(VQA, captioning via lm_loss / generate) is what must survive action training, so it keeps a real
text head. The dorsal expert reads its features (features(): the final hidden states over
[image tokens; text tokens]) through cross-attention.

Attention layout (PaliGemma-style prefix LM): image tokens attend to all image tokens; text token i
attends to every image token and to text tokens 0..i. With right-padded text, real tokens never see
the padding after them, so no extra padding mask is needed inside the LM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uam_ros.model.config import UAMConfig
from uam_ros.model.layers import Block, init_weights, sincos_2d_positions
from uam_ros.model.tokenizer import EOS_ID, PAD_ID


class VisionEncoder(nn.Module):
    """ViT: non-overlapping patches -> linear embedding + learned positions -> transformer."""

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.patch_embed = nn.Conv2d(3, d, kernel_size=config.patch_size, stride=config.patch_size)
        if config.position_init == "sincos":
            self.pos_embed = nn.Parameter(sincos_2d_positions(config.image_size // config.patch_size, d))
        else:
            self.pos_embed = nn.Parameter(torch.randn(1, config.num_patches, d) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, config.mlp_ratio, config.dropout) for _ in range(config.vision_layers)
        )
        self.ln_out = nn.LayerNorm(d)

    def forward(self, image: Tensor) -> Tensor:
        """image (B, 3, S, S) in [0, 1] -> (B, num_patches, d)."""
        x = self.patch_embed(image * 2.0 - 1.0).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.ln_out(x)


class VentralVLM(nn.Module):
    """Image encoder + projector + causal text decoder with a tied next-token head."""

    def __init__(self, config: UAMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.vision = VisionEncoder(config)
        self.projector = nn.Linear(d, d)  # the VLM's multimodal projector (image space -> LM space)
        self.tok_embed = nn.Embedding(config.vocab_size, d)
        self.text_pos = nn.Parameter(torch.randn(1, config.max_text_len, d) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, config.mlp_ratio, config.dropout) for _ in range(config.ventral_layers)
        )
        self.ln_out = nn.LayerNorm(d)
        n_img, n_txt = config.num_patches, config.max_text_len
        mask = torch.ones(n_img + n_txt, n_img + n_txt, dtype=torch.bool).tril()
        mask[:, :n_img] = True  # everyone sees the whole image
        mask[:n_img, n_img:] = False  # image tokens do not see text (keeps the image prefix reusable)
        self.register_buffer("prefix_mask", mask, persistent=False)
        init_weights(self, config.vision_layers + config.ventral_layers)

    # --- core -----------------------------------------------------------------------------------
    def encode_image(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) -> image tokens in LM space (B, num_patches, d)."""
        return self.projector(self.vision(image))

    def _lm(self, image_tokens: Tensor, tokens: Tensor) -> Tensor:
        """Final hidden states (B, num_patches + L, d) of the LM over [image tokens; text tokens]."""
        n = image_tokens.shape[1] + tokens.shape[1]
        x = torch.cat([image_tokens, self.tok_embed(tokens) + self.text_pos[:, : tokens.shape[1]]], dim=1)
        mask = self.prefix_mask[:n, :n]
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.ln_out(x)

    def features(self, image: Tensor, tokens: Tensor) -> Tensor:
        """What the dorsal stream reads: (B, num_patches + L, d) final hidden states."""
        return self._lm(self.encode_image(image), tokens)

    def feature_mask(self, tokens: Tensor) -> Tensor:
        """(B, num_patches + L) bool, False at text padding, so readers can ignore padded positions."""
        image_part = torch.ones_like(tokens[:, :1], dtype=torch.bool).expand(-1, self.config.num_patches)
        return torch.cat([image_part, tokens != PAD_ID], dim=1)

    def text_logits(self, hidden: Tensor) -> Tensor:
        """Next-token logits from text hidden states; the head is tied to the input embedding."""
        return F.linear(hidden, self.tok_embed.weight)

    # --- language-model use (VQA, captioning) -------------------------------------------------
    def lm_loss(self, image: Tensor, tokens: Tensor, loss_mask: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy over non-pad targets.

        tokens (B, L) = [bos] prompt answer [eos] [pad...]; loss_mask (B, L) optionally restricts the
        loss to some target positions (e.g. only the answer of a VQA pair).
        """
        hidden = self._lm(self.encode_image(image), tokens)[:, self.config.num_patches :]
        logits = self.text_logits(hidden[:, :-1])
        targets = tokens[:, 1:]
        weight = (targets != PAD_ID).float()
        if loss_mask is not None:
            weight = weight * loss_mask[:, 1:].float()
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return (losses * weight.reshape(-1)).sum() / weight.sum().clamp_min(1.0)

    @torch.no_grad()
    def generate(self, image: Tensor, prompt_tokens: Tensor, max_new_tokens: int) -> Tensor:
        """Greedy decoding; returns only the new tokens (B, n <= max_new_tokens), eos-terminated.

        prompt_tokens (B, P) must be unpadded ([bos] + prompt words, tokenizer.encode(..., add_eos=False,
        pad=False)); rows that already emitted eos keep emitting pad. Generation stops early when every
        row is done or the context (max_text_len) is full.
        """
        if bool((prompt_tokens == PAD_ID).any()):
            raise ValueError("VentralVLM.generate: prompt_tokens must not contain padding")
        image_tokens = self.encode_image(image)
        tokens = prompt_tokens
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        new = []
        for _ in range(min(max_new_tokens, self.config.max_text_len - tokens.shape[1])):
            hidden = self._lm(image_tokens, tokens)[:, -1]
            next_id = self.text_logits(hidden).argmax(dim=-1)
            next_id = torch.where(done, torch.full_like(next_id, PAD_ID), next_id)
            new.append(next_id)
            done = done | (next_id == EOS_ID)
            tokens = torch.cat([tokens, next_id[:, None]], dim=1)
            if bool(done.all()):
                break
        if not new:
            return prompt_tokens.new_zeros(prompt_tokens.shape[0], 0)
        return torch.stack(new, dim=1)
