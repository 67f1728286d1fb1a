"""ROS 2 tools around the car's nodes: the demo, bags and replay, the monitor node and
rqt plugin, and the container processes benchmarks start."""
