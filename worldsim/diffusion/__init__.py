"""Diffusion for world models: EDM preconditioning and training loss, and the sampler."""
