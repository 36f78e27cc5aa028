"""The dream engine: N dreams of one world model, stepped in one batched call (no Gymnasium here)."""

from worldsim.engine.dream_engine import DreamEngine, DreamStep, load_engine_model, resolve_device
from worldsim.engine.reset_options import ResetContext, parse_reset_options

__all__ = ["DreamEngine", "DreamStep", "ResetContext", "load_engine_model", "parse_reset_options", "resolve_device"]
