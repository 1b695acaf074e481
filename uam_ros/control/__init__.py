"""ROS-free control core: robot config, observation sync, chunk scheduling, safety, trajectories."""
