"""ProcessInferenceWorker: InferenceWorker's interface with the policy in a spawned child process.

The policies below are loaded by the child as python://test_process_worker:<Class> (pytest puts this
directory on sys.path, and a 'spawn' child inherits sys.path).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from uam_ros.runtime.policy import ActionChunk, Observation

MODULE = "python://test_process_worker"


# ---- policies the child builds ------------------------------------------------------------------
class EchoPolicy:
    """Deterministic and instant: the chunk is the state plus the image's mean, point after point."""

    name = "echo"

    def __init__(self, joint_names, chunk_size, robot, mode: str = "ok", delay_s: float = 0.0,
                 fail_init: bool = False) -> None:
        if fail_init:
            raise ValueError("echo policy refused to start: fail_init was set")
        self.n, self.chunk_size, self.mode, self.delay_s = len(joint_names), int(chunk_size), mode, float(delay_s)
        self.calls = 0

    def warmup(self) -> float:
        return 0.01

    def infer(self, observation: Observation) -> ActionChunk:
        self.calls += 1
        if self.mode == "segv" and self.calls >= 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.mode == "exit" and self.calls >= 2:
            os._exit(3)
        if self.mode == "hang" and self.calls >= 2:
            time.sleep(1000.0)
        if self.mode == "raise" and self.calls >= 2:
            raise RuntimeError("injected backend fault")
        if self.delay_s:
            time.sleep(self.delay_s)
        image = np.asarray(observation.image)
        state = np.asarray(observation.state, dtype=np.float64)
        steps = np.arange(1, self.chunk_size + 1)[:, None] * 1e-4
        positions = state[None, :] + steps + float(image.mean()) * 1e-6
        return ActionChunk(positions, 0.1, observation.stamp_ns, imagined_future=image[::4, ::4].copy(),
                           extras={"instruction": observation.instruction, "shape": image.shape})


# ---- helpers ------------------------------------------------------------------------------------------
def echo_worker(panda, query: str = "", **kwargs):
    from uam_ros.runtime.process_worker import ProcessInferenceWorker

    model = f"{MODULE}:EchoPolicy" + (f"?{query}" if query else "")
    kwargs.setdefault("image_shape", (panda.camera.height, panda.camera.width, 3))
    return ProcessInferenceWorker("auto", model, panda.action_joint_names, robot="franka_panda",
                                  chunk_size=panda.chunk.chunk_size, **kwargs)


def observation(panda, k: int, shape=None) -> Observation:
    shape = shape or (panda.camera.height, panda.camera.width, 3)
    image = np.random.default_rng(k).integers(0, 256, shape, dtype=np.uint8)
    state = np.asarray(panda.action_home, dtype=np.float64) + 0.01 * k
    return Observation(image=image, state=state, instruction=f"task {k}", stamp_ns=1_000_000_000 + k)


def wait_result(worker, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = worker.poll()
        if result is not None:
            return result
        time.sleep(0.002)
    raise AssertionError(f"no result within {timeout} s (busy for {worker.busy_for_s():.1f} s)")


# ---- tests ---------------------------------------------------------------------------------------------
def test_results_match_the_thread_worker_for_a_seeded_checkpoint(panda, tmp_path):
    """Same create_policy arguments, same observations -> the same chunks, in either worker."""
    pytest.importorskip("torch")
    from uam_ros.model.checkpoint import init_checkpoint
    from uam_ros.runtime.factory import create_policy
    from uam_ros.runtime.process_worker import ProcessInferenceWorker
    from uam_ros.runtime.worker import InferenceWorker

    home = panda.action_home
    ckpt = init_checkpoint(tmp_path / "ckpt", state_dim=len(home), action_dim=len(home),
                           joint_names=panda.action_joint_names, robot_name=panda.name, instructions=["task 0"],
                           seed=3, state_mean=home, state_std=[0.5] * len(home), action_mean=home,
                           action_std=[0.02] * len(home))
    args = dict(threads=1, seed=7, default_dt_s=0.1, robot="franka_panda", chunk_size=panda.chunk.chunk_size)
    progress: list[str] = []
    process = ProcessInferenceWorker("torch", str(ckpt), panda.action_joint_names, **args,
                                     image_shape=(panda.camera.height, panda.camera.width, 3),
                                     progress=progress.append)
    choice = create_policy("torch", ckpt, panda.action_joint_names, **args)
    choice.policy.warmup()
    thread = InferenceWorker(choice.policy)
    thread.start()
    process.start()
    try:
        assert process.backend_name == "torch" and process.backend_reason == choice.reason
        assert process.warmup_s > 0 and not process.fallback and process.pid != os.getpid()
        for k in range(3):
            obs = observation(panda, k)
            before = time.monotonic()
            assert thread.submit(obs) and process.submit(obs)
            assert not process.submit(obs), "one observation in flight at a time"
            assert process.busy and process.busy_for_s() >= 0.0
            expected, got = wait_result(thread), wait_result(process)
            after = time.monotonic()
            assert expected.error == "" and got.error == "", (expected.error, got.error)
            np.testing.assert_allclose(got.chunk.positions, expected.chunk.positions, rtol=0, atol=1e-9)
            np.testing.assert_array_equal(got.chunk.imagined_future, expected.chunk.imagined_future)
            assert got.chunk.observation_stamp_ns == obs.stamp_ns and got.chunk.dt_s == expected.chunk.dt_s
            # The child's time.monotonic() is the system-wide CLOCK_MONOTONIC: it brackets with ours.
            assert before <= got.started_s <= got.finished_s <= after
            assert got.latency_s == pytest.approx(got.finished_s - got.started_s)
            assert not process.busy and process.busy_for_s() == 0.0
        assert process.completed == 3 and process.failed == 0
    finally:
        thread.stop()
        process.stop()


def test_images_through_the_shared_slot_or_the_pipe_arrive_intact(panda):
    worker = echo_worker(panda, image_shape=(32, 32, 3))  # the camera's 128x128 does not fit: pipe
    try:
        for shape in ((32, 32, 3), (16, 8, 3), (panda.camera.height, panda.camera.width, 3)):
            obs = observation(panda, 1, shape)
            assert worker.submit(obs)
            result = wait_result(worker)
            assert result.error == ""
            assert result.chunk.extras == {"instruction": "task 1", "shape": shape}
            np.testing.assert_array_equal(result.chunk.imagined_future, obs.image[::4, ::4])
            expected = obs.state[None, :] + np.arange(1, panda.chunk.chunk_size + 1)[:, None] * 1e-4 \
                + float(obs.image.mean()) * 1e-6
            np.testing.assert_allclose(result.chunk.positions, expected, atol=1e-12)
    finally:
        worker.stop()


def test_construction_errors_fail_with_the_in_process_message(panda, tmp_path):
    from uam_ros.runtime.factory import create_policy
    from uam_ros.runtime.process_worker import InferenceProcessError, ProcessInferenceWorker

    with pytest.raises(InferenceProcessError, match="echo policy refused to start: fail_init was set"):
        echo_worker(panda, "fail_init=true")
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(Exception) as in_process:
        create_policy("torch", missing, panda.action_joint_names)
    with pytest.raises(InferenceProcessError) as in_child:
        ProcessInferenceWorker("torch", missing, panda.action_joint_names)
    assert str(in_child.value) == str(in_process.value) and "no_such_model" in str(in_child.value)


@pytest.mark.parametrize("mode, death", [("segv", "SIGSEGV"), ("exit", "exit code 3")])
def test_a_crashing_child_is_an_inference_error_and_the_loop_holds(panda, mode, death):
    from uam_ros.control.policy_loop import PolicyLoop

    worker = echo_worker(panda, f"mode={mode}")
    loop = PolicyLoop(panda, worker, inference_timeout_s=5.0)
    try:
        start = time.monotonic()
        t = 100.0
        first = None
        while time.monotonic() - start < 60.0:
            feed(loop, panda, t)
            result = loop.tick(t + 0.001)
            if result.chunk is not None:
                first = result
            if first is not None and loop.status == "inference_error":
                break
            t += 0.01
            time.sleep(0.005)
        assert first is not None and first.command is not None, "the first inference must succeed"
        assert loop.status == "inference_error", (loop.status, loop.status_detail)
        assert "inference process died" in loop.status_detail and death in loop.status_detail
        assert loop.counters.inference_errors == 1 and loop.counters.holds == 1
        # The hold went out this tick; the dead worker refuses work, and nothing else is commanded.
        for _ in range(20):
            t += 0.01
            feed(loop, panda, t)
            assert loop.tick(t + 0.001).command is None
        assert loop.status == "inference_error" and not worker.alive and not worker.submit(observation(panda, 9))
        assert worker.failed == 1 and worker.completed == 1
    finally:
        before = time.monotonic()
        worker.stop()
        assert time.monotonic() - before < 2.0


def test_a_child_killed_while_idle_is_reported_once(panda):
    worker = echo_worker(panda)
    try:
        assert worker.submit(observation(panda, 0)) and wait_result(worker).error == ""
        os.kill(worker.pid, signal.SIGKILL)
        result = wait_result(worker, timeout=10.0)
        assert result.chunk is None and "inference process died (killed by SIGKILL)" in result.error
        assert worker.poll() is None and not worker.submit(observation(panda, 1))
        # stop() + start() (the node: deactivate + activate) spawns a working child again.
        worker.stop()
        worker.start()
        assert worker.alive and worker.submit(observation(panda, 2)) and wait_result(worker).error == ""
    finally:
        worker.stop()


def test_a_backend_exception_is_an_error_result_and_the_child_keeps_serving(panda):
    worker = echo_worker(panda, "mode=raise")
    try:
        assert worker.submit(observation(panda, 0)) and wait_result(worker).error == ""
        assert worker.submit(observation(panda, 1))
        result = wait_result(worker)
        assert result.chunk is None and result.error == "RuntimeError: injected backend fault"
        assert worker.alive and worker.submit(observation(panda, 2))
        assert wait_result(worker).error == "RuntimeError: injected backend fault"
        assert worker.failed == 2 and worker.completed == 1
    finally:
        worker.stop()


def test_a_hung_child_is_an_inference_timeout_and_stop_returns_promptly(panda):
    from uam_ros.control.policy_loop import PolicyLoop

    worker = echo_worker(panda, "mode=hang")
    loop = PolicyLoop(panda, worker, inference_timeout_s=0.3)
    try:
        start = time.monotonic()
        t = 100.0
        chunks = 0
        while time.monotonic() - start < 60.0 and loop.status != "inference_timeout":
            feed(loop, panda, t)
            chunks += loop.tick(t + 0.001).chunk is not None
            t += 0.01
            time.sleep(0.005)
        assert chunks == 1 and loop.status == "inference_timeout", (chunks, loop.status, loop.status_detail)
        assert loop.counters.holds == 1 and worker.busy_for_s() > 0.3
    finally:
        pid = worker.pid
        before = time.monotonic()
        worker.stop(timeout_s=1.0)
        assert time.monotonic() - before < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_is_prompt_idempotent_and_ends_the_child(panda):
    worker = echo_worker(panda, "delay_s=0.5")
    pid = worker.pid
    assert worker.submit(observation(panda, 0))  # stop in the middle of an inference
    before = time.monotonic()
    worker.stop()
    worker.stop()
    assert time.monotonic() - before < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert worker.poll() is None and not worker.submit(observation(panda, 1)) and worker.busy_for_s() == 0.0


def feed(loop, robot, t):
    names = list(robot.joints.names) + [robot.gripper.joint]
    q = list(robot.home) + [robot.gripper.open_position]
    loop.on_joint_state(t, names, q, [0.0] * len(q))
    image = np.zeros((robot.camera.height, robot.camera.width, 3), np.uint8)
    loop.on_image(t, "rgb8", image.shape[0], image.shape[1], image.shape[1] * 3, image.tobytes())


def test_a_result_is_read_only_once_all_of_its_bytes_arrived():
    """poll() must never block the control thread on a half-written message of the child."""
    import multiprocessing as mp
    import pickle
    import select
    import socket
    import struct

    from uam_ros.runtime.process_worker import ProcessInferenceWorker

    ours, theirs = mp.get_context("spawn").Pipe(duplex=True)
    worker = ProcessInferenceWorker.__new__(ProcessInferenceWorker)  # only the framing check, no child
    worker._poller = select.poll()
    worker._poller.register(ours.fileno(), select.POLLIN)
    assert worker._message_complete(ours) is False
    payload = pickle.dumps(("result", 1, np.zeros(5000)))  # > 16 KiB: sent as header, then body
    raw = socket.socket(fileno=os.dup(theirs.fileno()))
    raw.sendall(struct.pack("!i", len(payload))[:2])
    assert worker._message_complete(ours) is False
    raw.sendall(struct.pack("!i", len(payload))[2:] + payload[:1000])
    assert worker._message_complete(ours) is False
    raw.sendall(payload[1000:])
    assert worker._message_complete(ours) is True
    assert ours.recv()[1] == 1 and worker._message_complete(ours) is False
    raw.close()
    theirs.close()
    assert worker._message_complete(ours) is None  # EOF: the child is gone
    ours.close()


def test_the_thread_worker_also_starts_again_after_stop(panda):
    """Lifecycle deactivate -> activate stops and starts the worker: the thread worker must allow it too."""
    from uam_ros.runtime.worker import InferenceWorker

    policy = EchoPolicy(panda.action_joint_names, panda.chunk.chunk_size, "franka_panda", delay_s=0.3)
    worker = InferenceWorker(policy)
    worker.start()
    worker.start()  # idempotent while running
    assert worker.submit(observation(panda, 0))
    worker.stop(timeout_s=0.05)  # returns while the inference still runs
    worker.start()
    assert worker.poll() is None and not worker.busy
    assert worker.submit(observation(panda, 1))
    result = wait_result(worker, timeout=5.0)
    assert result.error == "" and result.chunk.observation_stamp_ns == observation(panda, 1).stamp_ns
    time.sleep(0.4)  # the first inference ends meanwhile: its stale result must not surface
    assert worker.poll() is None
    worker.stop()
