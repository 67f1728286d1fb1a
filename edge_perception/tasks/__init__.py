"""Per-task pre- and post-processing in numpy/OpenCV. Imports neither rclpy nor tvm."""
