"""Parity between backends: fixed inputs, a reference run, and a pass/fail report with numbers.

Every accelerated backend is checked against the PyTorch model on the same fixed inputs before it
is used (DESIGN.md section 5): the exported ONNX graph at export time, a TensorRT engine every time
one is built or loaded from the cache. The comparison is on the raw model outputs (normalised
actions, imagined frame), so the bounds do not depend on a robot's joint units.

Pure numpy apart from torch_outputs(); no onnxruntime / tensorrt import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

INPUT_NAMES = ("image", "tokens", "state", "noise")
OUTPUT_NAMES = ("actions", "future_frame")


@dataclass(frozen=True)
class ParityThresholds:
    """What a candidate backend must meet against the reference.

    min_cosine: cosine similarity of each gated output, flattened. max_abs: largest allowed absolute
    difference per output (normalised action units for "actions", [0, 1] pixels for "future_frame");
    an output not named here is reported but not gated.
    """

    min_cosine: float = 0.999
    max_abs: Mapping[str, float] = field(default_factory=lambda: {"actions": 1e-3, "future_frame": 1e-3})
    cosine_outputs: tuple[str, ...] = ("actions",)


# Per engine precision. FP16/BF16 engines round every activation (10 / 7 mantissa bits) through
# ~4 Euler steps of a transformer: 5e-2 / 1e-1 normalised units is ~1 / 2 % of an action's spread.
THRESHOLDS: dict[str, ParityThresholds] = {
    "fp32": ParityThresholds(0.999, {"actions": 1e-3, "future_frame": 1e-3}),
    "fp16": ParityThresholds(0.999, {"actions": 5e-2, "future_frame": 2e-2}),
    "bf16": ParityThresholds(0.999, {"actions": 1e-1, "future_frame": 5e-2}),
}
# ONNX Runtime FP32 against torch FP32: only summation order differs.
ONNX_THRESHOLDS = ParityThresholds(0.99999, {"actions": 1e-4, "future_frame": 1e-4})


def thresholds_for(precision: str) -> ParityThresholds:
    try:
        return THRESHOLDS[precision]
    except KeyError:
        raise ValueError(f"parity: precision must be one of {sorted(THRESHOLDS)}, got {precision!r}") from None


@dataclass(frozen=True)
class OutputDiff:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    cosine: float
    finite: bool


@dataclass(frozen=True)
class ParityReport:
    ok: bool
    diffs: tuple[OutputDiff, ...]
    failures: tuple[str, ...]
    thresholds: ParityThresholds

    def describe(self) -> str:
        numbers = ", ".join(f"{d.name}: max_abs {d.max_abs:.3g}, cosine {d.cosine:.6f}" for d in self.diffs)
        if self.ok:
            return f"parity ok ({numbers})"
        return f"parity FAILED: {'; '.join(self.failures)} ({numbers})"

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "failures": list(self.failures),
            "outputs": {
                d.name: {"max_abs": d.max_abs, "cosine": d.cosine, "finite": d.finite, "shape": list(d.shape)}
                for d in self.diffs
            },
            "thresholds": {
                "min_cosine": self.thresholds.min_cosine,
                "max_abs": dict(self.thresholds.max_abs),
                "cosine_outputs": list(self.thresholds.cosine_outputs),
            },
        }


class ParityError(RuntimeError):
    """A backend's outputs differ from the reference by more than the thresholds allow."""

    def __init__(self, what: str, report: ParityReport) -> None:
        super().__init__(f"{what}: {report.describe()}")
        self.report = report


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two arrays flattened (float64). Two all-zero arrays are identical (1.0)."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], thresholds: ParityThresholds
) -> ParityReport:
    """Compare every output of reference with candidate; fail on a missing output, a shape
    difference, non-finite values, or a gated bound exceeded."""
    diffs, failures = [], []
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        if name not in candidate:
            failures.append(f"{name}: missing from the candidate's outputs")
            continue
        cand = np.asarray(candidate[name], dtype=np.float64)
        if cand.shape != ref.shape:
            failures.append(f"{name}: shape {cand.shape} != reference {ref.shape}")
            continue
        finite = bool(np.all(np.isfinite(cand)))
        max_abs = float(np.max(np.abs(cand - ref))) if finite and ref.size else (0.0 if finite else float("inf"))
        cosine = cosine_similarity(ref, cand) if finite else 0.0
        diffs.append(OutputDiff(name, tuple(ref.shape), max_abs, cosine, finite))
        if not finite:
            failures.append(f"{name}: non-finite values")
            continue
        bound = thresholds.max_abs.get(name)
        if bound is not None and max_abs > bound:
            failures.append(f"{name}: max abs difference {max_abs:.3g} > {bound:g}")
        if name in thresholds.cosine_outputs and cosine < thresholds.min_cosine:
            failures.append(f"{name}: cosine {cosine:.6f} < {thresholds.min_cosine}")
    return ParityReport(not failures, tuple(diffs), tuple(failures), thresholds)


def fixed_inputs(config, seed: int = 1234) -> dict[str, np.ndarray]:
    """Deterministic model inputs (batch 1) for a UAMConfig: a random image, a padded token
    sequence (so the padding mask is exercised), a normalised state and flow-matching noise."""
    from uam_ros.model.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS

    rng = np.random.default_rng(seed)
    length = config.max_text_len
    words = max(0, min(length - 2, length // 2))
    tokens = np.full((1, length), PAD_ID, dtype=np.int64)
    tokens[0, 0] = BOS_ID
    if config.vocab_size > len(SPECIAL_TOKENS):
        tokens[0, 1 : 1 + words] = rng.integers(len(SPECIAL_TOKENS), config.vocab_size, words)
    tokens[0, 1 + words] = EOS_ID
    return {
        "image": rng.random((1, 3, config.image_size, config.image_size), dtype=np.float32),
        "tokens": tokens,
        "state": rng.standard_normal((1, config.state_dim)).astype(np.float32),
        "noise": rng.standard_normal((1, config.chunk_size, config.action_dim)).astype(np.float32),
    }


def torch_outputs(model, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference: the PyTorch model (FP32, CPU) on the given inputs."""
    import torch

    device = next(model.parameters()).device
    tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name])).to(device) for name in INPUT_NAMES]
    with torch.inference_mode():
        outputs = model(*tensors)
    return {name: out.detach().float().cpu().numpy() for name, out in zip(OUTPUT_NAMES, outputs)}
