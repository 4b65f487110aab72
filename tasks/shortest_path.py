"""Shortest path (planning): a small undirected graph as an edge list, a start and a goal; the answer is
a shortest path, written as the nodes it visits.

    prompt:  "ab bc cd ae ed|a>d:"      answer: "aed"  (or any other path of the same, shortest, length)

The verifier checks the completion letter by letter against a whitelist (the graph's node letters only),
then that it starts at the start, ends at the goal, follows edges, and has exactly the breadth-first-search
distance in hops. Nothing in the completion is evaluated. Every shortest path scores 1.0, so the reward is
the task's, not one oracle string's.
"""
from __future__ import annotations

import random
import string
from collections import deque
from dataclasses import dataclass

from harness.config import ConfigError, doc
from harness.registry import TASKS
from tasks.base import Problem, SplitConfig, Task

NODES = string.ascii_lowercase


@dataclass
class ShortestPathConfig(SplitConfig):
    # defaults calibrated for headroom (README): GRPO on the preset model gains ~18 points in 120k rollouts
    min_nodes: int = doc("Fewest nodes in a graph.", 5)
    max_nodes: int = doc("Most nodes in a graph (at most 26, one letter each).", 6)
    edge_factor: float = doc("Edges per node (a random spanning tree first, then random extra edges up to this).", 1.3)
    min_hops: int = doc("Shortest distance from start to goal, at least.", 2)
    max_hops: int = doc("Shortest distance from start to goal, at most.", 3)

    def validate(self) -> None:
        super().validate()
        if not 3 <= self.min_nodes <= self.max_nodes <= len(NODES):
            raise ConfigError(f"task_args.min_nodes/max_nodes: need 3 <= min <= max <= 26, got {self.min_nodes}, {self.max_nodes}")
        if not 1.0 <= self.edge_factor <= (self.min_nodes - 1) / 2:
            raise ConfigError(f"task_args.edge_factor: need 1 <= edge_factor <= (min_nodes - 1) / 2, got {self.edge_factor}")
        if not 1 <= self.min_hops <= self.max_hops < self.min_nodes:
            raise ConfigError(f"task_args.min_hops/max_hops: need 1 <= min <= max < min_nodes, got {self.min_hops}, {self.max_hops}")


def hops(edges: set[frozenset], start: str) -> dict[str, int]:
    """Breadth-first distances (in edges) from start to every node it reaches."""
    adj: dict[str, list[str]] = {}
    for e in edges:
        a, b = tuple(e)
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    dist, queue = {start: 0}, deque([start])
    while queue:
        u = queue.popleft()
        for v in adj.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def check_path(text: str, edges: set[frozenset], start: str, goal: str, distance: int) -> bool:
    """True iff text (surrounding spaces allowed) is start..goal along edges in exactly `distance` hops."""
    path = text.strip()
    if len(path) != distance + 1 or path[0] != start or path[-1] != goal:
        return False
    return all(a != b and frozenset((a, b)) in edges for a, b in zip(path, path[1:]))


@TASKS.register("shortest_path", config=ShortestPathConfig(), description="Shortest path on a small graph (planning); BFS-checked, every shortest path scores")
class ShortestPath(Task):
    name = "shortest_path"

    def __init__(self, cfg: ShortestPathConfig):
        self.max_new_tokens = cfg.max_hops + 3
        super().__init__(cfg)

    def generate(self, rng: random.Random) -> Problem:
        c = self.cfg
        while True:
            n = rng.randint(c.min_nodes, c.max_nodes)
            names = rng.sample(NODES[:n + 4], n)  # letters vary between graphs, so no letter means a fixed node
            edges = {frozenset((names[i], names[rng.randrange(i)])) for i in range(1, n)}  # a random spanning tree
            want = round(c.edge_factor * n)
            while len(edges) < want:
                a, b = rng.sample(names, 2)
                edges.add(frozenset((a, b)))
            start = rng.choice(names)
            dist = hops(edges, start)
            reachable = sorted({d for d in dist.values() if c.min_hops <= d <= c.max_hops})
            if reachable:
                break
        # the distance first, uniformly over those this graph offers, so long paths are not rare
        want_hops = rng.choice(reachable)
        goal = rng.choice(sorted(v for v, d in dist.items() if d == want_hops))
        path = self._one_shortest_path(edges, dist, start, goal)
        pairs = sorted("".join(sorted(e)) for e in edges)
        listed = pairs[:]
        rng.shuffle(listed)
        prompt = " ".join(listed) + f"|{start}>{goal}:"
        return Problem(prompt, path, {"nodes": n, "edges": len(edges), "hops": dist[goal]},
                       {"edges": pairs, "start": start, "goal": goal, "hops": dist[goal]})

    @staticmethod
    def _one_shortest_path(edges: set[frozenset], dist: dict[str, int], start: str, goal: str) -> str:
        """The oracle answer: walk back from the goal along strictly decreasing BFS distance from start (`dist`,
        from `hops`), ties broken by letter."""
        path = [goal]
        while path[-1] != start:
            u = path[-1]
            path.append(min(v for e in edges if u in e for v in e if v != u and dist.get(v, -1) == dist[u] - 1))
        return "".join(reversed(path))

    def score(self, problem: Problem, completion: str) -> float:
        m = problem.meta
        edges = {frozenset(e) for e in m["edges"]}
        return float(check_path(self.answer_of(completion), edges, m["start"], m["goal"], m["hops"]))
