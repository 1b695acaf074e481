"""The UAM network: shapes, determinism, static graph, end-to-end gradients, learning."""

from __future__ import annotations

import warnings

import pytest
import torch

from uam_ros.model.action_head import FlowMatchingHead
from uam_ros.model.config import UAMConfig
from uam_ros.model.tokenizer import BOS_ID, EOS_ID, PAD_ID
from uam_ros.model.uam import UAM, SingleStreamVLA, build_model

torch.set_num_threads(1)


def tiny_config(**overrides) -> UAMConfig:
    fields = dict(
        image_size=32, patch_size=8, vocab_size=20, max_text_len=10, state_dim=3, action_dim=4,
        d_model=32, n_heads=2, mlp_ratio=2, vision_layers=1, ventral_layers=1, dorsal_layers=1,
        action_layers=1, chunk_size=6, num_steps=3, future_latent_grid=2, latent_dim=8,
        future_frame_size=8, decoder_channels=8,
    )
    fields.update(overrides)
    return UAMConfig(**fields)


def make_inputs(config: UAMConfig, batch: int, seed: int, text_lengths: list[int] | None = None) -> dict:
    """Random inputs; text row i has text_lengths[i] real tokens then padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, config.vocab_size, (batch, config.max_text_len), generator=g)
    tokens[:, 0] = BOS_ID
    for row, length in enumerate(text_lengths or [config.max_text_len] * batch):
        tokens[row, length - 1] = EOS_ID
        tokens[row, length:] = PAD_ID
    return {
        "image": torch.rand(batch, 3, config.image_size, config.image_size, generator=g),
        "tokens": tokens,
        "state": torch.randn(batch, config.state_dim, generator=g),
        "noise": torch.randn(batch, config.chunk_size, config.action_dim, generator=g),
    }


def training_batch(config: UAMConfig, seed: int, text_lengths: list[int] | None = None, **extra) -> dict:
    """make_inputs + random action targets and future frames (from torch's global RNG, as before)."""
    inputs = make_inputs(config, batch=2, seed=seed, text_lengths=text_lengths)
    return {
        **inputs,
        "actions": torch.randn(2, config.chunk_size, config.action_dim),
        "future_image": torch.rand(2, 3, config.image_size, config.image_size),
        **extra,
    }


def forward(model, inputs):
    return model(inputs["image"], inputs["tokens"], inputs["state"], inputs["noise"])


@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_default_config_output_shapes(kind):
    config = UAMConfig()
    torch.manual_seed(0)
    model = build_model(config, kind).eval()
    with torch.inference_mode():
        actions, frame = forward(model, make_inputs(config, batch=2, seed=0, text_lengths=[5, 24]))
    assert actions.shape == (2, config.chunk_size, config.action_dim)
    assert frame.shape == (2, 3, config.future_frame_size, config.future_frame_size)
    assert torch.isfinite(actions).all()
    assert frame.min() >= 0.0 and frame.max() <= 1.0
    if kind == "single_stream":
        assert torch.count_nonzero(frame) == 0


def test_build_model_kinds():
    assert isinstance(build_model(tiny_config(), "uam"), UAM)
    assert isinstance(build_model(tiny_config(), "single_stream"), SingleStreamVLA)
    with pytest.raises(ValueError, match="'dual'"):
        build_model(tiny_config(), "dual")


def test_same_noise_same_output_different_noise_different_actions():
    config = tiny_config()
    torch.manual_seed(0)
    model = UAM(config).eval()
    inputs = make_inputs(config, batch=1, seed=1)
    with torch.no_grad():
        a1, f1 = forward(model, inputs)
        a2, f2 = forward(model, inputs)
        a3, f3 = forward(model, {**inputs, "noise": torch.randn_like(inputs["noise"])})
    assert torch.equal(a1, a2) and torch.equal(f1, f2)
    assert (a1 - a3).abs().max() > 1e-3
    assert torch.equal(f1, f3)  # the imagined frame does not depend on the action noise


@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_padding_is_invisible_and_the_instruction_matters(kind):
    """Padded text gives exactly what the unpadded text gives (the causal LM never looks ahead into
    padding and the readers mask it out); changing a real word changes the actions."""
    config = tiny_config()
    torch.manual_seed(0)
    model = build_model(config, kind).eval()
    inputs = make_inputs(config, batch=1, seed=2, text_lengths=[4])
    with torch.no_grad():
        padded, _ = forward(model, inputs)
        unpadded, _ = forward(model, {**inputs, "tokens": inputs["tokens"][:, :4]})
        other = inputs["tokens"].clone()
        other[0, 1] = 4 if other[0, 1] != 4 else 5
        reworded, _ = forward(model, {**inputs, "tokens": other})
    torch.testing.assert_close(padded, unpadded, rtol=1e-5, atol=1e-6)
    assert (padded - reworded).abs().max() > 1e-5


# The localisation options of the dorsal expert (conv stem, 2D sin/cos positions, pointers).
VARIANTS = [{}, dict(dorsal_stem="conv", position_init="sincos", pointer_points=3, pointer_offsets=True,
                     language_film=True)]


@pytest.mark.parametrize("variant", VARIANTS, ids=["base", "pointer"])
@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_traced_graph_matches_eager_on_other_inputs(kind, variant):
    """Trace on one input, run on others (other data, other padding, other batch size): any
    data-dependent Python branch would be frozen into the trace and break the match."""
    config = tiny_config(**variant)
    torch.manual_seed(0)
    model = build_model(config, kind).eval()
    trace_inputs = make_inputs(config, batch=2, seed=3, text_lengths=[10, 3])
    names = ("image", "tokens", "state", "noise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # jit.trace is deprecated, still the cheapest check
        warnings.simplefilter("error", torch.jit.TracerWarning)  # tensor->Python conversion = error
        traced = torch.jit.trace(model, tuple(trace_inputs[n] for n in names), check_trace=False)
    for other in (make_inputs(config, 2, seed=4, text_lengths=[2, 7]), make_inputs(config, 3, seed=5)):
        with torch.no_grad():
            eager = forward(model, other)
            replay = traced(*(other[n] for n in names))
        for e, r in zip(eager, replay):
            torch.testing.assert_close(r, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=["base", "pointer"])
@pytest.mark.parametrize("kind", ["uam", "single_stream"])
def test_training_loss_reaches_every_parameter(kind, variant):
    """End to end: nothing frozen, no stop-gradient -- every weight of every stream gets a gradient."""
    config = tiny_config(**variant)
    torch.manual_seed(0)
    model = build_model(config, kind).train()
    batch = training_batch(config, 6, text_lengths=[10, 5])
    losses = model.loss(batch)
    assert set(losses) >= {"loss", "action_loss"}
    losses["loss"].backward()
    params = dict(model.named_parameters())
    prefixes = ("ventral.", "dorsal.", "action_head.") if kind == "uam" else ("ventral.", "action_head.")
    for prefix in prefixes:
        assert any(name.startswith(prefix) for name in params), prefix
    starved = [
        name for name, p in params.items()
        if not p.requires_grad or p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert starved == []


def test_uam_loss_has_dynamics_terms_and_weight():
    config = tiny_config()
    torch.manual_seed(0)
    model = UAM(config)
    batch = training_batch(config, 7,
                           time=torch.tensor([0.2, 0.7]))
    full = model.loss(batch)
    no_dyn = model.loss(batch, dynamics_weight=0.0)
    assert {"dynamics_loss", "latent_loss", "render_loss", "autoencode_loss"} <= set(full)
    torch.testing.assert_close(no_dyn["loss"], no_dyn["action_loss"])
    torch.testing.assert_close(full["loss"], full["action_loss"] + full["dynamics_loss"])


def test_flow_loss_decreases_when_overfitting_a_fixed_batch():
    config = tiny_config()
    torch.manual_seed(0)
    head = FlowMatchingHead(config)
    g = torch.Generator().manual_seed(8)
    tokens = torch.randn(4, 5, config.d_model, generator=g)
    state = torch.randn(4, config.state_dim, generator=g)
    actions = torch.randn(4, config.chunk_size, config.action_dim, generator=g)
    noise = torch.randn(4, config.chunk_size, config.action_dim, generator=g)
    t = torch.rand(4, generator=g)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    history = []
    for _ in range(50):
        cond, mask = head.condition(tokens, state)
        loss = head.flow_loss(cond, actions, noise, t, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.3 * history[0], history[::10]


def test_flow_loss_averages_only_unpadded_chunk_steps():
    config = tiny_config()
    torch.manual_seed(0)
    head = FlowMatchingHead(config)
    cond, _ = head.condition(torch.randn(2, 5, config.d_model), torch.randn(2, config.state_dim))
    actions = torch.randn(2, config.chunk_size, config.action_dim)
    noise, t = torch.randn_like(actions), torch.tensor([0.25, 0.5])
    is_pad = torch.zeros(2, config.chunk_size, dtype=torch.bool)
    is_pad[0, 3:] = True  # episode 0 ended after 3 steps
    x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
    error = (head.velocity(cond, x_t, t) - (actions - noise)) ** 2
    expected = (error[0, :3].sum() + error[1].sum()) / ((3 + config.chunk_size) * config.action_dim)
    torch.testing.assert_close(head.flow_loss(cond, actions, noise, t, action_is_pad=is_pad), expected)
    torch.testing.assert_close(head.flow_loss(cond, actions, noise, t), error.mean())


def test_end_to_end_uam_loss_decreases():
    config = tiny_config()
    torch.manual_seed(0)
    model = UAM(config)
    batch = training_batch(config, 9,
                           time=torch.tensor([0.3, 0.6]))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        loss = model.loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history[::5]


def test_dorsal_pretrains_alone_without_the_ventral_stream():
    """Stage-2 generative pretraining: only the frame pair; cross-attention is unused, everything
    else in the dorsal expert learns."""
    config = tiny_config()
    torch.manual_seed(0)
    dorsal = UAM(config).dorsal
    frames = torch.rand(2, 3, config.image_size, config.image_size)
    terms = dorsal.dynamics_loss(frames, frames.flip(-1))
    assert terms["dynamics_loss"].ndim == 0 and torch.isfinite(terms["dynamics_loss"])
    terms["dynamics_loss"].backward()
    for name, p in dorsal.named_parameters():
        if name == "proprio.weight":  # state is zeros without proprioception: only its bias learns
            assert p.grad is not None and p.grad.abs().sum() == 0
        elif "cross" in name:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ventral_vlm_learns_a_caption_and_generates_it():
    """The ventral stream is a real VLM: next-token loss trains it and greedy generate reads it out."""
    config = tiny_config(vocab_size=12)
    torch.manual_seed(0)
    vlm = UAM(config).ventral
    image = torch.rand(1, 3, config.image_size, config.image_size)
    caption = torch.tensor([[BOS_ID, 5, 9, 7, 11, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    optimizer = torch.optim.Adam(vlm.parameters(), lr=1e-2)
    first = vlm.lm_loss(image, caption).item()
    for _ in range(60):
        loss = vlm.lm_loss(image, caption)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first
    vlm.eval()
    out = vlm.generate(image, caption[:, :2], max_new_tokens=8)
    assert out[0].tolist()[:4] == [9, 7, 11, EOS_ID]
    assert out.shape[1] <= 8
    with pytest.raises(ValueError, match="padding"):
        vlm.generate(image, caption, max_new_tokens=2)


def test_spatial_pointer_points_at_the_patch_its_query_matches():
    """A query that matches one patch's key far better than the others must point at that patch's
    centre, in (x, y) = (column, row) order, in [-1, 1]."""
    from uam_ros.model.layers import SpatialPointer

    torch.manual_seed(0)
    grid, d = 4, 16
    pointer = SpatialPointer(d, grid, n_points=1)
    with torch.no_grad():
        pointer.key.weight.copy_(torch.eye(d))
        pointer.key.bias.zero_()
        pointer.query.weight.copy_(torch.eye(d) * 50.0)
        pointer.query.bias.zero_()
    patches = torch.zeros(1, grid * grid, d)
    row, col = 1, 3
    patches[0, row * grid + col, 0] = 1.0
    query = torch.zeros(1, 1, d)
    query[0, 0, 0] = 1.0
    tokens, points = pointer(query, patches)
    assert tokens.shape == (1, 1, d)
    centre = lambda i: (i + 0.5) / grid * 2.0 - 1.0  # noqa: E731
    torch.testing.assert_close(points[0, 0], torch.tensor([centre(col), centre(row)]), atol=0.02, rtol=0)


def test_sincos_positions_are_distinct_and_smooth():
    from uam_ros.model.layers import sincos_2d_positions

    table = sincos_2d_positions(8, 32)[0]
    assert table.shape == (64, 32)
    dist = torch.cdist(table, table)
    assert dist[~torch.eye(64, dtype=torch.bool)].min() > 0  # every patch has its own code
    # neighbours are closer than far-apart patches: geometry is there from the first step
    assert dist[0, 1] < dist[0, 7] and dist[0, 8] < dist[0, 56]


def test_pointer_loss_trains_pointer_zero_towards_the_target_and_ignores_invalid_rows():
    from uam_ros.model.uam import pointer_terms

    points = torch.zeros(3, 2, 2, requires_grad=True)
    target = torch.tensor([[0.5, -0.5], [0.0, 0.0], [9.0, 9.0]])
    valid = torch.tensor([True, True, False])
    loss = pointer_terms(points, target, valid)
    loss.backward()
    assert loss.item() > 0
    assert points.grad[0, 0].abs().sum() > 0 and points.grad[2].abs().sum() == 0  # invalid row: no pull
    assert points.grad[:, 1].abs().sum() == 0  # only pointer 0 is supervised
    assert pointer_terms(target[:2, None].expand(2, 2, 2), target[:2]).item() == 0.0


def test_uam_loss_adds_the_point_term_only_when_weighted():
    config = tiny_config(pointer_points=2, pointer_loss_weight=0.5)
    torch.manual_seed(0)
    model = build_model(config, "uam").train()
    batch = training_batch(config, 6,
                           future_point=torch.tensor([[0.5, 0.5], [-0.5, 0.2]]),
                           future_point_valid=torch.tensor([True, True]))
    losses = model.loss(batch)
    expected = losses["action_loss"] + losses["dynamics_loss"] * config.dynamics_loss_weight + 0.5 * losses["point_loss"]
    torch.testing.assert_close(losses["loss"], expected)
    with pytest.raises(ValueError, match="pointer_points"):
        tiny_config(pointer_loss_weight=1.0)


def test_goal_point_term_supervises_pointer_one_only_when_weighted():
    from uam_ros.model.uam import pointer_terms

    points = torch.zeros(2, 3, 2, requires_grad=True)
    pointer_terms(points, torch.tensor([[0.5, -0.5], [0.2, 0.1]]), index=1).backward()
    assert points.grad[:, 1].abs().sum() > 0
    assert points.grad[:, 0].abs().sum() == 0 and points.grad[:, 2].abs().sum() == 0

    config = tiny_config(pointer_points=2, pointer_loss_weight=0.5, goal_pointer_weight=2.0)
    torch.manual_seed(0)
    model = build_model(config, "uam").train()
    batch = training_batch(config, 6,
                           future_point=torch.tensor([[0.5, 0.5], [-0.5, 0.2]]),
                           future_point_valid=torch.tensor([True, True]),
                           goal_point=torch.tensor([[-0.7, 0.1], [0.3, -0.9]]),
                           goal_point_valid=torch.tensor([True, False]))
    losses = model.loss(batch)
    expected = (losses["action_loss"] + losses["dynamics_loss"] * config.dynamics_loss_weight
                + 0.5 * losses["point_loss"] + 2.0 * losses["goal_point_loss"])
    torch.testing.assert_close(losses["loss"], expected)
    assert losses["goal_point_loss"].item() > 0
    without = build_model(tiny_config(pointer_points=2, pointer_loss_weight=0.5), "uam").train().loss(batch)
    assert "goal_point_loss" not in without
    with pytest.raises(ValueError, match="pointer_points >= 2"):
        tiny_config(pointer_points=1, goal_pointer_weight=1.0)
    with pytest.raises(ValueError, match="goal_pointer_weight"):
        tiny_config(pointer_points=2, goal_pointer_weight=-1.0)


def test_pointer_offsets_start_neutral_and_reach_inside_a_patch():
    from uam_ros.model.layers import SpatialPointer

    torch.manual_seed(0)
    plain, refined = SpatialPointer(16, grid=4, n_points=2), SpatialPointer(16, grid=4, n_points=2, offsets=True)
    refined.load_state_dict({**plain.state_dict(), **{k: v for k, v in refined.state_dict().items()
                                                      if k.startswith("offset.")}})
    queries, patches = torch.randn(3, 2, 16), torch.randn(3, 16, 16)
    torch.testing.assert_close(refined(queries, patches)[1], plain(queries, patches)[1])  # zero-initialised
    with torch.no_grad():
        refined.offset.bias.copy_(torch.tensor([20.0, -20.0, 0.0, 0.0]))  # pointer 0: +x, -y by half a patch
        refined.query.weight.zero_(); refined.query.bias.zero_()  # uniform weights over the 4x4 patches
    _, points = refined(queries, patches)
    torch.testing.assert_close(points[:, 0], torch.tensor([[0.25, -0.25]]).expand(3, 2))  # half of 2/4
    torch.testing.assert_close(points[:, 1], torch.zeros(3, 2))
    with pytest.raises(ValueError, match="pointer_points"):
        tiny_config(pointer_offsets=True)


@pytest.mark.parametrize("source", ["features", "words"])
def test_language_film_starts_as_identity_and_learns_from_the_action_loss(source):
    """The instruction FiLM is zero at the start (an old recipe trains as before) and gets gradients
    from the action loss alone; with non-zero weights, renaming the object changes the dorsal tokens."""
    config = tiny_config(language_film=True, film_source=source)
    torch.manual_seed(0)
    model = build_model(config, "uam")
    film = model.dorsal.film
    assert film is not None and film.weight.abs().max() == 0 and film.bias.abs().max() == 0
    batch = training_batch(config, seed=0)
    model.loss(batch)["loss"].backward()
    assert film.weight.grad is not None and film.weight.grad.abs().max() > 0
    with torch.no_grad():
        film.weight.normal_(0.0, 0.5)
        image, state = batch["image"][:1], batch["state"][:1]
        tokens = batch["tokens"][:1]
        renamed = tokens.clone()
        renamed[0, 1] = 4 + (int(renamed[0, 1]) - 3) % (config.vocab_size - 4)  # another (non-special) word
        a = model._streams(image, tokens, state)[0]
        b = model._streams(image, renamed, state)[0]
    assert (a - b).abs().max() > 1e-3
    assert build_model(tiny_config(), "uam").dorsal.film is None  # off by default
    with pytest.raises(ValueError, match="no effect without language_film"):
        tiny_config(film_source="words")


def test_instruction_norm_gives_the_film_unit_rms_input_and_larger_first_gradients():
    """instruction_norm: the vector the FiLM reads has unit RMS per row (it was the mean of small
    word embeddings), still differs between instructions, and the zero-initialised FiLM's first
    weight gradient grows with it: the point of the option (docs/training_notes.md, experiment 13)."""
    grads, vectors = {}, {}
    for norm in (False, True):
        config = tiny_config(language_film=True, film_source="words", instruction_norm=norm)
        torch.manual_seed(0)
        model = build_model(config, "uam")
        batch = training_batch(config, seed=0)
        features = model.ventral.features(batch["image"], batch["tokens"])
        vectors[norm] = model.instruction_vector(features, model.ventral.feature_mask(batch["tokens"]),
                                                 batch["tokens"]).detach()
        model.loss(batch)["loss"].backward()
        grads[norm] = model.dorsal.film.weight.grad.norm().item()
    rms = vectors[True].pow(2).mean(dim=-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=0.05)  # layer norm's eps against a tiny variance
    assert vectors[False].pow(2).mean(dim=-1).sqrt().max() < 0.1  # the plateau the option removes
    assert (vectors[True][0] - vectors[True][1]).abs().max() > 0.1  # two instructions stay apart
    assert grads[True] > 5 * grads[False] > 0
    with pytest.raises(ValueError, match="instruction_norm=True has no effect"):
        tiny_config(instruction_norm=True)


def test_dorsal_words_film_reads_the_dorsals_own_table():
    """film_source "dorsal_words": the instruction vector comes from the dorsal's word table (changing
    it changes the vector, changing the ventral's does not) and, once the FiLM is non-zero, the loss's
    gradient reaches that table (experiment 14: a slowed VL-pretrained ventral's own embeddings barely
    move, and a FiLM reading them could not tell the objects apart)."""
    config = tiny_config(language_film=True, film_source="dorsal_words", instruction_norm=True)
    torch.manual_seed(0)
    model = build_model(config, "uam")
    batch = training_batch(config, seed=0)
    tokens = batch["tokens"]

    def vector():
        features = model.ventral.features(batch["image"], tokens)
        return model.instruction_vector(features, model.ventral.feature_mask(tokens), tokens).detach()

    before = vector()
    with torch.no_grad():
        model.ventral.tok_embed.weight.normal_(std=1.0)
    assert torch.allclose(vector(), before)  # not the ventral's table
    with torch.no_grad():
        model.dorsal.word_embed.weight.normal_(std=1.0)
    assert not torch.allclose(vector(), before, atol=1e-3)  # the dorsal's
    with torch.no_grad():  # a non-zero FiLM, as after the first step
        model.dorsal.film.weight.normal_(std=0.02)
    model.loss(batch)["loss"].backward()
    assert model.dorsal.word_embed.weight.grad[tokens.unique()].abs().sum() > 0
    assert getattr(build_model(tiny_config(language_film=True, film_source="words"), "uam").dorsal,
                   "word_embed") is None
    with pytest.raises(ValueError, match="must be one of"):
        tiny_config(language_film=True, film_source="dorsal")


def test_word_film_with_the_transformers_ventral_is_refused_when_built(tmp_path):
    """The transformers ventral has no word embeddings of ours: say so when the model is built, not at
    its first forward (and before the VLM directory is even read)."""
    from uam_ros.model.hf_ventral import build_uam_with_hf_ventral

    for source in ("words", "dorsal_words"):
        with pytest.raises(ValueError, match="use film_source 'features'"):
            build_uam_with_hf_ventral(tiny_config(language_film=True, film_source=source), tmp_path / "no_vlm_here")
