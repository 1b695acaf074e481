"""`uam record FILE.mcap`: record a running uam_policy (and sim or robot driver) from outside.

A plain rclpy node with one raw subscription per topic of uam_ros.recording.topics.policy_topics:
raw, so the payload is the CDR bytes as they arrived and nothing is deserialised; with message
info, so each message keeps its publisher's source timestamp (MCAP publish_time; log_time is this
node's clock on receipt, as in rosbag2). It runs until SIGINT/SIGTERM, then closes the file
(summary, index, footer); killed harder, the file is still readable up to its last chunk.

It records what went over DDS only. The policy node's own `record:=FILE` parameter additionally
records each observation the model was given and each raw chunk it returned, which `uam replay`
needs to reproduce a noise-driven model exactly (see docs/recording.md).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile

from uam_ros.recording.recorder import Recorder
from uam_ros.recording.topics import TopicSpec, expand, policy_topics
from uam_ros.recording.writer import COMPRESSION, DEFAULT_CHUNK_SIZE, DEFAULT_FLUSH_PERIOD_S


def subscription_qos(spec: TopicSpec) -> QoSProfile:
    """The node's own QoS for the topic (so the recorder matches exactly the publishers the policy
    matches), with a deeper queue: the recorder's executor may stall for a moment under load."""
    return QoSProfile(history=spec.qos.history, depth=max(int(spec.qos.depth), 50),
                      reliability=spec.qos.reliability, durability=spec.qos.durability)


SILENCE_REPORT_S = 5.0  # first "no message yet" report; then every 2x as long, at most every 60 s


class RecorderNode(Node):
    def __init__(self, out: Path, topics: list[TopicSpec], metadata: dict[str, str], *, compression: str = "zstd",
                 chunk_size: int = DEFAULT_CHUNK_SIZE, flush_period_s: float = DEFAULT_FLUSH_PERIOD_S,
                 name: str = "uam_record", silence_report_s: float = SILENCE_REPORT_S,
                 context: Context | None = None) -> None:
        super().__init__(name, context=context)  # context: None is rclpy's default one
        self.recorder = Recorder(out, topics, metadata, clock_ns=lambda: self.get_clock().now().nanoseconds,
                                 compression=compression, chunk_size=chunk_size, flush_period_s=flush_period_s)
        self.silent: set[str] = {spec.topic for spec in topics}  # topics without a first message yet
        for spec in topics:
            self.create_subscription(spec.msg_type, spec.topic, self._callback(spec.topic), subscription_qos(spec),
                                     raw=True)
        self.get_logger().info(f"recording {len(topics)} topics to {out}: "
                               + ", ".join(spec.topic for spec in topics))
        self._silence_period_s = silence_report_s
        self._silence_timer = self.create_timer(silence_report_s, self._report_silence)

    def _report_silence(self) -> None:
        """Name each topic still without a message, with the publishers this node's graph sees on it:
        0 says nothing publishes it (or discovery has not found it); >= 1 with no message says a
        publisher was seen but its data do not arrive (a QoS mismatch, or a writer not matched yet).
        Backs off (5, 10, 20 ... 60 s) so that topics nobody publishes in a setup do not spam the log."""
        self.destroy_timer(self._silence_timer)  # one-shot: the next report gets a longer period
        for topic in sorted(self.silent):
            self.get_logger().warning(f"no message yet on {topic} ({self.count_publishers(topic)} publishers seen)")
        if self.silent:
            self._silence_period_s = min(2.0 * self._silence_period_s, 60.0)
            self._silence_timer = self.create_timer(self._silence_period_s, self._report_silence)

    def _callback(self, topic: str):
        """One line per topic when its first message arrives: which topics are live is what a user
        starting a recording wants to know, and a subscription matched late (DDS discovery on a busy
        host can take seconds) shows as a late line rather than as silently missing data."""
        record = self.recorder.record
        logger = self.get_logger()
        first = True

        def on_message(data: bytes, info) -> None:
            nonlocal first
            record(topic, data, publish_time_ns=info.get("source_timestamp") or None)
            if first:
                first = False
                self.silent.discard(topic)
                logger.info(f"first message on {topic}")

        return on_message

    def close(self) -> None:
        stats = self.recorder.close()
        dropped = sum(stats.dropped.values())
        self.get_logger().info(
            f"closed {self.recorder.path}: {sum(stats.written.values())} messages, {stats.bytes / 1e6:.2f} MB, "
            f"{stats.duration_s:.1f} s" + (f", {dropped} DROPPED (disk too slow)" if dropped else "")
            + "".join(f"\n  {topic}: {count}" for topic, count in sorted(stats.written.items())))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="the MCAP file to write (e.g. runs/pick.mcap)")
    parser.add_argument("--robot", default="franka_panda", help="robot config: a name in config/robots or a YAML "
                        "path (gives the camera, controller and gripper topics)")
    parser.add_argument("--policy-node", default="uam_policy", help="name of the policy node, relative to "
                        "--namespace or absolute (its ~/predicted_trajectory, ~/instruction ... live under it)")
    parser.add_argument("--instruction-topic", default="", help="where the policy reads its instruction "
                        "(default <policy-node>/instruction; `uam run --sim` remaps it to /uam_sim/instruction)")
    parser.add_argument("--namespace", default="", help="namespace the policy and driver run in")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="ROLE_OR_TOPIC",
                        help="leave out topics, by role (image, predicted_path, imagined_future, ...) or name")
    parser.add_argument("--compression", choices=sorted(COMPRESSION), default="zstd")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help="bytes per MCAP chunk: at most this much (or --flush-period of data) is lost on a crash")
    parser.add_argument("--flush-period", type=float, default=DEFAULT_FLUSH_PERIOD_S,
                        help="seconds after which a partly filled chunk is written anyway")
    parser.add_argument("--repair", type=Path, metavar="BROKEN",
                        help="instead of recording: rewrite BROKEN (a recording cut short) as a complete, indexed "
                        "MCAP at OUT")


def run(args: argparse.Namespace, ros_args: list[str] | None = None) -> int:
    if args.repair is not None:
        from uam_ros.recording.reader import repair

        recording = repair(args.repair, args.out)
        print(f"wrote {args.out}: {len(recording.messages)} messages on {len(recording.channels)} topics "
              f"({'was complete' if recording.complete else 'source was cut short: ' + recording.problem})")
        return 0
    from uam_ros.config_errors import ConfigError
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.ros.node_main import run_node

    try:
        robot = load_robot_config(args.robot)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    resolve = partial(expand, namespace=args.namespace, node=args.policy_node)
    topics = [spec for spec in policy_topics(robot, resolve, instruction_topic=args.instruction_topic)
              if spec.role not in args.exclude and spec.topic not in args.exclude]
    metadata = {"recorder": "uam record", "robot": robot.name, "robot_config": str(args.robot),
                "policy_node": args.policy_node}
    run_node(lambda: RecorderNode(args.out, topics, metadata, compression=args.compression,
                                  chunk_size=args.chunk_size, flush_period_s=args.flush_period),
             ros_args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """python -m uam_ros.recording.record_node OUT [options] [--ros-args ...]"""
    from uam_ros.ros_env import localhost_defaults

    localhost_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    parser = argparse.ArgumentParser(prog="uam record", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv[: len(argv) - len(ros_args)])
    return run(args, ["uam_record", *ros_args] if ros_args else None)


if __name__ == "__main__":
    sys.exit(main())
