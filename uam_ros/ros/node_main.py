"""The one main() loop every uam_ros node runs (minimal_publisher's init -> spin -> shutdown).

rclpy's own signal handler shuts the context down at once, after which a node can no longer
publish; ours only asks the loop to stop, so a node's close() can still command a hold and let it
go out before the context ends.

Executor: SingleThreadedExecutor, every callback in this (the main) thread -- the thread uam_policy
raises to SCHED_FIFO with control_priority. A node may prefer rclpy's EventsExecutor (uam_policy's
`executor` parameter): ~3x less CPU per message (benchmarks/node_overhead.py). It waits for timer
deadlines in a helper thread of its own, which must run at the control thread's priority too, or a
FIFO control thread is woken only when that helper gets a CPU (benchmarks/README.md, jitter.py);
run_node finds that thread and hands it to the node (adopt_executor_threads). Other nodes keep the
SingleThreadedExecutor: the EventsExecutor of rclpy (Kilted) fails on raw subscriptions (`uam record`).
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


EXECUTORS = ("single", "events")


def make_executor(kind: str = "single"):
    """SingleThreadedExecutor, or with kind "events" rclpy's EventsExecutor where rclpy has it."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            pass
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


def thread_ids() -> dict[int, str]:
    """Native id -> name of this process's threads (Linux /proc; empty elsewhere)."""
    out = {}
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as comm:
                out[int(tid)] = comm.read().strip()
    except OSError:
        pass
    return out


def executor_helper_threads(executor, before: dict[int, str]) -> list[int]:
    """Threads the executor started in one spin with nothing due (the EventsExecutor's timer thread,
    started for a node that has a timer), leaving out the DDS threads (named dds.*)."""
    executor.spin_once(timeout_sec=0.0)
    return sorted(tid for tid, name in thread_ids().items() if tid not in before and not name.startswith("dds."))


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             on_start: Callable[[Node], None] | None = None) -> None:
    localhost_defaults()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = make_node()
    kind = getattr(node, "executor_kind", "single")
    executor = make_executor(kind)
    before = thread_ids()
    executor.add_node(node)
    adopt = getattr(node, "adopt_executor_threads", None)
    if adopt is not None and kind == "events":
        adopt(executor_helper_threads(executor, before))
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
