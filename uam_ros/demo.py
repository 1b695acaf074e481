"""`uam demo`: the closed loop on this machine — uam_sim + uam_policy over real DDS, headless.

Each episode: reset the sim to (task, split, seed), start uam_policy enabled on that episode's
instruction, and wait for the sim to report success or for the task's time limit. Writes an mp4
per episode, a contact sheet and metrics.json. Runs in a private ROS domain on localhost so it can
never reach a real robot's driver on the same host.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from uam_ros.ros.bringup import SPLITS, sim_clock_parameters
from uam_ros.ros.node_process import NodeProcess

SIM_CAMERA_RATE_HZ = 15.0  # the demo's uam_sim camera rate (world time): videos and the success report lag


@dataclass
class EpisodeTimer:
    """What the demo sees of one episode, on the monotonic clock: the policy's first command (the
    task's time starts there: the node may export or build an engine first) and the first success.

    Success is latched: the episode counts as solved the first time uam_sim reports the task's
    predicate, as the in-process evaluation stops at it (uam_ros.train.sim_policy), even if the arm
    drifts out of the goal region afterwards; and only within the task's time budget.
    """

    commands: int = 0
    first_command_s: float | None = None
    success_s: float | None = None

    def on_command(self, now_s: float) -> None:
        self.commands += 1
        if self.first_command_s is None:
            self.first_command_s = now_s

    def on_success(self, value: bool, now_s: float) -> None:
        if value and self.success_s is None:
            self.success_s = now_s

    def time_to_success_s(self, budget_s: float) -> float | None:
        """Seconds from the first command to success; None if not solved within budget_s of it."""
        if self.first_command_s is None or self.success_s is None:
            return None
        elapsed = self.success_s - self.first_command_s
        return elapsed if elapsed <= budget_s else None


@dataclass
class EpisodeResult:
    robot: str
    task: str
    split: str
    seed: int
    instruction: str
    success: bool
    time_to_success_s: float | None
    wall_s: float
    commands: int
    video: str
    overlay_video: str = ""


def _write_video(frames: list[np.ndarray], path: Path, fps: float, scale: int = 3) -> None:
    import cv2

    if not frames:
        return
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w * scale, h * scale))
    for frame in frames:
        big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    writer.release()


def _contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, columns: int = 6) -> None:
    import cv2

    tiles = []
    for label, frames in rows:
        if not frames:
            continue
        picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, columns)]
        row = np.concatenate([cv2.resize(f, (192, 192), interpolation=cv2.INTER_AREA) for f in picks], axis=1)
        band = np.full((28, row.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label[:110], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([band, row], axis=0))
    if tiles:
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))


@dataclass
class _Chunk:
    """A predicted trajectory as the overlay needs it."""

    stamp_s: float
    times_s: np.ndarray  # (N,) time_from_start
    positions: np.ndarray  # (N, J)
    pixels: np.ndarray  # (N, 2) end-effector path in the camera image


class OverlayRecorder:
    """Per camera frame: the newest predicted chunk and imagined future at that moment, composed
    into the overlay video (camera + projected path | imagined future | joint chunk plot)."""

    SCALE = 3

    def __init__(self, robot_config, camera: str = "scene") -> None:
        from uam_ros.kinematics import RobotKinematics

        self.robot = robot_config
        self.camera = camera
        self.kinematics = RobotKinematics(robot_config)
        self.frames: list[tuple[np.ndarray, _Chunk | None, np.ndarray | None, list[_Chunk]]] = []
        self.chunk: _Chunk | None = None
        self.history: list[_Chunk] = []
        self.future: np.ndarray | None = None

    def clear(self) -> None:
        self.frames.clear()
        self.chunk, self.future = None, None
        self.history = []

    def on_trajectory(self, stamp_s: float, times_s, positions) -> None:
        positions = np.asarray(positions, dtype=np.float64)
        h, w = self.robot.camera.height, self.robot.camera.width
        pixels = self.kinematics.project_tcp_path(positions, self.camera, w, h)
        if self.chunk is not None:
            self.history = (self.history + [self.chunk])[-3:]
        self.chunk = _Chunk(stamp_s, np.asarray(times_s, dtype=np.float64), positions, pixels)

    def on_future(self, rgb: np.ndarray) -> None:
        self.future = rgb

    def on_frame(self, rgb: np.ndarray) -> None:
        self.frames.append((rgb, self.chunk, self.future, list(self.history)))

    def compose(self, index: int) -> np.ndarray:
        import cv2

        from uam_ros.overlay import compose, draw_path, placeholder, plot_chunk

        rgb, chunk, future, history = self.frames[index]
        s = self.SCALE
        size = (rgb.shape[0] * s, rgb.shape[1] * s)
        if chunk is not None:
            camera = draw_path(rgb, chunk.pixels, chunk.times_s, scale=s)
            past = [(h.stamp_s - chunk.stamp_s + h.times_s, h.positions) for h in history]
            plot = plot_chunk(chunk.times_s, chunk.positions, size, self.robot.joints.names, history=past,
                              limits=(np.array(self.robot.joints.position_min), np.array(self.robot.joints.position_max)))
        else:
            camera = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
            plot = placeholder(size, "no chunk yet")
        if future is not None:
            imagined = cv2.resize(future, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        else:
            imagined = placeholder(size, "no imagined future from this policy")
        return compose([camera, imagined, plot], ["camera + predicted end-effector path (blue: now, yellow: later)",
                                                  "imagined future (dorsal stream)",
                                                  "commanded joint chunk (normalised per joint)"])

    def write(self, path: Path, fps: float) -> int:
        import cv2

        if not self.frames:
            return 0
        first = self.compose(0)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
        for k in range(len(self.frames)):
            writer.write(cv2.cvtColor(first if k == 0 else self.compose(k), cv2.COLOR_RGB2BGR))
        writer.release()
        return len(self.frames)

    def still(self, path: Path) -> bool:
        """The most telling frame (a path is drawn, about a third into the episode) as a PNG."""
        import cv2

        with_path = [k for k, f in enumerate(self.frames) if f[1] is not None]
        if not with_path:
            return False
        k = with_path[len(with_path) // 3]
        cv2.imwrite(str(path), cv2.cvtColor(self.compose(k), cv2.COLOR_RGB2BGR))
        return True


def run_demo(robot: str, tasks: list[str], episodes: int, split: str, seed: int, model: str,
             out_dir: Path, overlay: bool = True, backend: str = "auto", replan_steps: int = -1,
             real_time_factor: float = 1.0) -> list[EpisodeResult]:
    """real_time_factor < 1: uam_sim owns the ROS time (/clock) and runs the world that much slower
    than real time; uam_policy runs on it (use_sim_time), so its inference and the camera's rendering
    take that much less of the world's time."""
    if not 0.0 < real_time_factor <= 1.0:
        raise ValueError(f"real_time_factor must be in (0, 1], got {real_time_factor}")
    sim_clock = real_time_factor != 1.0
    from uam_ros.model.checkpoint import resolve_replan_steps

    replan_steps = resolve_replan_steps(replan_steps, model)  # resolved, as metrics.json records it
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.ros.conversions import duration_to_s, stamp_to_s
    from uam_ros.ros.qos import COMMAND_QOS, INSTRUCTION_QOS, SENSOR_QOS
    from uam_ros.sim.tasks import get_task

    config = load_robot_config(robot)
    out_dir.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    node = rclpy.create_node("uam_demo")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    frames: list[np.ndarray] = []
    episode = EpisodeTimer()

    recorder = OverlayRecorder(config) if overlay else None

    def on_image(msg: Image) -> None:
        frames.append(np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy())
        if recorder is not None:
            recorder.on_frame(frames[-1])

    def on_predicted(msg: JointTrajectory) -> None:
        if recorder is not None and msg.points:
            recorder.on_trajectory(stamp_to_s(msg.header.stamp), [duration_to_s(p.time_from_start) for p in msg.points],
                                   [list(p.positions) for p in msg.points])

    def on_future(msg: Image) -> None:
        if recorder is not None and msg.encoding == "rgb8":
            recorder.on_future(np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy())

    def on_success(msg: Bool) -> None:
        episode.on_success(bool(msg.data), time.monotonic())

    def on_command(msg: JointTrajectory) -> None:
        episode.on_command(time.monotonic())

    node.create_subscription(Image, config.camera.image_topic, on_image, SENSOR_QOS)
    node.create_subscription(Bool, "/uam_sim/success", on_success, INSTRUCTION_QOS)
    node.create_subscription(JointTrajectory, config.controller.trajectory_topic, on_command, COMMAND_QOS)
    node.create_subscription(JointTrajectory, "/uam_policy/predicted_trajectory", on_predicted, 10)
    node.create_subscription(Image, "/uam_policy/imagined_future", on_future, SENSOR_QOS)

    def spin_until(predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
            if predicate():
                return True
        return False

    def call(srv_type, name: str, request):
        client = node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=60.0):
            raise RuntimeError(f"service {name} did not appear (see the logs in {out_dir})")
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=30.0)
        node.destroy_client(client)
        return future.result()

    def value(v) -> ParameterValue:
        if isinstance(v, int):
            return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(v))

    sim_params: dict[str, object] = {"robot": robot, "task": tasks[0], "split": split, "seed": seed,
                                     "camera_rate_hz": SIM_CAMERA_RATE_HZ}
    if sim_clock:
        sim_params.update(sim_clock_parameters(real_time_factor))
    sim = NodeProcess("uam_ros.ros.sim_node", sim_params, out_dir / "uam_sim.log")
    results: list[EpisodeResult] = []
    sheet_rows = []
    try:
        for task in tasks:
            for k in range(episodes):
                episode_seed = seed + k
                params = {"task": task, "split": split, "seed": episode_seed}
                call(SetParameters, "/uam_sim/set_parameters", SetParameters.Request(
                    parameters=[ParameterMsg(name=n, value=value(v)) for n, v in params.items()]))
                reset = call(Trigger, "/uam_sim/reset", Trigger.Request())
                if not reset.success:
                    raise RuntimeError(f"sim reset failed: {reset.message}")
                instruction = reset.message
                spin_until(lambda: False, 0.3)
                frames.clear()
                if recorder is not None:
                    recorder.clear()
                episode = EpisodeTimer()
                policy_model = model or f"expert://{task}?split={split}&seed={episode_seed}"
                name = f"{Path(robot).stem}_{task}_{split}_{episode_seed}"  # robot: a name or a YAML path
                started = time.monotonic()
                policy = NodeProcess("uam_ros.ros.policy_node", {
                    "robot": robot, "model": policy_model, "backend": backend, "autostart": True, "enable": True,
                    "instruction": instruction, "inference_threads": 1, "replan_steps": replan_steps,
                    "use_sim_time": sim_clock},
                    out_dir / f"uam_policy_{name}.log")
                # The task's time limit starts with the first command: configure may export an ONNX
                # graph or build a TensorRT engine first (once; both are cached).
                spin_until(lambda: episode.first_command_s is not None or policy.process.poll() is not None, 180.0)
                # The in-process evaluation's budget: the task's max_steps of world time.
                budget = get_task(task).max_steps / config.chunk.action_rate_hz / real_time_factor
                spin_until(lambda: episode.success_s is not None or policy.process.poll() is not None, budget)
                spin_until(lambda: False, 0.5)  # a last look: a success message still in flight
                policy.stop()
                # + one camera period: uam_sim reports success with its camera frames.
                elapsed = episode.time_to_success_s(budget + 1.0 / SIM_CAMERA_RATE_HZ / real_time_factor)
                success = elapsed is not None
                t_success = elapsed * real_time_factor if success else None  # world seconds
                video = out_dir / f"{name}.mp4"
                _write_video(frames, video, fps=SIM_CAMERA_RATE_HZ)
                overlay_video = ""
                if recorder is not None and recorder.write(out_dir / f"{name}_overlay.mp4", fps=SIM_CAMERA_RATE_HZ):
                    overlay_video = f"{name}_overlay.mp4"
                    recorder.still(out_dir / f"{name}_overlay.png")
                sheet_rows.append((f"{'SUCCESS' if success else 'FAIL'}  {name}: {instruction}", list(frames)))
                result = EpisodeResult(robot, task, split, episode_seed, instruction, success, t_success,
                                       time.monotonic() - started, episode.commands, video.name, overlay_video)
                results.append(result)
                timing = f"{t_success:.1f} s" if t_success is not None else "-"
                print(f"[demo] {name:<34} {'SUCCESS' if success else 'FAIL   '} {timing:>7}  '{instruction}'",
                      flush=True)
    finally:
        sim.stop()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    _contact_sheet(sheet_rows, out_dir / "contact_sheet.png")
    rate = sum(r.success for r in results) / max(1, len(results))
    metrics = {"robot": robot, "split": split, "backend": backend, "replan_steps": replan_steps,
               "real_time_factor": real_time_factor, "model": model or "scripted expert (expert://)",
               "success_rate": rate, "episodes": [asdict(r) for r in results]}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"[demo] success {sum(r.success for r in results)}/{len(results)} ({rate:.0%}); outputs in {out_dir}")
    return results


EXPERT_DEMO_TASKS = ("reach", "pick", "press")


def _trained_tasks(model: str) -> list[str]:
    """The tasks a checkpoint directory was trained on (its config.json meta), [] if unknown.
    Read without loading the weights: this only picks the demo's default tasks."""
    from uam_ros.model.checkpoint import CONFIG_FILE

    path = Path(model) / CONFIG_FILE if model and "://" not in model else None
    if path is None or not path.is_file():
        return []
    try:
        return [str(t) for t in json.loads(path.read_text()).get("meta", {}).get("tasks", [])]
    except (OSError, ValueError, AttributeError):
        return []


def add_arguments(parser) -> None:
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="tasks to run (default: the tasks the model was trained on; the scripted expert: "
                        "reach pick press)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per task")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="", help="checkpoint directory, or 'expert' for the scripted expert "
                        "through the same ROS path; default: models/default/<robot> if present, else the expert")
    parser.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"))
    parser.add_argument("--replan-steps", type=int, default=-1,
                        help="the policy node's replan_steps: action steps of each chunk executed before the next "
                        "inference (0: on every new camera image; default -1: the model's, from its checkpoint)")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="run the simulated world this much slower than real time (0 < f <= 1; uam_sim then "
                        "publishes /clock and uam_policy uses it): for a CPU too slow to render and infer at the "
                        "world's pace")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: runs/demo-<time>)")
    parser.add_argument("--no-overlay", action="store_true",
                        help="skip the overlay videos (camera + projected predicted path, imagined future, chunk plot)")
    parser.add_argument("--require-success", action="store_true",
                        help="exit 1 unless every episode succeeds (default: exit 1 only when an episode got no command)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID (default: a random private one, so no real robot can hear the demo)")


def run(args) -> int:
    from uam_ros.resources import models_dir

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id if args.domain_id is not None
                                      else random.SystemRandom().randint(101, 199))
    model = args.model
    default = models_dir() / "default" / args.robot
    if model == "expert":
        model = ""  # the per-episode scripted expert, even where a default model ships
    elif not model and (default / "model.safetensors").is_file():
        model = str(default)
    out = args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    tasks = args.tasks or _trained_tasks(model) or list(EXPERT_DEMO_TASKS)
    results = run_demo(args.robot, tasks, args.episodes, args.split, args.seed, model, out,
                       overlay=not getattr(args, "no_overlay", False), backend=args.backend,
                       replan_steps=args.replan_steps, real_time_factor=args.real_time_factor)
    return demo_exit_code(results, getattr(args, "require_success", False))


def demo_exit_code(results: list[EpisodeResult], require_success: bool) -> int:
    """0 when every episode ran: the policy commanded the arm in each (a task the policy fails is a
    measured result, reported per episode, not a broken demo); 1 when an episode got no command at
    all (node, model or DDS trouble) or nothing ran. require_success: also 1 when any task failed."""
    if not results or any(r.commands == 0 for r in results):
        return 1
    if require_success and not all(r.success for r in results):
        return 1
    return 0
