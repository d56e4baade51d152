"""The training engine: one loop for every objective, checkpoints, data packing."""
