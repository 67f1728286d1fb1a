"""Model definitions, synthetic data, training and export. Only train/networks import torch."""
