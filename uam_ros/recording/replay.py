"""`uam replay FILE.mcap --model M`: re-run a policy offline on a recording and compare its actions.

The recorded camera frames, joint states and instruction are turned back into the observations
the node built (uam_ros.recording.observations, which reuses the node's conversion, validation and
synchronisation code), fed to a policy built by uam_ros.runtime.factory exactly as the node builds
it (same backend, seed, thread count and warm-up, so the seeded noise sequence starts at the same
point), and the returned chunks are compared with

  * the chunks the model returned during the run (in-node recordings only): the reproduction
    check. Same model, same inputs, same noise draw -> the same chunk, up to floating-point
    differences (see "identical" below);
  * the trajectories the node commanded (or, in dry-run, published on ~/predicted_trajectory):
    each point is matched to the replayed chunk point meant for the same instant. These differ
    from the raw chunk by design where the node blended a new chunk into the previous one (the
    first `blend_steps` points) or the safety filter clamped it, so they are also reported for
    the points after the blend window.

"identical": the flow-matching noise is an explicit input drawn from a CPU torch generator seeded
with the node's `seed` and restarted after warm-up (uam_ros.runtime.torch_backend); inference k
of the run used draw k. An in-node recording numbers the inferences, so replay draws the same
noise for the same observation, and a deterministic model reproduces each chunk to float32
rounding (max |difference| <= 1e-5 rad by default, --tolerance). A `uam record` recording has no
inference numbers: replay assumes every inference produced a published chunk from the first one
on; when some did not (refused, late, started recording mid-run), a noise-driven model's chunks
differ by the noise, and only noise-free policies (expert://) compare exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uam_ros.control.inputs import InputRejected
from uam_ros.recording.observations import (RecordedInputs, RecordedTrajectory, Target, inferred_targets,
                                            recorded_targets, trajectories)
from uam_ros.recording.reader import read_recording

DEFAULT_TOLERANCE = 1e-5


class DiffStats:
    """Per-joint max and mean |replayed - recorded| over everything added."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.max = np.zeros(len(names))
        self.sum = np.zeros(len(names))
        self.points = 0
        self.items = 0  # chunks or trajectories compared

    def add(self, replayed: np.ndarray, recorded: np.ndarray) -> None:
        diff = np.abs(np.asarray(replayed, dtype=np.float64) - np.asarray(recorded, dtype=np.float64))
        diff = diff.reshape(-1, len(self.names))
        if diff.size:
            self.max = np.maximum(self.max, diff.max(axis=0))
            self.sum += diff.sum(axis=0)
            self.points += diff.shape[0]
        self.items += 1

    @property
    def overall_max(self) -> float | None:
        return float(self.max.max()) if self.points else None

    def per_joint(self) -> dict[str, dict[str, float]]:
        if not self.points:
            return {}
        mean = self.sum / self.points
        return {name: {"max": float(m), "mean": float(a)} for name, m, a in zip(self.names, self.max, mean)}


@dataclass
class ReplayReport:
    file: str
    complete: bool
    problem: str
    model: str
    backend: str
    robot: str
    recorder: str
    inferences: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # observations that could not be rebuilt, by reason
    noise_gaps: int = 0  # inference numbers with no recorded observation (noise drawn and discarded)
    state_max_abs_diff: float | None = None  # rebuilt vs submitted state vectors (in-node recordings)
    chunks: DiffStats | None = None
    commands: DiffStats | None = None
    commands_after_blend: DiffStats | None = None
    command_source: str = ""
    holds: int = 0
    unmatched_trajectories: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    replay_s: float = 0.0

    @property
    def identical(self) -> bool | None:
        """True when every recorded chunk was reproduced within tolerance (None: no recorded chunks)."""
        if self.chunks is None or not self.chunks.items:
            return None
        return self.chunks.overall_max is not None and self.chunks.overall_max <= self.tolerance

    def to_json(self) -> dict:
        def stats(s: DiffStats | None) -> dict | None:
            if s is None:
                return None
            return {"compared": s.items, "points": s.points, "max_abs_diff": s.overall_max, "joints": s.per_joint()}

        return {
            "file": self.file, "complete": self.complete, "problem": self.problem, "model": self.model,
            "backend": self.backend, "robot": self.robot, "recorder": self.recorder,
            "inferences_replayed": self.inferences, "skipped": self.skipped, "noise_gaps": self.noise_gaps,
            "observation_state_max_abs_diff": self.state_max_abs_diff,
            "chunks": stats(self.chunks), "commands": stats(self.commands),
            "commands_after_blend": stats(self.commands_after_blend), "command_source": self.command_source,
            "holds_skipped": self.holds, "unmatched_trajectories": self.unmatched_trajectories,
            "tolerance": self.tolerance, "identical": self.identical, "replay_s": round(self.replay_s, 3),
        }

    def table(self) -> str:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.2e}"

        lines = [
            f"replay of {self.file} ({'complete' if self.complete else 'cut short: ' + self.problem})",
            f"  recorded by {self.recorder or '?'}; robot {self.robot}; model {self.model}; backend {self.backend}",
            f"  inferences replayed: {self.inferences}"
            + (f"; skipped {sum(self.skipped.values())} {self.skipped}" if self.skipped else "")
            + (f"; noise gaps {self.noise_gaps}" if self.noise_gaps else ""),
        ]
        if self.state_max_abs_diff is not None:
            lines.append(f"  observation state vs submitted: max |diff| {fmt(self.state_max_abs_diff)}")
        if self.chunks is not None:
            lines.append(f"  chunks compared: {self.chunks.items} (raw model output, before blending and safety)")
        if self.commands is not None:
            lines.append(f"  trajectories compared: {self.commands.items} on {self.command_source} "
                         f"({self.holds} holds skipped, {self.unmatched_trajectories} without a replayed chunk)")
        sources = [("chunk", self.chunks), ("command", self.commands), ("after blend", self.commands_after_blend)]
        sources = [(label, s) for label, s in sources if s is not None and s.points]
        if sources:
            names = sources[0][1].names
            width = max(len(n) for n in names + ["joint"])
            header = f"  {'joint':<{width}}" + "".join(f" | {label + ' max':>17} {label + ' mean':>18}"
                                                         for label, _ in sources)
            lines += [header, "  " + "-" * (len(header) - 2)]
            for name in names:
                row = f"  {name:<{width}}"
                for _, s in sources:
                    joint = s.per_joint().get(name)
                    row += f" | {fmt(joint and joint['max']):>17} {fmt(joint and joint['mean']):>18}"
                lines.append(row)
        verdict = self.identical
        if verdict is not None:
            lines.append(f"  reproduced: {'yes' if verdict else 'NO'} "
                         f"(max chunk |diff| {fmt(self.chunks.overall_max)}, "
                         f"tolerance {self.tolerance:g})")
        return "\n".join(lines)


@dataclass(frozen=True)
class ReplayedChunk:
    ordinal: int
    stamp_ns: int  # observation stamp
    positions: np.ndarray  # (H, A)
    dt_ns: int
    polled_ns: int | None  # when the node took the recorded chunk from its worker (in-node recordings)


def _aligned_steps(trajectory: RecordedTrajectory, chunk: ReplayedChunk) -> np.ndarray | None:
    """Chunk indices (from 1) of the trajectory's points, when every point falls on a chunk instant."""
    from uam_ros.recording.observations import STAMP_TOLERANCE_NS

    if chunk.stamp_ns > trajectory.stamp_ns:
        return None
    offsets = (trajectory.times_ns - chunk.stamp_ns) / chunk.dt_ns
    steps = np.round(offsets).astype(int)
    if (np.all(np.abs(offsets - steps) * chunk.dt_ns <= STAMP_TOLERANCE_NS)
            and steps.min() >= 1 and steps.max() <= chunk.positions.shape[0]):
        return steps
    return None


class ChunkMatcher:
    """Which replayed chunk a published trajectory came from.

    In-node recordings know: the node publishes a chunk in the control tick that took it from the
    worker, so it is the last chunk polled at or before the trajectory was recorded. Otherwise the
    timing decides: the newest chunk observed before the trajectory whose instants its points fall
    on; of chunks from the same image (a new instruction re-plans on the same frame) the earliest
    not matched yet, since the node publishes chunks in the order it gets them."""

    def __init__(self, chunks: list[ReplayedChunk]) -> None:
        self.chunks = sorted(chunks, key=lambda c: c.ordinal)
        self.polled = sorted((c for c in self.chunks if c.polled_ns is not None), key=lambda c: c.polled_ns)
        self.polled_ns = [c.polled_ns for c in self.polled]
        self.used: set[int] = set()

    def match(self, trajectory: RecordedTrajectory) -> tuple[np.ndarray, ReplayedChunk] | None:
        if self.polled:
            index = bisect_right(self.polled_ns, trajectory.log_time_ns)
            candidates = self.polled[index - 1:index] if index else []
        else:
            aligned = [c for c in self.chunks
                       if c.ordinal not in self.used and _aligned_steps(trajectory, c) is not None]
            newest = max((c.stamp_ns for c in aligned), default=None)
            candidates = [c for c in aligned if c.stamp_ns == newest][:1]
        for chunk in candidates:
            steps = _aligned_steps(trajectory, chunk)
            if steps is not None:
                self.used.add(chunk.ordinal)
                return chunk.positions[steps - 1], chunk
        return None


def replay(path: str | Path, model: str = "", backend: str = "", *, robot: str = "", seed: int | None = None,
           threads: int | None = None, instruction: str | None = None,
           tolerance: float = DEFAULT_TOLERANCE) -> ReplayReport:
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.runtime.factory import BACKENDS, create_policy

    recording = read_recording(path)
    meta = recording.metadata.get("uam_ros", {})
    robot_name = robot or meta.get("robot_config") or meta.get("robot") or "franka_panda"
    model = model or meta.get("model", "")
    if not model:
        raise ValueError(f"{path} does not say which model ran (recorded by `uam record`?): pass --model")
    recorded_backend = meta.get("backend", "")
    backend = backend or (recorded_backend if recorded_backend in BACKENDS else "auto")
    config = load_robot_config(robot_name)
    report = ReplayReport(str(path), recording.complete, recording.problem, model, backend, config.name,
                          meta.get("recorder", ""), tolerance=tolerance)
    start = time.monotonic()

    choice = create_policy(backend, model, config.action_joint_names,
                           threads=int(meta.get("inference_threads", 0)) if threads is None else threads,
                           seed=int(meta.get("seed", 0)) if seed is None else seed,
                           default_dt_s=1.0 / config.chunk.action_rate_hz, robot=robot_name,
                           chunk_size=config.chunk.chunk_size)
    policy = choice.policy
    report.backend = choice.name
    policy.warmup()  # as the node does; a seeded backend restarts its noise afterwards
    dt_ns = int(round(float(getattr(policy, "dt_s", 1.0 / config.chunk.action_rate_hz)) * 1e9))

    inputs = RecordedInputs(recording, config, meta.get("instruction", "") if instruction is None else instruction)
    commands = trajectories(recording.on(recording.role_topic("command")))
    report.command_source = recording.role_topic("command") or ""
    if not any(not t.is_hold for t in commands):  # dry-run: the node only published its predictions
        commands = trajectories(recording.on(recording.role_topic("predicted_trajectory")))
        report.command_source = recording.role_topic("predicted_trajectory") or ""

    targets = recorded_targets(recording)
    in_node = bool(targets)
    if not in_node:
        period_ns = int(round(1e9 / config.control.rate_hz))
        targets, _ = inferred_targets(inputs, commands, dt_ns, config.chunk.chunk_size, period_ns)
    if in_node:
        report.chunks = DiffStats(config.action_joint_names)

    replayed: list[ReplayedChunk] = []
    state_diff = 0.0
    unreplayable = 0  # inferences the node ran that cannot be rebuilt; their noise is drawn and discarded
    by_ordinal = {t.ordinal: t for t in targets}
    for ordinal in range(1, (max(by_ordinal) if by_ordinal else 0) + 1):
        target: Target | None = by_ordinal.get(ordinal)
        if target is None:  # the recording lost this observation (its queue was full)
            report.noise_gaps += 1
            unreplayable += 1
            continue
        try:
            observation = inputs.observation(target)
        except InputRejected as exc:
            report.skipped[exc.reason] = report.skipped.get(exc.reason, 0) + 1
            unreplayable += 1
            continue
        for _ in range(unreplayable):  # keep inference k on noise sample k
            policy.infer(observation)
        unreplayable = 0
        chunk = policy.infer(observation)
        positions = np.asarray(chunk.positions, dtype=np.float64)
        report.inferences += 1
        replayed.append(ReplayedChunk(ordinal, target.image_stamp_ns, positions, int(round(chunk.dt_s * 1e9)),
                                      target.polled_ns))
        if target.recorded_state is not None and target.recorded_state.shape == observation.state.shape:
            state_diff = max(state_diff, float(np.max(np.abs(target.recorded_state - observation.state))))
        if target.recorded_chunk is not None and report.chunks is not None:
            if target.recorded_chunk.shape == positions.shape:
                report.chunks.add(positions, target.recorded_chunk)
            else:
                report.skipped["chunk_shape"] = report.skipped.get("chunk_shape", 0) + 1
    if in_node:
        report.state_max_abs_diff = state_diff

    _compare_commands(report, config, commands, replayed)
    report.replay_s = time.monotonic() - start
    return report


def _compare_commands(report: ReplayReport, config, commands: list[RecordedTrajectory],
                      replayed: list[ReplayedChunk]) -> None:
    arm = list(config.joints.names)
    report.commands = DiffStats(arm)
    report.commands_after_blend = DiffStats(arm)
    blend_steps = config.chunk.blend_steps if config.chunk.blend == "linear" else 0
    matcher = ChunkMatcher(replayed)
    for trajectory in commands:
        if trajectory.is_hold:
            report.holds += 1
            continue
        matched = matcher.match(trajectory)
        if matched is None or set(trajectory.joint_names) != set(arm):
            report.unmatched_trajectories += 1
            continue
        rows, _ = matched
        order = [trajectory.joint_names.index(name) for name in arm]
        recorded = trajectory.positions[:, order]
        report.commands.add(rows[:, : len(arm)], recorded)
        if recorded.shape[0] > blend_steps:
            report.commands_after_blend.add(rows[blend_steps:, : len(arm)], recorded[blend_steps:])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a recording (uam_policy record:=FILE or `uam record`)")
    parser.add_argument("--model", default="", help="checkpoint directory, expert://... or python://... "
                        "(default: the model the recording names)")
    parser.add_argument("--backend", default="", choices=("", "auto", "tensorrt", "onnxruntime", "torch"),
                        help="inference backend (default: the recorded one)")
    parser.add_argument("--robot", default="", help="robot config (default: the recorded one)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default: the recorded one)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the recorded count)")
    parser.add_argument("--instruction", default=None, help="instruction when none was recorded "
                        "(default: the node's instruction parameter, from the recording)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="max |chunk difference| [rad] that counts as reproduced")
    parser.add_argument("--json", default="", metavar="PATH", help="also write the report as JSON ('-': stdout only)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every recorded chunk was reproduced")


def run(args: argparse.Namespace) -> int:
    try:
        report = replay(args.file, args.model, args.backend, robot=args.robot, seed=args.seed, threads=args.threads,
                        instruction=args.instruction, tolerance=args.tolerance)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = json.dumps(report.to_json(), indent=2)
    if args.json == "-":
        print(data)
    else:
        print(report.table())
        if args.json:
            Path(args.json).write_text(data + "\n")
    if args.check and report.identical is not True:
        return 1
    return 0
