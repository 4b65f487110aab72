"""Algorithm plugins: importing this package registers the built-in algorithms."""
from algorithms import dapo, grpo, handicap, maxpo, pods, popo, sgpo  # noqa: F401
