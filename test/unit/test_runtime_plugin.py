"""model:=python://package.module:Factory?arg=value builds any Policy in Python (e.g. a remote-policy
client): the factory gets joint_names, chunk_size, robot and the parsed query arguments."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from uam_ros.runtime.factory import create_policy, parse_python_model
from uam_ros.runtime.policy import Observation

PLUGIN = textwrap.dedent('''
    import numpy as np
    from uam_ros.runtime.policy import ActionChunk

    CALLS = []

    class HoldPolicy:
        name = "hold-plugin"

        def __init__(self, joint_names, chunk_size, robot, offset=0.0, label="x", flag=False, none=1):
            CALLS.append(dict(joint_names=joint_names, chunk_size=chunk_size, robot=robot, offset=offset,
                              label=label, flag=flag, none=none))
            self.chunk_size = chunk_size
            self.offset = offset

        def warmup(self):
            return 0.0

        def infer(self, observation):
            q = np.tile(observation.state + self.offset, (self.chunk_size, 1))
            return ActionChunk(q, 0.1, observation.stamp_ns)

    def not_a_policy(**kwargs):
        return object()

    NOT_CALLABLE = 3
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "uam_test_plugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("uam_test_plugin_mod", None)
    module = importlib.import_module("uam_test_plugin_mod")
    yield module
    sys.modules.pop("uam_test_plugin_mod", None)


def test_parse_python_model_parses_scalars_and_keeps_strings():
    module, attribute, args = parse_python_model(
        "python://pkg.sub.mod:Factory?host=10.0.0.2&port=5555&timeout=0.5&tls=true&name=a%20b&empty=&x=null")
    assert (module, attribute) == ("pkg.sub.mod", "Factory")
    assert args == {"host": "10.0.0.2", "port": 5555, "timeout": 0.5, "tls": True, "name": "a b", "empty": "",
                    "x": None}
    assert parse_python_model("python://m:F") == ("m", "F", {})


@pytest.mark.parametrize("model, fragment", [
    ("python://pkg.mod", "expected python://"),
    ("python://:Factory", "expected python://"),
    ("python://pkg.mod:", "expected python://"),
    ("python://m:F?a=1&a=2", "given twice"),
    ("python://m:F?chunk_size=3", "set by the node"),
    ("python://m:F?novalue", "bad query string"),
])
def test_parse_python_model_rejects_malformed_urls(model, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_python_model(model)


def test_python_plugin_builds_a_policy_with_node_and_query_arguments(plugin):
    choice = create_policy("auto", "python://uam_test_plugin_mod:HoldPolicy?offset=0.25&label=remote&flag=true",
                           ["j1", "j2", "gripper"], robot="franka_panda", chunk_size=5)
    assert choice.name == "python" and not choice.fallback
    assert "uam_test_plugin_mod:HoldPolicy" in choice.reason and "hold-plugin" in choice.reason
    assert plugin.CALLS == [dict(joint_names=["j1", "j2", "gripper"], chunk_size=5, robot="franka_panda",
                                 offset=0.25, label="remote", flag=True, none=1)]
    state = np.array([0.1, 0.2, 0.04])
    chunk = choice.policy.infer(Observation(np.zeros((4, 4, 3), np.uint8), state, "go", 123))
    assert chunk.positions.shape == (5, 3) and chunk.observation_stamp_ns == 123
    np.testing.assert_allclose(chunk.positions[0], state + 0.25)


def test_python_plugin_errors_name_the_problem(plugin):
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        create_policy("auto", "python://no_such_module_xyz:F", ["j1"])
    with pytest.raises(ValueError, match="has no attribute 'Missing'"):
        create_policy("auto", "python://uam_test_plugin_mod:Missing", ["j1"])
    with pytest.raises(ValueError, match="is not callable"):
        create_policy("auto", "python://uam_test_plugin_mod:NOT_CALLABLE", ["j1"])
    with pytest.raises(TypeError, match="does not implement the Policy protocol"):
        create_policy("auto", "python://uam_test_plugin_mod:not_a_policy", ["j1"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        create_policy("auto", "python://uam_test_plugin_mod:HoldPolicy?bogus=1", ["j1"])
