"""Record a policy run to MCAP and re-run a policy offline on the recording.

A policy node commands a real arm, so every run must be recordable (what it saw, what it
predicted, what it commanded, what it reported) and replayable (would this model, fed the same
inputs, have commanded the same thing?). The pieces, one concern each:

    msgdefs    ROS 2 message definitions (ros2msg text with dependencies, type hashes) read from
               the installed interface packages, so the file is self-describing for Foxglove and
               `ros2 bag`
    topics     which topics a run consists of, with their types and QoS
    writer     chunked MCAP with ros2msg schemas and raw CDR payloads, flushed chunk by chunk so
               a killed process leaves a readable file
    recorder   a queue and a writer thread: recording never blocks the caller (the control timer)
    reader     reads a recording back, including one cut short by SIGKILL
    record_node  `uam record`: a standalone rclpy recorder for a running uam_policy (+ sim)
    policy_tap   the in-node recording behind uam_policy's `record` parameter
    observations  rebuilds the node's observations from a recording (with the node's own code)
    replay     `uam replay`: re-runs a policy on a recording and compares its actions
"""
