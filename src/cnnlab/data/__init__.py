"""Datasets: Fashion-MNIST and friends, in-memory batching, batched augmentation, image folders, splits."""
