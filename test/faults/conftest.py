"""The fault table (docs/safety.md): uam_policy in a subprocess, faults injected over real DDS.

Reuses test/integration's harness (ros_harness, the JTC validity checks of test_policy_node and its
checkpoint maker); test/faults itself goes on the node subprocess's PYTHONPATH so the node can load
fault_policy.FaultPolicy through model:=python://fault_policy:FaultPolicy?....
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FAULTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIR = FAULTS_DIR.parent / "integration"
for _path in (str(INTEGRATION_DIR), str(FAULTS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ros_harness import ensure_rclpy  # noqa: E402


def _integration_conftest():
    name = "uam_integration_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, INTEGRATION_DIR / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: the fault table of docs/safety.md (real DDS, node subprocesses)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "faults" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def rclpy_context():
    import rclpy

    ensure_rclpy()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def panda_checkpoint(panda, tmp_path_factory):
    return _integration_conftest().make_checkpoint(panda, tmp_path_factory.mktemp("ckpt") / "panda")
