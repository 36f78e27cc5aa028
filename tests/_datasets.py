"""Real datasets for a test module: ``worldsim collect`` into a Minari folder of the module's own."""

import contextlib

import pytest

from worldsim.cli import main


@contextlib.contextmanager
def collected(tmp_path_factory, dataset_id: str, *collect_arguments: str):
    """``worldsim collect ARGUMENTS --quiet --dataset-id DATASET_ID`` into a fresh Minari folder,
    which is ``MINARI_DATASETS_PATH`` until the ``with`` ends (a module-scoped fixture yields inside
    it, so its tests read the dataset and write beside it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        assert main(["collect", *collect_arguments, "--quiet", "--dataset-id", dataset_id]) == 0
        yield dataset_id
