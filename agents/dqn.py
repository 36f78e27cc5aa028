"""A DQN agent on stable-baselines3, with its Atari-style preprocessing inside the agent.

The env gives standard observations (Mario: ``uint8[64, 64, 3]``). The agent turns them into what
its Q-network reads, ``uint8[frame_stack, frame_size, frame_size]`` (grayscale, resized with
``cv2.INTER_AREA``, the last ``frame_stack`` frames), with one function used both when SB3 trains
(as a Gymnasium wrapper) and when the agent acts frame by frame. So a DQN trained in the real
emulator runs in the dream, and the other way round, as long as the spaces match.
"""

from __future__ import annotations

import csv
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import (
    FrameStackObservation,
    TransformObservation,
    TransformReward,
)
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from tqdm.auto import tqdm

from worldsim.errors import WorldsimError

# Defaults for Mario-sized problems on a CPU: a short horizon (the progress reward is dense), a
# 100k replay buffer stored without duplicate next-observations, and exploration annealed over
# the first 20% of training.
DQN_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "buffer_size": 100_000,
    "learning_starts": 10_000,
    "batch_size": 32,
    "gamma": 0.9,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 5_000,
    "exploration_fraction": 0.2,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "optimize_memory_usage": True,
    "replay_buffer_kwargs": {"handle_timeout_termination": False},
}


def grayscale_resize(frame: np.ndarray, frame_size: int) -> np.ndarray:
    """``uint8[H, W, 3]`` -> ``uint8[frame_size, frame_size]`` (luma, INTER_AREA resize)."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (frame_size, frame_size), interpolation=cv2.INTER_AREA)


# Training rewards are divided by this and clipped to [-1, 1]. DQN's Huber loss and target updates
# are tuned for rewards of about unit size (Atari clips them); raw Mario rewards reach +20 and -25
# a step, and a run trained on them collapsed to below random play (BENCHMARKS.md, run 1). 15 is
# gym-super-mario-bros' historical per-frame reward range.
REWARD_SCALE = 15.0


def preprocess_env(env: gym.Env, frame_size: int, frame_stack: int) -> gym.Env:
    """Wrap ``env`` with the agent's preprocessing (observations; training rewards), for SB3."""
    frame_space = spaces.Box(0, 255, (frame_size, frame_size), np.uint8)
    env = TransformObservation(env, lambda frame: grayscale_resize(frame, frame_size), frame_space)
    env = TransformReward(env, lambda reward: float(np.clip(reward / REWARD_SCALE, -1.0, 1.0)))
    # padding_type="reset" repeats the first frame, exactly as `DQNAgent.act` fills its stack.
    return FrameStackObservation(env, frame_stack, padding_type="reset")


def _check_image_env(env: gym.Env) -> None:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3):
        raise WorldsimError(f"the DQN agent needs RGB uint8[H, W, 3] observations, got {space}: use an image env such as mario")
    if not isinstance(env.action_space, spaces.Discrete):
        raise WorldsimError(f"the DQN agent needs a Discrete action space, got {env.action_space}")


class DQNAgent:
    """Stable-baselines3 DQN (Nature CNN) acting on grayscale 84x84 frame stacks.

    Args:
        env: an env with ``Box(0, 255, (H, W, 3), uint8)`` observations and a Discrete action space.
        epsilon: exploration when acting through ``act`` (0 = greedy).
        frame_size, frame_stack: the preprocessing inside the agent.
        device: torch device for the Q-network (``"auto"``: CUDA when available).
        hyperparameters: overrides of ``DQN_DEFAULTS`` (any ``stable_baselines3.DQN`` argument).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        epsilon: float = 0.0,
        frame_size: int = 84,
        frame_stack: int = 4,
        device: str = "auto",
        seed: int | None = None,
        tensorboard_log: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        model: DQN | None = None,
    ):
        _check_image_env(env)
        if not 0.0 <= epsilon <= 1.0:
            raise WorldsimError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        self.frame_size = int(frame_size)
        self.frame_stack = int(frame_stack)
        self.num_actions = int(env.action_space.n)
        if model is None:
            model = DQN(
                "CnnPolicy",
                preprocess_env(env, self.frame_size, self.frame_stack),
                device=device,
                seed=seed,
                tensorboard_log=tensorboard_log,
                verbose=0,
                **{**DQN_DEFAULTS, **(hyperparameters or {})},
            )
        self.model = model
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        self._rng = np.random.default_rng(seed)
        self.reset()

    # -- acting ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Forget the frame stack; a seed reseeds exploration, ``None`` keeps its stream (the protocol's meaning)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._frames.clear()

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> int:
        frame = grayscale_resize(observation, self.frame_size)
        if not self._frames:  # first frame of an episode fills the stack, as FrameStack(padding="reset")
            self._frames.extend([frame] * self.frame_stack)
        else:
            self._frames.append(frame)
        if self._rng.random() < self.epsilon:
            return int(self._rng.integers(self.num_actions))
        action, _ = self.model.predict(np.stack(self._frames), deterministic=True)
        return int(action)

    # -- learning ----------------------------------------------------------------------------
    def learn(
        self,
        env: gym.Env,
        total_steps: int,
        *,
        run_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 25_000,
        evaluate: Callable[[DQNAgent], dict[str, float]] | None = None,
        eval_every: int = 25_000,
        progress_bar: bool = True,
    ) -> None:
        """Train for ``total_steps`` more env steps on ``env`` (the agent's preprocessing is added).

        With ``run_dir``, a checkpoint ``run_dir/agent.zip`` is written atomically every
        ``checkpoint_every`` steps and at the end, and ``evaluate(agent)`` results are appended to
        ``run_dir/eval.csv`` every ``eval_every`` steps and at the end of the run (the learning curve;
        so a run shorter than ``eval_every`` still has its evaluation); the agent with the best
        evaluation ``return_median`` so far is kept as ``run_dir/best.zip`` (DQN's greedy policy
        often swings between evaluations, as SB3's EvalCallback also acknowledges by keeping a best
        model). The replay buffer is not checkpointed (2-3 GB); a resumed run refills it first.
        """
        if total_steps < 0:
            raise WorldsimError(f"total_steps must be >= 0, got {total_steps}")
        _check_image_env(env)
        self.model.set_env(preprocess_env(env, self.frame_size, self.frame_stack))
        callbacks: list[BaseCallback] = []
        if progress_bar:
            callbacks.append(_ProgressBar(total_steps))
        if run_dir is not None:
            callbacks.append(_Checkpoint(self, Path(run_dir), checkpoint_every, evaluate, eval_every))
        self.model.learn(total_steps, callback=CallbackList(callbacks), reset_num_timesteps=False)
        if run_dir is not None:
            run_dir = Path(run_dir)
            self.save(run_dir / "agent.zip")
            if evaluate is not None and self.trained_steps not in _evaluated_steps(run_dir / "eval.csv"):
                _record_evaluation(self, run_dir, self.trained_steps, evaluate(self), self.model.logger)

    @property
    def trained_steps(self) -> int:
        return int(self.model.num_timesteps)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the SB3 model zip atomically (a temp name, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.zip")
        self.model.save(tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None, *, device: str = "auto", **options: Any) -> DQNAgent:
        """Load a saved agent; ``env`` (optional) checks that its spaces fit the model."""
        path = Path(path)
        if not path.is_file():
            raise WorldsimError(f"no DQN agent at {path}: train one with `worldsim learn --agent dqn` or fix the path")
        model = DQN.load(path, device=device)
        frame_stack, frame_size, _ = model.observation_space.shape
        if env is not None:
            _check_image_env(env)
            if env.action_space.n != model.action_space.n:
                raise WorldsimError(
                    f"the DQN agent at {path} has {model.action_space.n} actions but the env has {env.action_space.n}: "
                    "use the action set it was trained with"
                )
        agent = cls.__new__(cls)
        agent.epsilon = float(options.pop("epsilon", 0.0))
        if options.pop("hyperparameters", None):
            raise WorldsimError("hyperparameters apply to a new DQN agent only: drop them when loading a trained one")
        if options:
            raise WorldsimError(f"unknown options for a loaded DQN agent: {sorted(options)} (only epsilon applies)")
        agent.frame_size, agent.frame_stack = int(frame_size), int(frame_stack)
        agent.num_actions = int(model.action_space.n)
        agent.model = model
        agent._frames = deque(maxlen=agent.frame_stack)
        agent._rng = np.random.default_rng()  # unseeded until reset(seed=...)
        agent.reset()
        return agent


class _ProgressBar(BaseCallback):
    """tqdm bar over env steps, showing the current exploration rate."""

    def __init__(self, total_steps: int):
        super().__init__()
        self._total = total_steps

    def _on_training_start(self) -> None:
        self._bar = tqdm(total=self._total, desc="dqn", unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self._bar.update(self.training_env.num_envs)
        if self.n_calls % 500 == 0:
            self._bar.set_postfix(eps=f"{self.model.exploration_rate:.2f}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        self._bar.close()


class _Checkpoint(BaseCallback):
    """Atomic checkpoints and the evaluation curve (eval.csv) of a DQN run."""

    def __init__(self, agent: DQNAgent, run_dir: Path, checkpoint_every: int, evaluate, eval_every: int):
        super().__init__()
        self._agent = agent
        self._run_dir = run_dir
        self._checkpoint_every = checkpoint_every
        self._evaluate = evaluate
        self._eval_every = eval_every

    def _on_step(self) -> bool:
        steps = self.model.num_timesteps
        if steps % self._checkpoint_every == 0:
            self._agent.save(self._run_dir / "agent.zip")
        if self._evaluate is not None and steps % self._eval_every == 0:
            _record_evaluation(self._agent, self._run_dir, steps, self._evaluate(self._agent), self.logger)
        return True


def _record_evaluation(agent: DQNAgent, run_dir: Path, steps: int, metrics: dict[str, float], logger) -> None:
    """Append one evaluation to ``run_dir/eval.csv``, and save the agent as best.zip if it is the best so far."""
    path = run_dir / "eval.csv"
    new = not path.exists()
    if metrics.get("return_median", -np.inf) > _best_return(path) or not (run_dir / "best.zip").exists():
        agent.save(run_dir / "best.zip")
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["steps", *metrics])
        if new:
            writer.writeheader()
        writer.writerow({"steps": steps, **metrics})
    for key, value in metrics.items():
        logger.record(f"eval/{key}", value)
    tqdm.write(f"[dqn] step {steps}: " + ", ".join(f"{k}={v:g}" for k, v in metrics.items()))


def _evaluated_steps(eval_csv: Path) -> set[int]:
    """The step counts at which a run's eval.csv has an evaluation."""
    if not eval_csv.exists():
        return set()
    with eval_csv.open() as handle:
        return {int(float(row["steps"])) for row in csv.DictReader(handle)}


def _best_return(eval_csv: Path) -> float:
    """The best ``return_median`` recorded so far in a run's eval.csv (-inf for none)."""
    if not eval_csv.exists():
        return -np.inf
    with eval_csv.open() as handle:
        return max((float(row["return_median"]) for row in csv.DictReader(handle)), default=-np.inf)
