#!/usr/bin/env bash
# Create or reuse the project venv (.venv) with the pinned dependencies, then install uam_ros
# into it. Re-running is cheap: nothing is installed again unless the requirement files changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${UAM_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found. On Debian/Ubuntu: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "error: Python >= 3.10 is required ($("$PYTHON" --version))" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[uam] creating $VENV"
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "error: could not create a venv. On Debian/Ubuntu: sudo apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
STAMP="$VENV/.uam-requirements"
WANT="$(cd "$ROOT" && ls requirements*.txt setup.py | xargs cat | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || [ ! -x "$VENV/bin/uam" ]; then
  echo "[uam] installing pinned dependencies into $VENV (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  if [ -f "$ROOT/requirements-sim.txt" ]; then
    # Robot model packages whose own dependency pins would downgrade numpy: assets only.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$ROOT/requirements-sim.txt"
  fi
  if [ -f "$ROOT/requirements-metaworld.txt" ]; then
    # Meta-World pins mujoco==3.3.0; installed without its pins so the project's MuJoCo stays.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$ROOT/requirements-metaworld.txt"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
  echo "$WANT" > "$STAMP"
fi
# An editable install does not copy data files; point the ament index at the checkout instead
# (what colcon build --symlink-install does), so ament_index_python finds uam_ros's share dir.
mkdir -p "$VENV/share/ament_index/resource_index/packages"
touch "$VENV/share/ament_index/resource_index/packages/uam_ros"
if [ ! -e "$VENV/share/uam_ros" ]; then ln -s "$ROOT" "$VENV/share/uam_ros"; fi
