"""Datasets: collecting episodes into Minari and reading them back."""
