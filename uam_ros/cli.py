"""`uam`: the command-line front door (pip-only set-ups have no `ros2 launch`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uam_ros.ros_env import localhost_defaults


def _robot_joint_layout(robot):
    names = list(robot.joints.names) + ([robot.gripper.joint] if robot.gripper else [])
    home = list(robot.home) + ([robot.gripper.open_position] if robot.gripper else [])
    return names, home


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
    names, home = _robot_joint_layout(robot)
    path = init_checkpoint(
        args.out, state_dim=len(home), action_dim=len(home), joint_names=names, robot_name=robot.name,
        instructions=args.vocabulary or ["reach the red cube"], seed=args.seed, kind=args.kind,
        state_mean=home, state_std=[0.5] * len(home), action_mean=home, action_std=[args.action_std] * len(home),
    )
    print(f"wrote untrained {args.kind} checkpoint for {robot.name} to {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start uam_policy and bring it to active (what policy.launch.py does, without ros2 launch)."""
    from uam_ros.ros.policy_node import main as policy_main

    ros_args = ["--ros-args", "-p", "autostart:=true", "-p", f"robot:={args.robot}", "-p", f"backend:={args.backend}",
                "-p", f"enable:={str(args.enable).lower()}"]
    if args.model:
        ros_args += ["-p", f"model:={args.model}"]
    if args.instruction:
        ros_args += ["-p", f"instruction:={args.instruction}"]
    policy_main(ros_args)
    return 0


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
    from uam_ros.runtime import onnx_export

    p = sub.add_parser("export", help="export a checkpoint to ONNX (cached, verified against torch)")
    onnx_export.add_arguments(p)
    p.set_defaults(func=onnx_export.run)

    p = sub.add_parser("demo", help="closed loop: simulated arm + policy over real DDS, headless")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)

    p = sub.add_parser("run", help="run the policy node (pip-only equivalent of policy.launch.py)")
    p.add_argument("--robot", default="franka_panda")
    p.add_argument("--model", default="")
    p.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"))
    p.add_argument("--enable", action="store_true", help="command the robot (default: dry-run)")
    p.add_argument("--instruction", default="")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    localhost_defaults()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
