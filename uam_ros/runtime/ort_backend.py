"""The ONNX Runtime backend: the exported graph (onnx_export.ensure_onnx) in an InferenceSession.

Same processor and the same seeded noise as TorchPolicy (both are CheckpointPolicy), so for the same
seed and observations the two give the same chunks to ~1e-6.

Session: intra-op threads from the config (default cores - 1 on the CPU provider, DESIGN.md section 1;
1 on CUDA: torch_backend.default_thread_count), one inter-op
thread, ORT_ENABLE_ALL graph optimisation, and no spin-waiting by default -- a spinning ORT worker
burns the core the control timer needs. CUDAExecutionProvider is used when this onnxruntime has it
(the onnxruntime-gpu wheel) and a GPU is usable; CPU otherwise. Inputs and outputs go through IO
binding on buffers allocated once on the session's device: per inference the four inputs are copied
in place and the two outputs copied out, with no per-call allocation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uam_ros.model.checkpoint import LoadedCheckpoint
from uam_ros.runtime.onnx_export import DEFAULT_OPSET, ensure_onnx, model_hash, read_metadata
from uam_ros.runtime.parity import INPUT_NAMES, OUTPUT_NAMES
from uam_ros.runtime.torch_backend import CheckpointPolicy

LOG = logging.getLogger("uam_ros.runtime.ort_backend")

_NP_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def onnxruntime_status() -> tuple[bool, str]:
    """(usable, why) -- onnxruntime and onnx importable; which providers this build has."""
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError as error:
        return False, f"onnxruntime/onnx not installed ({error.name or error})"
    return True, f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"


def has_cuda_provider() -> bool:
    """Whether this onnxruntime build can run on a GPU (onnxruntime-gpu), without loading a model."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def choose_providers(requested: str | Sequence[str] = "auto") -> list[str]:
    """'auto' -> CUDA first when this onnxruntime build has it, then CPU; 'cpu' / 'cuda' / a list."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if isinstance(requested, str):
        if requested == "auto":
            wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif requested == "cpu":
            wanted = ["CPUExecutionProvider"]
        elif requested == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise RuntimeError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                                   f"(providers: {available}); install onnxruntime-gpu")
            wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            raise ValueError(f"providers must be 'auto', 'cpu', 'cuda' or a list, got {requested!r}")
    else:
        wanted = list(requested)
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def session_options(threads: int, *, allow_spinning: bool = False, log_severity: int = 3):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = log_severity
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


class OrtPolicy(CheckpointPolicy):
    name = "onnxruntime"

    def __init__(
        self, checkpoint_dir: str | Path, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        default_dt_s: float = 0.1, providers: str | Sequence[str] = "auto", onnx_path: str | Path | None = None,
        cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET, allow_spinning: bool = False,
        io_binding: bool = True, progress=None, checkpoint: LoadedCheckpoint | None = None,
    ) -> None:
        import onnxruntime as ort

        chosen = choose_providers(providers)
        on_gpu = chosen[0] == "CUDAExecutionProvider"
        super().__init__(checkpoint_dir, joint_names, threads=threads, seed=seed, default_dt_s=default_dt_s,
                         checkpoint=checkpoint, compute_device="cuda" if on_gpu else "cpu")
        if onnx_path is None:
            onnx_path = ensure_onnx(self.checkpoint, cache_dir=cache_dir, opset=opset, progress=progress).path
        else:
            recorded = read_metadata(onnx_path).get("uam.model_hash")
            if recorded != model_hash(self.checkpoint):
                raise ValueError(f"OrtPolicy: {onnx_path} was exported from another model (uam.model_hash "
                                 f"{recorded!r}, checkpoint {model_hash(self.checkpoint)[:16]}...)")
        self.onnx_path = Path(onnx_path)
        self.session = ort.InferenceSession(
            str(self.onnx_path), session_options(self.threads, allow_spinning=allow_spinning),
            providers=chosen,
        )
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(INPUT_NAMES):
            raise ValueError(f"OrtPolicy: {self.onnx_path} has inputs {names}, expected {list(INPUT_NAMES)}")
        self._types = {i.name: _NP_TYPES[i.type] for i in self.session.get_inputs()}
        self.io_binding = io_binding
        if io_binding:
            self._bind()

    def _bind(self) -> None:
        import onnxruntime as ort

        self._binding = self.session.io_binding()
        self._inputs: dict[str, ort.OrtValue] = {}
        self._outputs: dict[str, ort.OrtValue] = {}
        for value in self.session.get_inputs():
            buffer = ort.OrtValue.ortvalue_from_shape_and_type(value.shape, self._types[value.name], self.device, 0)
            self._binding.bind_ortvalue_input(value.name, buffer)
            self._inputs[value.name] = buffer
        for value in self.session.get_outputs():
            buffer = ort.OrtValue.ortvalue_from_shape_and_type(value.shape, _NP_TYPES[value.type], self.device, 0)
            self._binding.bind_ortvalue_output(value.name, buffer)
            self._outputs[value.name] = buffer

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw graph call: {image, tokens, state, noise} numpy -> {actions, future_frame} numpy."""
        if not self.io_binding:
            values = self.session.run(list(OUTPUT_NAMES), {k: arrays[k].astype(self._types[k], copy=False)
                                                           for k in INPUT_NAMES})
            return dict(zip(OUTPUT_NAMES, values))
        for name, buffer in self._inputs.items():
            buffer.update_inplace(np.ascontiguousarray(arrays[name], dtype=self._types[name]))
        if self.device != "cpu":
            self._binding.synchronize_inputs()
        self.session.run_with_iobinding(self._binding)
        if self.device != "cpu":
            self._binding.synchronize_outputs()
        return {name: self._outputs[name].numpy().copy() for name in OUTPUT_NAMES}

    def _forward(self, inputs):
        outputs = self.run_arrays({name: tensor.numpy() for name, tensor in inputs.items()})
        return outputs["actions"], outputs["future_frame"]
