"""One simulated robot on the table, running one episode: step, command, observe, render, judge.

``SimWorld`` is what the ROS sim node and the data collection drive. It publishes exactly the
robot YAML's joint names (arm joints, then the gripper joint) and takes joint-position targets,
as a ros2_control position interface would.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import mujoco
import numpy as np

from uam_ros.control.robot_config import RobotConfig, load_robot_config
from uam_ros.sim.objects import BUTTON_TRAVEL, ObjectSpec, quat_yaw, rgba
from uam_ros.sim.scene import TIMESTEP, SceneInfo, build_scene_spec, check_joint_limits
from uam_ros.sim.tasks import EpisodeSpec, WorldState, get_task, sample_episode

_MODEL_CACHE: "OrderedDict[tuple, tuple[mujoco.MjModel, SceneInfo, RobotConfig]]" = OrderedDict()
_MODEL_CACHE_SIZE = 16


def _structure_key(robot: str, objects: tuple[ObjectSpec, ...], wrist_camera: bool) -> tuple:
    # Colours and poses are applied after compiling, so episodes with the same objects by name and
    # shape share one compiled model (compiling the meshes takes ~0.4 s).
    return (robot, wrist_camera, tuple((o.name, o.shape) for o in objects))


def _compiled(cfg: RobotConfig, objects: tuple[ObjectSpec, ...], wrist_camera: bool):
    key = _structure_key(cfg.name, objects, wrist_camera) + (repr(cfg),)
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
    else:
        spec, info, _ = build_scene_spec(cfg, objects, wrist_camera)
        model = spec.compile()
        check_joint_limits(model, cfg)
        _MODEL_CACHE[key] = (model, info, cfg)
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    model, info, _ = _MODEL_CACHE[key]
    return copy.copy(model), info  # each world owns its model: reset() edits colours and fixture poses


class SimWorld:
    """A robot (from its YAML) and an episode's objects in MuJoCo, physics at 500 Hz."""

    def __init__(
        self,
        robot: str | RobotConfig,
        episode: EpisodeSpec | None = None,
        *,
        wrist_camera: bool = True,
        shadows: bool = False,
    ) -> None:
        self.cfg = robot if isinstance(robot, RobotConfig) else load_robot_config(robot)
        self.wrist_camera = wrist_camera
        self.shadows = shadows  # off by default: with software (CPU) OpenGL they cost ~10x the frame time
        self.episode: EpisodeSpec | None = None
        self.model: mujoco.MjModel
        self.data: mujoco.MjData
        self.info: SceneInfo
        self._renderer: mujoco.Renderer | None = None
        self.load_episode(episode)

    # ------------------------------------------------------------------ building
    def load_episode(self, episode: EpisodeSpec | None) -> None:
        """Switch to another episode and reset to its initial state."""
        self._load(episode)
        self.reset()

    def _load(self, episode: EpisodeSpec | None) -> None:
        objects = episode.objects if episode is not None else ()
        same_structure = (
            self.episode is not None
            and hasattr(self, "model")
            and _structure_key(self.cfg.name, self.episode.objects, self.wrist_camera)
            == _structure_key(self.cfg.name, objects, self.wrist_camera)
        )
        self.episode = episode
        if same_structure:
            return
        self.model, self.info = _compiled(self.cfg, tuple(objects), self.wrist_camera)
        self.data = mujoco.MjData(self.model)
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        m = self.model
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in self.info.arm_joints])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in self.info.arm_joints])
        self._arm_act = np.array([m.actuator(n).id for n in self.info.arm_actuators])
        self._arm_vel_act = np.array([m.actuator(n).id for n in self.info.arm_velocity_actuators])
        self._ctrl_low = m.actuator_ctrlrange[:, 0].copy()
        self._ctrl_high = m.actuator_ctrlrange[:, 1].copy()
        g = self.info.gripper_joint
        self._grip_qpos = m.jnt_qposadr[m.joint(g).id] if g else None
        self._grip_dof = m.jnt_dofadr[m.joint(g).id] if g else None
        self._grip_act = m.actuator(self.info.gripper_actuator).id if g else None
        self._tcp = m.site(self.info.tcp_site).id
        self._names = list(self.info.arm_joints) + ([g] if g else [])
        self._gripper_bodies = {b for b in range(m.nbody) if m.body(b).name.startswith("robot/gripper/")}
        self._object_of_body = {}
        for obj in self.episode.objects if self.episode else ():
            for b in range(m.nbody):
                name = m.body(b).name
                if name == obj.body_name() or name.startswith(obj.body_name() + "_"):
                    self._object_of_body[b] = obj.name
        self._mimic_qpos = []
        sim = self.cfg.sim or {}
        for name, coef in dict(sim.get("gripper_mimic", {})).items():
            self._mimic_qpos.append((m.jnt_qposadr[m.joint(name).id], float(coef)))

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> None:
        """Back to the episode's initial state; with a different ``seed`` first sample a new episode
        of the same task and split (the model is recompiled only if its objects' shapes change)."""
        if seed is not None and self.episode is not None and seed != self.episode.seed:
            self._load(sample_episode(self.episode.task, self.episode.split, seed))
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        home = np.asarray(self.cfg.home, dtype=float)
        d.qpos[self._arm_qpos] = home
        d.ctrl[self._arm_act] = home
        if self._grip_qpos is not None:
            opened = self.cfg.gripper.open_position
            d.qpos[self._grip_qpos] = opened
            for adr, coef in self._mimic_qpos:
                d.qpos[adr] = coef * opened
            d.ctrl[self._grip_act] = opened
        for obj in self.episode.objects if self.episode else ():
            self._place(obj)
        mujoco.mj_forward(m, d)
        for _ in range(25):  # let contacts settle (objects rest at exactly their modelled height)
            mujoco.mj_step(m, d)
        d.time = 0.0
        self._cmd_arm = home.copy()
        self._cmd_grip = self.cfg.gripper.open_position if self.cfg.gripper else None

    def _place(self, obj: ObjectSpec) -> None:
        m, d = self.model, self.data
        body = m.body(obj.body_name())
        color = np.array(rgba(obj.color))
        for gid in range(m.ngeom):
            if m.geom_bodyid[gid] in (body.id,) or (
                obj.shape == "button" and m.geom_bodyid[gid] == m.body(f"{obj.body_name()}_cap").id
            ):
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, gid) or ""
                if name.endswith("_base"):
                    continue
                alpha = m.geom_rgba[gid, 3]
                m.geom_rgba[gid] = [*color[:3], alpha]
        quat = np.array(quat_yaw(obj.yaw))
        if obj.info.movable:
            adr = m.jnt_qposadr[m.joint(f"{obj.body_name()}_free").id]
            d.qpos[adr : adr + 3] = [obj.pos[0], obj.pos[1], obj.info.half_height]
            d.qpos[adr + 3 : adr + 7] = quat
        else:
            m.body_pos[body.id, :2] = obj.pos
            m.body_quat[body.id] = quat

    # ------------------------------------------------------------------ stepping and commands
    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return TIMESTEP

    @property
    def joint_names(self) -> list[str]:
        return list(self._names)

    def set_joint_targets(self, arm_q, gripper_pos: float | None = None, arm_qd=None) -> None:
        """Position targets for the arm joints (YAML order) and, optionally, the gripper joint;
        ``arm_qd`` are optional velocity references (feedforward, default 0). Targets outside the
        joint position or velocity limits are clipped to them."""
        arm_q = np.asarray(arm_q, dtype=float).reshape(-1)
        n = len(self._arm_act)
        if arm_q.shape[0] != n:
            raise ValueError(f"expected {n} arm targets, got {arm_q.shape[0]}")
        if not np.all(np.isfinite(arm_q)):
            raise ValueError(f"non-finite arm targets {arm_q}")
        arm_q = np.clip(arm_q, self._ctrl_low[self._arm_act], self._ctrl_high[self._arm_act])
        self.data.ctrl[self._arm_act] = arm_q
        self._cmd_arm = arm_q
        if arm_qd is None:
            self.data.ctrl[self._arm_vel_act] = 0.0
        else:
            arm_qd = np.asarray(arm_qd, dtype=float).reshape(-1)
            if arm_qd.shape[0] != n or not np.all(np.isfinite(arm_qd)):
                raise ValueError(f"expected {n} finite arm velocity references, got {arm_qd}")
            self.data.ctrl[self._arm_vel_act] = np.clip(
                arm_qd, self._ctrl_low[self._arm_vel_act], self._ctrl_high[self._arm_vel_act]
            )
        if gripper_pos is not None and self._grip_act is not None:
            if not math.isfinite(gripper_pos):
                raise ValueError(f"non-finite gripper target {gripper_pos}")
            g = float(np.clip(gripper_pos, self._ctrl_low[self._grip_act], self._ctrl_high[self._grip_act]))
            self.data.ctrl[self._grip_act] = g
            self._cmd_grip = g

    def step(self, n: int = 1) -> None:
        """Advance the physics by n steps of 2 ms."""
        mujoco.mj_step(self.model, self.data, nstep=int(n))

    def move_to(self, arm_q, gripper_pos: float | None, duration: float) -> None:
        """Go from the current command to (arm_q, gripper_pos) over ``duration`` seconds: positions
        interpolated linearly with the matching velocity feedforward, as a trajectory controller
        executes consecutive waypoints (the gripper target is a step)."""
        start = self._cmd_arm.copy()
        goal = np.asarray(arm_q, dtype=float)
        steps = max(1, int(round(duration / TIMESTEP)))
        velocity = (goal - start) / (steps * TIMESTEP)
        if gripper_pos is not None:
            self.set_joint_targets(start, gripper_pos)
        for i in range(1, steps + 1):
            self.set_joint_targets(start + (goal - start) * (i / steps), arm_qd=velocity)
            mujoco.mj_step(self.model, self.data)
        self.data.ctrl[self._arm_vel_act] = 0.0

    # ------------------------------------------------------------------ observations
    def joint_state(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, positions, velocities): arm joints in YAML order, then the gripper joint."""
        qadr = list(self._arm_qpos) + ([self._grip_qpos] if self._grip_qpos is not None else [])
        vadr = list(self._arm_dof) + ([self._grip_dof] if self._grip_dof is not None else [])
        return list(self._names), self.data.qpos[qadr].copy(), self.data.qvel[vadr].copy()

    def arm_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def gripper_position(self) -> float | None:
        return None if self._grip_qpos is None else float(self.data.qpos[self._grip_qpos])

    def gripper_opening(self) -> float:
        """0 = closed .. 1 = open (normalised gripper joint position)."""
        g = self.cfg.gripper
        if g is None:
            return 0.0
        q = self.gripper_position()
        return float(np.clip((q - g.closed_position) / (g.open_position - g.closed_position), 0.0, 1.0))

    def ee_position(self) -> np.ndarray:
        """Tool centre point (between the finger pads) in the world frame [m]."""
        return self.data.site_xpos[self._tcp].copy()

    def ee_rotation(self) -> np.ndarray:
        return self.data.site_xmat[self._tcp].reshape(3, 3).copy()

    def object_position(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(f"obj_{name}").id].copy()

    def object_quaternion(self, name: str) -> np.ndarray:
        return self.data.xquat[self.model.body(f"obj_{name}").id].copy()

    def button_depth(self, name: str) -> float:
        adr = self.model.jnt_qposadr[self.model.joint(f"obj_{name}_press").id]
        return float(np.clip(-self.data.qpos[adr], 0.0, BUTTON_TRAVEL))

    def gripper_contacts(self) -> frozenset[str]:
        """Names of the episode objects touching any gripper link."""
        d, m = self.data, self.model
        found = set()
        if d.ncon == 0:
            return frozenset()
        bodies1 = m.geom_bodyid[d.contact.geom1[: d.ncon]]
        bodies2 = m.geom_bodyid[d.contact.geom2[: d.ncon]]
        for b1, b2 in zip(bodies1.tolist(), bodies2.tolist()):
            if b1 in self._gripper_bodies and b2 in self._object_of_body:
                found.add(self._object_of_body[b2])
            elif b2 in self._gripper_bodies and b1 in self._object_of_body:
                found.add(self._object_of_body[b1])
        return frozenset(found)

    def state(self) -> WorldState:
        objects = self.episode.objects if self.episode else ()
        return WorldState(
            positions={o.name: self.object_position(o.name) for o in objects},
            ee_pos=self.ee_position(),
            gripper_open=self.gripper_opening(),
            button_depth={o.name: self.button_depth(o.name) for o in objects if o.shape == "button"},
            gripper_contacts=self.gripper_contacts(),
        )

    def success(self) -> bool:
        if self.episode is None:
            return False
        return get_task(self.episode.task).success(self.episode, self.state())

    @property
    def instruction(self) -> str:
        return self.episode.instruction if self.episode else ""

    # ------------------------------------------------------------------ rendering
    def render(self, camera: str = "scene", width: int | None = None, height: int | None = None) -> np.ndarray:
        """RGB image (height, width, 3) uint8 from the named camera ('scene' or 'wrist');
        size defaults to the robot YAML's camera size."""
        width = int(width or self.cfg.camera.width)
        height = int(height or self.cfg.camera.height)
        names = {self.info.scene_camera, self.info.wrist_camera} - {None}
        if camera not in names:
            raise ValueError(f"unknown camera '{camera}' (this world has {sorted(names)})")
        max_w, max_h = self.model.vis.global_.offwidth, self.model.vis.global_.offheight
        if width > max_w or height > max_h:
            raise ValueError(f"render size {width}x{height} exceeds the offscreen buffer {max_w}x{max_h}")
        r = self._renderer
        if r is None or r.width != width or r.height != height:
            if r is not None:
                r.close()
            r = self._renderer = mujoco.Renderer(self.model, height=height, width=width)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(self.shadows)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        r.update_scene(self.data, camera=camera)
        return r.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "SimWorld":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
