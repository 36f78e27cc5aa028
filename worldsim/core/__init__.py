"""The bottom layer: facts every other layer may use (game descriptions, errors, checkpoints, configs)."""
