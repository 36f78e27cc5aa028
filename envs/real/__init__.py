"""Adapters for the real simulators that worldsim learns from and benchmarks against."""
