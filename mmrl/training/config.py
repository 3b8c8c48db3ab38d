"""``TrainConfig``: the fully resolved training configuration (what ``config.yaml`` in a run directory holds)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXTRACTOR_FIELDS", "FINAL_MODELS", "TrainConfig"]

#: What ``model.zip`` holds at the end of a run (``TrainConfig.final_model``, :mod:`mmrl.training.final_model`): the
#: last weights, the best held-out evaluation's, or the mean weights of the last third's checkpoints.
FINAL_MODELS = ("last", "best", "average")

#: TrainConfig fields that shape the extractor, passed to ``mmrl.policy_kwargs`` as they are (``mmrl train`` adds
#: ``pretrained`` and ``freeze``; ``mmrl pretrain`` builds the same network from them).
EXTRACTOR_FIELDS = (
    "fusion",
    "text_encoder",
    "image_encoder",
    "image_pool",
    "image_channels",
    "cell_dim",
    "blank_empty_cells",
    "image_frames",
    "features_dim",
    "net_arch",
    "text_model",
)


@dataclass
class TrainConfig:
    """Everything :func:`mmrl.train` needs; resolved from a preset, ``overrides`` and explicit arguments.

    Missing values (None) are filled from the algorithm's preset (``agents/<algo>.yaml``) by
    :func:`mmrl.training.presets.resolve_config`.
    """

    algo: str
    """Algorithm: ``"ppo"``, ``"a2c"``, ``"dqn"`` or ``"qlearning"``."""
    env_id: str
    """A registered Gymnasium id, e.g. ``"mmrl/GoTo-5x5-v0"``."""
    timesteps: int | None = None
    """Total environment steps to train for (across all envs)."""
    seed: int = 0
    """Seed of the model and of the training envs (env ``i`` gets ``seed + i``); evaluation uses held-out seeds."""
    n_envs: int | None = None
    """Number of parallel training envs."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env constructor keyword arguments (e.g. ``{"observation": "compact"}``, ``{"image_mode": "symbolic"}``)."""
    fusion: str | None = None
    """Extractor fusion (``mmrl.policy_kwargs``); ignored by qlearning."""
    text_encoder: str | None = None
    """Extractor text encoder; ignored by qlearning."""
    image_encoder: str | None = None
    """Extractor image encoder (``"auto"`` picks by image size); ignored by qlearning."""
    features_dim: int | None = None
    """Extractor output width; ignored by qlearning."""
    net_arch: list[int] | None = None
    """Hidden layers of the policy / value heads; ignored by qlearning."""
    image_pool: str | None = None
    """How the extractor reads image feature maps: ``"none"`` (flattened, positions kept), ``"max"``, ``"mean"`` or
    ``"sum"`` (pooled over positions); ignored by qlearning."""
    image_channels: int | None = None
    """Width of every convolution of the image encoder (``None``: the encoder's own, 16 for ``"patch"``); ignored
    by qlearning."""
    cell_dim: int | None = None
    """Width of the cell embeddings of symbolic grids (``None``: 16); ignored by qlearning."""
    blank_empty_cells: bool | None = None
    """Whether symbolic grids read the colour and state of unseen and empty cells as "none" instead of MiniGrid's
    colour 0 (red) and state 0 (``None``: False); ignored by qlearning."""
    image_frames: int | None = None
    """Frames stacked along the channel axis of the image, each read by the same encoder (``None``: the env's
    ``env_kwargs["frame_stack"]``, else 1); ignored by qlearning."""
    pretrained: str | None = None
    """Pre-trained encoder bundle or ``mmrl pretrain --method bc`` run directory loaded into the extractor."""
    freeze: str | None = None
    """Extractor parts frozen after loading ``pretrained``: ``"none"``, ``"image"``, ``"text"`` or ``"all"``."""
    text_model: str | None = None
    """Local Hugging Face model directory for ``text_encoder="hf"``."""
    demonstrations: int | None = None
    """Planner frames cloned into the new policy before RL starts (a behaviour-cloning warm start, BabyAI's
    imitation recipe: :func:`mmrl.pretrain.cloning.clone_into`); None or 0: none. mmrl's navigation envs (they have
    a planner) with PPO or A2C; a resumed run keeps its weights and clones nothing. The frames are not counted in
    ``timesteps``; ``metrics.json`` reports them under ``"cloning"``."""
    demonstration_updates: int | None = None
    """Adam steps of that cloning (None: :data:`mmrl.pretrain.cloning.DEFAULT_UPDATES`)."""
    demonstration_values: bool | None = None
    """Whether that cloning also fits the value head to the demonstrations' returns, discounted by the algorithm's
    ``gamma`` (None or False: the value head starts untrained)."""
    demonstration_rounds: int | None = None
    """DAgger rounds after that cloning (None or 0: none): each round the clone plays ``demonstrations // 4``
    frames, the expert labels the states it reached, and ``demonstration_updates // 4`` more Adam steps fit all the
    labels so far (:func:`mmrl.pretrain.cloning.clone_into`); at most 8."""
    demonstrator: str | None = None
    """The expert of those demonstrations (None: ``"planner"``, which reads the whole world): ``"searcher"`` walks
    only to objects its view shows and searches for the others, which a policy that sees only the view can copy
    (:mod:`mmrl.engine.searcher`; "go to" tasks, other sub-goals fall back to the planner)."""
    learning_rate_schedule: str | None = None
    """``"constant"`` (default) or ``"linear"``: the learning rate decays to 0 at ``timesteps``
    (:mod:`mmrl.training.learning_rate`); SB3 algorithms only."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Algorithm constructor arguments (``learning_rate``, ``n_steps``, ``batch_size``, ``gamma``, ...)."""
    eval_freq: int | None = None
    """Evaluate every this many steps on a separate env with held-out seeds, keeping ``best_model`` (0: only at
    the end)."""
    eval_episodes: int | None = None
    """Episodes per evaluation."""
    stop_success: float | None = None
    """Stop training at the first periodic evaluation (every ``eval_freq`` steps, greedy, held-out seeds) whose
    success rate is at least this, in (0, 1]; the run then ends as usual (final evaluation, ``metrics.json``) with
    ``metrics["stopped_on_success"]`` set to the step count. None: train for ``timesteps``. Envs that report no
    success never stop early."""
    final_model: str | None = None
    """What the run's ``model.zip`` holds at the end (:mod:`mmrl.training.final_model`): ``"last"`` (None, the
    default), the weights training ended with; ``"best"``, those of the best periodic evaluation (greedy, held-out
    seeds of the training instructions: early stopping on a validation set); ``"average"``, the mean weights of the
    checkpoints of the last third of training (SB3 algorithms; needs ``checkpoint_freq`` > 0). With either, the last
    weights are kept as ``last_model.zip``. A run stopped with Ctrl-C or ``stop_at`` keeps its last weights."""
    checkpoint_freq: int | None = None
    """Write a checkpoint every this many steps (0: only at the end and on Ctrl-C)."""
    device: str = "cpu"
    """Torch device of SB3 models."""
    torch_threads: int | None = None
    """Torch CPU threads while training and evaluating (``torch.set_num_threads``, restored afterwards). None (no
    preset or ``--set`` names it): :data:`mmrl.threads.DEFAULT_TORCH_THREADS`, one thread, which never
    oversubscribes a shared machine and is the fastest for mmrl's small networks (``mmrl.threads``); 0: the
    process's count is left as it is (torch's default: one per core)."""
    env_wrappers: dict[str, Any] | None = None
    """For an env that is not mmrl's (``BabyAI-GoToObj-v0``, ``CartPole-v1``): the wrapper spec
    :func:`mmrl.wrappers.auto_wrap` chose at the first run (:func:`mmrl.wrappers.wrap_spec`), recorded in
    ``config.yaml`` and re-applied by resume and evaluation so they see the same observations and token ids. Set by
    training, not by presets."""
    check_finite: bool = True
    """Stop training with :class:`mmrl.safety.NonFiniteError` as soon as a NaN / inf appears in observations,
    rewards, policy parameters or training losses (:class:`mmrl.safety.NonFiniteGuard`)."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML / JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: For unknown keys (the message lists the known ones).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)
