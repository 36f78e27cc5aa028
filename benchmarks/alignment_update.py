"""One reward-gradient alignment update: its time and memory, by how many sampling steps carry gradients.

An update is what ``RewardGradientAligner.update`` does (the real code, on a real dream env of
``--batch`` dreams): regenerate the batch's next frames with gradients through the last K sampling
steps, score them with the rewards, backpropagate into the LoRA, clip, AdamW. Measured for K = 1,
2, ... up to every step (full backprop), with and without gradient checkpointing (diffusers'
``enable_gradient_checkpointing`` on the U-Net), for the shipped model
(``worldsim/checkpoints/mario-v0``, 2 sampler levels: K = 1 and 2 = full; ``--sampling-steps N``
samples with N Euler steps instead, K = 1 ... N).

Rewards: untrained networks of the shipped reward configs (``configs/model/realism-mario.yaml``,
``presence-mario.yaml``) unless ``--realism``/``--presence`` name trained ones; the same cost either way.

Each configuration runs in a fresh process, so that its peak resident memory is its own: ``peak
RSS`` is the process's high-water mark, ``update RSS`` its rise during the updates over the memory
after loading and a no-gradient warm-up, ``saved`` the bytes autograd keeps for backward (distinct
storages, from ``torch.autograd.graph.saved_tensors_hooks``: what K and checkpointing change).
Time: median of ``--repeats`` updates after one warm-up update.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/alignment_update.py [--threads 1] [--batch 8] [--repeats 5] [--sampling-steps N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from isolated import peak_rss_mib, rss_mib, run_isolated, saved_tensor_bytes


def _rewards(realism: str | None, presence: str | None):
    from worldsim.config import load_config
    from worldsim.core.serialization import from_dict
    from worldsim.rewards import RewardSet
    from worldsim.rewards.presence import PlayerDetector, PlayerDetectorConfig, PresenceReward, load_presence_reward
    from worldsim.rewards.realism import RealismCritic, RealismCriticConfig, RealismReward, load_realism_reward

    def values(name: str) -> dict:
        return {key: value for key, value in load_config("model", name).items() if key != "kind"}

    critic = (
        load_realism_reward(realism) if realism else RealismReward(RealismCritic(from_dict(RealismCriticConfig, values("realism-mario"))))
    )
    detector = (
        load_presence_reward(presence)
        if presence
        else PresenceReward(PlayerDetector(from_dict(PlayerDetectorConfig, values("presence-mario"))), seen=0.0)
    )
    return RewardSet({"realism": critic, "presence": detector}, {"realism": 1.0, "presence": 1.0})


def measure(config: dict) -> dict:
    """One configuration, in this process: ``{seconds, peak_rss_mib, update_rss_mib, saved_mib}``."""
    import gymnasium as gym
    from worldsim.agents.dream_driver import DreamDriver
    from worldsim.agents.lora_alignment import RewardGradientAligner

    import worldsim  # noqa: F401  (registers the env)

    torch.set_num_threads(config["threads"])
    kwargs = {"sampling_steps": config["sampling_steps"]} if config["sampling_steps"] else {}
    env = gym.make_vec("worldsim/Mario-v0", num_envs=config["batch"], device="cpu", **kwargs)  # the shipped model
    reward_set = _rewards(config["realism"], config["presence"])
    aligner = RewardGradientAligner(
        env,
        reward_set=reward_set,
        behaviour="random",
        batch_size=config["batch"],
        grad_steps=config["k"],
        gradient_checkpointing=config["checkpointing"],
    )
    driver = DreamDriver(env, aligner._make_behaviour, reward_set.history_frames, seed=0)
    batch = aligner._batch(driver.context(driver.actions()))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # warm-up without gradients: the baseline memory
        aligner.model.sampler.sample(aligner.model.denoiser, batch["frames"], batch["actions"], generator=generator)
    before = rss_mib()

    with saved_tensor_bytes() as saved:
        aligner.update(batch, generator)  # warm-up update (and the saved-tensor count)
    times = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        aligner.update(batch, generator)
        times.append(time.perf_counter() - start)
    env.close()
    return {
        "seconds": statistics.median(times),
        "peak_rss_mib": peak_rss_mib(),
        "update_rss_mib": peak_rss_mib() - before,
        "saved_mib": sum(saved.values()) / 2**20,
        "sampler_steps": len(aligner.model.sampler.sigmas),
        "lora_parameters": aligner.parameter_counts["lora"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sampling-steps", type=int, help="Euler steps instead of the shipped model's own levels (2)")
    parser.add_argument("--realism", help="a trained critic (OUT/model); default: untrained, same cost")
    parser.add_argument("--presence", help="a trained detector (OUT/model); default: untrained, same cost")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # one configuration as JSON, run in this process
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(measure(json.loads(args.single))))
        return

    from worldsim.core.checkpoint import shipped_checkpoint

    steps = args.sampling_steps or len(
        json.loads((shipped_checkpoint("mario-v0") / "config.json").read_text())["model"]["sampler"]["sigmas"]
    )
    configs = [
        {"sampling_steps": args.sampling_steps, "k": k, "checkpointing": checkpointing}
        for k in range(1, steps + 1)
        for checkpointing in (False, True)
    ]
    shared = {"batch": args.batch, "repeats": args.repeats, "threads": args.threads, "realism": args.realism, "presence": args.presence}
    print(f"one update, batch {args.batch}, {args.threads} torch thread(s), median of {args.repeats} (torch {torch.__version__})")
    print("| sampler steps | K (grad steps) | checkpointing | s/update | saved for backward MiB | update RSS MiB | peak RSS MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for config in configs:
        result, run = run_isolated(__file__, config | shared)
        if result is None:
            print(f"| {config} | failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode} |")
            continue
        full = " (full)" if config["k"] >= result["sampler_steps"] else ""
        print(
            f"| {result['sampler_steps']} | {config['k']}{full} | {'yes' if config['checkpointing'] else 'no'} | "
            f"{result['seconds']:.3f} | {result['saved_mib']:.1f} | {result['update_rss_mib']:.0f} | {result['peak_rss_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
