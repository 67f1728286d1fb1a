"""Inference engines behind one Protocol; only tvm_engine.py imports tvm."""
