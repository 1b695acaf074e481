"""Where data and checkpoints came from: code revision, time, command line.

Recorded in dataset meta.json and checkpoint meta so a result can be traced back to the code
and data that made it (the revision is None outside a git checkout, e.g. an installed wheel).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def code_revision() -> str | None:
    """``git rev-parse HEAD`` of the checkout this package runs from, with ``+dirty`` when the
    working tree has uncommitted changes; None when not in a git checkout."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_PACKAGE_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_PACKAGE_ROOT, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}+dirty" if status else rev or None


def created_info(**extra: Any) -> dict[str, Any]:
    """Creation record: UTC time, code revision, Python command line, plus any extra fields."""
    return {
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code_revision": code_revision(),
        "command": " ".join(sys.argv),
        **extra,
    }
