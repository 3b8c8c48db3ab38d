"""mmrl's torch thread policy: one thread per process unless asked, restored afterwards (mmrl/threads.py)."""

from __future__ import annotations

import sys

import torch

import mmrl
from mmrl.threads import DEFAULT_TORCH_THREADS, default_threads, resolve_threads, torch_threads


def test_resolve_threads_defaults_to_one_and_zero_leaves_the_count():
    assert DEFAULT_TORCH_THREADS == 1
    assert resolve_threads(None) == 1
    assert resolve_threads(0) is None
    assert resolve_threads(3) == 3


def test_torch_threads_sets_and_restores():
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_unset_torch_threads_trains_on_one_thread_and_evaluation_too(tmp_path, monkeypatch):
    import mmrl.training.trainer as trainer

    seen: list[int] = []
    run = trainer._run
    monkeypatch.setattr(
        trainer, "_run", lambda *args, **kwargs: seen.append(torch.get_num_threads()) or run(*args, **kwargs)
    )
    preset = tmp_path / "no-threads.yaml"  # a preset that does not name torch_threads
    preset.write_text("default:\n  timesteps: 16\n  n_envs: 2\n  fusion: concat\n  text_encoder: bow\n")
    torch.set_num_threads(2)
    try:
        result = mmrl.train(
            "a2c",
            "mmrl/GoTo-5x5-v0",
            timesteps=16,
            n_envs=2,
            preset=preset,
            overrides={"n_steps": 8, "features_dim": 16},
            run_dir=tmp_path / "run",
            progress_bar=False,
            eval_episodes=2,
        )
        assert seen == [1] and torch.get_num_threads() == 2
        evaluate_module = sys.modules["mmrl.evaluation.evaluate"]  # the package re-exports a function of that name

        during: list[int] = []
        play = evaluate_module.run_episodes
        monkeypatch.setattr(
            evaluate_module,
            "run_episodes",
            lambda *args, **kwargs: during.append(torch.get_num_threads()) or play(*args, **kwargs),
        )
        mmrl.evaluate(result.run_dir, episodes=2)
        assert torch.get_num_threads() == 2
        assert during and set(during) == {1}
    finally:
        torch.set_num_threads(1)


def test_default_threads_decorator_keeps_the_signature_and_result():
    @default_threads
    def threads_inside(offset: int) -> int:
        return torch.get_num_threads() + offset

    torch.set_num_threads(2)
    try:
        assert threads_inside(10) == 11
        assert threads_inside.__name__ == "threads_inside"
    finally:
        torch.set_num_threads(1)
