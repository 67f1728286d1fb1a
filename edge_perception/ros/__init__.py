"""The thin rclpy layer: nodes, container, message adapter, image conversion."""
