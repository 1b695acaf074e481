"""TensorRT engine cache: the key, the on-disk layout, and the load/rebuild/refuse decisions.

A serialized TensorRT engine is only valid for the exact model, GPU model (compute capability),
TensorRT version, precision and input shapes it was built for, so those five things are the key
(DESIGN.md section 5). Everything here is plain Python and testable without TensorRT or a GPU:
tensorrt_backend.py passes in the functions that build, deserialize and check an engine.

Layout (one directory per key; the digest is the sha256 of the key's canonical JSON):

    <cache>/engines/<model_hash[:16]>/<key_digest[:16]>/
        engine.plan      the serialized engine
        key.json         {"key": {...}, "digest": ..., "engine_sha256": ..., "engine_bytes": ...,
                          "created": ..., "parity": {...}, ...}
    <cache>/engines/timing/<gpu>-sm<cc>-trt<version>.cache   TensorRT timing cache, shared by models

Decisions (obtain_engine):
    hit       key.json matches the key and engine.plan matches its recorded sha256 -> deserialize
    miss      no entry for this key -> build (the log names the fields in which other entries for
              the same model differ, e.g. "tensorrt_version: cached 10.3.0, now 10.8.0")
    mismatch  an entry in this key's place records another key -> delete it, rebuild
    corrupt   unreadable key.json, missing/truncated/altered engine.plan, or a plan that TensorRT
              refuses to deserialize -> delete it, rebuild
    parity    every engine, cached or new, is checked against the reference before use; a cached
              one that fails is deleted and rebuilt once, a new one that fails is refused
              (EngineRefused), never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from uam_ros.runtime.parity import ParityReport

LOG = logging.getLogger("uam_ros.runtime.engine_cache")

KEY_FORMAT = 1
ENGINE_FILE = "engine.plan"
SIDECAR_FILE = "key.json"
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. input_shapes: ((name, (dims...), dtype), ...)."""

    model_hash: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    input_shapes: tuple[tuple[str, tuple[int, ...], str], ...]
    format: int = KEY_FORMAT

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"EngineKey.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("model_hash", "gpu_name", "compute_capability", "tensorrt_version"):
            if not getattr(self, name):
                raise ValueError(f"EngineKey.{name} must not be empty")
        shapes = tuple(
            (str(name), tuple(int(d) for d in dims), str(dtype)) for name, dims, dtype in self.input_shapes
        )
        object.__setattr__(self, "input_shapes", tuple(sorted(shapes)))

    @classmethod
    def create(
        cls, *, model_hash: str, gpu_name: str, compute_capability: str | tuple[int, int],
        tensorrt_version: str, precision: str, input_shapes: Mapping[str, tuple[Sequence[int], str]],
    ) -> EngineKey:
        if not isinstance(compute_capability, str):
            compute_capability = ".".join(str(int(part)) for part in compute_capability)
        return cls(
            model_hash=model_hash, gpu_name=gpu_name, compute_capability=compute_capability,
            tensorrt_version=tensorrt_version, precision=precision,
            input_shapes=tuple((name, tuple(dims), dtype) for name, (dims, dtype) in input_shapes.items()),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shapes"] = [[name, list(dims), dtype] for name, dims, dtype in self.input_shapes]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineKey:
        return cls(
            model_hash=data["model_hash"], gpu_name=data["gpu_name"],
            compute_capability=str(data["compute_capability"]), tensorrt_version=data["tensorrt_version"],
            precision=data["precision"],
            input_shapes=tuple((name, tuple(dims), dtype) for name, dims, dtype in data["input_shapes"]),
            format=int(data.get("format", KEY_FORMAT)),
        )

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        """'field: cached X, now Y' for each field in which other (a cached key) differs from self."""
        out = []
        for name in ("model_hash", "gpu_name", "compute_capability", "tensorrt_version", "precision",
                     "input_shapes", "format"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if name == "input_shapes":
                    mine, theirs = _shapes_text(mine), _shapes_text(theirs)
                out.append(f"{name}: cached {theirs}, now {mine}")
        return out

    def describe(self) -> str:
        return (f"model {self.model_hash[:12]}, {self.gpu_name} (sm {self.compute_capability}), "
                f"TensorRT {self.tensorrt_version}, {self.precision}, inputs {_shapes_text(self.input_shapes)}")


def _shapes_text(shapes: tuple) -> str:
    return " ".join(f"{name}{list(dims)}:{dtype}" for name, dims, dtype in shapes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Lookup:
    status: str  # "hit" | "miss" | "mismatch" | "corrupt"
    directory: Path
    reason: str
    engine: bytes | None = None
    sidecar: dict[str, Any] = field(default_factory=dict)


class EngineCache:
    """The directory of cached engines (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_dir(self, key: EngineKey) -> Path:
        return self.root / key.model_hash[:16] / key.digest()[:16]

    def engine_path(self, key: EngineKey) -> Path:
        return self.entry_dir(key) / ENGINE_FILE

    def timing_cache_path(self, key: EngineKey) -> Path:
        name = f"{_slug(key.gpu_name)}-sm{key.compute_capability}-trt{key.tensorrt_version}.cache"
        return self.root / "timing" / name

    # --- reading -------------------------------------------------------------------------------
    def lookup(self, key: EngineKey) -> Lookup:
        directory = self.entry_dir(key)
        sidecar_path, engine_path = directory / SIDECAR_FILE, directory / ENGINE_FILE
        if not directory.exists():
            return Lookup("miss", directory, self._miss_reason(key))
        try:
            sidecar = json.loads(sidecar_path.read_text())
            stored = EngineKey.from_dict(sidecar["key"])
        except FileNotFoundError:
            return Lookup("corrupt", directory, f"{SIDECAR_FILE} is missing (interrupted write?)")
        except (OSError, ValueError, KeyError, TypeError) as error:
            return Lookup("corrupt", directory, f"{SIDECAR_FILE} is unreadable: {type(error).__name__}: {error}")
        if stored != key:
            reason = "cached engine was built for another key: " + "; ".join(key.differences(stored))
            return Lookup("mismatch", directory, reason, None, sidecar)
        try:
            engine = engine_path.read_bytes()
        except OSError as error:
            return Lookup("corrupt", directory, f"{ENGINE_FILE} is unreadable: {error}", None, sidecar)
        expected_size, expected_sha = sidecar.get("engine_bytes"), sidecar.get("engine_sha256")
        if len(engine) != expected_size:
            reason = f"{ENGINE_FILE} has {len(engine)} bytes, {SIDECAR_FILE} records {expected_size}"
            return Lookup("corrupt", directory, reason, None, sidecar)
        if sha256_bytes(engine) != expected_sha:
            return Lookup("corrupt", directory, f"{ENGINE_FILE} sha256 does not match {SIDECAR_FILE}", None, sidecar)
        return Lookup("hit", directory, f"cached engine {directory}", engine, sidecar)

    def entries(self, model_hash: str | None = None) -> list[tuple[Path, EngineKey | None]]:
        """(directory, key or None when unreadable) of every entry, optionally of one model."""
        if not self.root.is_dir():
            return []
        groups = [self.root / model_hash[:16]] if model_hash else [p for p in self.root.iterdir() if p.name != "timing"]
        found = []
        for group in groups:
            if not group.is_dir():
                continue
            for directory in sorted(p for p in group.iterdir() if p.is_dir() and not p.name.startswith(".")):
                try:
                    key = EngineKey.from_dict(json.loads((directory / SIDECAR_FILE).read_text())["key"])
                except (OSError, ValueError, KeyError, TypeError):
                    key = None
                found.append((directory, key))
        return found

    def _miss_reason(self, key: EngineKey) -> str:
        others = [other for _, other in self.entries(key.model_hash) if other is not None and other != key]
        if not others:
            return "no cached engine for this model"
        nearest = min(others, key=lambda other: len(key.differences(other)))
        return (f"no cached engine for this key; {len(others)} other engine(s) for this model differ "
                f"(nearest: {'; '.join(key.differences(nearest))})")

    # --- writing -------------------------------------------------------------------------------
    def store(self, key: EngineKey, engine: bytes, extra: Mapping[str, Any] | None = None) -> Path:
        """Write engine + sidecar atomically (a temp directory renamed into place); returns the entry dir."""
        directory = self.entry_dir(key)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            (staging / ENGINE_FILE).write_bytes(engine)
            sidecar = {
                "key": key.to_dict(),
                "digest": key.digest(),
                "engine_sha256": sha256_bytes(engine),
                "engine_bytes": len(engine),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **dict(extra or {}),
            }
            (staging / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
            self.remove(directory)
            os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    def remove(self, directory: str | Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)


# --- the decision procedure ----------------------------------------------------------------------
E = TypeVar("E")


class EngineBuildError(RuntimeError):
    """The engine could not be built (or a freshly built one could not be deserialized)."""


class EngineRefused(RuntimeError):
    """A freshly built engine failed the parity check; it is not stored and must not be used."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class EngineResult(Generic[E]):
    engine: E
    source: str  # "cache" | "built"
    directory: Path
    report: ParityReport
    events: list[str]


def obtain_engine(
    cache: EngineCache,
    key: EngineKey,
    *,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], E | None],
    verify: Callable[[E], ParityReport],
    log: Callable[[str], None] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> EngineResult[E]:
    """Return a verified engine for key: from the cache when valid, else built and stored.

    build() -> serialized engine bytes; deserialize(bytes) -> engine, or None / raises when the
    bytes are not a usable engine; verify(engine) -> ParityReport against the reference.
    Raises EngineBuildError or EngineRefused; never returns an engine that failed verify().
    """
    events: list[str] = []

    def note(message: str, level: int = logging.INFO) -> None:
        events.append(message)
        LOG.log(level, message)
        if log is not None:
            log(message)

    def load(data: bytes) -> tuple[E | None, str]:
        try:
            engine = deserialize(data)
        except Exception as error:  # TensorRT raises or returns None for a bad plan
            return None, f"{type(error).__name__}: {error}"
        return (engine, "") if engine is not None else (None, "deserialize returned None")

    found = cache.lookup(key)
    if found.status == "hit":
        engine, problem = load(found.engine)
        if engine is None:
            note(f"TensorRT engine cache: {found.directory / ENGINE_FILE} does not deserialize ({problem}); "
                 f"deleting it and rebuilding", logging.WARNING)
            cache.remove(found.directory)
        else:
            report = verify(engine)
            if report.ok:
                note(f"TensorRT engine cache: hit {found.directory} ({key.describe()}); {report.describe()}")
                return EngineResult(engine, "cache", found.directory, report, events)
            note(f"TensorRT engine cache: cached engine {found.directory} fails the parity check "
                 f"({report.describe()}); deleting it and rebuilding", logging.WARNING)
            cache.remove(found.directory)
    elif found.status in ("corrupt", "mismatch"):
        note(f"TensorRT engine cache: {found.status} entry {found.directory}: {found.reason}; deleting it and "
             f"rebuilding", logging.WARNING)
        cache.remove(found.directory)
    else:
        note(f"TensorRT engine cache: miss ({found.reason}); building for {key.describe()}")

    start = time.monotonic()
    try:
        data = build()
    except Exception as error:
        raise EngineBuildError(f"TensorRT engine build failed for {key.describe()}: {error}") from error
    if not data:
        raise EngineBuildError(f"TensorRT engine build returned no engine for {key.describe()}")
    build_s = time.monotonic() - start
    engine, problem = load(data)
    if engine is None:
        raise EngineBuildError(f"a freshly built TensorRT engine does not deserialize: {problem}")
    report = verify(engine)
    if not report.ok:
        note(f"TensorRT engine REFUSED for {key.describe()}: {report.describe()}", logging.ERROR)
        raise EngineRefused(
            f"TensorRT engine ({key.precision}) refused: its outputs differ from the PyTorch model on fixed "
            f"inputs: {report.describe()}", report,
        )
    directory = cache.store(key, data, {"build_s": round(build_s, 3), "parity": report.to_dict(), **dict(extra or {})})
    note(f"TensorRT engine built in {build_s:.1f} s and cached at {directory}; {report.describe()}")
    return EngineResult(engine, "built", directory, report, events)
