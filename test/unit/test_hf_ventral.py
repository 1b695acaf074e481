"""HFVentral: a local-path `transformers` LLaVA as UAM's ventral stream (tiny random config, offline).

Needs the optional extra (pip install -r requirements-hf.txt); skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it: nothing may download
transformers = pytest.importorskip(
    "transformers", reason="optional extra: pip install -r requirements-hf.txt to test the transformers ventral"
)
tokenizers = pytest.importorskip("tokenizers", reason="optional extra: pip install -r requirements-hf.txt")

from uam_ros.model.config import UAMConfig  # noqa: E402
from uam_ros.model.hf_ventral import (  # noqa: E402
    HFVentral,
    HFVentralError,
    build_hf_processor,
    build_uam_with_hf_ventral,
)
from uam_ros.model.uam import UAM, SingleStreamVLA  # noqa: E402

from tiny_model import TINY  # noqa: E402  (shared tiny config)

torch.set_num_threads(1)

WORDS = "<pad> <bos> <eos> <unk> <image> pick up the red blue green cube bowl put it in on what color is a".split()
IMAGE_TOKEN = WORDS.index("<image>")
HIDDEN = 48  # the VLM's width; the dorsal is TINY["d_model"] = 32 wide
IMAGE_MEAN, IMAGE_STD = [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]


def _save_tiny_vlm(directory) -> None:
    """A random LLaVA (tiny CLIP tower + tiny Llama), its word-level tokenizer and image stats."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<image>"],
    ).save_pretrained(directory)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=16,
        patch_size=4, projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN, vision_feature_layer=-1,
        vision_feature_select_strategy="default", tie_word_embeddings=True, image_seq_length=16,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(directory, safe_serialization=True)
    stats = {"image_mean": IMAGE_MEAN, "image_std": IMAGE_STD}
    (directory / "preprocessor_config.json").write_text(json.dumps(stats))


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_llava")
    _save_tiny_vlm(directory)
    return directory


@pytest.fixture(scope="module")
def ventral(vlm_dir):
    torch.manual_seed(0)
    return HFVentral(vlm_dir, TINY["d_model"]).eval()


def tiny_config() -> UAMConfig:
    return UAMConfig(**TINY, vocab_size=20, state_dim=3, action_dim=4)


def encode(ventral, texts, max_len=10):
    return torch.tensor([ventral.tokenizer.encode(t, max_len) for t in texts], dtype=torch.long)


def images(batch, seed, size=32):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- loading -------------------------------------------------------------------------------------
def test_loads_from_local_path_with_the_vlms_own_tokenizer(ventral, vlm_dir):
    assert ventral.num_image_tokens == 16  # (16 / 4)^2 patches, CLS dropped ("default" strategy)
    assert ventral.hidden_size == HIDDEN and ventral.vision_image_size == 16
    # images: (B,3,S,S) in [0,1] -> resized to the tower's 16 px, normalised with the directory's stats
    mean_image = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1).expand(2, 3, 32, 32)
    pixels = ventral.pixel_values(mean_image)
    assert pixels.shape == (2, 3, 16, 16) and pixels.abs().max() < 1e-5
    white = ventral.pixel_values(torch.ones(1, 3, 16, 16))
    expected = (1 - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    assert torch.allclose(white[0, :, 0, 0], expected, atol=1e-5)
    tok = ventral.tokenizer
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 0)
    ids = tok.encode("pick up the red cube", 10)
    assert ids == [1, 5, 6, 7, 8, 11, 2, 0, 0, 0]
    assert tok.decode(ids) == "pick up the red cube"
    # the image placeholder's string in user text is plain text, never the image id
    assert IMAGE_TOKEN not in tok.encode("put it in <image>", 10)
    assert tok.encode("a b c d e f g h i j k", 6)[-1] == tok.eos_id  # truncated, eos kept
    assert tok.to_dict() == {"type": "hf", "path": str(vlm_dir)}


# --- the ventral contract ------------------------------------------------------------------------
def test_features_and_mask_shapes_dtypes_and_padding(ventral):
    tokens = encode(ventral, ["pick up the red cube", "put it in the blue bowl on the green cube"])
    image = images(2, seed=0)
    with torch.no_grad():
        feats = ventral.features(image, tokens)
    mask = ventral.feature_mask(tokens)
    assert feats.shape == (2, 16 + 10, TINY["d_model"]) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert mask.shape == (2, 26) and mask.dtype == torch.bool
    assert mask[:, :16].all()
    assert mask[0, 16:].tolist() == [True] * 7 + [False] * 3  # bos + 5 words + eos, then padding
    assert mask[1, 16:].all()
    # padding after the text does not change the real positions (causal LM, right padding)
    with torch.no_grad():
        longer = ventral.features(image[:1], encode(ventral, ["pick up the red cube"], max_len=14))
    assert torch.allclose(longer[0, : 16 + 7], feats[0, : 16 + 7], atol=1e-5)


def test_instruction_and_image_change_the_features(ventral):
    image = images(1, seed=1)
    red, blue = encode(ventral, ["pick up the red cube"]), encode(ventral, ["pick up the blue cube"])
    with torch.no_grad():
        f_red, f_blue = ventral.features(image, red), ventral.features(image, blue)
        f_other_image = ventral.features(images(1, seed=2), red)
    # "red" -> "blue" is text token 4: the features from there on change, earlier ones cannot (causal)
    text = slice(16, 16 + 7)
    assert torch.allclose(f_red[:, 16:20], f_blue[:, 16:20], atol=1e-6)
    assert (f_red[:, 20:23] - f_blue[:, 20:23]).abs().max() > 1e-3
    assert (f_red[:, text] - f_other_image[:, text]).abs().max() > 1e-3


def test_text_mask_when_the_tokenizer_pads_with_eos(ventral, monkeypatch):
    monkeypatch.setattr(ventral, "pad_id", ventral.eos_id)
    tokens = torch.tensor([[1, 5, 6, 2, 2, 2], [1, 5, 6, 7, 8, 2]])
    assert ventral.text_mask(tokens).tolist() == [[True] * 4 + [False] * 2, [True] * 6]


def test_lm_loss_is_the_cross_entropy_of_the_masked_real_targets(ventral):
    tokens = encode(ventral, ["what color is the cube red", "what color is it"])
    image = images(2, seed=7)
    answer = torch.zeros_like(tokens, dtype=torch.bool)
    answer[0, 6:8] = True  # "red", eos
    answer[1, 4:9] = True  # "it", eos and three pads (pads never count)
    with torch.no_grad():
        logits = ventral.text_logits(ventral._hidden(image, tokens)[:, 16:])
        full, masked = ventral.lm_loss(image, tokens), ventral.lm_loss(image, tokens, answer)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    real = tokens[:, 1:] != ventral.pad_id
    assert torch.allclose(full, ce[real].mean(), atol=1e-5)
    picked = real & answer[:, 1:]
    assert int(picked.sum()) == 4
    assert torch.allclose(masked, ce[picked].mean(), atol=1e-5)


def test_generate_is_greedy_and_matches_the_lm_logits(ventral):
    image = images(2, seed=3)
    questions = ["what color is the cube", "put it on the bowl"]
    prompt = torch.tensor([ventral.tokenizer.encode(q, 10, add_eos=False, pad=False) for q in questions])
    new = ventral.generate(image, prompt, max_new_tokens=4)
    assert new.dtype == torch.long and new.shape[0] == 2 and 1 <= new.shape[1] <= 4
    # reference: argmax of the adapter's own LM head, no KV cache, one token at a time
    tokens = prompt
    with torch.no_grad():
        for step in range(new.shape[1]):
            hidden = ventral._hidden(image, tokens)[:, -1]
            next_id = ventral.text_logits(hidden).argmax(dim=-1)
            done_before = (tokens[:, prompt.shape[1] :] == ventral.eos_id).any(dim=1)
            expected = torch.where(done_before, torch.full_like(next_id, ventral.pad_id), next_id)
            assert new[:, step].tolist() == expected.tolist(), f"step {step}"
            tokens = torch.cat([tokens, expected[:, None]], dim=1)
    with pytest.raises(ValueError, match="padding"):
        ventral.generate(image, encode(ventral, ["what color"]), max_new_tokens=2)


def test_lm_loss_decreases_on_a_fixed_batch_and_generate_answers(vlm_dir):
    torch.manual_seed(0)
    ventral = HFVentral(vlm_dir, TINY["d_model"]).train()
    tokens = encode(ventral, ["what color is the cube red", "what color is the bowl blue green"])
    loss_mask = torch.zeros_like(tokens, dtype=torch.bool)
    loss_mask[:, 6:9] = True  # the answer and eos only
    image = images(2, seed=4)
    optimizer = torch.optim.Adam(ventral.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = ventral.lm_loss(image, tokens, loss_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 2.0  # ~log(vocab) at random init
    assert losses[-1] < 0.25 * losses[0], losses
    # the learned answers come back from generate: eos-terminated, pad after a row's eos, then stop
    ventral.eval()
    tok = ventral.tokenizer
    questions = ["what color is the cube", "what color is the bowl"]
    prompts = torch.tensor([tok.encode(q, 10, add_eos=False, pad=False) for q in questions])
    new = ventral.generate(image, prompts, max_new_tokens=6)
    red, blue, green = (WORDS.index(w) for w in ("red", "blue", "green"))
    assert new.tolist() == [[red, tok.eos_id, tok.pad_id], [blue, green, tok.eos_id]]
    assert [tok.decode(row) for row in new] == ["red", "blue green"]


# --- UAM with it ---------------------------------------------------------------------------------
def test_uam_runs_and_its_loss_reaches_every_used_vlm_parameter(vlm_dir):
    config = tiny_config()
    torch.manual_seed(0)
    model = build_uam_with_hf_ventral(config, vlm_dir)
    assert isinstance(model, UAM) and isinstance(model.ventral, HFVentral)
    ventral = model.ventral
    tokens = encode(ventral, ["pick up the red cube", "put it in the blue bowl"])
    g = torch.Generator().manual_seed(5)
    batch = {
        "image": images(2, seed=5), "tokens": tokens, "state": torch.randn(2, 3, generator=g),
        "actions": torch.randn(2, config.chunk_size, 4, generator=g), "future_image": images(2, seed=6),
        "noise": torch.randn(2, config.chunk_size, 4, generator=g),
    }
    model.eval()
    with torch.no_grad():
        actions, frame = model(batch["image"], tokens, batch["state"], batch["noise"])
    assert actions.shape == (2, config.chunk_size, 4) and torch.isfinite(actions).all()
    assert frame.shape == (2, 3, config.future_frame_size, config.future_frame_size)

    model.train()
    model.loss(batch)["loss"].backward()
    no_grad = sorted(
        name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)
    )
    # CLIP's post_layernorm acts only on the pooled CLS output, which LLaVA never reads.
    assert no_grad == [
        "ventral.vlm.model.vision_tower.post_layernorm.bias",
        "ventral.vlm.model.vision_tower.post_layernorm.weight",
    ]
    names = [name for name, _ in model.named_parameters()]
    assert any(n.startswith("ventral.vlm.model.language_model.layers.") for n in names)
    assert any(n.startswith("ventral.vlm.model.multi_modal_projector.") for n in names)
    assert any(n.startswith("ventral.feature_proj.") for n in names)


def test_single_stream_baseline_and_processor(vlm_dir):
    config = tiny_config()
    model = build_uam_with_hf_ventral(config, vlm_dir, kind="single_stream").eval()
    assert isinstance(model, SingleStreamVLA)
    processor = build_hf_processor(config, model.ventral)
    inputs = processor.to_model_inputs(np.zeros((40, 40, 3), np.uint8), "pick up the red cube", np.zeros(3))
    assert inputs["tokens"].shape == (1, config.max_text_len)
    assert inputs["tokens"][0, :7].tolist() == [1, 5, 6, 7, 8, 11, 2]
    with torch.no_grad():
        noise = torch.zeros(1, config.chunk_size, 4)
        actions, _ = model(inputs["image"], inputs["tokens"], inputs["state"], noise)
    assert actions.shape == (1, config.chunk_size, 4) and torch.isfinite(actions).all()


# --- clear errors --------------------------------------------------------------------------------
def _copy_without(src, dst, *skip):
    dst.mkdir()
    for path in src.iterdir():
        if path.name not in skip:
            shutil.copy(path, dst / path.name)
    return dst


def test_missing_path_or_hub_id_is_refused_without_download(tmp_path):
    missing = tmp_path / "no_such_vlm"
    with pytest.raises(HFVentralError, match="not a local directory") as info:
        HFVentral(missing, 32)
    assert str(missing) in str(info.value)
    with pytest.raises(HFVentralError, match="llava-hf/llava-1.5-7b-hf.*not a local directory"):
        build_uam_with_hf_ventral(tiny_config(), "llava-hf/llava-1.5-7b-hf")


def test_incomplete_directories_name_what_is_missing(vlm_dir, tmp_path):
    no_config = _copy_without(vlm_dir, tmp_path / "no_config", "config.json")
    with pytest.raises(HFVentralError, match="no config.json") as info:
        HFVentral(no_config, 32)
    assert str(no_config) in str(info.value)

    no_weights = _copy_without(vlm_dir, tmp_path / "no_weights", "model.safetensors")
    with pytest.raises(HFVentralError, match="no weights.*model.safetensors"):
        HFVentral(no_weights, 32)

    other_family = _copy_without(vlm_dir, tmp_path / "other_family", "config.json")
    (other_family / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(HFVentralError, match="'paligemma'.*supported.*llava"):
        HFVentral(other_family, 32)

    no_stats = _copy_without(vlm_dir, tmp_path / "no_stats", "preprocessor_config.json")
    with pytest.raises(HFVentralError, match="preprocessor_config.json"):
        HFVentral(no_stats, 32)
    explicit = HFVentral(no_stats, 32, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert torch.equal(explicit.image_std.flatten(), torch.full((3,), 0.5))


def test_pickle_weights_are_refused(vlm_dir, tmp_path):
    pickled = _copy_without(vlm_dir, tmp_path / "pickled", "model.safetensors")
    (pickled / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(HFVentralError, match=r"\['pytorch_model.bin'\].*only safetensors") as info:
        HFVentral(pickled, 32)
    assert str(pickled) in str(info.value)
