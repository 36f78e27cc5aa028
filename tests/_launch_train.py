"""Run ``worldsim train`` as one process of a distributed run (``accelerate launch ... tests/_launch_train.py ARGS``),
recording what this process trained: ``<out>/ranks/<rank>.json`` with its process index, the number
of processes, the step reached and a checksum of its final (EMA) weights.

Every process holds the same weights only if the loop kept them in step (gradients averaged over
processes that each draw their own batches); ``tests/test_distributed.py`` compares the records.
The loop is not changed for this: its ``train``, which the planner's trainer reaches through
``train_with_tensorboard``, is wrapped here.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """One digest of named tensors (names and float32 values, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(weights.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def recording(train):
    """``train`` that also writes this process's record next to the task's checkpoint folder."""

    def recording_train(task, cfg, folder, accelerator, **kwargs):
        result = train(task, cfg, folder, accelerator, **kwargs)
        record = {
            "process_index": accelerator.process_index,
            "num_processes": accelerator.num_processes,
            "backend": str(accelerator.state.backend),
            "step": result.step,
            "weights_sha256": weights_sha256(task.objective.state_dict()),
        }
        ranks = Path(folder).parent / "ranks"
        ranks.mkdir(parents=True, exist_ok=True)
        (ranks / f"{accelerator.process_index}.json").write_text(json.dumps(record))
        return result

    return recording_train


if __name__ == "__main__":
    from worldsim.cli import main
    from worldsim.train import loop

    loop.train = recording(loop.train)  # the name train_with_tensorboard calls
    sys.exit(main(sys.argv[1:]))
