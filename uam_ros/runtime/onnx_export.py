"""Export a checkpoint to ONNX: the static graph that ONNX Runtime runs and TensorRT builds engines from.

    image (1,3,S,S) f32 [0,1], tokens (1,L) i64, state (1,state_dim) f32, noise (1,H,A) f32
        -> actions (1,H,A) f32 (normalised), future_frame (1,3,f,f) f32 [0,1]

Static shapes, batch 1, the flow-matching loop unrolled (num_steps is fixed by the config), default
opset 18 (LayerNormalization needs >= 17; every TensorRT 10.x parses 9..20). Pre- and
post-processing (resize, tokenise, normalise) stay in UAMProcessor, outside the graph, so every
backend shares them.

Each export is checked: onnx.checker (full), ONNX Runtime against torch on fixed inputs
(<= 1e-4 max abs), and the graph's operators against TensorRT's supported list
(data/tensorrt_onnx_ops.json). The model's metadata_props carry the checkpoint's identity:
uam.weights_sha256, uam.model_config (JSON), uam.kind, uam.model_hash, uam.opset, ...

Exports are cached by model hash (sha256 of weights sha256 + kind + model config -- num_steps changes
the graph without changing the weights) under <cache>/onnx/<hash[:16]>-opset<N>/model.onnx, where
<cache> is $UAM_CACHE_DIR, else $XDG_CACHE_HOME/uam_ros, else ~/.cache/uam_ros: a checkpoint
directory may be read-only (installed under share/).

CLI: `uam export --model DIR [--out FILE] [--opset N]` (add_arguments / run below).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from uam_ros.runtime.parity import (
    INPUT_NAMES,
    ONNX_THRESHOLDS,
    OUTPUT_NAMES,
    ParityReport,
    compare_outputs,
    fixed_inputs,
    torch_outputs,
)

LOG = logging.getLogger("uam_ros.runtime.onnx_export")

DEFAULT_OPSET = 18
MIN_OPSET = 17
EXPORTERS = ("dynamo", "torchscript")
METADATA_FORMAT = "1"
ONNX_FILE = "model.onnx"
# Above this many parameter bytes the weights go to an external .data file (protobuf's 2 GiB cap).
EXTERNAL_DATA_BYTES = 1536 << 20

Progress = Callable[[str], None]


class ExportError(RuntimeError):
    """The export failed or produced a graph that does not match the PyTorch model."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    model_hash: str
    weights_sha256: str
    kind: str
    opset: int
    exporter: str
    ops: tuple[str, ...]
    tensorrt_unsupported: tuple[str, ...]
    seconds: float
    cached: bool
    parity: ParityReport | None = None


# --- identity and locations ------------------------------------------------------------------------
def model_hash(checkpoint) -> str:
    """sha256 over what determines the graph: the weights' sha256, the model kind and its config."""
    document = {"weights_sha256": checkpoint.weights_sha256, "kind": checkpoint.kind,
                "model_config": checkpoint.config.to_dict()}
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def default_cache_dir() -> Path:
    if os.environ.get("UAM_CACHE_DIR"):
        return Path(os.environ["UAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uam_ros"


def cached_onnx_path(checkpoint, cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "onnx" / f"{model_hash(checkpoint)[:16]}-opset{opset}" / ONNX_FILE


def _load_checkpoint(checkpoint):
    if isinstance(checkpoint, (str, os.PathLike)):
        from uam_ros.model.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint)
    return checkpoint


def _progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else LOG.info


# --- graph inspection ------------------------------------------------------------------------------
def graph_ops(model) -> set[tuple[str, str]]:
    """Every (domain, op_type) in an onnx ModelProto or file, subgraphs and local functions included."""
    import onnx

    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(str(model), load_external_data=False)
    found: set[tuple[str, str]] = set()

    def walk(nodes: Iterable) -> None:
        for node in nodes:
            found.add((node.domain or "", node.op_type))
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    walk(attribute.g.node)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    for graph in attribute.graphs:
                        walk(graph.node)

    walk(model.graph.node)
    local = {(function.domain, function.name) for function in model.functions}
    for function in model.functions:
        walk(function.node)
    return found - local  # calls to local functions are expanded above, not operators


@lru_cache(maxsize=1)
def tensorrt_op_table() -> dict[str, Any]:
    """data/tensorrt_onnx_ops.json: TensorRT's ONNX operator support matrix (source and version inside)."""
    try:
        text = resources.files("uam_ros.runtime").joinpath("data/tensorrt_onnx_ops.json").read_text()
    except FileNotFoundError as error:
        raise FileNotFoundError(
            "uam_ros/runtime/data/tensorrt_onnx_ops.json is not installed (setup.py package_data)"
        ) from error
    return json.loads(text)


def tensorrt_unsupported_ops(ops: Iterable[tuple[str, str]]) -> list[str]:
    """The ops TensorRT's ONNX parser does not support (non-default domains always count as such)."""
    table = tensorrt_op_table()
    supported = set(table["supported"])
    return sorted(
        f"{domain}::{op}" if domain not in ("", "ai.onnx") else op
        for domain, op in ops
        if domain not in ("", "ai.onnx") or op not in supported
    )


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def io_shapes(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (static dims, numpy dtype name) of the graph inputs."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    shapes = {}
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        shapes[value.name] = (dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type).name)
    return shapes


# --- export ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_exporter():
    """Keep torch.onnx's own chatter (torchvision notices, deprecation warnings) out of our progress."""
    names = ("torch.onnx._internal.exporter._registration", "torch.onnx")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _ort_outputs(path: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    values = session.run(list(OUTPUT_NAMES), {name: inputs[name] for name in INPUT_NAMES})
    return dict(zip(OUTPUT_NAMES, values))


def export_onnx(
    checkpoint,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    verify: bool = True,
    progress: Progress | None = None,
) -> ExportResult:
    """Export checkpoint (a directory or a LoadedCheckpoint) to the ONNX file out.

    Raises ExportError when the exporter fails, onnx.checker rejects the graph, or (verify=True and
    onnxruntime installed) ONNX Runtime's outputs differ from torch's by more than 1e-4.
    """
    import onnx
    import torch

    say = _progress(progress)
    if opset < MIN_OPSET:
        raise ExportError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    out = Path(out)
    start = time.monotonic()
    source = checkpoint if isinstance(checkpoint, (str, os.PathLike)) else checkpoint.directory
    say(f"[export 1/5] loading checkpoint {source}")
    loaded = _load_checkpoint(checkpoint)
    config, model = loaded.config, loaded.model.eval()
    digest = model_hash(loaded)
    device = next(model.parameters()).device
    inputs = fixed_inputs(config)
    example = tuple(torch.from_numpy(inputs[name]).to(device) for name in INPUT_NAMES)
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = parameter_bytes > EXTERNAL_DATA_BYTES

    say(f"[export 2/5] tracing {loaded.kind} model ({parameter_bytes / 2**20:.1f} MiB of weights, "
        f"{config.num_steps} flow steps unrolled) with the {exporter} exporter, opset {opset}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        staged = staging / out.name
        try:
            with _quiet_exporter(), torch.inference_mode(False), torch.no_grad():
                kwargs: dict[str, Any] = dict(
                    input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=opset,
                )
                if exporter == "dynamo":
                    kwargs.update(dynamo=True, external_data=external, verbose=False, optimize=True)
                else:
                    kwargs.update(dynamo=False, do_constant_folding=True)
                torch.onnx.export(model, example, str(staged), **kwargs)
        except Exception as error:
            raise ExportError(f"torch.onnx.export ({exporter}, opset {opset}) failed: {type(error).__name__}: "
                              f"{error}") from error

        say("[export 3/5] writing metadata and running onnx.checker (full check)")
        proto = onnx.load(str(staged), load_external_data=False)
        found_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        metadata = {
            "uam.format": METADATA_FORMAT,
            "uam.weights_sha256": loaded.weights_sha256,
            "uam.model_hash": digest,
            "uam.kind": loaded.kind,
            "uam.model_config": json.dumps(config.to_dict(), sort_keys=True),
            "uam.opset": str(found_opset),
            "uam.exporter": exporter,
            "uam.torch_version": torch.__version__,
            "uam.onnx_version": onnx.__version__,
            "uam.inputs": ",".join(INPUT_NAMES),
            "uam.outputs": ",".join(OUTPUT_NAMES),
            "uam.robot_name": str(loaded.meta.get("robot_name", "")),
            "uam.joint_names": json.dumps(list(loaded.meta.get("joint_names") or [])),
        }
        kept = {prop.key: prop.value for prop in proto.metadata_props if prop.key not in metadata}
        del proto.metadata_props[:]
        for key, value in {**kept, **metadata}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = (f"UAM policy ({loaded.kind}) exported by uam_ros; inputs {', '.join(INPUT_NAMES)}; "
                            f"outputs {', '.join(OUTPUT_NAMES)}")
        onnx.save(proto, str(staged))
        try:
            onnx.checker.check_model(str(staged), full_check=True)
        except Exception as error:
            raise ExportError(f"onnx.checker rejected the exported graph: {error}") from error
        if found_opset != opset:
            raise ExportError(f"exported graph has opset {found_opset}, asked for {opset}")
        ops = graph_ops(proto)
        op_names = tuple(sorted(f"{d}::{o}" if d else o for d, o in ops))
        unsupported = tuple(tensorrt_unsupported_ops(ops))
        trt = tensorrt_op_table()["tensorrt_version"]
        if unsupported:
            say(f"[export 3/5] WARNING: operators outside TensorRT {trt}'s ONNX support list: {list(unsupported)}")
        else:
            say(f"[export 3/5] {len(proto.graph.node)} nodes, {len(ops)} operator types, all in TensorRT {trt}'s "
                f"ONNX support list")

        report = None
        if verify:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                say("[export 4/5] onnxruntime not installed: skipping the ONNX Runtime vs torch check")
            else:
                say("[export 4/5] checking ONNX Runtime against torch on fixed inputs")
                reference = torch_outputs(model, inputs)
                report = compare_outputs(reference, _ort_outputs(staged, inputs), ONNX_THRESHOLDS)
                if not report.ok:
                    raise ExportError(f"exported graph does not match the PyTorch model: {report.describe()}")
                say(f"[export 4/5] {report.describe()}")
        else:
            say("[export 4/5] verification skipped")

        for item in staging.iterdir():
            os.replace(item, out.parent / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - start
    say(f"[export 5/5] wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return ExportResult(out, digest, loaded.weights_sha256, loaded.kind, opset, exporter, op_names, unsupported,
                        seconds, False, report)


def ensure_onnx(
    checkpoint,
    *,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    progress: Progress | None = None,
) -> ExportResult:
    """The cached export of checkpoint, exporting (and verifying) it on a miss.

    A cached file is reused only when it loads, passes onnx.checker and its metadata records this
    model hash and opset; otherwise it is exported again (the reason is logged).
    """
    import onnx

    say = _progress(progress)
    loaded = _load_checkpoint(checkpoint)
    path = cached_onnx_path(loaded, cache_dir, opset)
    digest = model_hash(loaded)
    if path.is_file():
        start = time.monotonic()
        try:
            proto = onnx.load(str(path), load_external_data=False)
            onnx.checker.check_model(str(path))
            metadata = {prop.key: prop.value for prop in proto.metadata_props}
            problem = ""
            if metadata.get("uam.model_hash") != digest:
                problem = f"its model hash {metadata.get('uam.model_hash')} is not {digest}"
            elif metadata.get("uam.opset") != str(opset):
                problem = f"its opset {metadata.get('uam.opset')} is not {opset}"
        except Exception as error:
            problem = f"it does not load: {type(error).__name__}: {error}"
        if not problem:
            ops = graph_ops(proto)
            say(f"ONNX export cache: hit {path}")
            return ExportResult(path, digest, loaded.weights_sha256, loaded.kind, opset,
                                metadata.get("uam.exporter", ""),
                                tuple(sorted(f"{d}::{o}" if d else o for d, o in ops)),
                                tuple(tensorrt_unsupported_ops(ops)), time.monotonic() - start, True, None)
        say(f"ONNX export cache: ignoring {path}: {problem}; exporting again")
    else:
        say(f"ONNX export cache: miss for model {digest[:16]} (opset {opset}); exporting to {path}")
    return export_onnx(loaded, path, opset=opset, exporter=exporter, verify=True, progress=say)


# --- CLI: `uam export` -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path,
                        help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--out", type=Path, default=None,
                        help="ONNX file to write (default: the export cache, see --cache-dir)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    parser.add_argument("--exporter", choices=EXPORTERS, default="dynamo",
                        help="torch.onnx exporter: dynamo (torch.export, default) or the legacy torchscript one")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache root (default: $UAM_CACHE_DIR, $XDG_CACHE_HOME/uam_ros or ~/.cache/uam_ros)")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch check")


def run(args: argparse.Namespace) -> int:
    from uam_ros.model.checkpoint import CheckpointError

    def say(message: str) -> None:
        print(message, flush=True)

    try:
        if args.out is None:
            if args.no_verify:
                say("note: --no-verify is ignored for cached exports (the cache only holds verified graphs)")
            result = ensure_onnx(args.model, cache_dir=args.cache_dir, opset=args.opset, exporter=args.exporter,
                                 progress=say)
        else:
            result = export_onnx(args.model, args.out, opset=args.opset, exporter=args.exporter,
                                 verify=not args.no_verify, progress=say)
    except (CheckpointError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    say(f"{result.path}")
    say(f"  model hash {result.model_hash}  weights sha256 {result.weights_sha256}  kind {result.kind}  "
        f"opset {result.opset}")
    say(f"  operators: {' '.join(result.ops)}")
    if result.tensorrt_unsupported:
        say(f"  NOT in TensorRT {tensorrt_op_table()['tensorrt_version']}'s ONNX support list: "
            f"{' '.join(result.tensorrt_unsupported)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uam export", description="export a UAM checkpoint to ONNX")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
