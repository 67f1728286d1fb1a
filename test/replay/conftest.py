"""Replay tests share the real-rclpy fixtures of the integration tests."""

from ..integration.conftest import container, ros_context, spin_until

__all__ = ['container', 'ros_context', 'spin_until']
