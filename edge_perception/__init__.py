"""edge_perception: deadline-monotonic multi-task perception with TVM models for ROS 2."""

__version__ = '0.1.0'
