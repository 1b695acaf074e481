#!/usr/bin/env bash
# The two entry points of the README:  ./run.sh demo   and   ./run.sh test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
VENV="${UAM_VENV:-$ROOT/.venv}"
# DDS stays on this machine unless the caller chose otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$VENV}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
cmd="${1:-demo}"
shift || true
case "$cmd" in
  demo) exec "$VENV/bin/uam" demo "$@" ;;
  test) exec bash "$ROOT/scripts/test.sh" "$@" ;;
  uam) exec "$VENV/bin/uam" "$@" ;;
  *) echo "usage: ./run.sh demo|test|uam [args]" >&2; exit 2 ;;
esac
