"""The things on the table: colours, shapes, fixtures, and how each becomes MuJoCo bodies.

Movable objects are free bodies (block, cylinder, hexagon, cross); fixtures are a flat coloured
zone, an open bin and a push-button whose cap stays down once pressed. Sizes are chosen so both
grippers (Franka Hand, 8 cm stroke; Robotiq 2F-85, 8.5 cm) can grasp every movable shape.

Model naming: an object named ``n`` is the body ``obj_n``; its free joint is ``obj_n_free``; a
button's cap is the body ``obj_n_cap`` on the slide joint ``obj_n_press``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mujoco

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.12, 0.70, 0.20),
    "blue": (0.12, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.20, 0.75),
    "orange": (1.00, 0.50, 0.05),
}


@dataclass(frozen=True)
class ShapeInfo:
    name: str
    movable: bool
    half_height: float  # centre height above the table when resting [m]
    radius: float  # footprint radius, for spacing objects apart [m]
    grasp_period: float  # yaw symmetry of the grasp [rad]; 0 = any yaw (round)
    grasp_width: float = 0.0  # width between the finger pads when grasped [m]
    top_flat: bool = True  # something can be stacked on it


HEX_R = 0.026  # hexagon circumradius
SHAPES: dict[str, ShapeInfo] = {
    "block": ShapeInfo("block", True, 0.0225, 0.032, math.pi / 2, 0.045),
    "cylinder": ShapeInfo("cylinder", True, 0.0225, 0.0225, 0.0, 0.045),
    "hexagon": ShapeInfo("hexagon", True, 0.0225, HEX_R, math.pi / 3, HEX_R * math.sqrt(3.0)),
    "cross": ShapeInfo("cross", True, 0.0175, 0.043, math.pi / 2, 0.06, top_flat=False),
    "zone": ShapeInfo("zone", False, 0.0, 0.075, 0.0),
    "bin": ShapeInfo("bin", False, 0.0, 0.09, 0.0),
    "button": ShapeInfo("button", False, 0.0, 0.035, 0.0),
}
ZONE_HALF = 0.06  # zone is a 12 cm square
BIN_INNER_HALF = 0.065  # bin interior is 13 cm square
BIN_WALL = 0.01
BIN_HEIGHT = 0.04
BUTTON_BASE_H = 0.012  # button housing height
BUTTON_CAP_H = 0.012  # cap half-height
BUTTON_CAP_R = 0.024
BUTTON_TRAVEL = 0.012  # how far the cap can go down
BUTTON_PRESSED = 0.007  # depth that counts as pressed
OBJECT_DENSITY = 400.0  # kg/m^3, painted wood


@dataclass(frozen=True)
class ObjectSpec:
    """One thing on the table. ``pos`` is (x, y) on the table in the world frame."""

    name: str
    shape: str
    color: str
    pos: tuple[float, float]
    yaw: float = 0.0

    @property
    def info(self) -> ShapeInfo:
        return SHAPES[self.shape]

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"

    def body_name(self) -> str:
        return f"obj_{self.name}"


def rgba(color: str, alpha: float = 1.0) -> list[float]:
    if color not in COLORS:
        raise ValueError(f"unknown colour '{color}' (known: {sorted(COLORS)})")
    return [*COLORS[color], alpha]


def _hexagon_vertices() -> list[float]:
    half = SHAPES["hexagon"].half_height
    verts = []
    for z in (-half, half):
        for k in range(6):
            angle = k * math.pi / 3 + math.pi / 6  # flats face +-x at yaw 0
            verts += [HEX_R * math.cos(angle), HEX_R * math.sin(angle), z]
    return verts


def quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def add_object(spec: mujoco.MjSpec, obj: ObjectSpec) -> None:
    """Add the bodies of ``obj`` to ``spec``'s world body."""
    # Imported here, not at the top: the colour, shape and task tables are read by training and
    # tokenizer code that must run without the simulator installed (e.g. on a GPU training machine).
    import mujoco

    info = obj.info
    color = rgba(obj.color)
    name = obj.body_name()
    if info.movable:
        body = spec.worldbody.add_body(
            name=name, pos=[obj.pos[0], obj.pos[1], info.half_height], quat=quat_yaw(obj.yaw)
        )
        body.add_freejoint(name=f"{name}_free")
        common = dict(rgba=color, density=OBJECT_DENSITY, friction=[1.0, 0.01, 0.001], condim=4, solref=[0.01, 1])
        h = info.half_height
        if obj.shape == "block":
            body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[h, h, h], **common)
        elif obj.shape == "cylinder":
            body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[h, h, 0], **common)
        elif obj.shape == "hexagon":
            mesh_name = f"{name}_mesh"
            spec.add_mesh(name=mesh_name, uservert=_hexagon_vertices())
            body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh_name, **common)
        elif obj.shape == "cross":
            arm, thick = info.grasp_width / 2, 0.011
            body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[arm, thick, h], **common)
            body.add_geom(name=f"{name}_geom2", type=mujoco.mjtGeom.mjGEOM_BOX, size=[thick, arm, h], **common)
        else:  # pragma: no cover - guarded by SHAPES
            raise ValueError(obj.shape)
        return
    fixed = dict(pos=[obj.pos[0], obj.pos[1], 0.0], quat=quat_yaw(obj.yaw))
    if obj.shape == "zone":
        body = spec.worldbody.add_body(name=name, **fixed)
        body.add_geom(
            name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[ZONE_HALF, ZONE_HALF, 0.0005],
            pos=[0, 0, 0.0005], rgba=rgba(obj.color, 0.9), contype=0, conaffinity=0,
        )
    elif obj.shape == "bin":
        body = spec.worldbody.add_body(name=name, **fixed)
        outer = BIN_INNER_HALF + BIN_WALL
        hz = BIN_HEIGHT / 2
        walls = (
            ([BIN_INNER_HALF + BIN_WALL / 2, 0, hz], [BIN_WALL / 2, outer, hz]),
            ([-(BIN_INNER_HALF + BIN_WALL / 2), 0, hz], [BIN_WALL / 2, outer, hz]),
            ([0, BIN_INNER_HALF + BIN_WALL / 2, hz], [BIN_INNER_HALF, BIN_WALL / 2, hz]),
            ([0, -(BIN_INNER_HALF + BIN_WALL / 2), hz], [BIN_INNER_HALF, BIN_WALL / 2, hz]),
        )
        for i, (pos, size) in enumerate(walls):
            body.add_geom(name=f"{name}_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size, rgba=color)
        body.add_geom(
            name=f"{name}_floor", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, 0.002],
            size=[BIN_INNER_HALF, BIN_INNER_HALF, 0.002], rgba=color,
        )
    elif obj.shape == "button":
        body = spec.worldbody.add_body(name=name, **fixed)
        body.add_geom(
            name=f"{name}_base", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.035, BUTTON_BASE_H / 2, 0],
            pos=[0, 0, BUTTON_BASE_H / 2], rgba=[0.25, 0.25, 0.25, 1],
        )
        cap = body.add_body(name=f"{name}_cap", pos=[0, 0, BUTTON_BASE_H + BUTTON_CAP_H], gravcomp=1.0)
        cap.add_joint(
            name=f"{name}_press", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1],
            range=[-BUTTON_TRAVEL, 0.0], limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            frictionloss=3.0, damping=5.0,
        )
        cap.add_geom(
            name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[BUTTON_CAP_R, BUTTON_CAP_H, 0],
            rgba=color, mass=0.02,
        )
        # The housing is welded to the world, so parent-child filtering does not apply: exclude it by hand,
        # or the cap would be pushed back out of the housing as soon as it is pressed.
        spec.add_exclude(bodyname1=name, bodyname2=f"{name}_cap")
    else:  # pragma: no cover
        raise ValueError(obj.shape)


def object_top_z(obj: ObjectSpec) -> float:
    """Height of the object's top above the table when resting / unpressed [m]."""
    if obj.info.movable:
        return 2 * obj.info.half_height
    if obj.shape == "bin":
        return BIN_HEIGHT
    if obj.shape == "button":
        return BUTTON_BASE_H + 2 * BUTTON_CAP_H
    return 0.001


def yaw_of_quat(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
