"""``auto_wrap``: one call that plugs another project's Gymnasium env into mmrl, and a JSON spec that rebuilds it.

:func:`auto_wrap` looks at the observation space (and, for MiniGrid, at class names, without importing MiniGrid)
and applies the wrappers that learned fastest in ``benchmarks/other_envs.py``:

* **MiniGrid/BabyAI symbolic grids** (MiniGrid declares its ``(7, 7, 3)`` object/colour/state codes as a 0..255
  ``uint8`` picture): :class:`~mmrl.wrappers.minigrid.MiniGridSymbolicImage` declares the real bounds, so
  :class:`mmrl.MultimodalExtractor` embeds every cell instead of scaling codes by 1/255 as if they were pixels.
  MiniGrid's ``direction`` key is dropped (``FilterObservation``): the egocentric view already encodes it, and
  keeping it as an extra vector input learned more slowly.
* **Text** (``spaces.Text``, MiniGrid's ``MissionSpace``, any ``str``-valued key):
  :class:`~mmrl.wrappers.TokenizeText` with the vocabulary the env speaks (BabyAI's grammar, a mission space's
  words, a declared tokenizer) or the hashing tokenizer.
* **2-D images** (``(H, W)`` grey frames in a ``Dict``): :class:`~mmrl.wrappers.TransposeImage` gives them a
  channel axis, so the extractor reads them as images.
* RGB renders and channel-first images are left as they are: the extractor (and SB3) detect the layout and
  scale.
* **No text at all** (CartPole, Atari frames, a bare ``Box``): nothing is applied; SB3's default extractor fits.

:func:`mmrl.policy_kwargs` then picks the network from the wrapped space: on a symbolic grid with an instruction the
``"factored"`` cell encoder with FiLM (the one configuration measured that solved BabyAI-GoToLocal-v0), on pictures
with an instruction gated attention.

It logs one line (logger ``mmrl.wrappers.auto``, level INFO, once per distinct choice) and records what it applied
as a JSON-serialisable spec on the returned env (``env.mmrl_wrap_spec``, read with :func:`wrap_spec` through
later wrappers). :func:`apply_wrap_spec` rebuilds exactly the same stack on a fresh env from that JSON, e.g. in
an evaluation process; it only instantiates wrappers named in :data:`WRAPPERS`, with checked arguments, so a spec
read from a file can never run other code.

Example:
    >>> import gymnasium as gym, minigrid, mmrl  # doctest: +SKIP
    >>> from mmrl.wrappers import auto_wrap, apply_wrap_spec, wrap_spec
    >>> env = auto_wrap(gym.make("BabyAI-GoToRedBall-v0"))  # doctest: +SKIP
    >>> spec = wrap_spec(env)  # JSON: store it next to the model
    >>> same = apply_wrap_spec(gym.make("BabyAI-GoToRedBall-v0"), spec)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FilterObservation

from mmrl.env_packages import ensure_registered
from mmrl.wrappers.image import TransposeImage
from mmrl.wrappers.minigrid import MiniGridSuccess, MiniGridSymbolicImage
from mmrl.wrappers.tokenize_text import TokenizeText
from mmrl.wrappers.vocabulary import find_text_keys, is_text_space

logger = logging.getLogger(__name__)

SPEC_FORMAT = "mmrl.wrap_spec"
SPEC_VERSION = 1
SPEC_ATTRIBUTE = "mmrl_wrap_spec"
"""Attribute of the env returned by :func:`auto_wrap` that holds its spec."""

MAX_SPEC_BYTES = 1_000_000
"""Largest spec (as JSON text) :func:`apply_wrap_spec` accepts; a real one is a few kilobytes."""

MAX_SPEC_STEPS = 16
"""Most wrapper steps a spec may list."""

#: Keys MiniGrid adds next to its image and mission that carry nothing the egocentric image does not (measured:
#: ``benchmarks/other_envs.py``, keep vs drop ``direction`` on BabyAI-GoToRedBall-v0).
MINIGRID_REDUNDANT_KEYS = ("direction",)

#: MiniGrid wrappers that replace the symbolic grid by RGB pixels (recognised by class name).
_MINIGRID_PIXEL_WRAPPERS = ("RGBImgObsWrapper", "RGBImgPartialObsWrapper")

_LOGGED: set[str] = set()


# ---------------------------------------------------------------------------------------------------- the allow-list
def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValueError(f"wrap spec: {name} must be a non-empty list of strings, got {type(value).__name__}")
    return list(value)


def _optional_key(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"wrap spec: {name} must be a string or null, got {type(value).__name__}")
    return value


def _build_filter(env: gym.Env, args: Mapping[str, Any]) -> gym.Env:
    keys = _str_list(args.get("keys"), "FilterObservation.keys")
    if not isinstance(env.observation_space, spaces.Dict):
        raise ValueError(f"wrap spec: FilterObservation needs a Dict observation space, got {env.observation_space}")
    missing = [key for key in keys if key not in env.observation_space.spaces]
    if missing:
        raise ValueError(
            f"wrap spec: FilterObservation keeps keys {missing} that the env does not have "
            f"(keys: {list(env.observation_space.spaces)}); was the spec recorded on another env?"
        )
    return FilterObservation(env, keys)


def _build_symbolic(env: gym.Env, args: Mapping[str, Any]) -> gym.Env:
    return MiniGridSymbolicImage(env, key=_optional_key(args.get("key"), "MiniGridSymbolicImage.key"))


def _build_success(env: gym.Env, args: Mapping[str, Any]) -> gym.Env:
    if set(args) - {"wrapper"}:
        raise ValueError("wrap spec: MiniGridSuccess takes no arguments")
    return MiniGridSuccess(env)


def _build_transpose(env: gym.Env, args: Mapping[str, Any]) -> gym.Env:
    to = args.get("to", "last")
    if to not in ("first", "last"):
        raise ValueError(f"wrap spec: TransposeImage.to must be 'first' or 'last', got {type(to).__name__}")
    return TransposeImage(env, key=_optional_key(args.get("key"), "TransposeImage.key"), to=to)


def _build_tokenize(env: gym.Env, args: Mapping[str, Any]) -> gym.Env:
    keys = args.get("keys")
    config = args.get("tokenizer_config")
    if not isinstance(config, dict):
        raise ValueError("wrap spec: TokenizeText needs its tokenizer_config (a JSON object)")
    return TokenizeText(
        env, keys=None if keys is None else _str_list(keys, "TokenizeText.keys"), tokenizer_config=config
    )


WRAPPERS: dict[str, Callable[[gym.Env, Mapping[str, Any]], gym.Env]] = {
    "FilterObservation": _build_filter,
    "MiniGridSymbolicImage": _build_symbolic,
    "TransposeImage": _build_transpose,
    "TokenizeText": _build_tokenize,
    "MiniGridSuccess": _build_success,
}
"""The only wrappers a spec may name, each built from checked JSON arguments."""


# ---------------------------------------------------------------------------------------------------- detection
def _class_names(obj: object) -> list[str]:
    return [cls.__name__ for cls in type(obj).__mro__]


def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain: list[gym.Env] = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def is_minigrid_symbolic(env: gym.Env, key: str = "image") -> bool:
    """Whether ``env``'s ``key`` holds MiniGrid's symbolic grid declared as a 0..255 ``uint8`` picture.

    True for a MiniGrid/BabyAI env (recognised by class name) whose image is ``(H, W, 3)`` ``uint8`` with bounds
    ``[0, 255]``, whose size is the agent's view or the whole grid, and with no MiniGrid RGB wrapper in the chain.
    """
    if "MiniGridEnv" not in _class_names(env.unwrapped):
        return False
    if any(name in _MINIGRID_PIXEL_WRAPPERS for wrapper in _wrapper_chain(env) for name in _class_names(wrapper)):
        return False
    space = env.observation_space
    image = space.spaces.get(key) if isinstance(space, spaces.Dict) else (space if key is None else None)
    if not (isinstance(image, spaces.Box) and image.dtype == np.uint8 and len(image.shape) == 3):
        return False
    if image.shape[2] != 3 or not (np.all(image.low == 0) and np.all(image.high == 255)):
        return False
    base = env.unwrapped
    view = getattr(base, "agent_view_size", None)
    sizes = {(view, view), (getattr(base, "width", None), getattr(base, "height", None))}
    sizes |= {(h, w) for w, h in list(sizes)}
    return (image.shape[0], image.shape[1]) in sizes


def _is_grey_frame(space: spaces.Space) -> bool:
    """A 2-D ``Box`` of at least 8x8 (a grey image without a channel axis)."""
    return isinstance(space, spaces.Box) and len(space.shape) == 2 and min(space.shape) >= 8


# ---------------------------------------------------------------------------------------------------- auto_wrap
def auto_wrap(
    env: gym.Env,
    *,
    keep_keys: Sequence[str] | None = None,
    symbolic: bool | None = None,
    text_keys: Sequence[str] | None = None,
    max_length: int | None = None,
    tokenizer_config: Mapping[str, Any] | None = None,
    log: bool = True,
) -> gym.Env:
    """Wrap ``env`` so that :func:`mmrl.policy_kwargs` (or SB3's defaults) learn on it fast; see the module docs.

    Every argument left at ``None`` is detected; a given one wins.

    Args:
        env: Any Gymnasium env.
        keep_keys: Keys of a ``Dict`` observation to keep (``FilterObservation``); ``None`` keeps all but the
            redundant MiniGrid keys (:data:`MINIGRID_REDUNDANT_KEYS`).
        symbolic: Whether ``"image"`` is MiniGrid's symbolic grid (declare its bounds); ``None`` detects it
            (:func:`is_minigrid_symbolic`).
        text_keys: Keys to tokenise; ``None`` finds every text key, ``[]`` tokenises nothing.
        max_length: Token length (default: what :class:`~mmrl.wrappers.TokenizeText` infers).
        tokenizer_config: Tokenise exactly like a saved model (``TokenizeText.tokenizer.to_config()``).
        log: Log the one-line summary (logger ``mmrl.wrappers.auto``, INFO, once per distinct summary).

    Returns:
        The wrapped env (``env`` itself when nothing applies). ``wrap_spec(result)`` is the JSON spec of what was
        applied; ``apply_wrap_spec(fresh_env, spec)`` rebuilds it.

    Raises:
        ValueError: An override that does not fit the env (a key it does not have, ``symbolic=True`` without a
            symbolic grid, ``text_keys`` without text).
    """
    steps: list[dict[str, Any]] = []
    notes: list[str] = []
    wrapped = env
    space = env.observation_space
    space_keys = list(space.spaces) if isinstance(space, spaces.Dict) else None

    # 0. MiniGrid reports no is_success: read it from the reward at the end of an episode (innermost wrapper)
    if "MiniGridEnv" in _class_names(env.unwrapped):
        wrapped = _apply(wrapped, steps, "MiniGridSuccess", {})
        notes.append("is_success from the reward")

    # 1. drop redundant keys (MiniGrid's direction) or keep what the caller names
    keys = space_keys
    if keep_keys is not None:
        if space_keys is None:
            raise ValueError(f"keep_keys given but the observation space is not a Dict: {space}")
        if isinstance(keep_keys, str):
            raise ValueError("keep_keys must be a list of keys, not a string")
        keys = list(keep_keys)
    elif space_keys is not None and "MiniGridEnv" in _class_names(env.unwrapped):
        keys = [key for key in space_keys if key not in MINIGRID_REDUNDANT_KEYS]
    if space_keys is not None and keys is not None and set(keys) != set(space_keys):
        wrapped = _apply(wrapped, steps, "FilterObservation", {"keys": keys})
        dropped = [key for key in space_keys if key not in keys]
        notes.append(f"dropped {', '.join(dropped)}" if dropped else f"kept {', '.join(keys)}")

    # 2. MiniGrid's symbolic grid: real bounds, so the extractor embeds cells instead of scaling codes as pixels
    has_image = keys is not None and "image" in keys
    if symbolic is None:
        symbolic = has_image and is_minigrid_symbolic(wrapped, "image")
    elif symbolic and not has_image:
        raise ValueError(f"symbolic=True needs a Dict observation with an 'image' key, got {wrapped.observation_space}")
    if symbolic:
        wrapped = _apply(wrapped, steps, "MiniGridSymbolicImage", {"key": "image"})
        notes.append("image: MiniGrid symbolic grid, cells embedded (bounds declared)")

    # 3. grey 2-D frames get a channel axis
    if isinstance(wrapped.observation_space, spaces.Dict):
        for key, sub in list(wrapped.observation_space.spaces.items()):
            if _is_grey_frame(sub):
                wrapped = _apply(wrapped, steps, "TransposeImage", {"key": key, "to": "last"})
                notes.append(f"{key}: 2-D frame given a channel axis")

    # 4. text -> token ids
    current = wrapped.observation_space
    found = find_text_keys(current) if isinstance(current, spaces.Dict) else []
    if text_keys is not None:
        if isinstance(text_keys, str):
            raise ValueError("text_keys must be a list of keys, not a string")
        found = list(text_keys)
    elif not isinstance(current, spaces.Dict) and is_text_space(current):
        raise ValueError(
            f"the whole observation is text ({current}); auto_wrap needs a Dict of image/text keys: wrap it first, "
            "e.g. with mmrl.wrappers.RenderToImage(env, original_key='mission')"
        )
    if found:
        tokenizer_arguments: dict[str, Any] = {}
        if tokenizer_config is not None:
            tokenizer_arguments["tokenizer_config"] = tokenizer_config
        if max_length is not None:
            tokenizer_arguments["max_length"] = max_length
        tokenized = TokenizeText(wrapped, keys=found, **tokenizer_arguments)
        config = tokenized.tokenizer.to_config()
        steps.append({"wrapper": "TokenizeText", "keys": list(found), "tokenizer_config": config})
        wrapped = tokenized
        notes.append(
            f"{', '.join(found)}: tokenised ({tokenized.vocabulary_source} vocabulary, "
            f"{tokenized.tokenizer.vocab_size} ids, length {tokenized.tokenizer.max_length})"
        )

    extractor = _extractor_for(wrapped.observation_space, bool(found) or bool(symbolic))
    spec = {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "wrappers": steps,
        "extractor": extractor,
    }
    json.dumps(spec)  # internal invariant: the spec is JSON (tokenizer configs are)
    if log:
        summary = "; ".join(notes) if notes else "nothing to wrap"
        policy = "mmrl.policy_kwargs()" if extractor == "mmrl" else "SB3's default extractor"
        if extractor == "mmrl" and found:
            policy += f" (its defaults here: {'factored cell encoder + FiLM' if symbolic else 'gated attention'})"
        _log_once(f"mmrl auto_wrap: {summary}; use {policy}")
    if steps:
        setattr(wrapped, SPEC_ATTRIBUTE, spec)
        return wrapped
    return env


def _apply(env: gym.Env, steps: list[dict[str, Any]], name: str, args: dict[str, Any]) -> gym.Env:
    steps.append({"wrapper": name, **args})
    return WRAPPERS[name](env, args)


def _extractor_for(space: spaces.Space, multimodal: bool) -> str:
    """``"mmrl"`` for a ``Dict`` with text or a symbolic grid (the multimodal extractor), else ``"sb3"``."""
    return "mmrl" if multimodal and isinstance(space, spaces.Dict) else "sb3"


def _log_once(message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        logger.info(message)


# ---------------------------------------------------------------------------------------------------- specs
def wrap_spec(env: gym.Env) -> dict[str, Any]:
    """The spec :func:`auto_wrap` recorded on ``env`` (found through later wrappers), or the empty spec.

    The empty spec (no wrappers, ``"extractor": "sb3"``) is what :func:`auto_wrap` means by "nothing applied".
    """
    try:
        spec = env.get_wrapper_attr(SPEC_ATTRIBUTE)
    except AttributeError:
        spec = None
    if spec is None:
        return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "wrappers": [], "extractor": "sb3"}
    return copy.deepcopy(spec)


def check_wrap_spec(spec: Any) -> dict[str, Any]:
    """Validate a spec (e.g. read from a run directory) and return it.

    Raises:
        ValueError: Not a spec of this format and version, too large, or naming a wrapper outside :data:`WRAPPERS`.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"wrap spec must be a JSON object, got {type(spec).__name__}")
    if len(json.dumps(spec)) > MAX_SPEC_BYTES:
        raise ValueError(f"wrap spec larger than {MAX_SPEC_BYTES} bytes; it is not one auto_wrap wrote")
    if spec.get("format") != SPEC_FORMAT or spec.get("version") != SPEC_VERSION:
        raise ValueError(
            f"not an mmrl wrap spec of version {SPEC_VERSION} (format/version fields missing or different); "
            "record it again with mmrl.wrappers.auto_wrap"
        )
    steps = spec.get("wrappers")
    if not isinstance(steps, list) or len(steps) > MAX_SPEC_STEPS:
        raise ValueError(f"wrap spec: 'wrappers' must be a list of at most {MAX_SPEC_STEPS} steps")
    for index, step in enumerate(steps):
        name = step.get("wrapper") if isinstance(step, dict) else None
        if not isinstance(name, str) or name not in WRAPPERS:
            shown = name if isinstance(name, str) and len(name) <= 60 else type(name).__name__
            raise ValueError(
                f"wrap spec step {index}: unknown wrapper {shown!r}; allowed: {', '.join(sorted(WRAPPERS))}"
            )
    if spec.get("extractor", "sb3") not in ("mmrl", "sb3"):
        raise ValueError("wrap spec: 'extractor' must be 'mmrl' or 'sb3'")
    return spec


def apply_wrap_spec(env: gym.Env, spec: Mapping[str, Any] | str) -> gym.Env:
    """Rebuild on ``env`` the wrapper stack recorded by :func:`auto_wrap` (``spec`` as a dict or JSON text).

    Only the wrappers in :data:`WRAPPERS` can be named, with checked arguments; the tokenizer is rebuilt from its
    recorded configuration, so token ids are exactly those of training.

    Raises:
        ValueError: A malformed spec (see :func:`check_wrap_spec`) or one that does not fit ``env``.
    """
    if isinstance(spec, str):
        if len(spec) > MAX_SPEC_BYTES:
            raise ValueError(f"wrap spec larger than {MAX_SPEC_BYTES} bytes; it is not one auto_wrap wrote")
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as error:
            raise ValueError(f"wrap spec is not valid JSON: {error}") from None
    checked = check_wrap_spec(dict(spec) if isinstance(spec, Mapping) else spec)
    wrapped = env
    for step in checked["wrappers"]:
        args = {key: value for key, value in step.items() if key != "wrapper"}
        try:
            wrapped = WRAPPERS[step["wrapper"]](wrapped, args)
        except (TypeError, KeyError) as error:
            raise ValueError(f"wrap spec step {step['wrapper']}: {error}") from None
    if checked["wrappers"]:
        setattr(wrapped, SPEC_ATTRIBUTE, copy.deepcopy(checked))
    return wrapped


# ---------------------------------------------------------------------------------------------------- by id
def make_wrapped(env_id: str, spec: Mapping[str, Any] | str | None = None, **make_kwargs: Any) -> gym.Env:
    """``gym.make(env_id)`` through :func:`auto_wrap` (``spec=None``) or :func:`apply_wrap_spec` (a saved spec).

    The package that registers a known family (:data:`mmrl.env_packages.ENV_PACKAGES`: MiniGrid/BabyAI) is
    imported first. Ids with a module prefix (``module:Env-v0``, which Gymnasium would import) are refused: only
    ids already registered, or registered by a package in that list, are made.

    Raises:
        ValueError: A module-prefixed id, an unknown id (saying which extra would register it), or a spec that
            does not fit.
    """
    if not isinstance(env_id, str) or ":" in env_id or len(env_id) > 200:
        raise ValueError("env id must be a registered id such as BabyAI-GoToRedBall-v0 (no 'module:' prefix)")
    ensure_registered(env_id)
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment id {env_id!r}: not registered with Gymnasium")
    env = gym.make(env_id, **make_kwargs)
    return auto_wrap(env) if spec is None else apply_wrap_spec(env, spec)
