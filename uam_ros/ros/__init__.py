"""The thin ROS 2 layer: nodes convert messages and wire topics; decisions live in uam_ros.control."""
