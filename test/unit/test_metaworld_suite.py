"""Meta-World MT10 suite: the Sawyer config, FK against the env, a short collect, a joint-target replay.

The tests that need Meta-World skip, saying why, where it is not installed
(requirements-metaworld.txt). The expensive parts (building Meta-World's task layouts, EGL contexts)
happen once per module.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from uam_ros.control.robot_config import available_robots, load_robot_config
from uam_ros.metaworld_suite.compat import MetaWorldUnavailable, import_metaworld
from uam_ros.metaworld_suite.scene import action_stride
from uam_ros.runtime.policy import ActionChunk, Observation

os.environ.setdefault("MUJOCO_GL", "egl")

try:
    import_metaworld()
    MISSING = ""
except MetaWorldUnavailable as error:
    MISSING = str(error)
needs_metaworld = pytest.mark.skipif(bool(MISSING), reason=f"Meta-World suite not testable: {MISSING}")
# Meta-World's scripted policies warn whenever their gain saturates (the env clips, as intended).
pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")


# ------------------------------------------------------------------------------------- no Meta-World needed


def test_sawyer_config_validates():
    assert "sawyer" in available_robots()
    robot = load_robot_config("sawyer")
    assert robot.joints.names == [f"right_j{i}" for i in range(7)]
    assert robot.gripper is not None and robot.gripper.joint == "r_close"
    assert robot.action_joint_names[-1] == "r_close" and robot.action_dim == 8
    assert action_stride(80.0, robot.chunk.action_rate_hz) == 2  # 40 Hz: two Meta-World env steps per target


def test_action_rate_must_divide_the_env_rate():
    assert action_stride(80.0, 80.0) == 1
    with pytest.raises(ValueError, match="action_rate_hz 30"):
        action_stride(80.0, 30.0)
    with pytest.raises(ValueError, match="action_rate_hz 160"):
        action_stride(80.0, 160.0)


# ------------------------------------------------------------------------------------- with Meta-World


@pytest.fixture(scope="module")
def scene():
    """The reach-v3 scene that collect() itself uses for 32 px frames (one env and EGL context in all)."""
    from uam_ros.metaworld_suite import collect

    built = collect._scene_for(collect.CollectJob("sawyer", "reach-v3", 0, "corner", (32, 32)))
    yield built
    collect._SCENES.clear()
    built.close()


@needs_metaworld
def test_task_list_is_metaworlds_mt10():
    from uam_ros.metaworld_suite.tasks import MT10, dataset_task, env_name

    assert list(import_metaworld().env_dict.MT10_V3) == list(MT10)
    assert env_name("pick_place") == env_name("pick-place") == "pick-place-v3"
    assert dataset_task("pick-place-v3") == "pick_place"


@needs_metaworld
def test_sawyer_config_matches_the_metaworld_mjcf(scene):
    robot = scene.robot
    model = scene.model
    for i, name in enumerate(robot.joints.names):
        low, high = model.jnt_range[model.joint(name).id]
        assert (robot.joints.position_min[i], robot.joints.position_max[i]) == pytest.approx((low, high)), name
    low, high = model.jnt_range[model.joint("r_close").id]
    assert low <= robot.gripper.open_position < robot.gripper.closed_position <= high
    scene.reset(0)
    np.testing.assert_allclose(scene.arm.arm_positions(scene.data), robot.home, atol=1e-3)


@needs_metaworld
def test_mujoco4_weld_row_is_written_whole(scene):
    import mujoco

    welds = [i for i in range(scene.model.neq) if scene.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD]
    assert welds
    row = scene.model.eq_data[welds[0]]
    assert row[6] == -1.0 and row[10] == 5.0  # Meta-World's relative quaternion and torque scale
    assert np.all(row[11:] == 0.0)


@needs_metaworld
def test_fk_of_the_recorded_qpos_is_the_env_hand(scene):
    from uam_ros.metaworld_suite.expert import scripted_policy

    obs = scene.reset(0)
    policy = scripted_policy("reach-v3")
    moved = 0.0
    start = scene.arm.hand_position(scene.data)
    for _ in range(30):
        obs = scene.obs if scene.steps else obs
        scene.step_native(policy.get_action(obs))
        q = scene.arm.arm_positions(scene.data)
        hand = scene.arm.hand_position(scene.data)
        assert np.linalg.norm(scene.arm.hand_position_fk(q) - hand) < 1e-3
        moved = max(moved, float(np.linalg.norm(hand - start)))
        # FK really depends on the joints it is given (it does not read the env's state):
        assert np.linalg.norm(scene.arm.hand_position_fk(q + 0.05) - hand) > 5e-3
    assert moved > 0.02  # the arm went somewhere, so the comparison covered more than one pose


@needs_metaworld
def test_gripper_target_and_effort_are_inverse(scene):
    arm = scene.arm
    for effort in (-1.0, -0.3, 0.0, 0.6, 1.0):
        assert arm.gripper_effort(arm.gripper_target(effort)) == pytest.approx(effort)
    assert arm.gripper_target(-1.0) == 0.0 and arm.gripper_target(1.0) == 0.04
    assert arm.gripper_effort(0.2) == 1.0  # beyond closed: clipped


@needs_metaworld
def test_short_collect_writes_a_dataset_uam_train_reads(scene, tmp_path):
    from uam_ros.metaworld_suite.collect import collect
    from uam_ros.train.dataset_format import DatasetReader
    from uam_ros.train.datasets import EpisodeStore

    robot = load_robot_config("sawyer")
    summary = collect(["reach"], 1, tmp_path / "mt10", image_size=(32, 32), progress=False)
    assert summary["tasks"]["reach-v3"] == {"kept": 1, "failed": 0, "in_dataset": 1}
    again = collect(["reach"], 1, tmp_path / "mt10", image_size=(32, 32), progress=False)  # resumed: nothing new
    assert again["skipped"] == 1 and again["tasks"]["reach-v3"] == {"kept": 0, "failed": 0, "in_dataset": 1}
    reader = DatasetReader(tmp_path / "mt10")
    assert reader.meta.robot == "sawyer" and reader.meta.joint_names == robot.action_joint_names
    assert reader.meta.action_rate_hz == robot.chunk.action_rate_hz and reader.meta.camera == "corner"
    episode = reader.load(0)
    assert episode.info.task == "reach" and episode.info.instruction == "reach the goal"
    assert episode.frames.shape[1:] == (32, 32, 3) and episode.frames.std() > 5  # a real image, not a blank
    # The action is the arm position reached one recording step later; the gripper target is in range.
    np.testing.assert_allclose(episode.actions[:-1, :7], episode.joint_positions[1:, :7], atol=1e-6)
    assert np.all((episode.actions[:, 7] >= 0.0) & (episode.actions[:, 7] <= 0.04))
    assert np.all(np.diff(episode.time_s) > 0)
    store = EpisodeStore.load([tmp_path / "mt10"], 32, joint_names=robot.action_joint_names)
    assert store.num_episodes == 1 and store.actions.shape == (episode.length, 8)


@needs_metaworld
def test_joint_target_replay_succeeds_on_reach():
    from uam_ros.metaworld_suite.evaluate import evaluate

    report = evaluate("expert", ["reach"], 1, seed=0, image_size=(32, 32), progress=False)
    result = report["tasks"]["reach-v3"]
    assert result["scripted_successes"] == 1
    assert result["successes"] == 1, result["episodes_detail"]


class _HoldStill:
    """A policy that commands the measured state: it must never solve a task."""

    name = "hold"

    def infer(self, observation: Observation) -> ActionChunk:
        return ActionChunk(np.tile(observation.state, (16, 1)), 0.025, observation.stamp_ns)

    def warmup(self) -> float:
        return 0.0


@needs_metaworld
def test_a_policy_that_does_not_move_fails(scene):
    from uam_ros.metaworld_suite.evaluate import run_episode

    horizon, scene.max_steps = scene.max_steps, 96  # reach's scripted policy succeeds in ~45 env steps
    try:
        record = run_episode(scene, _HoldStill(), 0, n_action_steps=8)
    finally:
        scene.max_steps = horizon
    assert record["success"] is False and record["env_steps"] == 96
    assert record["inferences"] == 96 // (8 * scene.stride)
