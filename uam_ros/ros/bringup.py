"""The one description of a uam_ros bringup: which nodes, how to start them, with which parameters.

``launch/policy.launch.py`` (a ROS 2 install) and ``uam run`` (pip-only, nodes as subprocesses)
both turn ``describe(BringupArgs)`` into processes, so the two cannot drift. Nothing here imports
rclpy or launch: the description is plain data, validated by the unit tests for every robot in
config/robots/. Adding a robot is adding its YAML; nothing here names a robot.

    args = BringupArgs.from_strings({"robot": "ur5e", "sim": "true"})
    for node in describe(args): print(node.name, node.parameters)
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from uam_ros.config_errors import ConfigError
from uam_ros.control.robot_config import RobotConfig, load_robot_config, resolve_robot_path

PACKAGE = "uam_ros"
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
# uam_ros.sim.tasks.SPLITS spelled out so that the launch description does not import MuJoCo
# (test_sim_tasks checks that they agree).
SPLITS = ("train", "heldout", "heldout_combo", "heldout_shape", "heldout_paraphrase", "heldout_position")


@dataclass(frozen=True)
class Argument:
    name: str
    default: str  # launch arguments are strings; BringupArgs.from_strings parses them
    description: str
    choices: tuple[str, ...] | None = None


# The launch arguments, in the order `ros2 launch -s` shows them. `uam run` has one flag per entry.
ARGUMENTS: tuple[Argument, ...] = (
    Argument("robot", "franka_panda", "Robot: a name in config/robots or a path to a robot YAML"),
    Argument("model", "", "Checkpoint directory; empty: models/default/<robot>, or with sim:=true and no "
             "shipped checkpoint the scripted expert (expert://<task>)"),
    Argument("backend", "auto", "Inference backend", BACKENDS),
    Argument("enable", "false", "Command the robot (false = dry-run: predict and visualise only)", ("true", "false")),
    Argument("instruction", "", "Initial language instruction (with sim:=true the sim's episode sets it)"),
    Argument("record", "", "Record the policy node's inputs, commands, predictions and inferences to this MCAP "
             "file (empty: off; see docs/recording.md)"),
    Argument("sim", "false", "Start uam_sim, the simulated arm, camera and driver", ("true", "false")),
    Argument("task", "reach", "Task of the simulated episode (sim:=true)"),
    Argument("split", "train", "Episode split of the simulated episode (sim:=true)", SPLITS),
    Argument("seed", "0", "Seed of the simulated episode (sim:=true)"),
    Argument("rviz", "false", "Start RViz with config/uam.rviz", ("true", "false")),
    Argument("foxglove", "false", "Serve the topics to Foxglove over a websocket on 127.0.0.1 (foxglove-sdk)",
             ("true", "false")),
    Argument("foxglove_port", "8765", "Port of the Foxglove websocket server"),
    Argument("use_sim_time", "false", "Use /clock (with sim:=true, uam_sim publishes it)", ("true", "false")),
    Argument("real_time_factor", "1.0", "With sim:=true: world seconds per wall second, in (0, 1]; below 1 the "
             "sim publishes /clock and every node uses it (for a CPU that cannot keep up with the world)"),
    Argument("namespace", "", "Namespace of every node started"),
)
ARGUMENT_NAMES = tuple(a.name for a in ARGUMENTS)


def parse_bool(name: str, text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError("bringup arguments", name, f"expected true or false, got {text!r}")


@dataclass(frozen=True, kw_only=True)
class BringupArgs:
    robot: str = "franka_panda"
    model: str = ""
    backend: str = "auto"
    enable: bool = False
    instruction: str = ""
    record: str = ""
    sim: bool = False
    task: str = "reach"
    split: str = "train"
    seed: int = 0
    rviz: bool = False
    foxglove: bool = False
    foxglove_port: int = 8765
    use_sim_time: bool = False
    real_time_factor: float = 1.0
    namespace: str = ""

    def __post_init__(self) -> None:
        for argument in ARGUMENTS:
            value = getattr(self, argument.name)
            if argument.choices is not None and not isinstance(value, bool) and value not in argument.choices:
                raise ConfigError("bringup arguments", argument.name, f"{value!r} is not one of {list(argument.choices)}")
        if self.seed < 0:
            raise ConfigError("bringup arguments", "seed", f"must be >= 0, got {self.seed}")
        if not 0 <= self.foxglove_port <= 65535:
            raise ConfigError("bringup arguments", "foxglove_port", f"must be a TCP port, got {self.foxglove_port}")
        if not 0.0 < self.real_time_factor <= 1.0:
            raise ConfigError("bringup arguments", "real_time_factor", f"must be in (0, 1], got {self.real_time_factor}")
        if self.real_time_factor != 1.0 and not self.sim:
            raise ConfigError("bringup arguments", "real_time_factor", "only the simulated world can run slower "
                              "than real time (sim:=true)")
        if self.namespace and not all(part.replace("_", "a").isalnum() for part in self.namespace.strip("/").split("/")):
            raise ConfigError("bringup arguments", "namespace", f"{self.namespace!r} is not a valid ROS namespace")

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> "BringupArgs":
        """From launch-argument strings (what `ros2 launch ... name:=value` gives)."""
        unknown = sorted(set(values) - set(ARGUMENT_NAMES))
        if unknown:
            raise ConfigError("bringup arguments", unknown[0], f"unknown argument (known: {list(ARGUMENT_NAMES)})")
        kwargs: dict[str, object] = {}
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, text in values.items():
            kind = hints[name]
            if kind in ("bool", bool):
                kwargs[name] = parse_bool(name, text)
            elif kind in ("float", float):
                try:
                    kwargs[name] = float(str(text).strip())
                except ValueError:
                    raise ConfigError("bringup arguments", name, f"expected a number, got {text!r}") from None
            elif kind in ("int", int):
                try:
                    kwargs[name] = int(str(text).strip())
                except ValueError:
                    raise ConfigError("bringup arguments", name, f"expected an integer, got {text!r}") from None
            else:
                kwargs[name] = str(text)
        return cls(**kwargs)


@dataclass(frozen=True)
class NodeSpec:
    """One process of the bringup, startable by launch_ros (package + executable) or, pip-only,
    as ``python -m module`` (when module is set)."""

    name: str
    package: str
    executable: str | None  # installed in lib/<package>/ (console script); None: run the module
    module: str | None  # Python module whose main() runs the node; None: needs the ROS package
    description: str
    parameters: dict[str, object] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()  # command-line arguments before --ros-args
    namespace: str = ""
    lifecycle: bool = False  # launch drives it through configure -> activate
    autostart_parameter: str | None = None  # pip-only: the parameter that makes it activate itself

    def ros_arguments(self, autostart: bool = False) -> list[str]:
        """`--ros-args` for a plain process start (what launch_ros generates from the same fields)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={normalize_namespace(self.namespace)}"]
        parameters = dict(self.parameters)
        if autostart and self.autostart_parameter:
            parameters[self.autostart_parameter] = True
        args += parameter_arguments(parameters)
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args

    def module_command(self, python: str = sys.executable, autostart: bool = False) -> list[str]:
        if self.module is None:
            raise ValueError(f"{self.name} runs from the ROS package '{self.package}', not a Python module")
        return [python, "-m", self.module, *self.arguments, *self.ros_arguments(autostart)]


def normalize_namespace(namespace: str) -> str:
    return "/" + namespace.strip("/") if namespace.strip("/") else ""


def parameter_arguments(parameters: dict[str, object]) -> list[str]:
    """`-p name:=value` for each parameter, as `ros2 run` / launch parse them."""
    return [arg for key, value in parameters.items() for arg in ("-p", f"{key}:={parameter_text(value)}")]


def parameter_text(value: object) -> str:
    """A parameter value as `-p name:=value` parses it (YAML)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json.dumps(str(v)) if isinstance(v, str) else parameter_text(v) for v in value) + "]"
    text = str(value)
    # Quote strings YAML would read as something else (numbers, booleans, empty, ':' sequences).
    if text == "" or text.lower() in ("true", "false", "yes", "no", "on", "off", "null", "~") or _looks_numeric(text) \
            or any(c in text for c in ":#[]{},&*!|>'\"%@`") or text != text.strip():
        return json.dumps(text)
    return text


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def robot_urdf(robot: RobotConfig, robot_path: Path) -> Path | None:
    """The URDF (or .xacro) the robot config names in its optional ``urdf`` field, resolved
    relative to the robot YAML; None when it names none."""
    value = getattr(robot, "urdf", None) or ""
    if not value:
        return None
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        path = robot_path.parent / path
    if not path.is_file():
        raise ConfigError(str(robot_path), "urdf", f"file {path} does not exist")
    return path


def read_robot_description(urdf: Path) -> str:
    """URDF text for robot_state_publisher; .xacro files go through xacro (ROS installs have it)."""
    if urdf.suffix == ".xacro":
        try:
            import xacro
        except ImportError:
            raise ConfigError(str(urdf), "urdf", "is a .xacro file but the xacro package is not installed") from None
        return xacro.process_file(str(urdf)).toprettyxml(indent="  ")
    return urdf.read_text()


def default_model(args: BringupArgs, robot: RobotConfig) -> str:
    """The model the policy loads: the argument, else a shipped checkpoint, else (in sim) the expert."""
    if args.model:
        return args.model
    from uam_ros.resources import models_dir

    shipped = models_dir() / "default" / robot.name
    if (shipped / "model.safetensors").is_file() or not args.sim:
        return ""  # the node resolves models/default/<robot> itself and names it if it is missing
    return f"expert://{args.task}?split={args.split}&seed={args.seed}"


def record_path(record: str) -> str:
    """The policy node's record parameter: absolute (~ expanded), so the file lands where the
    bringup was started whatever the node's working directory; empty stays empty (off)."""
    return str(Path(os.path.expanduser(record)).absolute()) if record.strip() else ""


def visual_topics(robot: RobotConfig, namespace: str = "") -> list[tuple[str, str]]:
    """(topic, type) of everything worth looking at: what RViz shows and Foxglove serves."""
    ns = normalize_namespace(namespace)

    def resolve(name: str) -> str:
        return name if name.startswith("/") else f"{ns}/{name}"

    camera = resolve(robot.camera.image_topic)
    topics = [
        (camera, "sensor_msgs/msg/Image"),
        (camera.rsplit("/", 1)[0] + "/camera_info", "sensor_msgs/msg/CameraInfo"),
        (resolve("joint_states"), "sensor_msgs/msg/JointState"),
        (resolve("uam_policy/predicted_path"), "visualization_msgs/msg/MarkerArray"),
        (resolve("uam_policy/predicted_trajectory"), "trajectory_msgs/msg/JointTrajectory"),
        (resolve("uam_policy/imagined_future"), "sensor_msgs/msg/Image"),
        (resolve(robot.controller.trajectory_topic), "trajectory_msgs/msg/JointTrajectory"),
        ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        ("/tf", "tf2_msgs/msg/TFMessage"),
        ("/tf_static", "tf2_msgs/msg/TFMessage"),
    ]
    return topics


def sim_clock_parameters(real_time_factor: float) -> dict[str, object]:
    """uam_sim's parameters when it is the clock: it publishes /clock at real_time_factor of the wall
    clock and does not itself listen to /clock (every other node then runs with use_sim_time)."""
    return {"use_sim_time": False, "publish_clock": True, "real_time_factor": real_time_factor}


def describe(args: BringupArgs) -> list[NodeSpec]:
    """The nodes to start for these arguments, in start order."""
    robot_path = resolve_robot_path(args.robot)
    robot = load_robot_config(robot_path)
    # A robot given as a path is passed on absolute: every node must load the same file.
    robot_param = args.robot if Path(args.robot).stem == args.robot and "/" not in args.robot \
        else str(robot_path.resolve())
    # With the sim and simulated time, the sim is the clock: it publishes /clock and runs on its own.
    sim_clock = args.sim and (args.use_sim_time or args.real_time_factor != 1.0)
    common = {"use_sim_time": args.use_sim_time or sim_clock}
    nodes: list[NodeSpec] = []
    if args.sim:
        clock = sim_clock_parameters(args.real_time_factor) if sim_clock else common
        nodes.append(NodeSpec(
            name="uam_sim", package=PACKAGE, executable="uam_sim", module="uam_ros.ros.sim_node",
            description="simulated arm: joint_states, camera, JointTrajectory execution, task success",
            parameters={"robot": robot_param, "task": args.task, "split": args.split, "seed": args.seed, **clock},
            namespace=args.namespace,
        ))
    policy_parameters: dict[str, object] = {
        "robot": robot_param, "model": default_model(args, robot), "backend": args.backend, "enable": args.enable,
        "instruction": args.instruction, "record": record_path(args.record), **common,
    }
    # With the sim, its episode gives the instruction (latched on uam_sim/instruction).
    remappings = (("~/instruction", "uam_sim/instruction"),) if args.sim and not args.instruction else ()
    nodes.append(NodeSpec(
        name="uam_policy", package=PACKAGE, executable="uam_policy", module="uam_ros.ros.policy_node",
        description="the policy (lifecycle node): camera + joint states in, trajectory chunks out",
        parameters=policy_parameters, remappings=remappings, namespace=args.namespace, lifecycle=True,
        autostart_parameter="autostart",
    ))
    urdf = robot_urdf(robot, robot_path)
    if urdf is not None:
        nodes.append(NodeSpec(
            name="robot_state_publisher", package="robot_state_publisher", executable="robot_state_publisher",
            module=None, description=f"TF and robot_description from {urdf.name}",
            parameters={"robot_description": read_robot_description(urdf), **common}, namespace=args.namespace,
        ))
    elif args.rviz:
        # No URDF, no TF: the fixed frame would not exist and RViz would draw nothing.
        nodes.append(NodeSpec(
            name="base_frame_publisher", package="tf2_ros", executable="static_transform_publisher", module=None,
            description=f"world -> {robot.base_frame} (identity) so RViz has its fixed frame without a URDF",
            arguments=("--frame-id", "world", "--child-frame-id", robot.base_frame), parameters=dict(common),
            namespace=args.namespace,
        ))
    if args.rviz:
        from uam_ros.resources import share_dir

        nodes.append(NodeSpec(
            name="rviz", package="rviz2", executable="rviz2", module=None,
            description="RViz: camera, imagined future, predicted path, robot model, status",
            arguments=("-d", str(share_dir() / "config" / "uam.rviz"), "-f", robot.base_frame),
            parameters=dict(common), namespace=args.namespace,
        ))
    if args.foxglove:
        nodes.append(NodeSpec(
            name="uam_foxglove", package=PACKAGE, executable="uam_foxglove", module="uam_ros.ros.foxglove_bridge",
            description=f"Foxglove websocket server on 127.0.0.1:{args.foxglove_port}",
            parameters={"port": args.foxglove_port,
                        "topics": [f"{topic}={kind}" for topic, kind in visual_topics(robot, args.namespace)],
                        **common},
            namespace=args.namespace,
        ))
    return nodes


# ---- pip-only start: the same NodeSpecs as subprocesses (what `uam run` does) ----------------------
def installed_executable(package: str, executable: str) -> Path | None:
    """<prefix>/lib/<package>/<executable> from the ament index, None when not installed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return None
    try:
        path = Path(get_package_prefix(package)) / "lib" / package / executable
    except (PackageNotFoundError, LookupError, ValueError):
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def process_command(spec: NodeSpec, autostart: bool = True) -> list[str] | None:
    """The command line that starts spec without ROS launch; None when neither a module of ours nor
    an installed executable of its package can run it here (e.g. rviz2 in a pip-only venv)."""
    if spec.module is not None:
        return spec.module_command(autostart=autostart)
    path = installed_executable(spec.package, spec.executable or "")
    if path is None:
        return None
    return [str(path), *spec.arguments, *spec.ros_arguments(autostart)]


class ProcessGroup:
    """Starts NodeSpecs as child processes with DDS kept on localhost; stops them all (SIGINT, then
    SIGKILL after a grace period) when one exits or when stop() is called."""

    def __init__(self, specs: list[NodeSpec], env: Mapping[str, str] | None = None, log_dir: Path | None = None,
                 echo=print) -> None:
        import subprocess

        from uam_ros.ros_env import localhost_defaults

        self.env = localhost_defaults(dict(os.environ if env is None else env))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("MUJOCO_GL", "egl")
        self.processes: list[tuple[NodeSpec, subprocess.Popen]] = []
        self.skipped: list[tuple[NodeSpec, str]] = []
        self._logs = []
        self._echo = echo
        for spec in specs:
            command = process_command(spec)
            if command is None:
                reason = f"'{spec.package}' is not installed here (it comes with a ROS 2 install)"
                self.skipped.append((spec, reason))
                echo(f"[uam run] skipping {spec.name}: {reason}")
                continue
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                log = open(log_dir / f"{spec.name}.log", "w")
                self._logs.append(log)
                out = {"stdout": log, "stderr": subprocess.STDOUT}
            else:
                out = {}
            echo(f"[uam run] starting {spec.name}: {spec.description}")
            self.processes.append((spec, subprocess.Popen(command, env=self.env, **out)))

    def poll(self) -> tuple[NodeSpec, int] | None:
        """The first process that has exited, with its code."""
        for spec, process in self.processes:
            code = process.poll()
            if code is not None:
                return spec, code
        return None

    def stop(self, grace_s: float = 15.0) -> None:
        import signal
        import subprocess
        import time

        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for _, process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()

    def wait(self, stop_event) -> int:
        """Until stop_event is set or a process exits; then stop the rest. 0 when asked to stop."""
        code = 0
        while not stop_event.wait(0.2):
            exited = self.poll()
            if exited is not None:
                spec, code = exited
                self._echo(f"[uam run] {spec.name} exited with code {code}: stopping the others")
                break
        self.stop()
        return code
