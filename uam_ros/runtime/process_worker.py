"""Inference in a child process: InferenceWorker's interface, without sharing the node's GIL.

Why (benchmarks/README.md, jitter_sources.py): with inference in a thread of the node, the 100 Hz
control timer waits for the GIL (CPython's 5 ms switch interval) as well as for a CPU; even at
SCHED_FIFO its p99 period error stays at 5-7 ms. With the policy in its own process and the control
thread at SCHED_FIFO it was 0.3 ms. So the node process keeps one Python thread that matters (the
executor's), and the policy runs here:

    parent (node)                                   child ('spawn': never fork a process with DDS threads)
    ProcessInferenceWorker(...)  -- spawn -------->  create_policy(same arguments), set torch threads,
        waits for ready / error  <-- progress ----    warmup()
                                 <-- ready | error
    submit(obs): image -> shared slot, --------->   copy the image out, policy.infer(obs)
                 small message (state, stamp)
    poll(): complete message? recv  <---------------  result (chunk | error, started_s, finished_s)

- Construction blocks until the child answers: `ready` (backend name, reason, fallback, warm-up s)
  or the construction error, raised here as InferenceProcessError with the child's message (so the
  node's configure fails with the same text as when the policy is built in-process).
- submit() and poll() never block on the child. The camera image goes through a shared-memory slot
  sized at construction (one memcpy on the control thread); a different-sized image is pickled
  through the pipe instead. poll() reads a result only once all of its bytes are in the socket, so
  the control thread never waits on a half-written message from the (lower-priority) child.
- A dead child (crash, segfault, OOM kill) reads as EOF: poll() returns one WorkerResult whose error
  names the exit code / signal -- PolicyLoop holds with "inference_error", as for a backend exception
  in the thread worker -- and the worker stays dead (submit() refuses) until stop() + start() spawn a
  new child (the node: deactivate + activate). A hung child simply stays busy: busy_for_s() grows
  and PolicyLoop holds with "inference_timeout" at its inference_timeout_s, as with the thread worker.
- stop() never hangs: a "stop" message, then SIGTERM, then SIGKILL, each after a short grace.
- The child ignores SIGINT (Ctrl-C in a terminal reaches the whole process group; the node decides
  when inference stops), dies with its parent (PR_SET_PDEATHSIG when spawned from the main thread;
  otherwise at EOF of its pipe) and never prints a traceback: every error goes back as a message.
- started_s / finished_s are the child's time.monotonic(): CLOCK_MONOTONIC is system-wide on Linux,
  so they compare with the parent's clock (~/chunk_timing).
- As with any multiprocessing 'spawn' child, the child imports the parent's __main__ module (as
  __mp_main__): a script that builds this worker (or a PolicyNode with inference_process:=true) must
  keep its top-level code under `if __name__ == "__main__":` (`python -m uam_ros.ros.policy_node` does).
  A python:// policy module must be importable in the child: the child gets the parent's sys.path.
"""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import select
import signal
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from uam_ros.runtime.policy import Observation
from uam_ros.runtime.worker import BusyClock, WorkerResult

_HEADER = struct.Struct("!i")  # multiprocessing.connection's frame header (length, big-endian int32)


class InferenceProcessError(RuntimeError):
    """The child could not build or warm up the policy (the message is the child's error), or died or
    went silent before it was ready."""


def _signal_name(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# ---- child ------------------------------------------------------------------------------------------
def _child_setup(parent_pid: int, die_with_parent: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around spawn
    if hasattr(os, "sched_setscheduler"):
        try:  # never run the policy at the control thread's real-time priority
            if os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) != os.SCHED_OTHER:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
    if die_with_parent:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(0)


def _child_main(conn, create_args: dict, image_slot, parent_pid: int, die_with_parent: bool) -> None:
    """Entry point of the spawned child. Never raises: every outcome is a message or a quiet exit."""
    try:
        _child_setup(parent_pid, die_with_parent)
        _child_serve(conn, create_args, image_slot)
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # the parent went away or stopped us
    except BaseException as exc:  # noqa: BLE001 - report, never print a traceback into the node's log
        try:
            conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass


def _child_serve(conn, create_args: dict, image_slot) -> None:
    from uam_ros.runtime.factory import create_policy

    args = dict(create_args)
    options = dict(args.pop("options", None) or {})
    options["progress"] = lambda line: conn.send(("progress", str(line)))
    try:
        choice = create_policy(args.pop("backend"), args.pop("checkpoint_dir"), args.pop("joint_names"),
                               options=options, **args)
        threads = int(create_args.get("threads", 0) or 0)
        import sys

        if "torch" in sys.modules:  # the backend imported torch: pin its intra-op threads here too
            import torch

            from uam_ros.runtime.torch_backend import default_thread_count

            torch.set_num_threads(threads or getattr(choice.policy, "threads", 0) or default_thread_count())
        warmup_s = float(choice.policy.warmup() or 0.0)
    except Exception as exc:  # noqa: BLE001 - the parent raises it as the configure error
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    policy = choice.policy
    conn.send(("ready", {"name": choice.name, "reason": choice.reason, "fallback": bool(choice.fallback),
                         "warmup_s": warmup_s, "policy_name": str(getattr(policy, "name", "") or ""),
                         "pid": os.getpid()}))
    slot = np.frombuffer(image_slot, dtype=np.uint8) if image_slot is not None else None
    while True:
        message = conn.recv()
        kind = message[0]
        if kind == "stop":
            return
        if kind != "infer":
            continue
        _, seq, image_meta, state, instruction, stamp_ns = message
        if isinstance(image_meta, np.ndarray):  # did not fit the slot: came through the pipe
            image = image_meta
        else:
            shape = tuple(image_meta)
            image = slot[: int(np.prod(shape))].reshape(shape).copy()  # the parent may reuse the slot later
        observation = Observation(image=image, state=state, instruction=instruction, stamp_ns=stamp_ns)
        start = time.monotonic()
        try:
            chunk = policy.infer(observation)
            end = time.monotonic()
            reply = ("result", seq, chunk, "", start, end)
        except Exception as exc:  # noqa: BLE001 - a backend fault must never kill the control loop
            end = time.monotonic()
            reply = ("result", seq, None, f"{type(exc).__name__}: {exc}", start, end)
        try:
            conn.send(reply)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a chunk whose extras do not pickle
            conn.send(("result", seq, None, f"inference result could not be sent to the node: "
                                            f"{type(exc).__name__}: {exc}", start, time.monotonic()))


# ---- parent -----------------------------------------------------------------------------------------
class ProcessInferenceWorker(BusyClock):
    """InferenceWorker (uam_ros.runtime.worker) with the policy in a spawned child process.

    Built from uam_ros.runtime.factory.create_policy's arguments; the constructor spawns the child and
    blocks until the policy is built and warmed up (see the module docstring). Afterwards
    backend_name / backend_reason / fallback / warmup_s describe what the child built.
    """

    def __init__(
        self, backend: str, checkpoint_dir: str, joint_names: Sequence[str], *, threads: int = 0, seed: int = 0,
        default_dt_s: float = 0.1, robot: str = "", chunk_size: int = 16, options: Mapping[str, Any] | None = None,
        image_shape: Sequence[int] | None = None, progress: Callable[[str], None] | None = None,
        ready_timeout_s: float = 600.0, name: str = "uam-inference",
    ) -> None:
        options = {k: v for k, v in dict(options or {}).items() if k != "progress"}
        self._create_args = dict(backend=backend, checkpoint_dir=str(checkpoint_dir), joint_names=list(joint_names),
                                 threads=int(threads), seed=int(seed), default_dt_s=float(default_dt_s),
                                 robot=str(robot), chunk_size=int(chunk_size), options=options)
        self._image_shape = tuple(int(s) for s in image_shape) if image_shape else None
        self._progress = progress
        self.ready_timeout_s = float(ready_timeout_s)
        self.name = name
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self._slot_array = None  # ctx.RawArray shared with the child (the camera image)
        self._slot: np.ndarray | None = None
        self._poller = None
        self._busy_since: float | None = None
        self._seq = 0
        self._dead = ""  # why the child is gone, once it is
        self._stopping = False
        self.completed = 0
        self.failed = 0
        self.backend_name = self.backend_reason = self.policy_name = ""
        self.fallback = False
        self.warmup_s = 0.0
        self.pid: int | None = None
        self._spawn()

    # ---- lifecycle ------------------------------------------------------------------------------
    def _spawn(self) -> None:
        ctx = self._ctx
        size = int(np.prod(self._image_shape)) if self._image_shape else 0
        slot_array = ctx.RawArray("B", size) if size else None
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        main = threading.current_thread() is threading.main_thread()
        process = ctx.Process(target=_child_main, name=self.name, daemon=True,
                              args=(child_conn, self._create_args, slot_array, os.getpid(), main))
        # Ctrl-C reaches the whole process group: keep SIGINT blocked until the child ignores it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            process.start()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            child_conn.close()  # ours: the child's end stays open only in the child (EOF when it dies)
        self._process, self._conn, self._slot_array = process, parent_conn, slot_array
        self._poller = select.poll()
        self._poller.register(parent_conn.fileno(), select.POLLIN)
        self._slot = np.frombuffer(slot_array, dtype=np.uint8) if slot_array is not None else None
        self._busy_since, self._dead, self._stopping = None, "", False
        try:
            info = self._wait_ready()
        except BaseException:
            self._shutdown_child(grace_s=0.5)
            raise
        self.backend_name, self.backend_reason = info["name"], info["reason"]
        self.fallback, self.warmup_s = info["fallback"], info["warmup_s"]
        self.policy_name, self.pid = info["policy_name"], info["pid"]

    def _wait_ready(self) -> dict:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InferenceProcessError(f"inference process sent nothing for {self.ready_timeout_s:.0f} s "
                                            "while building the policy; stopped it")
            if not self._conn.poll(min(remaining, 0.5)):
                if not self._process.is_alive():
                    self._process.join(0.5)
                    raise InferenceProcessError("inference process exited before the policy was ready "
                                                f"({_signal_name(self._process.exitcode)})")
                continue
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._process.join(2.0)
                raise InferenceProcessError("inference process exited before the policy was ready "
                                            f"({_signal_name(self._process.exitcode)})") from None
            kind = message[0]
            if kind == "progress":
                if self._progress is not None:
                    self._progress(message[1])
                deadline = time.monotonic() + self.ready_timeout_s  # still working
            elif kind == "ready":
                return message[1]
            elif kind == "error":
                raise InferenceProcessError(message[2])
            elif kind == "fatal":
                raise InferenceProcessError(f"inference process failed: {message[1]}")

    def start(self) -> None:
        """Nothing to do for the child built by the constructor; after stop(), spawn a new one (blocks
        until it is ready, like the constructor)."""
        with self._lock:
            running = self._process is not None and not self._stopping
        if not running:
            self._spawn()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the child: ask it to exit (idle), else SIGTERM, then SIGKILL. Idempotent, bounded."""
        with self._lock:
            if self._process is None or self._stopping:
                return
            self._stopping = True
            busy = self._busy_since is not None
        self._shutdown_child(grace_s=timeout_s / 2 if not busy else 0.0, kill_after_s=max(timeout_s / 2, 0.2))

    def _shutdown_child(self, grace_s: float, kill_after_s: float = 1.0) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        if grace_s > 0 and process.is_alive():
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
            process.join(grace_s)
        if process.is_alive():
            process.terminate()
            process.join(kill_after_s)
        if process.is_alive():
            process.kill()
            process.join(kill_after_s)
        try:
            conn.close()
        except OSError:
            pass
        if process.exitcode is not None:
            process.close()
        with self._lock:
            self._process = self._conn = None
            self._busy_since = None
            self._stopping = True
            self._slot = self._slot_array = None

    # ---- InferenceWorker interface ----------------------------------------------------------------
    def submit(self, observation: Observation) -> bool:
        """Send an observation unless one is in flight or the child is gone; never blocks on inference."""
        with self._lock:
            if self._busy_since is not None or self._stopping or self._dead or self._conn is None:
                return False
            image = np.asarray(observation.image)
            slot = self._slot
            if slot is not None and image.dtype == np.uint8 and image.size <= slot.size:
                slot[: image.size].reshape(image.shape)[...] = image  # one copy; the child copies it out
                image_meta: object = tuple(image.shape)
            else:
                image_meta = np.ascontiguousarray(image)  # pickled through the pipe
            self._seq += 1
            message = ("infer", self._seq, image_meta, np.asarray(observation.state), observation.instruction,
                       int(observation.stamp_ns))
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                self._mark_dead(f"could not send an observation: {type(exc).__name__}: {exc}")
                self._busy_since = time.monotonic()  # poll() reports the death as this inference's error
                return True
            self._busy_since = time.monotonic()
            return True

    def poll(self) -> WorkerResult | None:
        """The newest result, or None; a child that died is reported once, as an error result."""
        with self._lock:
            conn = self._conn
            if conn is None or self._stopping:
                return None
            if self._dead:
                return self._death_result()
            try:
                ready = self._message_complete(conn)
            except (OSError, ValueError):
                ready = None
            if ready is None:  # EOF: the child is gone
                self._mark_dead("")
                return self._death_result()
            if not ready:
                return None
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._mark_dead("")
                return self._death_result()
            kind = message[0]
            if kind == "fatal":
                self._mark_dead(message[1])
                return self._death_result()
            if kind != "result":
                return None
            _, seq, chunk, error, started, finished = message
            if seq != self._seq:
                return None
            self._busy_since = None
            if error:
                self.failed += 1
            else:
                self.completed += 1
            return WorkerResult(chunk, error, finished - started, started, finished)

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._process is not None and not self._dead and not self._stopping

    # ---- internals --------------------------------------------------------------------------------
    def _message_complete(self, conn) -> bool | None:
        """True when a whole message is waiting, False when none or only part of one, None at EOF.
        One syscall per tick while nothing is waiting (poll), a few more when something is."""
        fd = conn.fileno()
        if not self._poller.poll(0):  # POLLIN, or POLLHUP / POLLERR at EOF
            return False
        # In this order: bytes that arrive after poll() only make FIONREAD larger, so readable with
        # nothing to read really is the other end closed (and no more bytes will ever come).
        available = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        if available == 0:
            return None
        if available < _HEADER.size:
            return False
        with socket.socket(fileno=os.dup(fd)) as sock:
            header = sock.recv(_HEADER.size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        if len(header) < _HEADER.size:
            return False
        (length,) = _HEADER.unpack(header)
        if length == -1:  # a >2 GiB frame carries an 8-byte length after the header; never ours
            return True
        return available >= _HEADER.size + length

    def _mark_dead(self, detail: str) -> None:
        process = self._process
        code = None
        if process is not None:
            process.join(0.02)  # it closed its end: it is exiting
            code = process.exitcode
        why = f"inference process died ({_signal_name(code)})"
        self._dead = f"{why}: {detail}" if detail else why

    def _death_result(self) -> WorkerResult | None:
        """Report the death once (as the in-flight inference's error, or as a new one)."""
        if self._dead.endswith("[reported]"):
            return None
        error = self._dead
        self._dead = f"{error} [reported]"
        now = time.monotonic()
        started = self._busy_since or now
        self._busy_since = None
        self.failed += 1
        return WorkerResult(None, error, now - started, started, now)
