"""Gymnasium-Robotics PointMaze (v3) with D4RL maze2d's single-task goals and one-line errors.

``PointMazeEnv`` *is* the robotics env (a subclass, so ``env.unwrapped`` is it and anything written
for ``PointMaze_*-v3`` works on it), with four additions:

* the maze is chosen by name (``"umaze"``, ``"medium"``, ``"large"``, D4RL maze2d's three maps);
* ``goal_cell`` fixes the goal's cell for every reset: ``"d4rl"`` gives D4RL's single-task goal
  (``D4RL_GOAL_CELLS``), a ``(row, col)`` pair gives that cell, ``None`` keeps the robotics
  default (a random free cell each reset). The goal still gets the robotics' uniform ±0.25 noise
  inside its cell, drawn from the reset seed;
* bad maze names, goal cells and reset cells raise ``WorldsimError`` naming the value and a fix,
  instead of the robotics env's bare ``assert``;
* the maze geometry an expert or planner needs: ``maze_map``, ``free_cells``, ``is_free``,
  ``cell_to_xy``, ``xy_to_cell``.

Spaces and dynamics are exactly the robotics env's (so episodes are comparable with the Minari
``D4RL/pointmaze`` datasets):

* observation: ``Dict(observation=float64[4] (x, y, vx, vy), achieved_goal=float64[2] (x, y),
  desired_goal=float64[2] (x, y))``, all ``Box(-inf, inf)``;
* action: ``Box(-1, 1, (2,), float32)``, a force on the ball in x and y;
* one step = 0.01 s of MuJoCo time; the ball's speed is clipped to 5 per axis;
* reward: ``"sparse"`` 1.0 within 0.45 of the goal else 0.0, ``"dense"`` ``exp(-distance)``;
* ``continuing_task=True`` never terminates (the episode ends by the registered time limit);
  with ``reset_target=True`` a new random goal is drawn whenever the ball reaches the current one
  (random even when ``goal_cell`` is fixed: ``goal_cell`` applies at reset);
* ``info["success"]``: ``bool``, the ball is within 0.45 of the goal.

Cells are ``(row, col)`` with row 0 at the top (largest y) and col 0 at the left (smallest x); one
cell is 1 x 1 in xy, and the maze is centred on the origin.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
from gymnasium.utils.ezpickle import EzPickle

# MuJoCo picks its OpenGL backend when first imported; without a display its default (GLFW) cannot
# render, while EGL renders off-screen. Only a default: an explicit MUJOCO_GL wins.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

# Importing gymnasium_robotics prints a notice about its Adroit hand envs to stderr; worldsim does
# not use them, and the notice would break the one-line errors of the command line.
with contextlib.redirect_stderr(io.StringIO()):
    from gymnasium_robotics.envs.maze import maps
    from gymnasium_robotics.envs.maze.point_maze import (
        PointMazeEnv as RoboticsPointMazeEnv,
    )

from worldsim.envs.rendering import check_render_mode

from worldsim.errors import WorldsimError


def _import_triton_before_opengl() -> None:
    """Load Triton (torch's CUDA build ships it) before MuJoCo opens an OpenGL context.

    Mesa's software OpenGL (llvmpipe, what EGL gives on a machine without a GPU) and Triton each
    carry their own LLVM; importing Triton after Mesa loaded its LLVM crashes the process with a
    segfault. torch imports Triton lazily (its first optimizer does), so a script that renders a
    maze and then trains would crash. Loaded in this order, both work.
    """
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401


MAZE_MAPS: dict[str, list[list[int | str]]] = {
    "umaze": maps.U_MAZE,
    "medium": maps.MEDIUM_MAZE,
    "large": maps.LARGE_MAZE,
}

# D4RL maze2d's single-task goal cells (row, col): the goals its normalized scores are defined for.
D4RL_GOAL_CELLS: dict[str, tuple[int, int]] = {
    "umaze": (1, 1),
    "medium": (6, 6),
    "large": (7, 9),
}

# Distance to the goal that counts as reaching it (the robotics env's sparse reward and "success").
SUCCESS_RADIUS = 0.45

RESET_OPTIONS = ("goal_cell", "reset_cell")
WALL = 1


class PointMazeEnv(RoboticsPointMazeEnv):
    """A force-actuated ball in one of D4RL maze2d's mazes (Gymnasium-Robotics PointMaze v3).

    Args:
        maze: ``"umaze"`` (5x5 cells), ``"medium"`` (8x8) or ``"large"`` (9x12).
        goal_cell: ``None`` for a random goal cell each reset, ``"d4rl"`` for D4RL's single-task
            goal cell of this maze, or a free ``(row, col)``. ``reset(options={"goal_cell": ...})``
            overrides it for one episode.
        continuing_task: if True the episode never terminates at the goal (D4RL's protocol: the
            score counts the steps spent at the goal).
        reset_target: with ``continuing_task``, draw a new random goal each time it is reached.
        reward_type: ``"sparse"`` or ``"dense"``.
        render_mode: ``None``, ``"rgb_array"``, ``"depth_array"`` or ``"human"`` (MuJoCo renderer).

    Reset options (all optional): ``goal_cell`` and ``reset_cell``, each a free ``(row, col)``.
    """

    def __init__(
        self,
        maze: str = "umaze",
        goal_cell: None | str | tuple[int, int] = None,
        continuing_task: bool = True,
        reset_target: bool = False,
        reward_type: str = "sparse",
        render_mode: str | None = None,
    ):
        if not isinstance(maze, str) or maze.lower() not in MAZE_MAPS:
            raise WorldsimError(f"unknown maze {maze!r}: choose one of {', '.join(sorted(MAZE_MAPS))}")
        maze = maze.lower()
        if reward_type not in ("sparse", "dense"):
            # the robotics env would silently return a reward of None
            raise WorldsimError(f"unknown reward_type {reward_type!r}: choose 'sparse' or 'dense'")
        check_render_mode(render_mode, self.metadata["render_modes"])
        if render_mode is not None:
            _import_triton_before_opengl()
        # a copy, so that nothing done to this env's map can change the module-level maps
        maze_map = [list(row) for row in MAZE_MAPS[maze]]
        super().__init__(
            maze_map=maze_map,
            render_mode=render_mode,
            reward_type=reward_type,
            continuing_task=bool(continuing_task),
            reset_target=bool(reset_target),
        )
        # The robotics Maze writes the MuJoCo XML to a fresh temporary file per env and never deletes
        # it; the model is loaded by now, so remove it rather than leak one file per env.
        with contextlib.suppress(OSError):
            os.remove(self.tmp_xml_file_path)
        # The robotics metadata says 50 fps, but one step is one 0.01 s MuJoCo step: videos should
        # play in real time.
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.point_env.dt))}

        self.maze_name = maze
        if isinstance(goal_cell, str):
            if goal_cell.lower() != "d4rl":
                raise WorldsimError(
                    f"goal_cell {goal_cell!r} is not understood: pass None (a random goal each reset), "
                    f"'d4rl' or a free (row, col) cell such as {D4RL_GOAL_CELLS[maze]}"
                )
            goal_cell = D4RL_GOAL_CELLS[maze]
        self.goal_cell: tuple[int, int] | None = None if goal_cell is None else self._check_cell(goal_cell, "goal cell")

        # The robotics EzPickle records its own positional arguments (maze_map, render_mode, ...),
        # which do not fit this constructor: record ours, so copies and pickles rebuild this env.
        EzPickle.__init__(
            self,
            maze=maze,
            goal_cell=goal_cell,
            continuing_task=bool(continuing_task),
            reset_target=bool(reset_target),
            reward_type=reward_type,
            render_mode=render_mode,
        )

    # ----------------------------------------------------------------------------- episodes

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; returns ``(observation dict, info)`` as the robotics env does.

        The fixed ``goal_cell`` (if any) is used unless ``options`` names a ``goal_cell``.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise WorldsimError(f"unknown reset option(s) {names}: PointMaze takes {' and '.join(RESET_OPTIONS)}")
        if options.get("goal_cell") is None and self.goal_cell is not None:
            options["goal_cell"] = self.goal_cell
        for key in RESET_OPTIONS:
            if options.get(key) is not None:
                options[key] = np.array(self._check_cell(options[key], key.replace("_", " ")))
        return super().reset(seed=seed, options=options or None)

    # ----------------------------------------------------------------------------- geometry

    @property
    def maze_map(self) -> list[list[int | str]]:
        """The maze as rows of cells (a copy): ``1`` is a wall, anything else is free."""
        return [list(row) for row in self.maze.maze_map]

    @property
    def free_cells(self) -> list[tuple[int, int]]:
        """Every free ``(row, col)``, in row-major order."""
        return [(row, col) for row, cells in enumerate(self.maze.maze_map) for col, cell in enumerate(cells) if cell != WALL]

    def is_free(self, cell: tuple[int, int]) -> bool:
        """Whether ``(row, col)`` lies inside the maze and is not a wall."""
        row, col = int(cell[0]), int(cell[1])
        inside = 0 <= row < self.maze.map_length and 0 <= col < self.maze.map_width
        return inside and self.maze.maze_map[row][col] != WALL

    def cell_to_xy(self, cell: tuple[int, int]) -> np.ndarray:
        """Centre of cell ``(row, col)`` as ``float64[2]`` (x, y), the robotics ``cell_rowcol_to_xy``."""
        return np.asarray(self.maze.cell_rowcol_to_xy(np.asarray(cell)), dtype=np.float64)

    def xy_to_cell(self, xy: np.ndarray) -> tuple[int, int]:
        """The ``(row, col)`` containing point ``xy`` (x, y), the robotics ``cell_xy_to_rowcol``.

        A point outside the maze gives an out-of-range cell; nothing is clipped.
        """
        row, col = self.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
        return int(row), int(col)

    # ----------------------------------------------------------------------------- validation

    def _check_cell(self, cell: Any, what: str) -> tuple[int, int]:
        """``cell`` as a ``(row, col)`` of Python ints; raises WorldsimError unless it is a free cell."""
        try:
            values = np.asarray(cell)
            ok = values.shape == (2,) and np.issubdtype(values.dtype, np.integer)
        except Exception:  # anything numpy cannot make an array of is not a cell either
            ok = False
        if not ok:
            example = D4RL_GOAL_CELLS[self.maze_name]
            raise WorldsimError(f"{what} {cell!r} is not a (row, col) pair of integers: pass a free cell such as {example}")
        row, col = int(values[0]), int(values[1])
        rows, cols = self.maze.map_length, self.maze.map_width
        if not (0 <= row < rows and 0 <= col < cols):
            raise WorldsimError(
                f"{what} ({row}, {col}) is outside the {self.maze_name} maze ({rows} rows x {cols} columns): "
                f"choose a free cell such as {self._nearest_free_cell(row, col)}"
            )
        if self.maze.maze_map[row][col] == WALL:
            raise WorldsimError(
                f"{what} ({row}, {col}) is a wall in the {self.maze_name} maze: "
                f"choose a free cell such as {self._nearest_free_cell(row, col)}"
            )
        return (row, col)

    def _nearest_free_cell(self, row: int, col: int) -> tuple[int, int]:
        """The free cell closest to ``(row, col)`` (city-block distance, then row-major order)."""
        return min(self.free_cells, key=lambda free: abs(free[0] - row) + abs(free[1] - col))
