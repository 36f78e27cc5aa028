"""Evaluation: agents in envs (episodes), and later world-model fidelity and speed."""
