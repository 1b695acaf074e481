"""HFVentral: a larger pretrained `transformers` VLM, loaded from a LOCAL directory, as UAM's ventral stream.

Optional extra (requirements-hf.txt); nothing in the package imports this module unless asked, and
`transformers` is imported lazily, inside the functions that need it.

Supported family: LLaVA (`model_type: "llava"`, LlavaForConditionalGeneration: a CLIP/SigLIP vision
tower + 2-layer MLP projector + a Llama/Qwen2/Mistral/... causal LM), e.g. a local copy of
llava-hf/llava-interleave-qwen-0.5b-hf or llava-hf/llava-1.5-7b-hf. Other families (Idefics3/SmolVLM,
PaliGemma, Qwen2-VL) need tiling / extra image inputs and are refused with a clear error.

Nothing downloads: the path must be an existing directory (a hub repo id that is not a local directory
is refused before transformers sees it), every from_pretrained call passes local_files_only=True,
HF_HUB_OFFLINE is set to 1 unless already set, and weights are read only as
safetensors (use_safetensors=True; a directory holding only pickle weights -- pytorch_model.bin,
*.pt, ... -- is refused: we never unpickle).

Same contract as VentralVLM (ventral.py), so UAM / SingleStreamVLA can use it unchanged:
    features(image, tokens)      -> (B, N_img + L, d_model) projected final LM hidden states over
                                    [image tokens; text tokens]
    feature_mask(tokens)         -> (B, N_img + L) bool, False at text padding
    lm_loss(image, tokens, mask) -> mean next-token cross-entropy over the real text targets
    generate(image, prompt, n)   -> greedy new tokens (B, <= n), eos-terminated, pad after eos
Differences, all owned by this adapter:
  * tokens are ids of the VLM's OWN tokenizer (HFTextTokenizer below; same encode/decode interface
    as WordTokenizer, so UAMProcessor can use it): [bos] text [eos] then the VLM's pad id. A tokenizer
    without bos just has no bos; one without a pad token pads with eos, and then the text mask is
    "up to and including the first eos".
  * the sequence fed to the LM is [N_img copies of the image placeholder id][tokens]: the LLaVA
    model scatters its projected image features into the placeholders. This is NOT the checkpoint's
    chat template (e.g. "USER: <image>\\n... ASSISTANT:"): zero-shot VQA quality of a chat-tuned model
    may be lower in this layout until it is fine-tuned in it.
  * images arrive as (B, 3, S, S) float in [0, 1] (UAMProcessor output). They are preprocessed in
    torch (differentiable, batched, no PIL): bilinear antialiased resize of the square to the vision
    tower's image_size (the same squash UAMProcessor does; no centre crop), then
    (x - image_mean) / image_std with image_mean / image_std from the directory's
    preprocessor_config.json (or processor_config.json["image_processor"]), or given explicitly.
    The [0, 1] input already equals the HF processors' rescale by 1/255.
  * the dorsal expert / action head are d_model wide; the VLM's hidden size may be 2048:
    feature_proj = Linear(hidden_size, d_model) + LayerNorm(d_model) maps one to the other (the
    LayerNorm matches VentralVLM, whose features come out of its final LayerNorm). It is float32 and
    is trained with the rest; the VLM may be loaded in bfloat16 (dtype=...).
  * gradients: the LM's final hidden states do not use lm_head, so with an untied lm_head (LLaVA-1.5)
    the action loss does not reach lm_head (lm_loss does); LLaVA reads the vision tower's hidden
    states at vision_feature_layer, so tower layers after it and CLIP's post_layernorm (pooled output
    only) are never used by the VLM at all and get no gradient from any loss.

Not covered: ONNX/TensorRT export of a model holding an HFVentral (runtime/ exports VentralVLM-based
checkpoints only), saving/loading it through checkpoint.py (its config.json knows only the word
tokenizer), and training/eval scripts that build their own WordTokenizer. See docs/hf_ventral.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uam_ros.model.config import UAMConfig

SUPPORTED_MODEL_TYPES = ("llava",)
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
OTHER_WEIGHT_FILES = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


class HFVentralError(ValueError):
    """A local VLM directory is missing, incomplete, of an unsupported family, or not safetensors."""


# --- the local directory -------------------------------------------------------------------------
def check_local_vlm_dir(path: str | os.PathLike[str]) -> Path:
    """The path as a Path if it is a local VLM directory we can load; else HFVentralError saying why.

    Checked before transformers is involved, so a hub repo id or a typo never turns into a download.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise HFVentralError(
            f"HFVentral: {str(path)!r} is not a local directory (a VLM is loaded only from a local path; "
            f"nothing is downloaded -- copy the model directory to this machine first)"
        )
    if not (directory / "config.json").is_file():
        raise HFVentralError(f"HFVentral: {directory} has no config.json (not a transformers model directory)")
    try:
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as error:
        raise HFVentralError(f"HFVentral: {directory / 'config.json'} is not a JSON object: {error}") from error
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise HFVentralError(
            f"HFVentral: {directory} holds model_type {model_type!r}; supported: {list(SUPPORTED_MODEL_TYPES)}"
        )
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    if any(name in SAFETENSORS_FILES for name in names):
        return directory
    other = [
        n for n in names if n.endswith(PICKLE_SUFFIXES) or n.endswith(".bin.index.json") or n in OTHER_WEIGHT_FILES
    ]
    if other:
        raise HFVentralError(
            f"HFVentral: {directory} has weights {other} but no model.safetensors / model.safetensors.index.json; "
            f"only safetensors weights are loaded (pickle files are never unpickled) -- convert them to "
            f"safetensors on a trusted machine first"
        )
    raise HFVentralError(
        f"HFVentral: {directory} has no weights (expected model.safetensors or model.safetensors.index.json)"
    )


def _image_normalisation(
    directory: Path, image_mean: Sequence[float] | None, image_std: Sequence[float] | None
) -> tuple[list[float], list[float]]:
    """image_mean / image_std: given explicitly, else from the directory's image-processor config."""
    if image_mean is not None and image_std is not None:
        return [float(v) for v in image_mean], [float(v) for v in image_std]
    for name in IMAGE_PROCESSOR_FILES:
        path = directory / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        data = data.get("image_processor", data) if name == "processor_config.json" else data
        if "image_mean" in data and "image_std" in data:
            return [float(v) for v in data["image_mean"]], [float(v) for v in data["image_std"]]
    raise HFVentralError(
        f"HFVentral: {directory} has no image_mean/image_std (looked in {list(IMAGE_PROCESSOR_FILES)}); "
        f"add the model's preprocessor_config.json or pass image_mean= and image_std="
    )


def _offline() -> None:
    """HF_HUB_OFFLINE=1 unless the user set it (read when huggingface_hub is first imported; every
    load below also passes local_files_only=True, which holds whenever transformers was imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


# --- text ----------------------------------------------------------------------------------------
class HFTextTokenizer:
    """The VLM's own tokenizer behind WordTokenizer's interface (encode / decode / normalize / len /
    to_dict), so UAMProcessor.tokenize and the VQA/caption code can use it unchanged."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        _offline()
        from transformers import AutoTokenizer

        self.directory = Path(directory)
        try:
            self.hf = AutoTokenizer.from_pretrained(str(self.directory), local_files_only=True)
        except (OSError, ValueError) as error:
            raise HFVentralError(f"HFVentral: cannot load a tokenizer from {self.directory}: {error}") from error
        if self.hf.eos_token_id is None:
            raise HFVentralError(f"HFVentral: the tokenizer in {self.directory} has no eos token")
        self.eos_id: int = int(self.hf.eos_token_id)
        self.bos_id: int | None = None if self.hf.bos_token_id is None else int(self.hf.bos_token_id)
        self.pad_id: int = self.eos_id if self.hf.pad_token_id is None else int(self.hf.pad_token_id)

    def __len__(self) -> int:
        return len(self.hf)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "hf", "path": str(self.directory)}

    def encode(
        self, text: str, max_len: int, *, add_bos: bool = True, add_eos: bool = True, pad: bool = True
    ) -> list[int]:
        """[bos] ids(text) [eos] then pad up to max_len (bos only if the tokenizer has one).

        Special-token strings inside text (e.g. "<image>") are split as plain text, never mapped to
        their special ids. Too-long texts are truncated so that bos/eos still fit.
        """
        bos = [self.bos_id] if add_bos and self.bos_id is not None else []
        eos = [self.eos_id] if add_eos else []
        room = max_len - len(bos) - len(eos)
        if room < 0:
            raise ValueError(f"HFTextTokenizer.encode: max_len={max_len} leaves no room for bos/eos")
        ids = self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"][:room]
        ids = bos + list(ids) + eos
        if pad:
            ids += [self.pad_id] * (max_len - len(ids))
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """Text of ids; with skip_special, stops at the first eos and drops special tokens."""
        ids = [int(i) for i in ids]
        if skip_special and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.hf.decode(ids, skip_special_tokens=skip_special).strip()

    def normalize(self, text: str) -> str:
        """What decode(encode(text)) gives back."""
        ids = self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return self.decode(ids)


# --- the ventral stream --------------------------------------------------------------------------
class HFVentral(nn.Module):
    """A local LLaVA-family VLM with VentralVLM's interface; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        d_model: int,
        *,
        dtype: torch.dtype = torch.float32,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        directory = check_local_vlm_dir(path)
        mean, std = _image_normalisation(directory, image_mean, image_std)
        _offline()
        from transformers import LlavaForConditionalGeneration

        self.tokenizer = HFTextTokenizer(directory)
        try:
            self.vlm = LlavaForConditionalGeneration.from_pretrained(
                str(directory), local_files_only=True, use_safetensors=True, dtype=dtype
            )
        except (OSError, ValueError) as error:
            raise HFVentralError(f"HFVentral: cannot load the VLM weights from {directory}: {error}") from error
        self.directory = directory
        cfg = self.vlm.config
        self.image_token_id = int(cfg.image_token_id)
        self.vision_image_size = int(cfg.vision_config.image_size)
        self.max_positions = int(getattr(cfg.text_config, "max_position_embeddings", 1 << 30))
        self.pad_id, self.eos_id = self.tokenizer.pad_id, self.tokenizer.eos_id
        if self.image_token_id in (self.pad_id, self.eos_id, self.tokenizer.bos_id):
            raise HFVentralError(
                f"HFVentral: {directory}: image token id {self.image_token_id} is also a text special token"
            )
        self.register_buffer("image_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        hidden = int(cfg.text_config.hidden_size)
        self.hidden_size = hidden
        self.feature_proj = nn.Sequential(nn.Linear(hidden, d_model), nn.LayerNorm(d_model))
        with torch.no_grad():  # exact image-token count of this tower/strategy (CLS dropped or not, ...)
            probe = torch.zeros(1, 3, self.vision_image_size, self.vision_image_size, dtype=dtype)
            image_features = self.vlm.model.get_image_features(pixel_values=probe).pooler_output
            self.num_image_tokens = int(image_features[0].shape[0])

    # --- inputs ---------------------------------------------------------------------------------
    def pixel_values(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) float in [0, 1] -> (B, 3, R, R) normalised, R = the vision tower's image_size."""
        size = self.vision_image_size
        if tuple(image.shape[-2:]) != (size, size):
            image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return ((image - self.image_mean) / self.image_std).to(self.vlm.dtype)

    def _hidden(self, image: Tensor, tokens: Tensor) -> Tensor:
        """Final LM hidden states (B, N_img + L, hidden_size) over [image tokens; text tokens].

        No attention mask: the LM is causal and the text right-padded, so real tokens never see the
        padding after them (VentralVLM's argument); padded positions are masked by feature_mask.
        """
        placeholders = torch.full(
            (tokens.shape[0], self.num_image_tokens), self.image_token_id, dtype=tokens.dtype, device=tokens.device
        )
        out = self.vlm.model(
            input_ids=torch.cat([placeholders, tokens], dim=1),
            pixel_values=self.pixel_values(image),
            use_cache=False,
        )
        return out.last_hidden_state

    def text_mask(self, tokens: Tensor) -> Tensor:
        """(B, L) bool, True at real text tokens (eos included)."""
        if self.pad_id != self.eos_id:
            return tokens != self.pad_id
        is_eos = (tokens == self.eos_id).long()
        return (is_eos.cumsum(dim=1) - is_eos) == 0  # up to and including the first eos

    # --- the ventral contract -----------------------------------------------------------------
    def features(self, image: Tensor, tokens: Tensor) -> Tensor:
        """What the dorsal stream reads: (B, N_img + L, d_model) float32."""
        return self.feature_proj(self._hidden(image, tokens).float())

    def feature_mask(self, tokens: Tensor) -> Tensor:
        """(B, N_img + L) bool, False at text padding."""
        image_part = torch.ones_like(tokens[:, :1], dtype=torch.bool).expand(-1, self.num_image_tokens)
        return torch.cat([image_part, self.text_mask(tokens)], dim=1)

    def text_logits(self, hidden: Tensor) -> Tensor:
        """Next-token logits (float32) from LM hidden states, through the VLM's own lm_head."""
        return self.vlm.get_output_embeddings()(hidden).float()

    def lm_loss(self, image: Tensor, tokens: Tensor, loss_mask: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy over real text targets (optionally only where loss_mask)."""
        hidden = self._hidden(image, tokens)[:, self.num_image_tokens :]
        logits = self.text_logits(hidden[:, :-1])
        targets = tokens[:, 1:]
        weight = self.text_mask(tokens)[:, 1:].float()
        if loss_mask is not None:
            weight = weight * loss_mask[:, 1:].float()
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return (losses * weight.reshape(-1)).sum() / weight.sum().clamp_min(1.0)

    @torch.no_grad()
    def generate(self, image: Tensor, prompt_tokens: Tensor, max_new_tokens: int) -> Tensor:
        """Greedy decoding (the VLM's generate with a KV cache, sampling/penalties off whatever its
        generation_config says); returns only the new tokens (B, n <= max_new_tokens): eos-terminated,
        pad after a row's eos, stopping early when every row is done or the LM's context is full.

        prompt_tokens (B, P) must be unpadded (HFTextTokenizer.encode(..., add_eos=False, pad=False)).
        """
        from transformers import GenerationConfig

        if bool((prompt_tokens == self.pad_id).any()):
            raise ValueError("HFVentral.generate: prompt_tokens must not contain padding")
        budget = min(max_new_tokens, self.max_positions - self.num_image_tokens - prompt_tokens.shape[1])
        if budget <= 0:
            return prompt_tokens.new_zeros(prompt_tokens.shape[0], 0)
        placeholders = torch.full(
            (prompt_tokens.shape[0], self.num_image_tokens), self.image_token_id,
            dtype=prompt_tokens.dtype, device=prompt_tokens.device,
        )
        input_ids = torch.cat([placeholders, prompt_tokens], dim=1)
        greedy = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=budget, min_new_tokens=0,
            eos_token_id=self.eos_id, pad_token_id=self.pad_id, use_cache=True,
        )
        out = self.vlm.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=self.pixel_values(image),
            generation_config=greedy,
        )
        return out[:, input_ids.shape[1] :]


# --- using it in UAM -----------------------------------------------------------------------------
def build_uam_with_hf_ventral(
    config: UAMConfig,
    path: str | os.PathLike[str],
    kind: str = "uam",
    **ventral_kwargs: Any,
) -> nn.Module:
    """UAM (or the single-stream baseline) whose ventral stream is the local VLM at path.

    The model is built as usual, then its `ventral` attribute is replaced: UAM only calls
    ventral.features / ventral.feature_mask, which HFVentral provides at width config.d_model.
    config.image_size / patch_size still size the dorsal expert's input (HFVentral resizes the same
    image to its own tower's size); config.vocab_size / max_text_len / vision_layers /
    ventral_layers no longer describe the ventral stream. ventral_kwargs go to HFVentral (dtype,
    image_mean, image_std).
    """
    from uam_ros.model.uam import build_model

    if config.film_source != "features":  # UAMConfig only allows the others with language_film
        raise ValueError(f"UAMConfig.film_source {config.film_source!r} reads word ids of our own tokenizer "
                         "(vocab_size), which the transformers ventral does not use: use film_source "
                         "'features' with it")
    ventral = HFVentral(path, config.d_model, **ventral_kwargs)  # fail on a bad path before building the rest
    model = build_model(config, kind)
    model.ventral = ventral
    return model


def build_hf_processor(config: UAMConfig, ventral: HFVentral, **stats: Any):
    """A UAMProcessor that tokenizes with the VLM's tokenizer (stats: state_mean/std, action_mean/std).

    Its to_dict() records {"type": "hf", "path": ...}; checkpoint.load_checkpoint cannot rebuild it yet.
    """
    from uam_ros.model.processor import UAMProcessor

    return UAMProcessor(
        ventral.tokenizer,  # type: ignore[arg-type]  # duck-typed WordTokenizer
        image_size=config.image_size,
        max_text_len=config.max_text_len,
        state_dim=config.state_dim,
        action_dim=config.action_dim,
        **stats,
    )
