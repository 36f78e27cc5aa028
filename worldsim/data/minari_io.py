"""Where Minari datasets live, and loading them with checks that give one clear error."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import minari
from minari.dataset.minari_dataset import parse_dataset_id

from worldsim.errors import WorldsimError


def datasets_root() -> Path:
    """Minari's own setting: ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def dataset_dir(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def check_dataset_id(dataset_id: str) -> None:
    """Raise WorldsimError unless ``dataset_id`` reads ``[namespace/]name-vN``."""
    try:
        parse_dataset_id(dataset_id)  # also rejects an id without its -vN version
    except Exception as error:  # minari raises bare ValueErrors with long texts
        raise WorldsimError(f"dataset id {dataset_id!r} is not valid: use 'worldsim/<env>-<agent>-v<N>'") from error


@contextmanager
def minari_root(path: Path) -> Iterator[None]:
    """Point Minari at another datasets folder for the duration (it reads the variable on each call)."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def load_dataset(dataset_id: str, env: gym.Env | None = None) -> minari.MinariDataset:
    """``minari.load_dataset`` with worldsim's errors; ``env`` checks the spaces match it."""
    check_dataset_id(dataset_id)
    if not (dataset_dir(dataset_id) / "data").is_dir():
        raise WorldsimError(
            f"no dataset {dataset_id!r} in {datasets_root()}: collect it with `worldsim collect --dataset-id {dataset_id} ...` "
            "or set MINARI_DATASETS_PATH to where it is"
        )
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as error:
        raise WorldsimError(f"dataset {dataset_id!r} could not be read ({error}): delete {dataset_dir(dataset_id)} and collect it again") from error
    check_readable(dataset_id, dataset_dir(dataset_id))
    if env is not None:
        check_spaces_match(dataset, env)
    return dataset


def describe_dataset(dataset_id: str, env: gym.Env | None = None, env_name: str | None = None) -> list[str]:
    """``worldsim dataset``: lines describing a dataset (size, spaces, info labels, returns); with
    ``env`` (called ``env_name``), the dataset must fit its spaces."""
    import numpy as np

    dataset = load_dataset(dataset_id, env=env)
    episode = dataset[0]
    returns = [float(np.sum(ep.rewards)) for ep in dataset.iterate_episodes()]
    lines = [
        f"dataset       {dataset.id}  ({dataset_dir(dataset.id)})",
        f"episodes      {dataset.total_episodes}, steps {dataset.total_steps}",
        f"observations  {dataset.observation_space}",
        f"actions       {dataset.action_space}",
        f"info labels   {', '.join(sorted(episode.infos))}",
        f"return        mean {np.mean(returns):.1f}, median {np.median(returns):.1f}",
    ]
    if env is not None:
        lines.append(f"spaces match  {env_name or (env.spec.id if env.spec else type(env.unwrapped).__name__)}")
    return lines


def check_readable(dataset_id: str, folder: Path) -> None:
    """Raise one ``WorldsimError`` if a data file of the dataset in ``folder`` cannot be opened.

    ``minari.load_dataset`` reads only ``metadata.json``; a truncated ``main_data.hdf5`` (a copy
    cut short, a full disk) would otherwise fail later, on the first episode read, with a long
    h5py traceback. Opening the file is cheap and catches truncation: HDF5 records the file's
    length in its superblock.
    """
    import h5py

    for file in sorted((folder / "data").glob("*.hdf5")):
        try:
            with h5py.File(file, "r"):
                pass
        except OSError as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise WorldsimError(
                f"dataset {dataset_id!r} is damaged ({file.name}: {reason}): delete {folder} and collect it again "
                f"({_collection_note(folder)})"
            ) from error


def _collection_note(folder: Path) -> str:
    """How the dataset was collected, from its metadata (``worldsim collect`` records its command there)."""
    try:
        description = json.loads((folder / "data" / "metadata.json").read_text()).get("description")
    except (OSError, ValueError, AttributeError):
        description = None
    return f"it was made by {description}" if description else "with the `worldsim collect` command that made it"


def check_spaces_match(dataset: minari.MinariDataset, env: gym.Env) -> None:
    for what, stored, expected in (
        ("observation", dataset.observation_space, env.observation_space),
        ("action", dataset.action_space, env.action_space),
    ):
        if stored != expected:
            raise WorldsimError(
                f"dataset {dataset.id!r} has {what} space {stored} but the env has {expected}: "
                "use the env it was collected in, or collect a new dataset for this env"
            )
