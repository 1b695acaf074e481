"""The loop's decisions with a real InferenceWorker thread and scripted policies."""

import threading
import time

import numpy as np
import pytest

from uam_ros.control.policy_loop import PolicyLoop
from uam_ros.control.trajectory import command_problems
from uam_ros.runtime.policy import ActionChunk, Observation
from uam_ros.runtime.worker import InferenceWorker


class ScriptedPolicy:
    """Moves every joint toward state + offset; can be told to fail, stall or return garbage."""

    name = "scripted"

    def __init__(self, offset=0.05):
        self.offset = offset
        self.mode = "ok"
        self.seen: list[Observation] = []
        self.release = threading.Event()

    def infer(self, observation):
        self.seen.append(observation)
        if self.mode == "raise":
            raise RuntimeError("backend exploded")
        if self.mode == "stall":
            self.release.wait(5.0)
        state = observation.state
        steps = np.linspace(0.0, 1.0, 8)[:, None]
        positions = state[None, :] + self.offset * steps
        if self.mode == "nan":
            positions[3, 1] = np.nan
        if self.mode == "shape":
            positions = positions[:, :2]
        return ActionChunk(positions, 0.1, observation.stamp_ns, imagined_future=np.zeros((4, 4, 3), np.uint8))

    def warmup(self):
        return 0.0


@pytest.fixture
def rig(panda):
    policy = ScriptedPolicy()
    worker = InferenceWorker(policy)
    worker.start()
    loop = PolicyLoop(panda, worker)
    yield loop, policy
    policy.release.set()
    worker.stop()


def feed(loop, robot, t, q=None, image_t=None):
    q = np.array(robot.home) if q is None else q
    names = list(robot.joints.names) + [robot.gripper.joint]
    loop.on_joint_state(t, names, list(q) + [0.04], [0.0] * (len(q) + 1))
    if image_t is not None:
        img = np.zeros((robot.camera.height, robot.camera.width, 3), np.uint8)
        loop.on_image(image_t, "rgb8", img.shape[0], img.shape[1], img.shape[1] * 3, img.tobytes())


def tick_until(loop, robot, t0, predicate, image=True, timeout=3.0):
    """Tick at 100 Hz of simulated time (feeding fresh inputs) until predicate(result) holds."""
    t = t0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        feed(loop, robot, t, image_t=t if image else None)
        result = loop.tick(t + 0.001)
        if predicate(result):
            return result, t
        t += 0.01
        time.sleep(0.002)
    raise AssertionError(f"condition not reached; status={loop.status} ({loop.status_detail})")


def test_valid_chunk_becomes_valid_command(rig, panda):
    loop, policy = rig
    result, _ = tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    cmd = result.command
    assert loop.status == "running"
    assert cmd.joint_names == tuple(panda.joints.names)
    assert command_problems(cmd, panda.limits_arrays(), loop.period_s) == []
    assert result.gripper == pytest.approx(0.04)
    assert policy.seen[0].state.shape == (8,)


def test_stale_camera_holds_once_at_measured_position_then_recovers(rig, panda):
    loop, _ = rig
    _, t = tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    q = np.array(panda.home) + 0.01
    commands = []
    for k in range(80):  # joints keep coming, camera stopped at t
        now = t + 0.01 * (k + 1)
        feed(loop, panda, now, q=q)
        r = loop.tick(now)
        if r.command is not None:
            commands.append(r.command)
    assert loop.status == "stale_image"
    holds = [c for c in commands if c.is_hold]  # chunks in flight may still land before the frame is stale
    assert len(holds) == 1 and commands[-1] is holds[0]
    np.testing.assert_allclose(holds[0].positions[0], q)
    result, _ = tick_until(loop, panda, t + 1.0, lambda r: r.command is not None)
    assert loop.status == "running" and not result.command.is_hold


@pytest.mark.parametrize("mode, status", [("raise", "inference_error"), ("nan", "rejected_non_finite"),
                                          ("shape", "bad_chunk")])
def test_bad_inference_results_hold(rig, panda, mode, status):
    loop, policy = rig
    tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    policy.mode = mode
    result, _ = tick_until(loop, panda, 101.0, lambda r: r.command is not None)
    assert result.command.is_hold and loop.status == status
    policy.mode = "ok"
    tick_until(loop, panda, 102.0, lambda r: r.command is not None and not r.command.is_hold)
    assert loop.status == "running"


def test_slow_inference_times_out_into_hold(rig, panda):
    loop, policy = rig
    loop.inference_timeout_s = 0.05
    _, t = tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    policy.mode = "stall"  # the inference already in flight may still finish normally; the next one stalls
    result, _ = tick_until(loop, panda, t + 0.01, lambda r: r.command is not None and r.command.is_hold)
    assert loop.status == "inference_timeout"
    policy.release.set()


def test_instruction_change_resubmits_with_new_text(rig, panda):
    loop, policy = rig
    feed(loop, panda, 100.0, image_t=100.0)
    loop.set_instruction("pick up the red cube")
    tick_until(loop, panda, 100.0, lambda r: any(o.instruction == "pick up the red cube" for o in policy.seen),
               image=False)
    loop.set_instruction("stack the blue block")
    tick_until(loop, panda, 100.05, lambda r: any(o.instruction == "stack the blue block" for o in policy.seen),
               image=False)


def test_no_command_before_inputs_and_bad_inputs_counted(rig, panda):
    loop, _ = rig
    assert loop.tick(1.0).command is None and loop.status == "no_joint_state"
    assert "lacks arm joints" in loop.on_joint_state(1.0, ["bogus"], [0.0], [])
    assert loop.on_image(1.0, "16UC1", 128, 128, 256, bytes(128 * 256))
    assert loop.counters.inputs_rejected == {"unknown_joints": 1, "unsupported_encoding": 1}
    assert loop.tick(1.0).command is None


def test_backend_fault_stays_reported_until_a_chunk_is_accepted(rig, panda):
    loop, policy = rig
    tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    policy.mode = "raise"
    _, t = tick_until(loop, panda, 101.0, lambda r: r.command is not None and r.command.is_hold)
    for k in range(20):  # inputs are fine, the backend keeps failing: no "recovered" in between
        feed(loop, panda, t + 0.01 * k, image_t=t + 0.01 * k)
        loop.tick(t + 0.01 * k + 0.001)
        assert loop.status == "inference_error"
        time.sleep(0.002)


def test_forward_clock_jump_holds_while_the_measured_state_is_known(rig, panda):
    loop, _ = rig
    _, t = tick_until(loop, panda, 100.0, lambda r: r.command is not None)
    feed(loop, panda, t + 100.0, image_t=t + 100.0)  # stamps 100 s ahead of the node's clock
    result = loop.tick(t + 0.02)
    assert loop.status == "future_joint_state"
    assert result.command is not None and result.command.is_hold


def test_chunk_observed_after_now_is_refused(panda):
    class Stub:
        def __init__(self, chunk):
            self.chunk = chunk

        def submit(self, observation):
            return False

        def poll(self):
            from uam_ros.runtime.worker import WorkerResult

            chunk, self.chunk = self.chunk, None
            return WorkerResult(chunk, "", 0.01) if chunk is not None else None

        def busy_for_s(self):
            return 0.0

    home = np.array(panda.action_home)
    # Predicted from an observation at t=1000 s; the (sim) clock was reset to t=10 s meanwhile.
    stale = ActionChunk(np.tile(home, (8, 1)), 0.1, int(1000e9))
    loop = PolicyLoop(panda, Stub(stale))
    feed(loop, panda, 10.0, image_t=10.0)
    result = loop.tick(10.0)
    assert loop.status == "rejected_clock" and loop.counters.chunks_rejected == 1
    assert result.command is None or result.command.is_hold


def run_ticks(loop, worker, robot, t0, seconds):
    """Tick at 100 Hz of simulated time with a fresh image every tick, each inference finishing
    within its tick (so host load cannot stretch simulated time); returns the end time."""
    t = t0
    while t < t0 + seconds:
        feed(loop, robot, t, image_t=t)
        loop.tick(t + 0.001)
        deadline = time.monotonic() + 5.0
        while worker.busy and time.monotonic() < deadline:
            time.sleep(0.0005)
        t += 0.01
    return t


@pytest.mark.parametrize("replan_steps", [0, 2])
def test_replan_steps_spaces_inferences_by_the_steps_executed(panda, replan_steps):
    policy = ScriptedPolicy()
    worker = InferenceWorker(policy)
    worker.start()
    try:
        loop = PolicyLoop(panda, worker, replan_steps=replan_steps)
        _, t = tick_until(loop, panda, 100.0, lambda r: r.command is not None)
        first = len(policy.seen)
        t = run_ticks(loop, worker, panda, t + 0.01, 1.5)
        gaps = np.diff([o.stamp_ns * 1e-9 for o in policy.seen[first - 1:]])
        period = replan_steps / panda.chunk.action_rate_hz
        if replan_steps:
            # every chunk runs its 2 steps (0.2 s at 10 Hz) before the next image goes to inference
            assert len(gaps) >= 5 and gaps.min() >= period - 1e-3, gaps
            assert gaps.max() <= period + 0.011, gaps  # and then it does go: no starving
            # a new instruction does not wait for the steps to run out
            loop.set_instruction("touch the red cube")
            count = len(policy.seen)
            tick_until(loop, panda, t, lambda r: len(policy.seen) > count)
            assert policy.seen[-1].instruction == "touch the red cube"
            assert policy.seen[-1].stamp_ns * 1e-9 - policy.seen[-2].stamp_ns * 1e-9 < period
        else:
            assert gaps.max() <= 0.021, gaps  # every new image the worker is free for
    finally:
        worker.stop()
    with pytest.raises(ValueError, match="replan_steps"):
        PolicyLoop(panda, worker, replan_steps=-1)
