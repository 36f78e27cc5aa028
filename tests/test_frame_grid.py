"""``worldsim.video.write_frame_grid``: the strips the benchmarks write for a person to look at."""

import numpy as np
import pytest
from PIL import Image

from worldsim.errors import WorldsimError
from worldsim.video import write_frame_grid


def test_a_frame_grid_places_each_frame_upscaled_with_white_gaps_and_leaves_no_temporary(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for _ in range(3)], [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)]]
    path = write_frame_grid(rows, tmp_path / "strips" / "grid.png", scale=2, gap=3)
    image = np.asarray(Image.open(path))
    assert image.shape == (2 * 8 + 3, 3 * 10 + 2 * 3, 3)
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            tile = image[r * 11 : r * 11 + 8, c * 13 : c * 13 + 10]
            assert np.array_equal(tile, frame.repeat(2, 0).repeat(2, 1))
    assert (image[8:11] == 255).all() and (image[:8, 10:13] == 255).all()  # the gaps
    assert (image[11:, 13:] == 255).all()  # a shorter row leaves white
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]
    grey = write_frame_grid([[np.zeros((4, 4, 1), np.uint8)]], tmp_path / "grey.png", scale=3)
    assert np.asarray(Image.open(grey)).shape == (12, 12)
    with pytest.raises(WorldsimError, match="no frames to lay out"):
        write_frame_grid([[]], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
