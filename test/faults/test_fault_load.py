"""Fault table rows h and g (docs/safety.md), on one enabled uam_policy running the real (untrained)
torch checkpoint: first nobody subscribes to the controller topic (h), then the camera floods (g)."""

from __future__ import annotations

import time

import ros_harness
from fault_harness import Arm, CommandChecker, Diagnostics, chunk_count, start_node

FLOOD_HZ = 250.0
FLOOD_S = 4.0


def test_no_controller_subscriber_then_camera_flood(rclpy_context, panda, panda_checkpoint, tmp_path):
    node = start_node(tmp_path / "policy.log", model=panda_checkpoint, enable=True)
    client = ros_harness.TestClient("uam_fault_client_load")
    try:
        arm, diag = Arm(panda), Diagnostics(client)
        joints, image = arm.joints(client), arm.image(client)
        assert client.run(90.0, until=lambda: diag.value("lifecycle", "") == "active"), node.log()

        # h. Nothing subscribes to the controller topic: the node keeps running and publishing.
        topic = panda.controller.trajectory_topic
        assert client.node.count_subscribers(topic) == 0
        assert client.run(30.0, joints, image, until=lambda: diag.count("commands_published") >= 5), node.log()[-3000:]
        first, start = diag.count("commands_published"), time.monotonic()
        client.run(2.0, joints, image)
        assert diag.count("commands_published") >= first + 5, (first, diag.count("commands_published"))
        assert node.process.poll() is None
        assert len(diag.statuses(start)) >= 4, "diagnostics stopped"  # every 0.25 s
        assert diag.last()[0].message == "running"
        assert client.node.count_subscribers(topic) == 0

        # g. Camera flood (>= 200 Hz): the node stays alive, rates are reported, chunks stay valid.
        commands = CommandChecker(client, panda)
        assert client.run(30.0, joints, image, until=lambda: chunk_count(commands, 0.0) >= 2), node.log()[-3000:]
        normal_rate = float(diag.value("camera_rate_hz"))
        start = time.monotonic()
        client.run(FLOOD_S, joints, image, image_hz=FLOOD_HZ)
        flood = time.monotonic()
        client.run(1.0, joints, image)  # the diagnostics window that covers the flood's end
        rates = [float(values["camera_rate_hz"]) for _, values in diag.statuses(start + 0.5)
                 if "camera_rate_hz" in values]
        flood_chunks = sum(1 for m, at in commands.since(start) if at <= flood and len(m.points) > 1)
        print(f"camera flood: normal {normal_rate:.1f} Hz, reported during flood {rates}, "
              f"{flood_chunks} chunks in {FLOOD_S:.0f} s")
        assert max(rates) >= 100.0, rates
        assert flood_chunks >= 3, flood_chunks
        assert node.process.poll() is None
        commands.check_all()
        after = time.monotonic()
        assert client.run(10.0, joints, image, until=lambda: chunk_count(commands, after) >= 2
                          and any(float(v.get("camera_rate_hz", 99)) < 30 for _, v in diag.statuses(after + 0.5)))
        commands.check_all()
        assert "Traceback" not in node.log()
    finally:
        client.close()
        assert node.stop() == 0, node.log()[-3000:]
