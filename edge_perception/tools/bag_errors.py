"""The bag error class, importable without rclpy (the CLI reports it)."""


class BagError(RuntimeError):
    """A bag cannot be written, read or played."""
