#!/usr/bin/env bash
# The test suite, as CI runs it. Exits non-zero on any failure and when no test ran at all.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${UAM_VENV:-$ROOT/.venv}"
cd "$ROOT"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# A domain of our own per run, so concurrent runs on one host never see each other.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$VENV}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYTHONUNBUFFERED=1
"$VENV/bin/python" -m pytest -ra --durations=10 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
