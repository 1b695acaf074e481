"""uam_ros: run a UAM (Unified Action Model) robot policy in real time under ROS 2."""

__version__ = "0.1.0"
