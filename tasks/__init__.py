"""Task plugins: importing this package registers the built-in tasks."""
from tasks import arithmetic, countdown, geometry, geometry_jsonl, jsonl_math, shortest_path  # noqa: F401
from tasks.base import DataError, Problem, Task

__all__ = ["DataError", "Problem", "Task"]
