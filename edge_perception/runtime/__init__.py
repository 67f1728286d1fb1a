"""Inference engines behind one Protocol; only runtime/tvm/ imports tvm."""
