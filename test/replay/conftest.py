"""Replay tests share the real-rclpy fixtures of the integration tests."""

from ..integration.conftest import ros_context, spin_until

__all__ = ['ros_context', 'spin_until']
