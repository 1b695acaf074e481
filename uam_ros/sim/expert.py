"""Scripted experts: Cartesian plans per task, turned into joint targets by damped-least-squares IK.

The expert runs at the robot's ``chunk.action_rate_hz`` (10 Hz): every tick it reads the world
(object poses, as a perception stack would), advances a Cartesian set-point along its current
plan phase at a bounded speed, solves IK for it (MuJoCo site Jacobians, no hand-written
kinematics) and returns one joint-space target: arm joints in YAML order plus the gripper
position -- exactly what one JointTrajectory point would carry. ``run_expert_episode`` executes
the targets in the sim the way a trajectory controller would (linear interpolation between points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from uam_ros.control.robot_config import RobotConfig
from uam_ros.sim.objects import (
    BIN_HEIGHT,
    BIN_INNER_HALF,
    BIN_WALL,
    BUTTON_TRAVEL,
    ObjectSpec,
    object_top_z,
    yaw_of_quat,
)
from uam_ros.sim.tasks import EpisodeSpec, sample_episode
from uam_ros.sim.world import SimWorld

# ------------------------------------------------------------------------------------------ IK


def down_rotation(yaw: float) -> np.ndarray:
    """TCP orientation pointing straight down with its x axis (the finger closing axis) at ``yaw``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def _cross_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_i a[:, i] x b[:, i] (the rotation error from a to b, times 2), without np.cross overhead."""
    return np.array([
        a[1] @ b[2] - a[2] @ b[1],
        a[2] @ b[0] - a[0] @ b[2],
        a[0] @ b[1] - a[1] @ b[0],
    ])


class IKSolver:
    """Damped least squares on the TCP site's 6-D Jacobian, warm-started, with joint-limit clipping
    and (for redundant arms) a null-space pull towards the home posture."""

    def __init__(self, world: SimWorld, damping: float = 0.05, posture_gain: float = 0.2) -> None:
        self.model = world.model
        self.data = mujoco.MjData(world.model)
        self.site = world.model.site(world.info.tcp_site).id
        self.qadr = world._arm_qpos.copy()
        self.dadr = world._arm_dof.copy()
        self.low = world.model.jnt_range[[world.model.joint(n).id for n in world.info.arm_joints], 0]
        self.high = world.model.jnt_range[[world.model.joint(n).id for n in world.info.arm_joints], 1]
        self.home = np.asarray(world.cfg.home, dtype=float)
        self.damping = damping
        self.posture_gain = posture_gain if len(self.qadr) > 6 else 0.0
        self._jacp = np.zeros((3, world.model.nv))
        self._jacr = np.zeros((3, world.model.nv))

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(
        self, pos: np.ndarray, rot: np.ndarray, q0: np.ndarray, iters: int = 60, tol: float = 1e-4
    ) -> tuple[np.ndarray, float]:
        """Joint positions reaching (pos, rot) starting from q0; returns (q, position error [m])."""
        q = np.clip(np.asarray(q0, dtype=float).copy(), self.low, self.high)
        n = len(q)
        err_pos = np.inf
        for _ in range(iters):
            x, r = self.fk(q)
            err_pos_v = pos - x
            err_rot_v = 0.5 * _cross_sum(r, rot)
            err = np.concatenate([err_pos_v, err_rot_v])
            err_pos = float(np.linalg.norm(err_pos_v))
            if err_pos < tol and np.linalg.norm(err_rot_v) < 10 * tol:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            jac = np.vstack([self._jacp[:, self.dadr], self._jacr[:, self.dadr]])
            jjt = jac @ jac.T + (self.damping**2) * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            if self.posture_gain:
                null = np.eye(n) - np.linalg.pinv(jac) @ jac  # exact projector: the posture pull cannot leak
                dq += null @ (self.posture_gain * (self.home - q))
            step = np.max(np.abs(dq))
            if step > 0.3:
                dq *= 0.3 / step
            q = np.clip(q + dq, self.low, self.high)
        return q, err_pos


# ------------------------------------------------------------------------------------------ plans


@dataclass
class Waypoint:
    """Move the TCP set-point to ``pos`` at yaw ``yaw`` at up to ``speed`` m/s, commanding ``grip``
    (open/closed position of the gripper joint); then hold ``hold`` ticks."""

    pos: np.ndarray
    yaw: float
    grip: float
    speed: float = 0.25
    hold: int = 0
    name: str = ""


@dataclass
class ExpertResult:
    success: bool
    steps: int  # 10 Hz steps executed
    instruction: str
    episode: EpisodeSpec | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)  # per tick: arm targets + gripper target
    joint_positions: list[np.ndarray] = field(default_factory=list)  # per tick, before the action


def _ramp(speed: float, limit: float, accel: float, remaining: float, dt: float) -> float:
    """Next speed: accelerate by at most accel*dt up to limit, and no faster than lets us stop in ``remaining``."""
    return max(0.0, min(limit, speed + accel * dt, math.sqrt(2.0 * accel * max(remaining, 0.0))))


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class ScriptedExpert:
    """Per-task scripted policy; call ``act()`` once per control tick."""

    approach_height = 0.12  # TCP height above an object's top when approaching [m]
    linear_accel = 0.8  # set-point acceleration [m/s^2]
    max_yaw_rate = 1.5  # [rad/s]
    yaw_accel = 4.0  # [rad/s^2]
    joint_limit_fraction = 0.6  # commands stay within this share of the YAML velocity/acceleration limits
    travel_height = 0.18  # TCP height when carrying across the table [m]
    finger_reach = 0.055  # distance from the TCP to the outside of an open finger [m]
    pusher_front = 0.012  # half thickness of the closed fingers across the closing axis [m]
    push_clearance = 0.03  # gap between pusher and object before a push leg starts [m]
    push_tolerance = 0.015  # pushing is done when the object centre is this close to the zone centre [m]
    max_push_legs = 5

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.ep: EpisodeSpec = world.episode
        self.ik = IKSolver(world)
        g = world.cfg.gripper
        self.open, self.closed = g.open_position, g.closed_position
        self.dt = 1.0 / world.cfg.chunk.action_rate_hz
        self.q = world.arm_positions()  # last IK solution (warm start)
        self.q_cmd = self.q.copy()  # last command, after the rate limiter
        self.v_cmd = np.zeros_like(self.q)
        lim = world.cfg.limits_arrays()
        self.v_lim = self.joint_limit_fraction * lim.velocity_max
        self.a_lim = self.joint_limit_fraction * lim.acceleration_max
        self.lin_speed = 0.0
        self.yaw_rate = 0.0
        pos0 = world.ee_position()
        rot0 = world.ee_rotation()
        self.home_yaw = math.atan2(rot0[1, 0], rot0[0, 0])
        self.setpoint = pos0.copy()
        self.yaw = self.home_yaw
        self.grip = self.open
        self.tip_below_tcp = self._tip_offset()
        self.plan: list[Waypoint] = []
        self.phase = 0
        self.hold_left = None
        self.mode = "plan"
        self.grasp_offset = 0.0
        self._make_plan()

    # -------------------------------------------------------------- geometry helpers
    def _tip_offset(self) -> float:
        """How far the lowest finger collision point sits below the TCP along the tool axis, closed."""
        w = self.world
        m = w.model
        d = mujoco.MjData(m)
        d.qpos[:] = w.data.qpos
        d.qpos[w._grip_qpos] = self.closed
        for adr, coef in w._mimic_qpos:
            d.qpos[adr] = coef * self.closed
        mujoco.mj_kinematics(m, d)
        tcp = d.site_xpos[w._tcp]
        axis = -d.site_xmat[w._tcp].reshape(3, 3)[:, 2]  # "up" along the tool
        lowest = 0.0
        gripper_bodies = {b for b in range(m.nbody) if m.body(b).name.startswith("robot/gripper/")}
        for gid in range(m.ngeom):
            if m.geom_bodyid[gid] not in gripper_bodies or not (m.geom_contype[gid] or m.geom_conaffinity[gid]):
                continue
            if m.geom_type[gid] != mujoco.mjtGeom.mjGEOM_BOX:
                continue
            center, rot, half = d.geom_xpos[gid], d.geom_xmat[gid].reshape(3, 3), m.geom_size[gid]
            for sx in (-1, 1):
                for sy in (-1, 1):
                    for sz in (-1, 1):
                        corner = center + rot @ (half * np.array([sx, sy, sz]))
                        lowest = min(lowest, float(np.dot(corner - tcp, axis)))
        return -lowest

    def _grasp_yaw(self, obj: ObjectSpec) -> float:
        """A yaw whose closing axis is across the object's grasp faces, chosen so the open fingers
        land as far as possible from other objects (up to 5 cm), then as near the home yaw as possible."""
        period = obj.info.grasp_period
        base = yaw_of_quat(self.world.object_quaternion(obj.name)) if period > 0 else self.home_yaw
        step = period if period > 0 else math.pi / 12
        center = self._obj_xy(obj.name)
        best, best_key = base, None
        for k in range(-12, 13):
            yaw = base + k * step
            off = _wrap(yaw - self.home_yaw)
            if abs(off) > math.pi / 2 + 1e-6:  # the gripper is symmetric: keep the wrist near home
                continue
            axis = np.array([math.cos(yaw), math.sin(yaw)])
            fingers = (center + axis * self.finger_reach, center - axis * self.finger_reach)
            clearance = min(self._clearance(f, exclude=obj.name) for f in fingers)
            key = (round(min(clearance, 0.05), 3), -abs(off))
            if best_key is None or key > best_key:
                best, best_key = yaw, key
        return _wrap(best)

    def _clearance(self, point: np.ndarray, exclude: str) -> float:
        """Horizontal distance from ``point`` to the nearest obstacle footprint (zones are flat: ignored)."""
        nearest = np.inf
        for other in self.ep.objects:
            if other.name == exclude or other.shape == "zone":
                continue
            c = self._obj_xy(other.name)
            if other.shape == "bin":
                dx, dy = np.abs(point - c)
                ring = BIN_INNER_HALF + BIN_WALL / 2  # the walls' centre line (a square)
                dist = abs(max(dx, dy) - ring) - BIN_WALL / 2
            else:
                dist = float(np.linalg.norm(point - c)) - other.info.radius
            nearest = min(nearest, dist)
        return nearest

    def _grasp_z(self, obj: ObjectSpec) -> float:
        """TCP height for grasping: pads around the object's middle, fingertips clear of the table."""
        center = obj.info.half_height
        return max(center, self.tip_below_tcp + 0.006)

    # -------------------------------------------------------------- plans
    def _obj_xy(self, name: str) -> np.ndarray:
        return self.world.object_position(name)[:2]

    def _at(self, xy: np.ndarray, z: float) -> np.ndarray:
        return np.array([xy[0], xy[1], z])

    def _pick_waypoints(self, obj: ObjectSpec) -> list[Waypoint]:
        xy = self._obj_xy(obj.name)
        yaw = self._grasp_yaw(obj)
        top = 2 * obj.info.half_height
        z_grasp = self._grasp_z(obj)
        self.grasp_offset = z_grasp - self.world.object_position(obj.name)[2] + obj.info.half_height
        return [
            Waypoint(self._at(xy, top + self.approach_height), yaw, self.open, name="above"),
            Waypoint(self._at(xy, z_grasp), yaw, self.open, speed=0.12, hold=1, name="descend"),
            Waypoint(self._at(xy, z_grasp), yaw, self.closed, hold=6, name="close"),
            Waypoint(self._at(xy, self.travel_height), yaw, self.closed, speed=0.15, name="lift"),
        ]

    def _make_plan(self) -> None:
        ep = self.ep
        target = ep.target_object
        task = ep.task
        if task == "reach":
            xy = self._obj_xy(target.name)
            top = 2 * target.info.half_height
            yaw = self._grasp_yaw(target)
            self.plan = [
                Waypoint(self._at(xy, top + self.approach_height), yaw, self.open, name="above"),
                Waypoint(self._at(xy, top + 0.02), yaw, self.open, speed=0.12, hold=5, name="reach"),
            ]
        elif task == "pick":
            pick = self._pick_waypoints(target)
            self.plan = pick + [Waypoint(pick[-1].pos, pick[-1].yaw, self.closed, hold=10, name="hold")]
        elif task == "put_in":
            pick = self._pick_waypoints(target)
            yaw = pick[0].yaw
            b = self._obj_xy(ep.goal)
            z_release = BIN_HEIGHT + 0.015 + self.grasp_offset
            self.plan = pick + [
                Waypoint(self._at(b, self.travel_height), yaw, self.closed, name="carry"),
                Waypoint(self._at(b, z_release), yaw, self.closed, speed=0.12, hold=1, name="lower"),
                Waypoint(self._at(b, z_release), yaw, self.open, hold=5, name="release"),
                Waypoint(self._at(b, self.travel_height), yaw, self.open, speed=0.15, hold=3, name="retreat"),
            ]
        elif task == "stack":
            pick = self._pick_waypoints(target)
            yaw = pick[0].yaw
            base = ep.goal_object
            b = self._obj_xy(base.name)
            base_top = self.world.object_position(base.name)[2] + base.info.half_height
            z_release = base_top + 0.006 + self.grasp_offset
            self.plan = pick + [
                Waypoint(self._at(b, self.travel_height), yaw, self.closed, name="carry"),
                Waypoint(self._at(b, z_release + 0.04), yaw, self.closed, speed=0.12, name="lower"),
                Waypoint(self._at(b, z_release), yaw, self.closed, speed=0.05, hold=2, name="place"),
                Waypoint(self._at(b, z_release), yaw, self.open, hold=5, name="release"),
                Waypoint(self._at(b, self.travel_height), yaw, self.open, speed=0.1, hold=3, name="retreat"),
            ]
        elif task == "press":
            xy = self._obj_xy(target.name)
            top = object_top_z(target)
            z_press = top - BUTTON_TRAVEL + self.tip_below_tcp - 0.002
            self.plan = [
                Waypoint(self._at(xy, top + self.approach_height), self.home_yaw, self.closed, name="above"),
                Waypoint(self._at(xy, top + self.tip_below_tcp + 0.01), self.home_yaw, self.closed, speed=0.12,
                         name="approach"),
                Waypoint(self._at(xy, z_press), self.home_yaw, self.closed, speed=0.05, hold=3, name="press"),
                Waypoint(self._at(xy, top + self.approach_height), self.home_yaw, self.closed, speed=0.15,
                         hold=3, name="retreat"),
            ]
        elif task == "push":
            self.mode = "push"
            self.push_z = self.tip_below_tcp + 0.008
            self.push_legs = 0
            self._plan_push_leg()
        else:  # pragma: no cover
            raise ValueError(f"no expert for task '{task}'")

    # push: straight pushes along the object's face normals (a flat face pushed along its normal
    # translates without turning), re-planned from the observed pose after every leg.
    def _plan_push_leg(self) -> bool:
        """Plan the next push leg; False when the object is close enough to the goal (or legs ran out)."""
        obj = self.ep.target_object
        o = self._obj_xy(obj.name)
        g = self._obj_xy(self.ep.goal)
        delta = g - o
        dist = float(np.linalg.norm(delta))
        if dist < self.push_tolerance or self.push_legs >= self.max_push_legs:
            return False
        self.push_legs += 1
        heading = math.atan2(delta[1], delta[0])
        period = obj.info.grasp_period
        if period <= 0:
            normal, length = heading, dist
        else:
            face = yaw_of_quat(self.world.object_quaternion(obj.name))
            k = round((heading - face) / period)
            normal = face + k * period
            off = _wrap(heading - normal)
            if abs(off) < math.radians(4):
                length = dist * math.cos(off)
            else:
                other = normal + math.copysign(period, off)
                basis = np.array([[math.cos(normal), math.cos(other)], [math.sin(normal), math.sin(other)]])
                length = float(np.linalg.solve(basis, delta)[0])  # the share along this normal
        n = np.array([math.cos(normal), math.sin(normal)])
        face_dist = obj.info.grasp_width / 2 + self.pusher_front
        start = o - n * (face_dist + self.push_clearance)
        end = o + n * (length - face_dist)
        back = end - n * 0.015
        yaw = self._nearest_equivalent(_wrap(normal + math.pi / 2), math.pi)  # fingers side by side
        z, z_up = self.push_z, self.push_z + 0.07
        here = self.setpoint
        self.plan = [
            Waypoint(np.array([here[0], here[1], max(here[2], z_up)]), self.yaw, self.closed, speed=0.2, name="up"),
            Waypoint(self._at(start, z_up), yaw, self.closed, speed=0.25, name="over"),
            Waypoint(self._at(start, z), yaw, self.closed, speed=0.12, name="down"),
            Waypoint(self._at(end, z), yaw, self.closed, speed=0.06, hold=2, name="push"),
            Waypoint(self._at(back, z), yaw, self.closed, speed=0.06, name="back"),
        ]
        self.phase = 0
        return True

    def _nearest_equivalent(self, yaw: float, period: float) -> float:
        k = round((self.home_yaw - yaw) / period)
        return _wrap(yaw + k * period)

    # -------------------------------------------------------------- ticking
    def _advance(self) -> bool:
        """Move the set-point along the plan; True while the plan has phases left."""
        if self.phase >= len(self.plan):
            return False
        wp = self.plan[self.phase]
        self.grip = wp.grip
        delta = wp.pos - self.setpoint
        dist = float(np.linalg.norm(delta))
        self.lin_speed = _ramp(self.lin_speed, wp.speed, self.linear_accel, dist, self.dt)
        yaw_err = _wrap(wp.yaw - self.yaw)
        self.yaw_rate = _ramp(self.yaw_rate, self.max_yaw_rate, self.yaw_accel, abs(yaw_err), self.dt)
        self.yaw = _wrap(self.yaw + math.copysign(min(abs(yaw_err), self.yaw_rate * self.dt), yaw_err))
        if dist > self.lin_speed * self.dt:
            self.setpoint = self.setpoint + delta * (self.lin_speed * self.dt / dist)
            return True
        self.setpoint = wp.pos.copy()
        self.lin_speed = 0.0
        if abs(_wrap(self.yaw - wp.yaw)) > 1e-6:
            return True
        if np.max(np.abs(self.q - self.q_cmd)) > 2e-3:  # the rate limiter has not caught up yet
            return True
        self.yaw_rate = 0.0
        if self.hold_left is None:
            self.hold_left = wp.hold
        if self.hold_left > 0:
            self.hold_left -= 1
            return True
        self.hold_left = None
        self.phase += 1
        return self.phase < len(self.plan)

    def _limit(self, q_goal: np.ndarray) -> np.ndarray:
        """Joint-space rate limiter: next command towards q_goal within velocity/acceleration limits,
        slowing down in time to stop on it."""
        err = q_goal - self.q_cmd
        v_des = np.sign(err) * np.minimum(np.abs(err) / self.dt, np.sqrt(2 * self.a_lim * np.abs(err)))
        v_des = np.clip(v_des, -self.v_lim, self.v_lim)
        v = np.clip(v_des, self.v_cmd - self.a_lim * self.dt, self.v_cmd + self.a_lim * self.dt)
        self.v_cmd = v
        self.q_cmd = self.q_cmd + v * self.dt
        return self.q_cmd.copy()

    def act(self) -> np.ndarray:
        """The next joint target: arm joints (YAML order) then the gripper position."""
        if not self._advance() and self.mode == "push":
            if not self._plan_push_leg():
                self.mode = "plan"
                up = self.setpoint + np.array([0.0, 0.0, 0.1])
                self.plan, self.phase = [Waypoint(up, self.yaw, self.closed, speed=0.15, hold=3, name="retreat")], 0
        q, _ = self.ik.solve(self.setpoint, down_rotation(self.yaw), self.q)
        self.q = q
        return np.concatenate([self._limit(q), [self.grip]])

    def done(self) -> bool:
        return self.mode == "plan" and self.phase >= len(self.plan)


def run_expert_episode(
    robot: str | RobotConfig,
    task: str,
    split: str,
    seed: int,
    max_steps: int | None = None,
    *,
    render: bool = False,
    camera: str = "scene",
    width: int | None = None,
    height: int | None = None,
    world: SimWorld | None = None,
    stop_on_success: bool = True,
) -> ExpertResult:
    """Run the scripted expert on episode (task, split, seed).

    Each 10 Hz step: (optionally) render a frame, record the joint state, ask the expert for one
    joint target and execute it for one action period. The episode ends at the first step where the
    task's success predicate holds (``stop_on_success``), when the expert has finished its plan, or
    after ``max_steps`` (default: the task's budget). ``success`` is the predicate at the end.
    Pass ``world`` to reuse a SimWorld of the same robot (saves compiling the model)."""
    ep = sample_episode(task, split, seed)
    if world is None:
        world = SimWorld(robot, ep)
    else:
        name = robot.name if isinstance(robot, RobotConfig) else str(robot)
        if world.cfg.name != name:
            raise ValueError(f"world simulates '{world.cfg.name}', not '{name}'")
        world.load_episode(ep)
    expert = ScriptedExpert(world)
    limit = max_steps if max_steps is not None else ep.max_steps
    result = ExpertResult(success=False, steps=0, instruction=ep.instruction, episode=ep)
    dt = 1.0 / world.cfg.chunk.action_rate_hz
    for step in range(limit):
        if render:
            result.frames.append(world.render(camera, width, height))
        result.joint_positions.append(world.joint_state()[1])
        action = expert.act()
        result.actions.append(action)
        world.move_to(action[:-1], float(action[-1]), dt)
        result.steps = step + 1
        result.success = world.success()
        if expert.done() or (stop_on_success and result.success):
            break
    return result
