"""Fault table row e (docs/safety.md): a corrupt or tampered model.safetensors. configure must fail
with an error that names the problem, the process must stay up with diagnostics at ERROR, and no
command may ever be published, however good the inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

from trajectory_msgs.msg import JointTrajectory

import ros_harness
from fault_harness import Arm, Diagnostics, start_node


def corrupt_copy(checkpoint, directory, how: str):
    target = directory / f"ckpt_{how}"
    shutil.copytree(checkpoint, target)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if how == "flipped_weights":  # bit rot / tampering inside the tensor data; config.json untouched
        for i in range(len(data) - 4096, len(data) - 4000):
            data[i] ^= 0xFF
    else:  # "broken_header": the header is garbage and config.json's sha256 was re-recorded to match
        data[10:30] = b"\xff" * 20
        config = json.loads((target / "config.json").read_text())
        config["weights_sha256"] = hashlib.sha256(bytes(data)).hexdigest()
        (target / "config.json").write_text(json.dumps(config))
    weights.write_bytes(bytes(data))
    return target


def check_refused(tmp_path, panda, model, expect_in_message: list[str]):
    node = start_node(tmp_path / "policy.log", model=str(model), enable=True)
    client = ros_harness.TestClient("uam_fault_client_model")
    try:
        arm, diag = Arm(panda), Diagnostics(client)
        commands = client.record(JointTrajectory, panda.controller.trajectory_topic)
        predicted = client.record(JointTrajectory, "/uam_policy/predicted_trajectory")
        assert client.run(60.0, arm.joints(client), arm.image(client),
                          until=lambda: "configure failed" in node.log() and diag.last()[0] is not None), node.log()
        start = time.monotonic()
        client.run(2.0, arm.joints(client), arm.image(client))  # good inputs: still nothing may move
        status, values = diag.last()
        assert diag.statuses(start), "diagnostics stopped after the failed configure"
        assert status.level == b"\x02", status
        line = next(ln for ln in node.log().splitlines() if "configure failed" in ln)
        for fragment in expect_in_message:
            assert fragment in status.message, (fragment, status.message)
            assert fragment in line, (fragment, line)
        assert values["lifecycle"] == "configure_failed"
        assert node.process.poll() is None, "a failed configure must not end the process"
        assert commands.messages == [] and predicted.messages == []
        assert "Traceback" not in node.log()
    finally:
        client.close()
        assert node.stop() == 0, node.log()[-3000:]


def test_flipped_bytes_in_weights_refuse_to_configure(rclpy_context, panda, panda_checkpoint, tmp_path):
    model = corrupt_copy(panda_checkpoint, tmp_path, "flipped_weights")
    check_refused(tmp_path, panda, model, [str(model), "model.safetensors", "sha256", "modified or corrupted"])


def test_broken_weights_header_refuses_to_configure_naming_the_file(rclpy_context, panda, panda_checkpoint, tmp_path):
    model = corrupt_copy(panda_checkpoint, tmp_path, "broken_header")
    check_refused(tmp_path, panda, model, [str(model), "model.safetensors"])
