"""Pure-Python core: configuration, task model, scheduling. Imports neither rclpy nor tvm."""
