"""Algorithm plugins: importing this package registers the built-in algorithms."""
from algorithms import grpo, pods  # noqa: F401
