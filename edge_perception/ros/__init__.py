"""The rclpy layer that runs on the car: container, executor, task nodes, diagnostics,
message adapter, image conversion, supervisor."""
