"""The TensorRT backend (TensorRT 10 Python API): engine build from the ONNX export, cache, parity, run.

    checkpoint --ensure_onnx--> model.onnx --trt.OnnxParser--> INetworkDefinition
        --builder config (precision flag, optimisation profile, timing cache, progress monitor)-->
        serialized engine --EngineCache (key: model hash, GPU + compute capability, TensorRT version,
        precision, input shapes)--> deserialize_cuda_engine --parity vs torch on fixed inputs--> use

Everything here that needs TensorRT or CUDA imports them inside functions, so this module imports
(and tensorrt_status() answers) on a machine without either; the key, cache and decision logic
live in engine_cache.py and are tested without TensorRT. Buffers are torch CUDA tensors allocated
once; inference copies the inputs in, calls execute_async_v3 on a dedicated stream and copies the
outputs out.

Precision: fp16 (default) or bf16 set the builder flag and keep LayerNorm layers in FP32 (a
reduction over d_model in half precision is where FP16 transformer engines lose accuracy); fp32
clears TF32 so the engine is IEEE FP32. The parity thresholds per precision are in parity.THRESHOLDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from uam_ros.model.checkpoint import LoadedCheckpoint
from uam_ros.runtime.engine_cache import EngineCache, EngineKey, obtain_engine
from uam_ros.runtime.onnx_export import DEFAULT_OPSET, default_cache_dir, ensure_onnx, io_shapes
from uam_ros.runtime.parity import (
    OUTPUT_NAMES,
    ParityThresholds,
    compare_outputs,
    fixed_inputs,
    thresholds_for,
    torch_outputs,
)
from uam_ros.runtime.torch_backend import CheckpointPolicy

LOG = logging.getLogger("uam_ros.runtime.tensorrt_backend")


class TensorRTUnavailable(RuntimeError):
    """tensorrt does not import, or there is no CUDA device to run it on."""


def tensorrt_status() -> tuple[bool, str]:
    """(usable, why): tensorrt imports and torch sees a CUDA GPU (buffers are torch CUDA tensors)."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, "tensorrt is not installed"
    except Exception as error:  # a broken install (missing libnvinfer) raises OSError and friends
        return False, f"tensorrt failed to import: {type(error).__name__}: {error}"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, f"TensorRT {trt.__version__} imports but torch sees no CUDA GPU"
        name = torch.cuda.get_device_name(0)
    except Exception as error:
        return False, f"TensorRT {trt.__version__} imports but CUDA is not usable: {error}"
    return True, f"TensorRT {trt.__version__} on {name}"


def gpu_identity(device_index: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of a CUDA device."""
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return torch.cuda.get_device_name(device_index), f"{major}.{minor}"


def engine_key(model_hash: str, onnx_path: str | Path, precision: str, gpu: tuple[str, str],
               tensorrt_version: str) -> EngineKey:
    return EngineKey.create(model_hash=model_hash, gpu_name=gpu[0], compute_capability=gpu[1],
                            tensorrt_version=tensorrt_version, precision=precision,
                            input_shapes=io_shapes(onnx_path))


# --- build ---------------------------------------------------------------------------------------
def _progress_monitor(say: Callable[[str], None]):
    """A trt.IProgressMonitor printing phase starts/ends and, at most every 2 s, step counts."""
    import tensorrt as trt

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()  # TensorRT may call from several internal threads
            self._phases: dict[str, tuple[int, int, float]] = {}  # name -> (steps, depth, start)
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                depth = self._phases[parent_phase][1] + 1 if parent_phase in self._phases else 0
                self._phases[phase_name] = (num_steps, depth, time.monotonic())
                say(f"[engine build] {'  ' * depth}{phase_name}: {num_steps} step(s)")

        def step_complete(self, phase_name, step):
            with self._lock:
                now = time.monotonic()
                steps, depth, _ = self._phases.get(phase_name, (0, 0, now))
                if now - self._last >= 2.0:
                    self._last = now
                    say(f"[engine build] {'  ' * depth}{phase_name}: {step + 1}/{steps}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                steps, depth, start = self._phases.pop(phase_name, (0, 0, time.monotonic()))
                if depth <= 1:
                    say(f"[engine build] {'  ' * depth}{phase_name}: done in {time.monotonic() - start:.1f} s")

    return BuildProgress()


def build_serialized_engine(
    onnx_path: str | Path, precision: str, *, timing_cache: Path | None = None, workspace_mb: int = 2048,
    progress: Callable[[str], None] | None = None,
) -> bytes:
    """Parse the ONNX file and build a serialized engine (TensorRT 10 builder API)."""
    import tensorrt as trt

    say = progress or LOG.info
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    say(f"[engine build] parsing {onnx_path}")
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision in ("fp16", "bf16"):
        flag = getattr(trt.BuilderFlag, precision.upper(), None)
        if flag is None:
            raise RuntimeError(f"TensorRT {trt.__version__} has no BuilderFlag.{precision.upper()}")
        if precision == "fp16" and not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in 10.x
            say("[engine build] warning: this GPU has no fast FP16; the engine may be slower than FP32")
        config.set_flag(flag)
        kept = 0
        for index in range(network.num_layers):
            layer = network.get_layer(index)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
                kept += 1
        if kept:
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            say(f"[engine build] {precision}: {kept} normalisation layer(s) kept in FP32")
    elif precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")

    # Static shapes: one profile with min = opt = max (required as soon as any input is dynamic).
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise RuntimeError(f"input {tensor.name} has dynamic shape {shape}; the export must be static")
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)

    cache = None
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        try:
            cache = config.create_timing_cache(blob)
        except Exception as error:  # unreadable cache file: start a new one
            say(f"[engine build] ignoring unreadable timing cache {timing_cache}: {error}")
            cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        say(f"[engine build] timing cache {timing_cache} ({len(blob)} bytes)")
    monitor = _progress_monitor(say)  # must outlive the build
    config.progress_monitor = monitor

    say(f"[engine build] building {precision} engine (TensorRT {trt.__version__}); this takes a while once")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("builder.build_serialized_network returned None (see the TensorRT log above)")
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = timing_cache.with_suffix(".tmp")
        tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))
        tmp.replace(timing_cache)
    return bytes(serialized)


# --- run ------------------------------------------------------------------------------------------
class TrtEngine:
    """A deserialized engine with its execution context, stream and torch CUDA I/O buffers."""

    def __init__(self, data: bytes, device_index: int = 0) -> None:
        import tensorrt as trt
        import torch

        self.device = torch.device("cuda", device_index)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("deserialize_cuda_engine returned None (corrupt plan or another TensorRT/GPU)")
        self.context = self.engine.create_execution_context()
        names = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
                 "INT64": torch.int64, "BOOL": torch.bool, "INT8": torch.int8, "UINT8": torch.uint8}
        dtypes = {getattr(trt.DataType, n): t for n, t in names.items() if hasattr(trt.DataType, n)}
        self.stream = torch.cuda.Stream(device=self.device)
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.host_outputs: dict[str, torch.Tensor] = {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            shape = tuple(self.engine.get_tensor_shape(name))
            tensor = torch.empty(shape, dtype=dtypes[self.engine.get_tensor_dtype(name)], device=self.device)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, shape)
                self.inputs[name] = tensor
            else:
                self.outputs[name] = tensor
                self.host_outputs[name] = torch.empty(shape, dtype=tensor.dtype).pin_memory()
            self.context.set_tensor_address(name, tensor.data_ptr())

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.cuda.stream(self.stream):
            for name, buffer in self.inputs.items():
                buffer.copy_(torch.from_numpy(np.ascontiguousarray(arrays[name])), non_blocking=False)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            for name, buffer in self.outputs.items():
                self.host_outputs[name].copy_(buffer, non_blocking=True)
        self.stream.synchronize()
        return {name: self.host_outputs[name].float().numpy().copy() for name in OUTPUT_NAMES}


class TensorRTPolicy(CheckpointPolicy):
    name = "tensorrt"

    def __init__(
        self, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        default_dt_s: float = 0.1, precision: str = "fp16", cache_dir: str | Path | None = None,
        opset: int = DEFAULT_OPSET, device_index: int = 0, workspace_mb: int = 2048,
        thresholds: ParityThresholds | None = None, progress: Callable[[str], None] | None = None,
        checkpoint: LoadedCheckpoint | None = None,
    ) -> None:
        usable, why = tensorrt_status()
        if not usable:
            raise TensorRTUnavailable(why)
        import tensorrt as trt

        super().__init__(checkpoint_dir, joint_names, threads=threads, seed=seed, default_dt_s=default_dt_s,
                         checkpoint=checkpoint, compute_device="cuda")
        say = progress or LOG.info
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        export = ensure_onnx(self.checkpoint, cache_dir=root, opset=opset, progress=say)
        if export.tensorrt_unsupported:
            say(f"warning: the ONNX graph uses operators outside TensorRT's support list: "
                f"{list(export.tensorrt_unsupported)}")
        self.precision = precision
        self.gpu = gpu_identity(device_index)
        self.tensorrt_version = trt.__version__
        self.key = engine_key(export.model_hash, export.path, precision, self.gpu, self.tensorrt_version)
        cache = EngineCache(root / "engines")

        # The reference: the PyTorch model on CPU in FP32, once, on fixed inputs.
        model = self.checkpoint.model.to("cpu").eval()
        inputs = fixed_inputs(self.config)
        reference = torch_outputs(model, inputs)
        limits = thresholds or thresholds_for(precision)

        result = obtain_engine(
            cache, self.key,
            build=lambda: build_serialized_engine(
                export.path, precision, timing_cache=cache.timing_cache_path(self.key), workspace_mb=workspace_mb,
                progress=say),
            deserialize=lambda data: TrtEngine(data, device_index),
            verify=lambda engine: compare_outputs(reference, engine.run(inputs), limits),
            log=say,
            extra={"onnx": str(export.path), "weights_sha256": self.checkpoint.weights_sha256},
        )
        self.engine: TrtEngine = result.engine
        self.engine_source = result.source
        self.engine_dir = result.directory
        self.parity = result.report

    def describe(self) -> str:
        return (f"TensorRT {self.tensorrt_version} {self.precision} engine ({self.engine_source}) on {self.gpu[0]} "
                f"(sm {self.gpu[1]}); {self.parity.describe()}")

    def _forward(self, inputs):
        outputs = self.engine.run({name: tensor.numpy() for name, tensor in inputs.items()})
        return outputs["actions"], outputs["future_frame"]
