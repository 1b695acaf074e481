"""Compose the tabletop MuJoCo scene with ``mujoco.MjSpec``: robot + gripper + table + objects.

Robot and gripper MJCF and meshes come from robosuite's bundled assets (robosuite is installed
for its files only; none of its Python is imported). The robot's YAML (config/robots/*.yaml)
names the joints, gives their limits and the home pose; its ``sim:`` section says which MJCF
files to use, how MJCF joints map to the YAML (ROS) names, the base pose and the actuator gains.
The compiled model publishes exactly the YAML joint names; ``check_joint_limits`` verifies that
the MJCF joint ranges agree with the YAML limits.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import mujoco
import numpy as np

from uam_ros.control.robot_config import RobotConfig, load_robot_config
from uam_ros.sim.objects import ObjectSpec, add_object

TIMESTEP = 0.002  # 500 Hz physics
TABLE_HALF = (0.65, 0.6)  # table top half extent [m]
TABLE_CENTER_X = 0.4
TABLE_HEIGHT = 0.75  # the table top is the world's z = 0; the floor is below
SCENE_CAMERA = "scene"
WRIST_CAMERA = "wrist"
MAX_RENDER = (640, 480)  # offscreen buffer (width, height)
ROBOT_COLLISION_GROUP = 3  # robot collision meshes go here: hidden in renders (visual meshes are group 1)


class SimConfigError(ValueError):
    """The robot YAML's sim section, or the model built from it, is inconsistent."""


def robosuite_assets_dir() -> Path:
    """robosuite/models/assets, found without importing robosuite (its import pulls heavy deps)."""
    found = importlib.util.find_spec("robosuite")
    if found is None or not found.submodule_search_locations:
        raise SimConfigError(
            "robosuite is not installed; it provides the robot MJCF and meshes "
            "(pip install --no-deps robosuite==1.5.2)"
        )
    path = Path(list(found.submodule_search_locations)[0]) / "models" / "assets"
    if not path.is_dir():
        raise SimConfigError(f"robosuite is installed but has no assets directory at {path}")
    return path


@dataclass(frozen=True)
class SimRobotConfig:
    """The ``sim:`` section of a robot YAML, validated."""

    robot_mjcf: str
    gripper_mjcf: str
    joint_map: dict[str, str]  # MJCF joint name -> ROS/YAML joint name
    arm_kp: list[float]
    arm_kv: list[float]
    arm_force: list[float]
    gripper_kp: float
    gripper_kv: float
    gripper_force: float
    gripper_mimic: dict[str, float] = field(default_factory=dict)  # ROS name -> multiplier of the gripper joint
    base_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    base_yaw: float = 0.0
    tcp_site: str = "grip_site"
    tcp_yaw_offset: float = 0.0  # rotation of the TCP about its z axis so yaw 0 closes the fingers along world y
    gripper_ctrl_margin: float = 0.0  # the actuator may drive this far past the closed position
    wrist_camera_pos: tuple[float, ...] = (0.0, 0.065, 0.0)  # in the gripper's root body frame
    wrist_camera_xyaxes: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, -0.95, -0.3)

    @staticmethod
    def from_robot_config(cfg: RobotConfig) -> "SimRobotConfig":
        raw = cfg.sim
        where = f"robot '{cfg.name}' sim"
        if not isinstance(raw, dict):
            raise SimConfigError(f"{where}: the robot YAML has no 'sim:' section (needed by uam_ros.sim)")
        required = ("robot_mjcf", "gripper_mjcf", "joint_map", "arm_kp", "arm_kv", "arm_force",
                    "gripper_kp", "gripper_kv", "gripper_force")
        missing = [key for key in required if key not in raw]
        if missing:
            raise SimConfigError(f"{where}: missing keys {missing}")
        known = set(SimRobotConfig.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SimConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
        out = SimRobotConfig(
            robot_mjcf=str(raw["robot_mjcf"]),
            gripper_mjcf=str(raw["gripper_mjcf"]),
            joint_map={str(k): str(v) for k, v in dict(raw["joint_map"]).items()},
            arm_kp=[float(v) for v in raw["arm_kp"]],
            arm_kv=[float(v) for v in raw["arm_kv"]],
            arm_force=[float(v) for v in raw["arm_force"]],
            gripper_kp=float(raw["gripper_kp"]),
            gripper_kv=float(raw["gripper_kv"]),
            gripper_force=float(raw["gripper_force"]),
            gripper_mimic={str(k): float(v) for k, v in dict(raw.get("gripper_mimic", {})).items()},
            base_pos=tuple(float(v) for v in raw.get("base_pos", (0.0, 0.0, 0.0))),
            base_yaw=float(raw.get("base_yaw", 0.0)),
            tcp_site=str(raw.get("tcp_site", "grip_site")),
            tcp_yaw_offset=float(raw.get("tcp_yaw_offset", 0.0)),
            gripper_ctrl_margin=float(raw.get("gripper_ctrl_margin", 0.0)),
            wrist_camera_pos=tuple(float(v) for v in raw.get("wrist_camera_pos", (0.0, 0.065, 0.0))),
            wrist_camera_xyaxes=tuple(
                float(v) for v in raw.get("wrist_camera_xyaxes", (1.0, 0.0, 0.0, 0.0, -0.95, -0.3))
            ),
        )
        n = cfg.arm_dof
        for key in ("arm_kp", "arm_kv", "arm_force"):
            values = getattr(out, key)
            if len(values) != n:
                raise SimConfigError(f"{where}.{key}: has {len(values)} values for {n} arm joints")
            if any(v <= 0 for v in values):
                raise SimConfigError(f"{where}.{key}: values must be > 0, got {values}")
        mapped = set(out.joint_map.values())
        wanted = cfg.action_joint_names
        absent = [name for name in wanted if name not in mapped]
        if absent:
            raise SimConfigError(f"{where}.joint_map: no MJCF joint maps to the YAML joints {absent}")
        for name in out.gripper_mimic:
            if name not in mapped:
                raise SimConfigError(f"{where}.gripper_mimic: '{name}' is not a joint_map target")
        if len(out.base_pos) != 3:
            raise SimConfigError(f"{where}.base_pos: needs 3 values, got {list(out.base_pos)}")
        return out


@dataclass(frozen=True)
class SceneInfo:
    """Names in the compiled model that the world and the experts use."""

    robot: str
    arm_joints: tuple[str, ...]
    gripper_joint: str | None
    arm_actuators: tuple[str, ...]  # position servos
    arm_velocity_actuators: tuple[str, ...]  # velocity servos (feedforward + damping)
    gripper_actuator: str | None
    tcp_site: str
    scene_camera: str
    wrist_camera: str | None
    robot_body_prefix: str = "robot/"


def _look_at(eye: Sequence[float], target: Sequence[float]) -> list[float]:
    """xyaxes of a MuJoCo camera at ``eye`` looking at ``target`` with world z up."""
    eye_v, target_v = np.asarray(eye, float), np.asarray(target, float)
    forward = target_v - eye_v
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return [*right, *up]


def _spec_from_robosuite_file(path: Path) -> mujoco.MjSpec:
    """Parse a robosuite MJCF. Its files are meant for robosuite's own XML merger, which tolerates
    repeated asset names (robotiq_gripper_85.xml declares one mesh name twice, the second naming a
    file that does not exist): later duplicates are dropped, as there, and asset file paths are made
    absolute so the spec can be composed anywhere. Angles are radians, as robosuite assumes."""
    tree = ElementTree.parse(path)
    root = tree.getroot()
    compiler = root.find("compiler")
    if compiler is None:
        compiler = ElementTree.SubElement(root, "compiler")
    compiler.set("angle", "radian")  # robosuite merges every file into a radian model
    meshdir = path.parent / compiler.get("meshdir", "")
    seen: set[tuple[str, str]] = set()
    for asset in root.iter("asset"):
        for element in list(asset):
            name = element.get("name")
            if name is not None:
                if (element.tag, name) in seen:
                    asset.remove(element)
                    continue
                seen.add((element.tag, name))
            file = element.get("file")
            if file is not None and not Path(file).is_absolute():
                element.set("file", str((meshdir / file).resolve()))
    return mujoco.MjSpec.from_string(ElementTree.tostring(root, encoding="unicode"))


def _load_robot_specs(sim: SimRobotConfig) -> tuple[mujoco.MjSpec, mujoco.MjSpec]:
    assets = robosuite_assets_dir()
    specs = []
    for rel in (sim.robot_mjcf, sim.gripper_mjcf):
        path = assets / rel
        if not path.is_file():
            raise SimConfigError(f"MJCF file {path} does not exist (sim path '{rel}' under robosuite assets)")
        specs.append(_spec_from_robosuite_file(path))
    robot, gripper = specs
    for child in (robot, gripper):
        for actuator in list(child.actuators):  # robosuite's torque motors / its own gripper actuators
            child.delete(actuator)
        for tendon in list(child.tendons):  # robotiq's soft coupling tendons: replaced by equality constraints
            child.delete(tendon)
        for sensor in list(child.sensors):
            child.delete(sensor)
        for camera in list(child.cameras):
            child.delete(camera)
    return robot, gripper


def _add_environment(spec: mujoco.MjSpec) -> None:
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = MAX_RENDER[0]
    spec.visual.global_.offheight = MAX_RENDER[1]
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
    spec.stat.center = [0.4, 0.0, 0.2]
    spec.stat.extent = 1.2

    spec.add_texture(
        name="floor_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.30, 0.32, 0.35], rgb2=[0.22, 0.24, 0.27], width=256, height=256,
    )
    floor_mat = spec.add_material(name="floor_mat", texrepeat=[6, 6], reflectance=0.0)  # no reflection pass
    floor_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_tex"
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.75, 0.82, 0.9], rgb2=[0.35, 0.4, 0.5], width=256, height=256,
    )
    world = spec.worldbody
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.05], pos=[0, 0, -TABLE_HEIGHT],
        material="floor_mat",
    )
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[TABLE_CENTER_X, 0, -TABLE_HEIGHT / 2],
        size=[TABLE_HALF[0], TABLE_HALF[1], TABLE_HEIGHT / 2], rgba=[0.72, 0.6, 0.45, 1], friction=[1, 0.01, 0.001],
    )
    world.add_light(name="key", pos=[0.6, -0.6, 1.6], dir=[-0.2, 0.5, -1.0], diffuse=[0.6, 0.6, 0.6],
                    specular=[0.2, 0.2, 0.2], castshadow=True)
    world.add_light(name="fill", pos=[0.4, 0.8, 1.4], dir=[0.0, -0.5, -1.0], diffuse=[0.3, 0.3, 0.3],
                    specular=[0.0, 0.0, 0.0], castshadow=False)
    eye, target = [1.0, 0.0, 0.62], [0.45, 0.0, 0.0]
    world.add_camera(name=SCENE_CAMERA, pos=eye, xyaxes=_look_at(eye, target), fovy=50.0)


def build_scene_spec(
    robot: str | RobotConfig,
    objects: Sequence[ObjectSpec] = (),
    wrist_camera: bool = True,
) -> tuple[mujoco.MjSpec, SceneInfo, RobotConfig]:
    """The scene as an editable MjSpec (call ``.compile()``), with the names the world needs."""
    cfg = robot if isinstance(robot, RobotConfig) else load_robot_config(robot)
    sim = SimRobotConfig.from_robot_config(cfg)
    robot_spec, gripper_spec = _load_robot_specs(sim)

    # Rename MJCF joints to their ROS names before attaching (attach only adds prefixes).
    for child in (robot_spec, gripper_spec):
        for joint in child.joints:
            if joint.name in sim.joint_map:
                joint.name = sim.joint_map[joint.name]
    gripper_root = gripper_spec.worldbody.first_body()
    if gripper_root is None:
        raise SimConfigError(f"{sim.gripper_mjcf} has no body to attach")
    hand = robot_spec.body("right_hand")
    if hand is None:
        raise SimConfigError(f"{sim.robot_mjcf} has no 'right_hand' body to mount the gripper on")
    gripper_root_name = gripper_root.name
    hand.add_frame().attach_body(gripper_root, "gripper/", "")

    spec = mujoco.MjSpec()
    spec.modelname = f"uam_{cfg.name}"
    _add_environment(spec)
    yaw = sim.base_yaw
    base_frame = spec.worldbody.add_frame(pos=list(sim.base_pos), quat=[math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
    robot_root = robot_spec.worldbody.first_body()
    base_frame.attach_body(robot_root, "robot/", "")
    if wrist_camera:
        # Behind the fingers, looking along the tool axis, tilted slightly forward.
        spec.body(f"robot/gripper/{gripper_root_name}").add_camera(
            name=WRIST_CAMERA, pos=list(sim.wrist_camera_pos), xyaxes=list(sim.wrist_camera_xyaxes), fovy=75.0
        )

    # Joint names are unprefixed ROS names; other robot elements keep the "robot/" prefix.
    ros_names = set(sim.joint_map.values())
    for joint in spec.joints:
        for prefix in ("robot/gripper/", "robot/"):
            if joint.name.startswith(prefix) and joint.name[len(prefix):] in ros_names:
                joint.name = joint.name[len(prefix):]
                break
    for body in spec.bodies:
        if body.name.startswith("robot/"):
            body.gravcomp = 1.0  # the real controllers compensate gravity; PD tracking then needs no integral term
    for geom in spec.geoms:
        if geom.name.startswith("robot/") or (geom.parent and geom.parent.name.startswith("robot/")):
            if geom.contype or geom.conaffinity:
                geom.group = ROBOT_COLLISION_GROUP
    # Gripper links never touch each other in the real linkage; robosuite's meshes overlap when the
    # coupled joints move together, so their contacts are excluded (contacts with objects remain).
    gripper_bodies = [b.name for b in spec.bodies if b.name.startswith("robot/gripper/")]
    for i, first in enumerate(gripper_bodies):
        for second in gripper_bodies[i + 1:]:
            spec.add_exclude(bodyname1=first, bodyname2=second)
    for site in spec.sites:
        site.rgba = [site.rgba[0], site.rgba[1], site.rgba[2], 0.0]
        site.group = 4

    # Each arm joint gets a position servo (kp) and a velocity servo (kv): together
    # kp (q_ref - q) + kv (qd_ref - qd), the PD-with-feedforward that a trajectory controller gives a
    # position/velocity interface. With qd_ref = 0 the velocity servo is plain damping.
    arm_actuators, arm_velocity_actuators = [], []
    for i, name in enumerate(cfg.joints.names):
        act = spec.add_actuator(name=f"act_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=sim.arm_kp[i])
        act.ctrlrange = [cfg.joints.position_min[i], cfg.joints.position_max[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-sim.arm_force[i], sim.arm_force[i]]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        arm_actuators.append(act.name)
        vel = spec.add_actuator(name=f"vel_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        vel.set_to_velocity(kv=sim.arm_kv[i])
        vmax = cfg.joints.velocity_max[i]
        vel.ctrlrange = [-vmax, vmax]
        vel.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        vel.forcerange = [-sim.arm_force[i], sim.arm_force[i]]
        vel.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        arm_velocity_actuators.append(vel.name)
    gripper_actuator = None
    if cfg.gripper is not None:
        g = cfg.gripper
        act = spec.add_actuator(name=f"act_{g.joint}", target=g.joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=sim.gripper_kp, kv=sim.gripper_kv)
        margin = sim.gripper_ctrl_margin * (1 if g.closed_position > g.open_position else -1)
        low, high = sorted((g.open_position, g.closed_position + margin))
        act.ctrlrange = [low, high]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-sim.gripper_force, sim.gripper_force]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        gripper_actuator = act.name
        for mimic, coef in sim.gripper_mimic.items():
            spec.add_equality(
                name=f"mimic_{mimic}", type=mujoco.mjtEq.mjEQ_JOINT, name1=mimic, name2=g.joint,
                data=[0.0, coef] + [0.0] * 10, solref=[0.005, 1.0],
            )

    for obj in objects:
        add_object(spec, obj)

    info = SceneInfo(
        robot=cfg.name,
        arm_joints=tuple(cfg.joints.names),
        gripper_joint=cfg.gripper.joint if cfg.gripper else None,
        arm_actuators=tuple(arm_actuators),
        arm_velocity_actuators=tuple(arm_velocity_actuators),
        gripper_actuator=gripper_actuator,
        tcp_site=f"robot/gripper/{sim.tcp_site}",
        scene_camera=SCENE_CAMERA,
        wrist_camera=WRIST_CAMERA if wrist_camera else None,
    )
    return spec, info, cfg


def build_scene(
    robot: str | RobotConfig, objects: Sequence[ObjectSpec] = (), wrist_camera: bool = True, check: bool = True
) -> tuple[mujoco.MjModel, SceneInfo, RobotConfig]:
    """Compile the scene; with ``check`` the joint ranges are verified against the YAML."""
    spec, info, cfg = build_scene_spec(robot, objects, wrist_camera)
    model = spec.compile()
    if check:
        check_joint_limits(model, cfg)
    return model, info, cfg


def check_joint_limits(model: mujoco.MjModel, cfg: RobotConfig, tol: float = 1e-3) -> None:
    """Raise SimConfigError unless every YAML joint exists in the model with the YAML's range (within tol)."""
    problems = []
    names = list(cfg.joints.names)
    lows, highs = list(cfg.joints.position_min), list(cfg.joints.position_max)
    if cfg.gripper is not None:
        names.append(cfg.gripper.joint)
        lows.append(cfg.gripper.low)
        highs.append(cfg.gripper.high)
    for name, low, high in zip(names, lows, highs):
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            problems.append(f"joint '{name}' is in the YAML but not in the model")
            continue
        if not model.jnt_limited[jid]:
            problems.append(f"joint '{name}' is unlimited in the model; the YAML says [{low}, {high}]")
            continue
        m_low, m_high = (float(v) for v in model.jnt_range[jid])
        if abs(m_low - low) > tol or abs(m_high - high) > tol:
            problems.append(
                f"joint '{name}': model range [{m_low:.4f}, {m_high:.4f}] != YAML [{low:.4f}, {high:.4f}] (tol {tol})"
            )
    if problems:
        raise SimConfigError(f"robot '{cfg.name}': MuJoCo model and robot YAML disagree:\n  " + "\n  ".join(problems))
