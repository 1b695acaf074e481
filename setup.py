"""ament_python build: colcon and pip both read this file.

Data files land in <prefix>/share/uam_ros (where ament_index_python looks) and the ament
resource marker in <prefix>/share/ament_index/resource_index/packages/.
"""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "uam_ros"
HERE = Path(__file__).parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """(install dir, files) for every directory under folder, keeping the layout."""
    entries = []
    for directory in sorted({p.parent for p in (HERE / folder).rglob("*") if p.is_file()}):
        files = sorted(str(p.relative_to(HERE)) for p in directory.iterdir() if p.is_file())
        entries.append((f"share/{PACKAGE}/{directory.relative_to(HERE)}", files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    package_data={"uam_ros.runtime": ["data/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
    ],
    install_requires=["setuptools", "numpy", "pyyaml"],
    zip_safe=True,
    maintainer="uam_ros maintainers",
    maintainer_email="maintainers@uam-ros.dev",
    description="Real-time UAM vision-language-action policy for ROS 2 manipulators",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "uam_policy = uam_ros.ros.policy_node:main",
            "uam_sim = uam_ros.ros.sim_node:main",
            "uam_foxglove = uam_ros.ros.foxglove_bridge:main",
            "uam = uam_ros.cli:main",
        ],
    },
)
