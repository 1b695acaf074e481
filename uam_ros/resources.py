"""Locate the package's data (config/, models/, launch/) in a checkout, a pip venv or a colcon install.

A source checkout wins over the installed share directory, so edits to config files in a
checkout take effect without reinstalling (the same reason colcon has --symlink-install).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "uam_ros"


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "package.xml").is_file() and (root / "config").is_dir() else None


def share_dir() -> Path:
    """The directory holding config/, launch/ and models/."""
    root = _checkout_root()
    if root is not None:
        return root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE_NAME))
    except (ImportError, LookupError, OSError):
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE_NAME
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(
        f"cannot find the {PACKAGE_NAME} share directory: not a checkout, not in the ament index "
        f"(AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r}), not under {candidate}"
    )


def robots_dir() -> Path:
    return share_dir() / "config" / "robots"


def models_dir() -> Path:
    return share_dir() / "models"
