"""The scripted PointMaze expert behind D4RL maze2d and Minari's pointmaze datasets.

Recipe: plan a shortest path over the maze's cells from the ball's cell to the goal's cell, put a
waypoint at the centre of every cell on it (jittered, so that datasets cover more than the cell
centres), make the goal itself the last waypoint, and track the current waypoint with a PD law

    a = clip(p_gain * (waypoint - xy) - d_gain * velocity + N(0, action_noise^2), -1, 1)

moving on to the next waypoint once the ball is in the waypoint's cell and within
``waypoint_threshold`` of it. The plan is redone when the goal's cell changes (a continuing task
with ``reset_target=True`` draws new goals) and when the ball leaves the planned path (knocked off
by action noise or carried past a turn by its speed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.errors import WorldsimError

Cell = tuple[int, int]
WALL = 1
# The four moves between cells that share an edge: a path never goes diagonally, so the straight
# line from anywhere in one cell to the centre of the next stays inside the two (their union is a
# rectangle) and cannot cut a wall's corner.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def maze_geometry(env: gym.Env) -> tuple[list[list[Any]], Callable[[Cell], np.ndarray], Callable[[np.ndarray], Cell]]:
    """``(maze_map, cell_to_xy, xy_to_cell)`` of a PointMaze env.

    Reads worldsim's ``PointMazeEnv`` (``maze_map``, ``cell_to_xy``, ``xy_to_cell``) and falls back
    to the plain Gymnasium-Robotics env's ``maze`` object, so the expert also drives
    ``PointMaze_*-v3``.
    """
    unwrapped = env.unwrapped
    if all(hasattr(unwrapped, name) for name in ("maze_map", "cell_to_xy", "xy_to_cell")):
        return [list(row) for row in unwrapped.maze_map], unwrapped.cell_to_xy, unwrapped.xy_to_cell
    maze = getattr(unwrapped, "maze", None)
    if maze is not None and hasattr(maze, "cell_rowcol_to_xy") and hasattr(maze, "cell_xy_to_rowcol"):

        def xy_to_cell(xy: np.ndarray) -> Cell:
            row, col = maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
            return int(row), int(col)

        return [list(row) for row in maze.maze_map], lambda cell: maze.cell_rowcol_to_xy(np.asarray(cell)), xy_to_cell
    raise WorldsimError(
        f"the waypoint expert needs a PointMaze env (one with a maze map), not {unwrapped.__class__.__name__}: "
        "use worldsim/PointMaze-UMaze-v0, -Medium-v0 or -Large-v0"
    )


class WaypointExpert:
    """Shortest-path waypoints over maze cells, tracked by a PD controller.

    Args:
        env: a PointMaze env (worldsim's, or Gymnasium-Robotics'); its maze geometry and action
            bounds are read once here.
        action_noise: standard deviation of the Gaussian noise added to the action before clipping
            (D4RL's datasets used 0.5).
        waypoint_jitter: each waypoint is its cell's centre moved by ``U(-jitter, jitter)`` in x and y
            (in cells), drawn once per plan from the agent's RNG; must be in ``[0, 0.4]`` so a
            waypoint stays inside its cell, clear of the walls.
        p_gain, d_gain: the PD gains on the position error and on the velocity.
        waypoint_threshold: distance to a waypoint (inside its cell) at which the next one takes
            over. Larger keeps more speed through turns (0.45, Minari's value, reaches the goals
            about 10% sooner than 0.3 and 20% sooner than 0.1); smaller hugs the cell centres.
        seed: seeds the RNG (jitter and action noise); ``reset(seed)`` reseeds it.

    ``act(observation)`` takes the standard dict observation (``observation`` = float[4]
    ``(x, y, vx, vy)``, ``desired_goal`` = float[2]) and returns ``float32[2]`` inside the action
    space.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        action_noise: float = 0.0,
        waypoint_jitter: float = 0.1,
        p_gain: float = 10.0,
        d_gain: float = 1.0,
        waypoint_threshold: float = 0.45,
        seed: int | None = None,
    ):
        _check_range("action_noise", action_noise, 0.0)
        _check_range("waypoint_jitter", waypoint_jitter, 0.0, 0.4)
        _check_range("p_gain", p_gain, 0.0, open_low=True)
        _check_range("d_gain", d_gain, 0.0)
        _check_range("waypoint_threshold", waypoint_threshold, 0.0, 0.5, open_low=True)
        self.action_noise = float(action_noise)
        self.waypoint_jitter = float(waypoint_jitter)
        self.p_gain = float(p_gain)
        self.d_gain = float(d_gain)
        self.waypoint_threshold = float(waypoint_threshold)

        maze_map, cell_to_xy, self._xy_to_cell = maze_geometry(env)
        self._free = np.array([[cell != WALL for cell in row] for row in maze_map], dtype=bool)
        # float64[rows, cols, 2]: the (x, y) centre of every cell, walls included
        rows, cols = self._free.shape
        self._centres = np.array(
            [[np.asarray(cell_to_xy((row, col)), dtype=np.float64) for col in range(cols)] for row in range(rows)]
        )
        self._free_cells = [tuple(int(v) for v in cell) for cell in np.argwhere(self._free)]
        if not self._free_cells:
            raise WorldsimError("the maze has no free cell: the waypoint expert needs a maze the ball can move in")
        self._action_low = np.asarray(env.action_space.low, dtype=np.float64)
        self._action_high = np.asarray(env.action_space.high, dtype=np.float64)

        self._rng = np.random.default_rng(seed)
        # goal cell -> {cell: next cell towards the goal}; one BFS per goal cell, kept across episodes
        self._next_cell: dict[Cell, dict[Cell, Cell]] = {}
        self._clear_plan()

    # ----------------------------------------------------------------------------- protocol

    def reset(self, seed: int | None = None) -> None:
        """Forget the plan; a seed reseeds the RNG (``None`` keeps the current stream)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._clear_plan()

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        """One action, ``float32[2]`` in the action space, for the dict observation of PointMaze."""
        try:
            state = np.asarray(observation["observation"], dtype=np.float64)
            goal = np.asarray(observation["desired_goal"], dtype=np.float64)
        except (KeyError, IndexError, TypeError) as error:
            raise WorldsimError(
                "the waypoint expert acts on PointMaze's dict observation with 'observation' (x, y, vx, vy) and "
                f"'desired_goal' (x, y), got {type(observation).__name__}: use a worldsim/PointMaze-* env"
            ) from error
        xy, velocity = state[:2], state[2:4]
        target = self._target(xy, goal)
        action = self.p_gain * (target - xy) - self.d_gain * velocity
        if self.action_noise > 0:
            action = action + self._rng.normal(0.0, self.action_noise, size=2)
        return np.clip(action, self._action_low, self._action_high).astype(np.float32)

    # ----------------------------------------------------------------------------- planning

    @property
    def plan(self) -> list[Cell]:
        """The current path of cells, from the ball's cell when planned to the goal's cell."""
        return list(self._path)

    def _clear_plan(self) -> None:
        self._path: list[Cell] = []
        self._position: dict[Cell, int] = {}  # cell -> its index in the path
        self._waypoints = np.zeros((0, 2))  # float64[len(path), 2], jittered cell centres
        self._index = 0  # index in the path of the cell whose waypoint is being tracked

    def _target(self, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The point to steer to now: the current waypoint, or the goal once in the last leg."""
        cell = self._locate(xy)
        goal_cell = self._locate(goal)
        if not self._path or self._path[-1] != goal_cell:
            self._replan(cell, goal_cell)
        position = self._position.get(cell)
        if position is None or position < self._index - 1:
            # Off the path, or back behind the leg being flown: the straight line to the waypoint
            # may cross a wall now, so plan again from here.
            self._replan(cell, goal_cell)
        elif position > self._index:
            # Carried past the waypoint's cell along the path: steer to the cell after this one.
            self._index = min(position + 1, len(self._path) - 1)
        elif (
            position == self._index
            and self._index < len(self._path) - 1
            and np.linalg.norm(self._waypoints[self._index] - xy) <= self.waypoint_threshold
        ):
            self._index += 1
        if self._index == len(self._path) - 1:
            return goal
        return self._waypoints[self._index]

    def _replan(self, cell: Cell, goal_cell: Cell) -> None:
        path = [cell]
        next_cell = self._next_cells(goal_cell)
        while path[-1] != goal_cell:
            step = next_cell.get(path[-1])
            if step is None:  # unreachable (a maze with separate parts): head straight for the goal
                path.append(goal_cell)
                break
            path.append(step)
        self._path = path
        self._position = {c: i for i, c in enumerate(path)}
        jitter = self._rng.uniform(-self.waypoint_jitter, self.waypoint_jitter, size=(len(path), 2))
        self._waypoints = self._centres[tuple(np.array(path).T)] + jitter
        self._index = min(1, len(path) - 1)

    def _next_cells(self, goal_cell: Cell) -> dict[Cell, Cell]:
        """Breadth-first search from the goal's cell: for every free cell, its neighbour one step
        closer to the goal (so each path is a shortest path, in cells)."""
        if goal_cell not in self._next_cell:
            rows, cols = self._free.shape
            toward: dict[Cell, Cell] = {}
            queue = deque([goal_cell])
            seen = {goal_cell}
            while queue:
                current = queue.popleft()
                for d_row, d_col in MOVES:
                    neighbour = (current[0] + d_row, current[1] + d_col)
                    if neighbour in seen or not (0 <= neighbour[0] < rows and 0 <= neighbour[1] < cols):
                        continue
                    if not self._free[neighbour]:
                        continue
                    seen.add(neighbour)
                    toward[neighbour] = current
                    queue.append(neighbour)
            self._next_cell[goal_cell] = toward
        return self._next_cell[goal_cell]

    def _locate(self, xy: np.ndarray) -> Cell:
        """The free cell containing ``xy``; a point in a wall or outside the maze (the ball touching
        a wall, a dreamed position) counts as being in the free cell with the nearest centre."""
        row, col = self._xy_to_cell(xy)
        rows, cols = self._free.shape
        if 0 <= row < rows and 0 <= col < cols and self._free[row, col]:
            return (int(row), int(col))
        return min(self._free_cells, key=lambda c: float(np.sum((self._centres[c] - xy) ** 2)))


def _check_range(name: str, value: float, low: float, high: float = np.inf, *, open_low: bool = False) -> None:
    """Raise WorldsimError unless ``value`` is a real number in ``[low, high]`` (``(low, high]``)."""
    is_number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if is_number and (low < value if open_low else low <= value) and value <= high:
        return
    lower = f"> {low:g}" if open_low else f">= {low:g}"
    bounds = lower if high == np.inf else f"{lower} and <= {high:g}"
    raise WorldsimError(f"{name}={value!r} is out of range: pass a number {bounds}")
