"""``MazeField``: what a planner may know of a maze's map, as tensors it can score plans with.

A PointMaze planner is told the maze map with the env (``env.unwrapped.maze_map``); a network
call costs milliseconds, a look-up in a grid microseconds. Two look-ups serve the planner:

* ``collides(xy)``: whether the ball (radius 0.1) centred at ``xy`` would overlap a wall. A plan
  that passes through a wall cannot be tracked: the ball presses against the wall instead.
* ``distance(xy, goals)``: the length of the shortest path from ``xy`` to the goal that keeps the
  ball clear of the walls, the geodesic distance. It replaces the straight-line distance in the
  goal score, so a plan that detours round a wall towards the goal scores better than one that
  ends beside the goal behind the wall. It is differentiable in ``xy`` (bilinear in a grid), so
  goal guidance can follow it.

The geodesic distance is computed once per goal, by Dijkstra's algorithm (scipy) over a grid of
``resolution`` maze units with 8-connected moves. Moves into grid points the ball cannot occupy
cost ``wall_cost`` times their length instead of being forbidden: the field is finite everywhere,
and inside a wall its slope points out of the wall, towards the way round.

Coordinates are PointMaze's: one cell is 1 x 1, the maze is centred on the origin, row 0 is at the
top (largest y), column 0 at the left (smallest x).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

WALL = 1
BALL_RADIUS = 0.1  # the PointMaze ball's sphere geom


class MazeField:
    """Wall collisions and geodesic distances of one maze (see the module docstring).

    Args:
        maze_map: rows of cells, ``1`` a wall (``PointMazeEnv.maze_map``).
        resolution: grid spacing of the distance field, in maze units.
        margin: how close the ball's centre may come to a wall (its radius).
        wall_cost: cost per unit length of moving through space the ball cannot occupy.
    """

    def __init__(
        self, maze_map: Sequence[Sequence[int | str]], resolution: float = 0.1, margin: float = BALL_RADIUS, wall_cost: float = 50.0
    ):
        self.walls = np.array([[cell == WALL for cell in row] for row in maze_map])
        self.rows, self.cols = self.walls.shape
        self.resolution, self.margin, self.wall_cost = float(resolution), float(margin), float(wall_cost)
        # Grid points at the centres of resolution-sized squares covering the maze.
        self.height, self.width = round(self.rows / resolution), round(self.cols / resolution)
        ys = self.rows / 2 - (np.arange(self.height) + 0.5) * resolution
        xs = -self.cols / 2 + (np.arange(self.width) + 0.5) * resolution
        grid = np.stack(np.meshgrid(xs, ys), axis=-1)  # float[H, W, 2] (x, y)
        self._walls_torch = torch.from_numpy(self.walls)
        self.blocked = self.collides(torch.from_numpy(grid)).numpy()  # bool[H, W]
        self._graph = self._grid_graph()
        self._fields: dict[tuple, torch.Tensor] = {}  # per goal: the distance field, its uphill direction

    # ----------------------------------------------------------------------------- collisions

    def collides(self, xy: torch.Tensor) -> torch.Tensor:
        """``bool[...]``: the ball centred at ``xy float[..., 2]`` overlaps a wall (or leaves the maze).

        It overlaps a wall if any corner of its bounding square lies in a wall cell (cells are at
        least as large as the square, so no wall fits between corners)."""
        walls = self._walls_torch.to(xy.device)
        hit = torch.zeros(xy.shape[:-1], dtype=torch.bool, device=xy.device)
        for dx in (-self.margin, self.margin):
            for dy in (-self.margin, self.margin):
                col = torch.floor(xy[..., 0] + dx + self.cols / 2).long()
                row = torch.floor(self.rows / 2 - (xy[..., 1] + dy)).long()
                outside = (row < 0) | (row >= self.rows) | (col < 0) | (col >= self.cols)
                hit |= outside | walls[row.clamp(0, self.rows - 1), col.clamp(0, self.cols - 1)]
        return hit

    # ----------------------------------------------------------------------------- distances

    def _grid_graph(self):
        """The grid's 8-connected moves as a sparse matrix of costs (scipy's csgraph input)."""
        index = np.arange(self.height * self.width).reshape(self.height, self.width)
        cost_per_unit = np.where(self.blocked, self.wall_cost, 1.0)
        sources, targets, costs = [], [], []
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            r0, r1 = max(0, -dr), self.height - max(0, dr)
            c0, c1 = max(0, -dc), self.width - max(0, dc)
            a = index[r0:r1, c0:c1]
            b = index[r0 + dr : r1 + dr, c0 + dc : c1 + dc]
            length = self.resolution * np.hypot(dr, dc)
            # A move costs its length at the mean of its two ends' unit costs, in both directions.
            cost = length * (cost_per_unit[r0:r1, c0:c1] + cost_per_unit[r0 + dr : r1 + dr, c0 + dc : c1 + dc]) / 2
            sources += [a.ravel(), b.ravel()]
            targets += [b.ravel(), a.ravel()]
            costs += [cost.ravel(), cost.ravel()]
        n = self.height * self.width
        return coo_matrix((np.concatenate(costs), (np.concatenate(sources), np.concatenate(targets))), shape=(n, n)).tocsr()

    def _grid_point(self, xy: np.ndarray) -> tuple[int, int]:
        row = int(np.clip(np.floor((self.rows / 2 - xy[1]) / self.resolution), 0, self.height - 1))
        col = int(np.clip(np.floor((xy[0] + self.cols / 2) / self.resolution), 0, self.width - 1))
        return row, col

    def field(self, goal: np.ndarray) -> torch.Tensor:
        """``float32[H, W]``: the geodesic distance from every grid point to ``goal float[2]``
        (cached per goal)."""
        key = ("distance", round(float(goal[0]), 6), round(float(goal[1]), 6))
        if key not in self._fields:
            row, col = self._grid_point(np.asarray(goal, np.float64))
            distances = dijkstra(self._graph, indices=row * self.width + col)
            self._fields[key] = torch.from_numpy(distances.reshape(self.height, self.width).astype(np.float32))
        return self._fields[key]

    def uphill_field(self, goal: np.ndarray) -> torch.Tensor:
        """``float32[H, W, 2]``: the unit (x, y) direction in which the geodesic distance to ``goal``
        grows fastest (zero where it is flat): away from the goal along the way round the walls;
        inside a wall, downhill leads out of it (cached per goal)."""
        key = ("uphill", round(float(goal[0]), 6), round(float(goal[1]), 6))
        if key not in self._fields:
            d_row, d_col = np.gradient(self.field(goal).numpy().astype(np.float64), self.resolution)
            direction = np.stack([d_col, -d_row], axis=-1)  # x grows with the column, y with decreasing row
            norm = np.linalg.norm(direction, axis=-1, keepdims=True)
            unit = np.where(norm > 1e-9, direction / np.maximum(norm, 1e-9), 0.0)
            self._fields[key] = torch.from_numpy(unit.astype(np.float32))
        return self._fields[key]

    def towards(self, goals: np.ndarray, device: torch.device | str = "cpu") -> GoalFields:
        """The fields of ``goals float[B, 2]`` (one goal per row of a batch of plans), gathered once
        for many look-ups."""
        unique, which = np.unique(np.asarray(goals, np.float64).round(6), axis=0, return_inverse=True)
        return GoalFields(
            self,
            torch.stack([self.field(goal) for goal in unique]).to(device),
            torch.stack([self.uphill_field(goal) for goal in unique]).to(device),
            torch.as_tensor(which.reshape(-1), device=device)[:, None],
        )

    def distance(self, xy: torch.Tensor, goals: np.ndarray) -> torch.Tensor:
        """``float[B, ...]``: geodesic distance from ``xy float[B, ..., 2]`` to ``goals float[B, 2]``
        (``towards(goals).distance(xy)``)."""
        return self.towards(goals, xy.device).distance(xy)


class GoalFields:
    """The distance and uphill fields of one goal per row of a batch (``MazeField.towards``)."""

    def __init__(self, maze: MazeField, distances: torch.Tensor, uphills: torch.Tensor, rows: torch.Tensor):
        self.maze, self.distances, self.uphills, self.rows = maze, distances, uphills, rows

    def _grid(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Continuous grid coordinates (u, v) = (column, row) of float[B, N, 2] positions.
        maze = self.maze
        u = ((xy[..., 0] + maze.cols / 2) / maze.resolution - 0.5).clamp(0, maze.width - 1)
        v = ((maze.rows / 2 - xy[..., 1]) / maze.resolution - 0.5).clamp(0, maze.height - 1)
        return u, v

    def distance(self, xy: torch.Tensor) -> torch.Tensor:
        """``float[B, ...]``: geodesic distance from ``xy float[B, ..., 2]`` to each row's goal,
        bilinear between grid points, so differentiable in ``xy``."""
        u, v = self._grid(xy.reshape(xy.shape[0], -1, 2))
        c0 = u.detach().floor().long().clamp(max=self.maze.width - 2)
        r0 = v.detach().floor().long().clamp(max=self.maze.height - 2)
        fu, fv = u - c0, v - r0
        field = self.distances
        g = self.rows
        value = (
            field[g, r0, c0] * (1 - fu) * (1 - fv)
            + field[g, r0, c0 + 1] * fu * (1 - fv)
            + field[g, r0 + 1, c0] * (1 - fu) * fv
            + field[g, r0 + 1, c0 + 1] * fu * fv
        )
        return value.reshape(xy.shape[:-1])

    def uphill(self, xy: torch.Tensor) -> torch.Tensor:
        """``float[B, ..., 2]``: the uphill direction at the grid point nearest ``xy float[B, ..., 2]``."""
        u, v = self._grid(xy.detach().reshape(xy.shape[0], -1, 2))
        return self.uphills[self.rows, v.round().long(), u.round().long()].reshape(xy.shape)
