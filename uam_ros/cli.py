"""`uam`: the command-line front door (pip-only set-ups have no `ros2 launch`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uam_ros.ros_env import localhost_defaults


def cmd_check_config(args: argparse.Namespace) -> int:
    from uam_ros.config_errors import ConfigError
    from uam_ros.control.robot_config import available_robots, load_robot_config

    robots = args.robots or available_robots()
    failed = 0
    for robot in robots:
        try:
            config = load_robot_config(robot)
            print(f"ok    {robot}: {config.arm_dof} joints, controller {config.controller.trajectory_topic}")
        except ConfigError as exc:
            failed += 1
            print(f"error {exc}")
    return 1 if failed else 0


def cmd_init_model(args: argparse.Namespace) -> int:
    """A seeded, untrained checkpoint: lets the whole pipeline run before a trained model exists."""
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.model.checkpoint import init_checkpoint

    robot = load_robot_config(args.robot)
    names, home = robot.action_joint_names, robot.action_home
    path = init_checkpoint(
        args.out, state_dim=len(home), action_dim=len(home), joint_names=names, robot_name=robot.name,
        instructions=args.vocabulary or ["reach the red cube"], seed=args.seed, kind=args.kind,
        state_mean=home, state_std=[0.5] * len(home), action_mean=home, action_std=[args.action_std] * len(home),
    )
    print(f"wrote untrained {args.kind} checkpoint for {robot.name} to {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start what policy.launch.py starts, as subprocesses (pip-only set-ups have no `ros2 launch`):
    the node set comes from the same uam_ros.ros.bringup description; uam_policy activates itself."""
    import signal
    import threading

    from uam_ros.config_errors import ConfigError
    from uam_ros.ros.bringup import BringupArgs, ProcessGroup, describe

    try:
        bringup = BringupArgs(
            robot=args.robot, model=args.model, backend=args.backend, enable=args.enable,
            instruction=args.instruction, record=args.record, sim=args.sim, task=args.task, split=args.split,
            seed=args.seed, rviz=args.rviz, foxglove=args.foxglove, foxglove_port=args.foxglove_port,
            use_sim_time=args.use_sim_time, real_time_factor=args.real_time_factor, namespace=args.namespace,
        )
        specs = describe(bringup)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    group = ProcessGroup(specs, log_dir=args.log_dir)
    if args.foxglove:
        print(f"[uam run] Foxglove: open ws://127.0.0.1:{args.foxglove_port} (this host only)", flush=True)
    return group.wait(stop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uam", description="UAM robot policy for ROS 2")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate robot config files")
    p.add_argument("robots", nargs="*", help="robot names or YAML paths (default: all shipped robots)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("init-model", help="write a seeded, untrained checkpoint for a robot")
    p.add_argument("--robot", default="franka_panda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", choices=("uam", "single_stream"), default="uam")
    p.add_argument("--action-std", type=float, default=0.02, help="spread of the untrained model's actions [rad]")
    p.add_argument("--vocabulary", nargs="*", help="instructions whose words the tokenizer should know")
    p.set_defaults(func=cmd_init_model)

    from uam_ros import demo
    from uam_ros.train import collect, compare, evaluate, recipe, trainer

    for name, module, text in (("collect", collect, "record scripted-expert episodes and VL pairs from the sim"),
                               ("train", trainer, "train a stage: ventral | dorsal | action"),
                               ("eval", evaluate, "closed-loop success and VQA accuracy of a checkpoint"),
                               ("compare", compare, "two `uam eval --json` results on the same layouts, paired "
                                "(exact McNemar)"),
                               ("recipe", recipe, "reproduce the default model: collect, train, evaluate, install")):
        p = sub.add_parser(name, help=text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    from uam_ros.runtime import onnx_export

    p = sub.add_parser("export", help="export a checkpoint to ONNX (cached, verified against torch)")
    onnx_export.add_arguments(p)
    p.set_defaults(func=onnx_export.run)

    from uam_ros.recording import record_node as record_cli, replay as replay_cli

    p = sub.add_parser("record", help="record a running uam_policy (+ sim) to MCAP until Ctrl-C / SIGTERM")
    record_cli.add_arguments(p)
    p.set_defaults(func=record_cli.run)

    p = sub.add_parser("replay", help="re-run a policy offline on a recording and compare its actions")
    replay_cli.add_arguments(p)
    p.set_defaults(func=replay_cli.run)

    p = sub.add_parser("demo", help="closed loop: simulated arm + policy over real DDS, headless")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)

    from uam_ros.ros.bringup import ARGUMENTS, BACKENDS, SPLITS

    help_of = {a.name: a.description for a in ARGUMENTS}
    p = sub.add_parser("run", help="run the policy (and with --sim the simulated arm): what policy.launch.py "
                       "starts, without ros2 launch")
    p.add_argument("--robot", default="franka_panda", help=help_of["robot"])
    p.add_argument("--model", default="", help=help_of["model"])
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=help_of["backend"])
    p.add_argument("--enable", action="store_true", help="command the robot (default: dry-run)")
    p.add_argument("--instruction", default="", help=help_of["instruction"])
    p.add_argument("--record", default="", metavar="FILE", help=help_of["record"])
    p.add_argument("--sim", action="store_true", help=help_of["sim"])
    p.add_argument("--task", default="reach", help=help_of["task"])
    p.add_argument("--split", default="train", choices=SPLITS, help=help_of["split"])
    p.add_argument("--seed", type=int, default=0, help=help_of["seed"])
    p.add_argument("--rviz", action="store_true", help=help_of["rviz"] + " (needs a ROS 2 install)")
    p.add_argument("--foxglove", action="store_true", help=help_of["foxglove"])
    p.add_argument("--foxglove-port", type=int, default=8765, help=help_of["foxglove_port"])
    p.add_argument("--use-sim-time", action="store_true", help=help_of["use_sim_time"])
    p.add_argument("--real-time-factor", type=float, default=1.0, help=help_of["real_time_factor"])
    p.add_argument("--namespace", default="", help=help_of["namespace"])
    p.add_argument("--log-dir", type=Path, default=None, help="write each node's output to DIR/<node>.log "
                   "(default: this terminal)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    localhost_defaults()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
