"""Import Meta-World under this project's MuJoCo 4, which Meta-World 3.1.1 was not written for.

What breaks, exactly: MuJoCo 4.0 grew the rows of ``mjModel.eq_data`` from 11 to 12 numbers
(``mjNEQDATA``; the new ``eq_data[11]`` marks body welds whose relative pose ``mj_setConst``
recomputes). ``metaworld.sawyer_xyz_env.SawyerMocapBase.reset_mocap_welds`` assigns an 11-number row
to every weld, so constructing *any* Meta-World env raises ``ValueError: could not broadcast input
array from shape (11,) into shape (12,)``. The fix below writes the same 11 numbers into the first
11 entries and 0 into entry 11: an explicit relative pose, which is what Meta-World's row states
(MuJoCo's changelog: "Zero eq_data[11] ... to set the relative pose of such a weld directly").
Nothing else was found to break: with this fix all ten MT10 scripted policies succeed (the numbers
are in docs/metaworld.md). The fix is applied only where the row length is not 11, so it is inert
under the MuJoCo version Meta-World pins.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from types import ModuleType

import numpy as np

INSTALL_HINT = "pip install --no-deps -r requirements-metaworld.txt (scripts/bootstrap.sh does it)"
TESTED_METAWORLD = "3.1.1"
# SawyerMocapBase.reset_mocap_welds's row: anchor (3), relative position (3), quaternion (4), torquescale.
_METAWORLD_WELD_ROW = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


class MetaWorldUnavailable(ImportError):
    """metaworld (or one of its dependencies) is not importable."""


def _reset_mocap_welds(self) -> None:
    """Meta-World's reset_mocap_welds for any eq_data row length >= 11."""
    import mujoco

    if self.model.nmocap > 0 and self.model.eq_data is not None:
        for i in range(self.model.eq_data.shape[0]):
            if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                self.model.eq_data[i, :] = 0.0
                self.model.eq_data[i, : _METAWORLD_WELD_ROW.size] = _METAWORLD_WELD_ROW


_reset_mocap_welds.uam_compat = True  # type: ignore[attr-defined]


def needs_weld_fix() -> bool:
    """True under a MuJoCo whose eq_data rows are not Meta-World's 11 numbers."""
    import mujoco

    return int(getattr(mujoco, "mjNEQDATA", 11)) != _METAWORLD_WELD_ROW.size


def import_metaworld() -> ModuleType:
    """``import metaworld`` with the MuJoCo 4 fix applied (idempotent); a clear error if missing."""
    try:
        import metaworld
        import metaworld.policies  # noqa: F401  (the scripted policies are part of what we need)
        from metaworld.sawyer_xyz_env import SawyerMocapBase
    except ImportError as error:
        raise MetaWorldUnavailable(f"metaworld is not importable ({error}); install it with {INSTALL_HINT}") from error
    if needs_weld_fix() and not getattr(SawyerMocapBase.reset_mocap_welds, "uam_compat", False):
        SawyerMocapBase.reset_mocap_welds = _reset_mocap_welds
    # The scripted policies warn on every step whose gain saturates; the env clips, as intended.
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high", category=UserWarning)
    return metaworld


def versions() -> dict[str, str]:
    """Versions that decide the numbers (recorded with every dataset and evaluation)."""
    import mujoco

    out = {"mujoco": mujoco.__version__}
    for package in ("metaworld", "gymnasium"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "missing"
    return out
