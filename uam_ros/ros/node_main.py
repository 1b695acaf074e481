"""The one main() loop every uam_ros node runs (minimal_publisher's init -> spin -> shutdown).

rclpy's own signal handler shuts the context down at once, after which a node can no longer
publish; ours only asks the loop to stop, so a node's close() can still command a hold and let it
go out before the context ends.

Executor: SingleThreadedExecutor, every callback in this (the main) thread -- the thread uam_policy
raises to SCHED_FIFO with control_priority. UAM_EXECUTOR=events selects rclpy's EventsExecutor
instead (experimental; for benchmarks/jitter.py): ~3x less CPU per message (node_overhead.py), but
with control_priority it measured a worse p99 timer jitter than this executor on a loaded machine
(likely because it waits for timer deadlines in a helper thread at normal priority; benchmarks/README.md).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from uam_ros.ros_env import localhost_defaults


def make_executor():
    """SingleThreadedExecutor, or EventsExecutor with UAM_EXECUTOR=events where rclpy has it."""
    if os.environ.get("UAM_EXECUTOR", "") == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            pass
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             on_start: Callable[[Node], None] | None = None) -> None:
    localhost_defaults()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = make_node()
    executor = make_executor()
    executor.add_node(node)
    try:
        if on_start is not None:
            on_start(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        executor.spin_once(timeout_sec=0.05)  # let the last messages (a hold) go out
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
