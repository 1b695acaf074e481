"""The package installs the ROS way: data files in share/, the ament marker, console scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

from uam_ros.resources import share_dir

ROOT = share_dir()
REQUIRED_EXEC_DEPENDS = {
    "rclpy", "sensor_msgs", "trajectory_msgs", "visualization_msgs", "std_msgs", "std_srvs", "diagnostic_msgs",
    "lifecycle_msgs", "launch_ros", "cv_bridge", "python3-numpy", "python3-opencv", "python3-yaml",
}


def test_package_xml_is_format_3_ament_python_with_real_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "uam_ros"
    assert root.find("export/build_type").text == "ament_python"
    assert REQUIRED_EXEC_DEPENDS <= {e.text for e in root.findall("exec_depend")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("uam_ros-*.whl"))


def test_wheel_carries_share_files_marker_and_console_scripts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "uam_ros-0.1.0.data/data/share/"
    for required in ("ament_index/resource_index/packages/uam_ros", "uam_ros/package.xml",
                     "uam_ros/launch/policy.launch.py", "uam_ros/config/robots/franka_panda.yaml",
                     "uam_ros/config/robots/ur5e.yaml"):
        assert data + required in names, required
    assert "uam_ros/runtime/data/tensorrt_onnx_ops.json" in names  # package data, not only data_files
    entry_points = zipfile.ZipFile(wheel).read("uam_ros-0.1.0.dist-info/entry_points.txt").decode()
    assert "uam_policy = uam_ros.ros.policy_node:main" in entry_points and "uam = uam_ros.cli:main" in entry_points


def test_ament_index_finds_the_installed_share_directory(wheel, tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
                   check=True, capture_output=True)
    probe = ("from ament_index_python.packages import get_package_share_directory as g; import os;"
             "d = g('uam_ros'); print(d); assert os.path.isfile(os.path.join(d, 'config/robots/ur5e.yaml'))")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(prefix / "share" / "uam_ros")
