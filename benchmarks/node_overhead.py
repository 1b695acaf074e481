"""Node overhead: what uam_policy spends around inference, as a percentage of inference, side by side.

A real PolicyNode runs in this process (configured with the torch backend on the checkpoint, enabled,
~/predicted_path on as by default); only its inference worker is swapped for a stub that hands the
loop the chunk the node's own backend computed a moment before. So every message and every
decision takes the node's real path:

  joint state   DDS -> SingleThreadedExecutor (take + deserialise) -> _on_joint_state -> JointStateMapper,
                ObservationSync                                        [delivered by spin_once, timed]
  camera frame  DDS -> executor (take + deserialise) -> _on_image -> decode_image -> ObservationSync
  tick (wait)   _on_tick: ObservationSync.get (stamp matching), worker poll, Observation built, submit refused
  tick (submit) _on_tick: the same, the submit accepted
  tick (chunk)  _on_tick: ChunkScheduler.merge (latency drop + blend), SafetyFilter.filter, build_command,
                command_problems, trajectory_cdr (bytes), publish (trajectory + predicted), gripper command,
                ~/predicted_path (MuJoCo FK + markers), ~/imagined_future image message
  timer dispatch what the executor adds to each tick (spin_once on a due no-op timer of a plain node)
  bare frame    rclpy's own floor for a frame: the same Image delivered to a plain node whose callback
                only counts it (take + deserialise + dispatch, none of our code)
  inference     Policy.infer on the observation the node submitted: the node's torch backend and, for
                comparison, ONNX Runtime on the same checkpoint and observation

The node publishes its display topics (~/predicted_trajectory, ~/imagined_future, ~/predicted_path)
only while something subscribes to them; --viewer subscribes to all three as rviz would, so the
figures cover both a headless robot and one watched in rviz.

Each cycle delivers --joints-per-cycle joint states and one frame, ticks as the node would while one
inference runs (2 waiting ticks, the submit, the chunk, 1 idle tick) and runs each backend once on the
submitted observation; --rounds x --cycles cycles. Reported:
  per-chunk path  = frame delivery + submit tick + chunk tick + 2 timer dispatches: the node's work
                    between a frame and its command, vs one inference (p50 / p50)
  rclpy floor     = bare frame + 2 timer dispatches: what any rclpy node pays on that path before our
                    code runs -- the part of the per-chunk path that no change to uam_ros can remove
  CPU duty        = everything the node does per inference period at --camera-hz, --joint-hz and the
                    control rate (means), vs the mean inference time
The same figures with the frames, joint states and timer dispatched by rclpy's EventsExecutor (every
other cycle, --no-compare-events to skip) and with ~/predicted_path off (every other pair of cycles,
--no-compare-path to skip) show what those two choices are worth.
Both are reported from wall time (perf_counter) and from this thread's CPU time (thread_time: what
the work costs, without the time the thread waited for a CPU on a shared machine). A cProfile of
the chunk ticks splits the chunk tick into its parts. Writes results/<name>.json + .png.

    python benchmarks/node_overhead.py [--rounds 10] [--cycles 10] [--backends torch onnxruntime]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, bench_parser, machine_info, machine_summary, make_checkpoint,  # noqa: E402
                          private_ros_env, save_figure, stats_ms, timestamp, write_result)

OPS = ("joint_state", "camera_frame", "tick_wait", "tick_submit", "tick_chunk", "tick_idle", "timer_dispatch",
       "bare_frame")
EXECUTOR_OPS = ("joint_state", "camera_frame", "timer_dispatch", "bare_frame")  # what depends on the executor
# What the chunk tick's profile is split into: label -> (file suffix, function name)
PARTS = {
    "ObservationSync.get": ("control/observation.py", "get"),
    "ChunkScheduler.merge": ("control/chunk_scheduler.py", "merge"),
    "SafetyFilter.filter": ("control/safety.py", "filter"),
    "command_problems": ("control/trajectory.py", "command_problems"),
    "trajectory_cdr": ("ros/cdr.py", "trajectory_cdr"),
    "publish (rclpy)": ("rclpy/publisher.py", "publish"),
    "~/predicted_path (FK + markers)": ("ros/policy_node.py", "_publish_path"),
    "imagined future -> Image": ("ros/conversions.py", "rgb_to_image_msg"),
}


def model_overrides(settings: list[str]) -> dict:
    """--model-set FIELD=VALUE ... -> UAMConfig overrides (values read as YAML: 512 -> int, 0.1 -> float)."""
    import yaml

    overrides = {}
    for setting in settings:
        field, sep, value = setting.partition("=")
        if not sep or not field:
            raise SystemExit(f"--model-set {setting!r}: expected FIELD=VALUE")
        overrides[field.strip()] = yaml.safe_load(value)
    return overrides


def sim_scene(robot, saved: Path | None = None) -> dict:
    """What the robot's camera and joints report at the start of a train-split reach episode (seed
    100000, the first evaluation layout): a trained model then proposes a chunk the safety filter
    accepts, as on the robot, where random pixels could make it propose anything. saved: an .npz read
    when it exists, else written after rendering -- so a machine without MuJoCo can run the benchmark."""
    if saved is not None and saved.is_file():
        with np.load(saved) as data:
            return {"rgb": data["rgb"], "joint_names": [str(n) for n in data["joint_names"]],
                    "positions": [float(x) for x in data["positions"]], "instruction": str(data["instruction"])}
    from uam_ros.sim.tasks import sample_episode
    from uam_ros.sim.world import SimWorld

    episode = sample_episode("reach", "train", 100000)
    with SimWorld(robot, episode, wrist_camera=False) as world:  # uam_sim's default camera
        names, q, _ = world.joint_state()
        rgb = world.render(world.info.scene_camera)
    scene = {"rgb": rgb, "joint_names": list(names), "positions": [float(x) for x in q],
             "instruction": episode.instruction}
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, rgb=rgb, joint_names=np.array(scene["joint_names"]), positions=np.array(scene["positions"]),
                 instruction=np.array(scene["instruction"]))
    return scene


class StubQueue:
    """The InferenceQueue PolicyLoop sees: records what the node submits, hands back a prepared result."""

    def __init__(self) -> None:
        self.busy = False
        self.submitted = None
        self.result = None

    def submit(self, observation) -> bool:
        if self.busy:
            return False
        self.submitted = observation
        return True

    def poll(self):
        result, self.result = self.result, None
        return result

    def busy_for_s(self) -> float:
        return 0.0


def overhead_summary(unit: dict[str, dict], inference: dict[str, dict], rates: dict[str, float]) -> dict:
    """Per-chunk path (p50 sums / inference p50) and CPU duty per inference period (means / mean)."""
    p50 = {op: unit[op]["p50_ms"] for op in unit}
    mean = {op: unit[op]["mean_ms"] for op in unit}
    path_ms = p50["camera_frame"] + p50["tick_submit"] + p50["tick_chunk"] + 2 * p50["timer_dispatch"]
    floor_ms = p50["bare_frame"] + 2 * p50["timer_dispatch"]
    out = {"per_chunk_path_ms": path_ms, "rclpy_floor_ms": floor_ms, "backends": {}}
    for name, inf in inference.items():
        period_s = inf["mean_ms"] * 1e-3
        ticks = rates["control_hz"] * period_s
        duty_ms = (rates["joint_hz"] * period_s * mean["joint_state"] + rates["camera_hz"] * period_s * mean["camera_frame"]
                   + ticks * mean["timer_dispatch"] + mean["tick_submit"] + mean["tick_chunk"]
                   + max(ticks - 2.0, 0.0) * mean["tick_wait"])
        out["backends"][name] = {
            "inference_p50_ms": inf["p50_ms"], "inference_mean_ms": inf["mean_ms"],
            "per_chunk_path_pct": 100.0 * path_ms / inf["p50_ms"],
            "rclpy_floor_pct": 100.0 * floor_ms / inf["p50_ms"],
            "cpu_duty_ms_per_inference": duty_ms, "cpu_duty_pct": 100.0 * duty_ms / inf["mean_ms"],
        }
    return out


def profile_parts(profile: cProfile.Profile, calls: int) -> dict[str, float]:
    """Cumulative ms per chunk tick of each PARTS function (profiled, so inflated; use the fractions)."""
    stats = pstats.Stats(profile)
    total = 0.0
    parts = {label: 0.0 for label in PARTS}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        if function == "_on_tick" and filename.endswith("ros/policy_node.py"):
            total += cumulative
        for label, (suffix, name) in PARTS.items():
            if function == name and filename.endswith(suffix):
                parts[label] += cumulative
    parts = {k: v * 1e3 / calls for k, v in parts.items()}
    parts["_on_tick total (profiled)"] = total * 1e3 / calls
    return parts


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    unit = result["unit_costs"]
    labels = list(unit) + [f"infer {b}" for b in result["inference"]]
    values = [unit[op]["p50_ms"] for op in unit] + [result["inference"][b]["p50_ms"] for b in result["inference"]]
    p99 = [unit[op]["p99_ms"] for op in unit] + [result["inference"][b]["p99_ms"] for b in result["inference"]]
    colors = ["tab:blue"] * len(unit) + ["tab:orange"] * len(result["inference"])
    y = np.arange(len(labels))
    left.barh(y, values, color=colors)
    left.plot(p99, y, "k|", markersize=10, label="p99")
    for yi, v in zip(y, values):
        left.annotate(f"{v:.3f}" if v < 1 else f"{v:.1f}", (v, yi), xytext=(3, -3), textcoords="offset points", fontsize=7)
    left.set_yticks(y, labels, fontsize=8)
    left.set_xscale("log")
    left.invert_yaxis()
    left.set_xlabel("ms per call, p50 (bar) and p99 (|)")
    left.legend(fontsize=8)
    names = list(result["overhead"]["backends"])
    x = np.arange(len(names))
    series = [(result["overhead"]["backends"], "per_chunk_path_pct", "per-chunk path, wall p50"),
              (result["overhead"]["backends"], "cpu_duty_pct", "duty per inference, wall mean"),
              (result["overhead_cpu_time"]["backends"], "per_chunk_path_pct", "per-chunk path, CPU time p50"),
              (result["overhead_cpu_time"]["backends"], "cpu_duty_pct", "duty per inference, CPU time mean")]
    lean = result.get("overhead_without_predicted_path", {}).get("no_path_events_cpu_time")
    if lean:
        series += [(lean["backends"], "per_chunk_path_pct", "per-chunk path, CPU, EventsExecutor + no path"),
                   (lean["backends"], "cpu_duty_pct", "duty, CPU, EventsExecutor + no path")]
    width = 0.8 / len(series)
    groups = [right.bar(x - 0.4 + width * (i + 0.5), [table[n][key] for n in names], width, label=label)
              for i, (table, key, label) in enumerate(series)]
    for bars in groups:
        for bar in bars:
            right.annotate(f"{bar.get_height():.1f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                           xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    right.axhline(5.0, color="r", ls="--", lw=1, label="target 5%")
    right.set_xticks(x, names)
    right.set_ylabel("node overhead [% of inference time]")
    right.set_ylim(0, max(bar.get_height() for bars in groups for bar in bars) * 2.0)
    right.legend(fontsize=6.5, loc="upper left")
    env = result["environment"]
    threads = ", ".join(f"{name} {count}" for name, count in result["config"]["threads"].items())
    save_figure(fig, path, f"uam_policy overhead around inference: {machine_summary(env, nice=True)}, "
                f"inference threads: {threads}" + (f", {env['gpu']}" if env.get("gpu") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--model", default="", help="checkpoint directory (default: the robot's shipped model, "
                        "models/default/<robot>, or a seeded untrained default UAMConfig where there is none)")
    parser.add_argument("--untrained", action="store_true", help="the seeded untrained checkpoint even where a model ships")
    parser.add_argument("--model-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="untrained checkpoint with this UAMConfig field changed (repeatable; implies --untrained), "
                        "e.g. --model-set d_model=512 --model-set n_heads=8: the same node against a larger model")
    parser.add_argument("--backends", nargs="*", default=["torch", "onnxruntime"], choices=("torch", "onnxruntime"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=10, help="cycles (one frame -> one chunk) per round")
    parser.add_argument("--joints-per-cycle", type=int, default=8, help="joint states delivered per cycle")
    parser.add_argument("--camera-hz", type=float, default=30.0, help="for the CPU duty figure")
    parser.add_argument("--joint-hz", type=float, default=500.0, help="for the CPU duty figure")
    parser.add_argument("--no-predicted-path", dest="predicted_path", action="store_false",
                        help="node parameter predicted_path:=false (default: on, as the node's default)")
    parser.add_argument("--no-compare-events", dest="compare_events", action="store_false",
                        help="skip delivering every other cycle through rclpy's EventsExecutor for comparison")
    parser.add_argument("--viewer", action="store_true",
                        help="subscribe to the display topics (~/predicted_trajectory, ~/imagined_future, "
                             "~/predicted_path) as rviz would; without it the node publishes none of them")
    parser.add_argument("--no-compare-path", dest="compare_path", action="store_false",
                        help="skip the cycles (every other pair) that tick with ~/predicted_path off, for comparison")
    parser.add_argument("--threads", type=int, default=0,
                        help="inference intra-op threads (default: the node's -- cores - 1 on the CPU, 1 on a GPU; "
                             "ONNX Runtime on the CPU: cores - 1)")
    parser.add_argument("--profile-cycles", type=int, default=40)
    parser.add_argument("--scene", type=Path, default=None, metavar="NPZ",
                        help="camera frame + joint state to use: read from NPZ if it exists, else rendered and written "
                             "there (to run where MuJoCo is not installed, with --no-predicted-path)")
    parser.add_argument("--name", default="node_overhead")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    private_ros_env()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, JointState

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.resources import models_dir
    from uam_ros.ros.conversions import rgb_to_image_msg, s_to_stamp
    from uam_ros.ros.policy_node import PolicyNode
    from uam_ros.ros.qos import SENSOR_QOS
    from uam_ros.runtime.torch_backend import default_thread_count
    from uam_ros.runtime.worker import WorkerResult

    ort_threads = args.threads or default_thread_count("cpu")
    robot = load_robot_config(args.robot)
    workdir = Path(tempfile.mkdtemp(prefix="uam-overhead-"))
    shipped = models_dir() / "default" / robot.name
    overrides = model_overrides(args.model_set)
    if args.model:
        model = Path(args.model)
    elif shipped.is_dir() and not args.untrained and not overrides:
        model = shipped  # the model the node runs by default: its inference time is what overhead is measured against
    else:
        model = make_checkpoint(args.robot, workdir / "ckpt", config_overrides=overrides)
    scene = sim_scene(robot, args.scene)
    env_before = machine_info()

    rclpy.init()
    node = PolicyNode(parameter_overrides=[
        Parameter("robot", value=args.robot), Parameter("model", value=str(model)), Parameter("backend", value="torch"),
        Parameter("enable", value=True), Parameter("diagnostics_period_s", value=60.0),
        Parameter("inference_threads", value=args.threads), Parameter("predicted_path", value=args.predicted_path),
        Parameter("instruction", value=scene["instruction"]),
        Parameter("replan_steps", value=0)])  # every frame goes to inference: one chunk per cycle
    node.trigger_configure()
    if node.lifecycle_state != "inactive":
        print(f"configure failed: {node.lifecycle_state}", file=sys.stderr)
        return 1
    node.trigger_activate()
    node.destroy_timer(node._timer)  # ticks are called (and timed) here; their dispatch is measured apart
    node._timer = None
    stub = StubQueue()
    node._poll.worker = stub
    policies = {"torch": node.worker.policy}
    if "onnxruntime" in args.backends:
        from uam_ros.runtime.ort_backend import OrtPolicy

        print("exporting ONNX for onnxruntime ...", flush=True)
        policies["onnxruntime"] = OrtPolicy(model, robot.action_joint_names, providers="cpu", cache_dir=workdir / "cache",
                                            threads=ort_threads, seed=0)
        policies["onnxruntime"].warmup()
    policies = {k: v for k, v in policies.items() if k in args.backends}

    source = rclpy.create_node("uam_overhead_source")
    joint_pub = source.create_publisher(JointState, "joint_states", SENSOR_QOS)
    image_pub = source.create_publisher(Image, robot.camera.image_topic, SENSOR_QOS)
    # The node spins in a SingleThreadedExecutor (uam_ros.ros.node_main); with --compare-events every
    # other cycle delivers through rclpy's EventsExecutor instead, for comparison.
    executor_types = {"single": SingleThreadedExecutor}
    if args.compare_events:
        from rclpy.experimental import EventsExecutor

        executor_types["events"] = EventsExecutor
    executors = {name: make() for name, make in executor_types.items()}
    dispatchers = {name: make() for name, make in executor_types.items()}
    executor_in_use = ["single"]
    executors["single"].add_node(node)
    dispatch_node = rclpy.create_node("uam_overhead_dispatch")
    # rclpy's floor: a plain node per executor kind, taking the same frames with a callback that only counts them
    bare_frames = [0]
    bare_nodes, bare_pubs, bare_executors = {}, {}, {}
    for name, make in executor_types.items():
        bare_nodes[name] = rclpy.create_node(f"uam_overhead_bare_{name}")
        bare_nodes[name].create_subscription(Image, f"uam_overhead/bare_image_{name}",
                                             lambda _msg: bare_frames.__setitem__(0, bare_frames[0] + 1), SENSOR_QOS)
        bare_pubs[name] = source.create_publisher(Image, f"uam_overhead/bare_image_{name}", SENSOR_QOS)
        bare_executors[name] = make()
        bare_executors[name].add_node(bare_nodes[name])
    viewer = rclpy.create_node("uam_overhead_viewer")
    if args.viewer:  # rviz's side: never spun, its readers just keep the newest messages
        from sensor_msgs.msg import Image as ImageMsg
        from trajectory_msgs.msg import JointTrajectory
        from visualization_msgs.msg import MarkerArray

        for msg_type, topic in ((JointTrajectory, "predicted_trajectory"), (ImageMsg, "imagined_future"),
                                (MarkerArray, "predicted_path")):
            viewer.create_subscription(msg_type, f"/{node.get_name()}/{topic}", lambda _msg: None, 2)
    displays = [p for p in (node._predicted_pub, node._future_pub, node._path_pub) if p is not None]
    for _ in range(200):
        if (joint_pub.get_subscription_count() and image_pub.get_subscription_count()
                and all(p.get_subscription_count() for p in bare_pubs.values())
                and (not args.viewer or all(p.get_subscription_count() for p in displays))):
            break
        executors["single"].spin_once(timeout_sec=0.05)

    def use_executor(name: str) -> None:
        if executor_in_use[0] != name:
            executors[executor_in_use[0]].remove_node(node)
            executors[name].add_node(node)
            executor_in_use[0] = name

    def key(op: str) -> str:
        return op if executor_in_use[0] == "single" else f"{op}@{executor_in_use[0]}"
    rgb = scene["rgb"]

    compare_path = args.predicted_path and args.compare_path and node._path_pub is not None
    all_ops = list(OPS) + [f"{op}@events" for op in EXECUTOR_OPS if args.compare_events]
    all_ops += ["tick_chunk@no_path"] if compare_path else []
    path_pub = node._path_pub
    samples: dict[str, list[float]] = {op: [] for op in all_ops}  # wall seconds
    cpu: dict[str, list[float]] = {op: [] for op in all_ops}  # CPU seconds of this thread
    inference: dict[str, list[float]] = {name: [] for name in policies}
    inference_cpu: dict[str, list[float]] = {name: [] for name in policies}
    missed = {"joint_state": 0, "camera_frame": 0, "bare_frame": 0}
    accepted = [0]

    def now_s() -> float:
        return node.get_clock().now().nanoseconds * 1e-9

    def deliver(op: str, publish, counter, to_bare: bool = False) -> None:
        op, executor = key(op), (bare_executors if to_bare else executors)[executor_in_use[0]]
        before = counter()
        publish()
        time.sleep(0.002)  # let DDS hand it over, so spin_once times take + deserialise + callback only
        start, start_cpu = time.perf_counter(), time.thread_time()
        executor.spin_once(timeout_sec=0.05)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        if counter() == before + 1:
            samples[op].append(elapsed)
            cpu[op].append(elapsed_cpu)
            return
        missed[op] += 1
        for _ in range(20):
            if counter() > before:
                return
            executor.spin_once(timeout_sec=0.05)

    def send_joint_state() -> None:
        msg = JointState()
        msg.header.stamp = s_to_stamp(now_s())
        msg.name, msg.position = scene["joint_names"], scene["positions"]
        msg.velocity = [0.0] * len(msg.name)
        joint_pub.publish(msg)

    def send_frame() -> None:
        image_pub.publish(rgb_to_image_msg(rgb, now_s(), "camera"))

    def send_bare_frame() -> None:
        bare_pubs[executor_in_use[0]].publish(rgb_to_image_msg(rgb, now_s(), "camera"))

    def timed_tick(op: str) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        node._on_tick()
        samples[op].append(time.perf_counter() - start)
        cpu[op].append(time.thread_time() - start_cpu)

    def timer_dispatch() -> None:
        dispatcher = dispatchers[executor_in_use[0]]
        dispatcher.add_node(dispatch_node)
        timer = dispatch_node.create_timer(0.001, lambda: None)
        time.sleep(0.0015)
        start, start_cpu = time.perf_counter(), time.thread_time()
        dispatcher.spin_once(timeout_sec=0.05)
        samples[key("timer_dispatch")].append(time.perf_counter() - start)
        cpu[key("timer_dispatch")].append(time.thread_time() - start_cpu)
        dispatch_node.destroy_timer(timer)
        dispatcher.remove_node(dispatch_node)

    joint_count = lambda: node._joint_rate.count  # noqa: E731 - RateCounter.count: messages since the last report
    frame_count = lambda: node._camera_rate.count  # noqa: E731

    def cycle(record: bool = True, profile: cProfile.Profile | None = None, executor: str = "single",
              path: bool = True) -> None:
        use_executor(executor)
        node._path_pub = path_pub if path else None  # None: the node skips ~/predicted_path
        for _ in range(args.joints_per_cycle // 2):
            deliver("joint_state", send_joint_state, joint_count)
        deliver("camera_frame", send_frame, frame_count)
        deliver("bare_frame", send_bare_frame, lambda: bare_frames[0], to_bare=True)
        stub.busy = True
        timed_tick("tick_wait")
        timed_tick("tick_wait")
        stub.busy = False
        stub.submitted = None
        timed_tick("tick_submit")
        observation = stub.submitted
        if observation is None:
            raise RuntimeError(f"the node submitted no observation (status {node.loop.status}: {node.loop.status_detail})")
        chunk = None
        for name, policy in policies.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            out = policy.infer(observation)
            elapsed = time.perf_counter() - start
            if record:
                inference[name].append(elapsed)
                inference_cpu[name].append(time.thread_time() - start_cpu)
            if name == "torch":
                chunk, latency = out, elapsed
        stub.result = WorkerResult(chunk, "", latency)
        for _ in range(args.joints_per_cycle - args.joints_per_cycle // 2):  # they keep coming during inference
            deliver("joint_state", send_joint_state, joint_count)
        before = node.commands_published
        if profile is not None:
            profile.enable()
        timed_tick("tick_chunk" if path else "tick_chunk@no_path")
        if profile is not None:
            profile.disable()
        if node.commands_published != before + 1:
            raise RuntimeError(f"chunk not commanded: {node.loop.status}: {node.loop.status_detail}")
        accepted[0] += 1
        timed_tick("tick_idle")
        timer_dispatch()
        timer_dispatch()

    threads = {name: policy.threads for name, policy in policies.items()}
    print(f"warm-up ({robot.name}, {', '.join(f'{n} {t} thread(s)' for n, t in threads.items())}) ...", flush=True)
    for _ in range(3):
        cycle(record=False)
    for op in samples:
        samples[op].clear()
        cpu[op].clear()
    start_s = time.perf_counter()
    for r in range(args.rounds):
        order = list(policies)
        if r % 2:
            order.reverse()
        policies = {k: policies[k] for k in order}
        for c in range(args.cycles):
            cycle(executor="events" if args.compare_events and c % 2 else "single",
                  path=not (compare_path and (c // 2) % 2))
        line = "  ".join(f"{op} {np.median(samples[op]) * 1e3:.3f}" for op in ("camera_frame", "tick_submit", "tick_chunk"))
        inf = "  ".join(f"{n} {np.median(v) * 1e3:.1f}" for n, v in inference.items())
        print(f"round {r + 1}/{args.rounds} p50 ms: {line} | inference {inf}", flush=True)
    bench_s = time.perf_counter() - start_s
    profile = cProfile.Profile()
    kept = {op: len(v) for op, v in samples.items()}
    for _ in range(args.profile_cycles):
        cycle(record=False, profile=profile)
    for op, n in kept.items():
        del samples[op][n:]  # profiled cycles are inflated by the profiler: not in the statistics
        del cpu[op][n:]
    parts = profile_parts(profile, args.profile_cycles)
    env_after = machine_info()

    node.safe_stop()
    use_executor("single")
    for ex in (*executors.values(), *dispatchers.values(), *bare_executors.values()):
        ex.shutdown()
    for n in (node, source, dispatch_node, *bare_nodes.values(), viewer):
        n.destroy_node()
    rclpy.try_shutdown()

    unit = {op: stats_ms(v) for op, v in samples.items()}
    inf_stats = {name: stats_ms(v) for name, v in inference.items()}
    rates = {"camera_hz": args.camera_hz, "joint_hz": args.joint_hz, "control_hz": robot.control.rate_hz}
    overhead = overhead_summary(unit, inf_stats, rates)
    unit_cpu = {op: stats_ms(v) for op, v in cpu.items()}
    inf_cpu_stats = {name: stats_ms(v) for name, v in inference_cpu.items()}
    overhead_cpu = overhead_summary(unit_cpu, inf_cpu_stats, rates)
    with_events = {}
    if args.compare_events:
        for label, (table, inf) in {"wall": (unit, inf_stats), "cpu_time": (unit_cpu, inf_cpu_stats)}.items():
            swapped = {**table, **{op: table[f"{op}@events"] for op in EXECUTOR_OPS}}
            with_events[label] = overhead_summary(swapped, inf, rates)
    lean = {}  # without ~/predicted_path, and with both changes
    if compare_path:
        for label, (table, inf) in {"wall": (unit, inf_stats), "cpu_time": (unit_cpu, inf_cpu_stats)}.items():
            no_path = {**table, "tick_chunk": table["tick_chunk@no_path"]}
            lean[f"no_path_{label}"] = overhead_summary(no_path, inf, rates)
            if args.compare_events:
                both = {**no_path, **{op: table[f"{op}@events"] for op in EXECUTOR_OPS}}
                lean[f"no_path_events_{label}"] = overhead_summary(both, inf, rates)
    result = {
        "created": timestamp(),
        "config": {"robot": robot.name, "model": str(model), "model_set": overrides,
                   "model_parameters": sum(p.numel() for p in node.worker.policy.model.parameters()),
                   "threads": threads, "rounds": args.rounds,
                   "cycles_per_round": args.cycles, "joints_per_cycle": args.joints_per_cycle,
                   "predicted_path": args.predicted_path, "viewer": args.viewer, "rates": rates, "benchmark_s": round(bench_s, 1),
                   "chunks_commanded": accepted[0], "deliveries_not_on_first_spin": missed},
        "method": {
            "per_chunk_path": "camera_frame + tick_submit + tick_chunk + 2 timer_dispatch (p50 each), over inference p50",
            "cpu_duty": "per inference period T (mean inference): joint_hz*T joint states + camera_hz*T frames + "
                        "control_hz*T (timer dispatch + waiting tick) + submit and chunk ticks (means), over T",
        },
        "environment": {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": env_after["loadavg"]},
        "unit_costs": unit,
        "inference": inf_stats,
        "overhead": overhead,
        "unit_costs_cpu": unit_cpu,
        "inference_cpu": inf_cpu_stats,
        "overhead_cpu_time": overhead_cpu,
        "overhead_if_events_executor": with_events,
        "overhead_without_predicted_path": lean,
        "chunk_tick_profile_ms": {k: round(v, 4) for k, v in parts.items()},
        "samples_ms": {k: [round(s * 1e3, 4) for s in v] for k, v in {**samples, **{f"infer_{n}": v for n, v in
                                                                                    inference.items()}}.items()},
    }
    write_result(result, args.out, args.name, plot)

    print(f"\n{'operation':<18}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'n':>6}")
    for op, s in {**unit, **{f"infer {n}": s for n, s in inf_stats.items()}}.items():
        print(f"{op:<18}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}{s['mean_ms']:>9.3f}{s['n']:>6}")
    print("chunk tick, profiled split (ms, inflated by cProfile):")
    for k, v in parts.items():
        print(f"  {k:<34}{v:8.3f}")
    rows = [("wall", overhead), ("thread CPU time", overhead_cpu)]
    rows += [(f"{label}, EventsExecutor", summary) for label, summary in with_events.items()]
    rows += [(label.replace("_", " "), summary) for label, summary in lean.items()]
    for label, summary in rows:
        print(f"[{label}] per-chunk path {summary['per_chunk_path_ms']:.3f} ms, of which rclpy's floor "
              f"{summary['rclpy_floor_ms']:.3f} ms")
        for name, row in summary["backends"].items():
            print(f"  {name:<12} inference p50 {row['inference_p50_ms']:.1f} ms: per-chunk path "
                  f"{row['per_chunk_path_pct']:.2f}% (rclpy floor {row['rclpy_floor_pct']:.2f}%), duty {row['cpu_duty_ms_per_inference']:.2f} ms = "
                  f"{row['cpu_duty_pct']:.2f}% (target <= 5%)")
    print(f"load average {env_before['loadavg'][0]:.2f} -> {env_after['loadavg'][0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
