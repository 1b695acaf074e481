"""Pick and build a backend by name; 'auto' falls back from TensorRT to ONNX Runtime to torch.

    auto         TensorRT when `tensorrt` imports and torch sees a CUDA GPU; else, on a GPU whose
                 onnxruntime has no CUDA provider, torch on the GPU (CUDA graphs: 1.8 ms against
                 8.6 ms for ONNX Runtime on the CPU, H200 box); else ONNX Runtime when installed,
                 else torch.
    tensorrt     TensorRT; without TensorRT/CUDA (or when the engine fails to build or is refused by
                 the parity check) ONNX Runtime, then torch -- with fallback=True and a reason saying
                 why. The node keeps running on the next-best backend instead of failing to configure.
    onnxruntime  ONNX Runtime; without it, torch (fallback=True).
    torch        torch.

The checkpoint is loaded (and its action layout checked against joint_names) once, before any
backend: a wrong or missing model is an error for every backend and is raised, never "fallen back" from.
BackendChoice.reason is one line for the log and /diagnostics.

Besides a checkpoint directory, the model may name a policy that is not a checkpoint:
    expert://<task>?seed=N                      the privileged scripted sim expert
    python://package.module:Factory?arg=value   any Policy (uam_ros.runtime.policy) built in Python, e.g.
                                                a client of a remote policy server: `Factory` is imported
                                                and called as Factory(joint_names=..., chunk_size=...,
                                                robot=..., **query_args); query values are parsed as JSON
                                                scalars when they are (1, 0.5, true, null), else kept as
                                                strings. `backend` does not apply to either.

options (all optional): mode ("eager" | "compile" | "cuda_graphs"), device ("auto" | "cpu" | "cuda"),
inference_mode (bool) for torch; providers ("auto" | "cpu" | "cuda"), allow_spinning (bool) for ONNX
Runtime; precision ("fp16" | "bf16" | "fp32"), workspace_mb for TensorRT; cache_dir, opset, progress
(a callable taking one line) for both exported backends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
LOG = logging.getLogger("uam_ros.runtime.factory")

_TORCH_OPTIONS = ("mode", "device", "inference_mode", "compile_mode", "compile_backend")
_ORT_OPTIONS = ("providers", "allow_spinning", "io_binding", "cache_dir", "opset", "progress")
_TRT_OPTIONS = ("precision", "workspace_mb", "device_index", "cache_dir", "opset", "progress")


@dataclass(frozen=True)
class BackendChoice:
    policy: object
    name: str
    reason: str
    fallback: bool = False  # True when the requested backend could not be used (log it as a warning)


def backend_status() -> dict[str, tuple[bool, str]]:
    """name -> (usable, why) for each backend, without loading a model."""
    from uam_ros.runtime.ort_backend import onnxruntime_status
    from uam_ros.runtime.tensorrt_backend import tensorrt_status

    import torch

    return {"tensorrt": tensorrt_status(), "onnxruntime": onnxruntime_status(),
            "torch": (True, f"torch {torch.__version__}")}


def torch_sees_gpu(options: Mapping[str, Any]) -> bool:
    """Whether the torch backend would run on a GPU with these options (and torch sees one)."""
    import torch

    from uam_ros.runtime.torch_backend import resolve_device

    return torch.cuda.is_available() and resolve_device(str(options.get("device", "auto"))).type == "cuda"


def _pick(options: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: options[name] for name in names if name in options}


def _ort_reason(policy) -> str:
    import onnxruntime as ort

    return f"ONNX Runtime {ort.__version__} on {policy.providers[0]}, {policy.threads} thread(s)"


PYTHON_SCHEME = "python://"


def _query_value(text: str) -> Any:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def parse_python_model(model: str) -> tuple[str, str, dict[str, Any]]:
    """'python://pkg.mod:Factory?a=1&b=x' -> ('pkg.mod', 'Factory', {'a': 1, 'b': 'x'})."""
    from urllib.parse import parse_qsl

    spec, _, query = model[len(PYTHON_SCHEME):].partition("?")
    module, sep, attribute = spec.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"model {model!r}: expected python://package.module:Factory[?arg=value&...]")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as error:
        raise ValueError(f"model {model!r}: bad query string {query!r}: {error}") from error
    args: dict[str, Any] = {}
    for key, value in pairs:
        if key in args:
            raise ValueError(f"model {model!r}: query argument {key!r} given twice")
        if key in ("joint_names", "chunk_size", "robot"):
            raise ValueError(f"model {model!r}: query argument {key!r} is set by the node, not the model URL")
        args[key] = _query_value(value)
    return module, attribute, args


def _python_policy(model: str, joint_names: Sequence[str], chunk_size: int, robot: str) -> BackendChoice:
    import importlib

    from uam_ros.runtime.policy import Policy

    module_name, attribute, args = parse_python_model(model)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model {model!r}: cannot import module {module_name!r}: {error}") from error
    factory = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ValueError(f"model {model!r}: module {module_name!r} has no attribute {attribute!r}")
    if not callable(factory):
        raise ValueError(f"model {model!r}: {module_name}:{attribute} is not callable")
    policy = factory(joint_names=list(joint_names), chunk_size=chunk_size, robot=robot, **args)
    if not isinstance(policy, Policy):
        raise TypeError(f"model {model!r}: {module_name}:{attribute} returned {type(policy).__name__}, which does "
                        "not implement the Policy protocol (name, infer(observation), warmup())")
    name = getattr(policy, "name", "") or type(policy).__name__
    return BackendChoice(policy, "python", f"model is a python plugin: {module_name}:{attribute} ({name})")


def create_policy(
    backend: str, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
    default_dt_s: float = 0.1, robot: str = "", chunk_size: int = 16, options: Mapping[str, Any] | None = None,
) -> BackendChoice:
    if str(checkpoint_dir).startswith("expert://"):
        # The privileged scripted expert (sim only): proves the ROS loop before a model is trained.
        from uam_ros.sim.expert_policy import ExpertPolicy, ExpertSpec

        policy = ExpertPolicy(robot, ExpertSpec.parse(str(checkpoint_dir)), chunk_size)
        return BackendChoice(policy, "expert", "model is a scripted sim expert")
    if str(checkpoint_dir).startswith(PYTHON_SCHEME):
        return _python_policy(str(checkpoint_dir), joint_names, chunk_size, robot)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    from uam_ros.model.checkpoint import ensure_layout, load_checkpoint

    options = dict(options or {})
    checkpoint = load_checkpoint(checkpoint_dir)  # raises CheckpointError: not a backend problem
    ensure_layout(checkpoint, list(joint_names))
    common = dict(threads=threads, seed=seed, default_dt_s=default_dt_s, checkpoint=checkpoint)
    prefix = "auto" if backend == "auto" else f"requested {backend}"
    notes: list[str] = []

    def torch_choice(fallback: bool) -> BackendChoice:
        from uam_ros.runtime.torch_backend import TorchPolicy

        policy = TorchPolicy(checkpoint_dir, joint_names, **common, **_pick(options, _TORCH_OPTIONS))
        described = f"torch {policy.mode} on {policy.device}, {policy.threads} thread(s)"
        if backend == "torch":
            return BackendChoice(policy, "torch", f"requested: {described}")
        reason = f"{prefix}: {'; '.join(notes)}; using {described}"
        return BackendChoice(policy, "torch", ("WARNING: fell back -- " if fallback else "") + reason, fallback)

    if backend == "torch":
        return torch_choice(False)

    if backend in ("auto", "tensorrt"):
        from uam_ros.runtime.tensorrt_backend import TensorRTPolicy, tensorrt_status

        usable, why = tensorrt_status()
        if usable:
            try:
                policy = TensorRTPolicy(checkpoint_dir, joint_names, **common, **_pick(options, _TRT_OPTIONS))
                return BackendChoice(policy, "tensorrt", f"{prefix}: {policy.describe()}")
            except Exception as error:  # build failure, refused engine, driver trouble: next backend
                LOG.warning("TensorRT backend failed", exc_info=True)
                notes.append(f"TensorRT failed ({type(error).__name__}: {error})")
        else:
            notes.append(f"TensorRT unavailable ({why})")

    from uam_ros.runtime.ort_backend import OrtPolicy, has_cuda_provider, onnxruntime_status

    if backend == "auto" and options.get("providers", "auto") == "auto" and torch_sees_gpu(options) \
            and not has_cuda_provider():
        notes.append("ONNX Runtime has no CUDA provider (onnxruntime-gpu not installed), torch sees a GPU")
        return torch_choice(False)
    usable, why = onnxruntime_status()
    if usable:
        try:
            policy = OrtPolicy(checkpoint_dir, joint_names, **common, **_pick(options, _ORT_OPTIONS))
        except Exception as error:
            LOG.warning("ONNX Runtime backend failed", exc_info=True)
            notes.append(f"ONNX Runtime failed ({type(error).__name__}: {error})")
        else:
            fallback = backend == "tensorrt"
            if backend == "onnxruntime":
                reason = f"requested: {_ort_reason(policy)}"
            else:
                reason = f"{prefix}: {'; '.join(notes)}; using {_ort_reason(policy)}"
            return BackendChoice(policy, "onnxruntime", ("WARNING: fell back -- " if fallback else "") + reason,
                                 fallback)
    else:
        notes.append(f"ONNX Runtime unavailable ({why})")
    return torch_choice(backend != "auto")
