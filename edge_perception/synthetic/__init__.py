"""Procedural road scenes with ground truth: training data, bags and busy frames to
profile with."""
