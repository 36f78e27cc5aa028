"""The one training loop under ``accelerate launch``: two CPU processes (gloo) train the maze planner
and stay in step.

Each process draws its own batches, so the two hold the same weights at the end only if the loop
averaged their gradients. ``tests/_launch_train.py`` runs ``worldsim train`` in each process and
records its final weights' digest; the test compares the two records with the checkpoint that the
main process alone wrote.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from _launch_train import weights_sha256

from worldsim.cli import main
from worldsim.core.checkpoint import load_checkpoint

TINY = ["model.num_tokens=4", "model.frame_stack=4", "model.network.width=32", "model.network.depth=1",
        "train.steps=3", "train.batch_size=8", "train.checkpoint_every=2", "train.threads=1"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_train_the_planner_in_step(tmp_path, minari_path):
    assert main(["collect", "--env", "pointmaze-umaze", "--agent", "waypoint", "--steps", "2000", "--quiet"]) == 0
    out = tmp_path / "run"
    # `--multi_gpu` is accelerate's torch.distributed launcher; with no GPU visible, the Accelerator
    # of each process runs on the CPU and joins a gloo process group (`--cpu` would start one process).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]  # fmt: skip
    command = [*launch, str(Path(__file__).with_name("_launch_train.py")), "train", "--model", "df-umaze", "--train", "df-umaze",
               "--out", str(out), "--quiet", *TINY]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-3000:]

    records = [json.loads((out / "ranks" / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["process_index"] for r in records] == [0, 1]
    assert all(r["num_processes"] == 2 and r["backend"] == "gloo" and r["step"] == 3 for r in records)
    assert records[0]["weights_sha256"] == records[1]["weights_sha256"]  # in step
    # One checkpoint, written once (by the main process), at the last step, holding those weights.
    assert sorted(p.name for p in out.iterdir()) == ["model", "planner", "ranks", "tensorboard"]
    checkpoint = load_checkpoint(out / "planner")
    assert checkpoint.training_state["step"] == 3
    assert weights_sha256(checkpoint.weights) == records[0]["weights_sha256"]
    assert (out / "model" / "model.safetensors").is_file()
