"""Training: checkpoints (and, with the world model, the trainer)."""
