"""MazeField: wall collisions and geodesic distances on the real maze maps."""

import numpy as np
import pytest
import torch
from worldsim.agents.maze_field import MazeField
from worldsim.envs.real.pointmaze import MAZE_MAPS

# UMaze: cell (row, col) is centred on (col - 2, 2 - row); the free cells make a U opening left,
# round the wall cells (2, 1)-(2, 2).
TOP_LEFT, BOTTOM_LEFT = np.array([-1.0, 1.0]), np.array([-1.0, -1.0])


@pytest.fixture(scope="module")
def umaze():
    return MazeField(MAZE_MAPS["umaze"])


def test_collisions_count_the_ball_radius(umaze):
    points = torch.tensor(
        [
            [-1.0, 1.0],  # a free cell's centre
            [-1.0, 0.0],  # the inner wall's centre
            [-1.0, 0.45],  # free cell, but 0.05 from the inner wall: the ball (radius 0.1) overlaps it
            [-1.0, 0.65],  # 0.15 from it: clear
            [-3.0, 1.0],  # outside the maze
        ]
    )
    assert umaze.collides(points).tolist() == [False, True, True, False, True]


def test_geodesic_distance_goes_round_the_wall(umaze):
    xy = torch.tensor(np.array([[TOP_LEFT, BOTTOM_LEFT, [1.0, 0.0]]]), dtype=torch.float32)
    distance = umaze.distance(xy, BOTTOM_LEFT[None])[0]
    assert distance[1] < 0.1  # at the goal
    # Straight down is 2 through the wall; round the U it is at least 2 + 2 (the two arms' corners
    # cut by the ball's radius) and at most the cell-centre path, 6.
    assert 4.0 < distance[0] < 6.0, distance
    assert distance[0] > distance[2] > distance[1]  # the U's far end lies half-way round


def test_distance_is_differentiable_and_points_along_the_corridor(umaze):
    # In the top arm, going to the bottom-left goal means going right first (round the wall).
    xy = torch.tensor([[[-0.5, 1.0]]], requires_grad=True)
    umaze.distance(xy, BOTTOM_LEFT[None]).sum().backward()
    assert xy.grad[0, 0, 0] < 0  # the distance falls as x grows
    uphill = umaze.towards(BOTTOM_LEFT[None]).uphill(xy)[0, 0]
    assert uphill[0] < -0.9 and abs(torch.linalg.norm(uphill) - 1) < 1e-5  # a unit vector, back left
    # Inside the inner wall (near its top edge), downhill leads out of it, up.
    inside = umaze.towards(BOTTOM_LEFT[None]).uphill(torch.tensor([[[-1.0, 0.3]]]))[0, 0]
    assert inside[1] < 0


def test_one_field_per_goal_and_rows_with_different_goals(umaze):
    xy = torch.tensor([[[-1.0, 1.0]], [[-1.0, 1.0]]])
    distances = umaze.distance(xy, np.stack([BOTTOM_LEFT, TOP_LEFT]))
    assert distances[0, 0] > 4.0 and distances[1, 0] < 0.1
    assert len(umaze._fields) >= 2


def test_every_free_cell_centre_is_clear_and_reachable():
    for name, maze_map in MAZE_MAPS.items():
        field = MazeField(maze_map)
        free = [(r, c) for r, row in enumerate(maze_map) for c, cell in enumerate(row) if cell != 1]
        centres = torch.tensor([[c + 0.5 - field.cols / 2, field.rows / 2 - r - 0.5] for r, c in free], dtype=torch.float32)
        assert not field.collides(centres).any(), name
        goal = centres[0].numpy()
        distances = field.distance(centres[None], goal[None])[0]
        # No longer than the walk from cell centre to cell centre (breadth-first over free cells),
        # so no path crosses a wall; no shorter than the straight line.
        steps = {free[0]: 0}
        queue = [free[0]]
        for r, c in queue:
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if (nr, nc) in free and (nr, nc) not in steps:
                    steps[(nr, nc)] = steps[(r, c)] + 1
                    queue.append((nr, nc))
        walk = torch.tensor([steps[cell] for cell in free], dtype=torch.float32)
        assert (distances <= walk + 0.2).all(), name
        straight = torch.linalg.norm(centres - centres[0], dim=-1)
        assert (distances >= straight - 0.1).all(), name
