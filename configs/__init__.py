"""Hydra configuration groups shipped with worldsim (env/, agent/, ...)."""
