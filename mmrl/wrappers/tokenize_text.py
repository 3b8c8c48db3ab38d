"""``TokenizeText``: turn text observations (missions, instructions) into fixed-length arrays of token ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.tokenizer import Tokenizer
from mmrl.wrappers.vocabulary import find_text_keys, is_text_space, normalize_word_list, vocabulary_from_env

DEFAULT_MAX_LENGTH = 16
"""Token length used when neither the caller nor the environment says how long texts are."""

MAX_INFERRED_MAX_LENGTH = 64
"""Upper bound on a token length inferred from a ``spaces.Text``'s character limit."""

BARE_TEXT_INFO_KEY = "mission"
"""``info`` key of the raw text when the whole observation is a text (not a ``Dict``)."""


class TokenizeText(gym.ObservationWrapper):
    """Replace every text observation by a ``Box(0, V - 1, (L,), int64)`` array of token ids.

    Works on a ``Dict`` observation space (the text keys are replaced, the other keys pass through untouched) and on a
    bare text observation space (the observation becomes the token array). Texts are lower-cased and split into
    words with punctuation dropped (:func:`mmrl.tokenizer.split_words`); shorter texts are padded with ``PAD = 0``.

    The vocabulary is chosen, first match wins:

    1. ``tokenizer=`` (a :class:`~mmrl.tokenizer.Tokenizer`) or ``tokenizer_config=`` (its ``to_config()`` dict):
       reproduces exactly how a model was trained;
    2. ``vocabulary=`` a list of words (entries are lower-cased and split like texts; unknown words map to
       ``UNK = 1``), a Tokenizer, or ``"hashing"`` to force the hashing mode;
    3. ``vocabulary=None`` / ``"auto"``: what the environment declares or what can be collected from it (see
       :func:`mmrl.wrappers.vocabulary_from_env`: an ``env.unwrapped.tokenizer`` Tokenizer, an
       ``env.unwrapped.vocabulary`` list or Tokenizer, BabyAI's words, MiniGrid mission placeholders), else a
       stable CRC-32 hashing tokenizer with ``n_buckets`` buckets where every word, known or not, maps to its
       bucket.

    ``max_length`` (``L``) defaults to the tokenizer's own length when one is given or declared, the longest mission
    when a MiniGrid ``MissionSpace`` is enumerated, 64 for BabyAI (its longest instruction),
    ``min(ceil(chars / 2), 64)`` for a ``spaces.Text`` of at most ``chars`` characters, and 16 otherwise. Longer
    texts are truncated to ``L`` words with a warning (``on_overflow="truncate"``, the default) or rejected with
    ``ValueError`` (``on_overflow="error"``).

    The raw text stays available: after every ``reset`` and ``step``, ``info[key]`` holds the original string of
    each tokenised key (``info["mission"]`` for a bare text observation).

    Token ids are categorical: do not let ``VecNormalize`` normalise them (pass
    ``norm_obs_keys=mmrl.wrappers.normalizable_keys(env.observation_space)``).

    Args:
        env: The environment to wrap.
        keys: The text keys of a ``Dict`` observation space to tokenise; ``None`` finds them all (Gymnasium
            ``Text``, MiniGrid ``MissionSpace``, or any space whose samples are ``str``). Must be ``None`` for a bare
            text observation space.
        vocabulary: A word list, a Tokenizer, ``"hashing"``, or ``None``/``"auto"`` (see above).
        max_length: Token length ``L`` (see above for the default).
        tokenizer: A ready tokenizer; excludes ``vocabulary`` and ``tokenizer_config``.
        tokenizer_config: A ``Tokenizer.to_config()`` dict; excludes ``vocabulary`` and ``tokenizer``.
        n_buckets: Hash buckets when the hashing mode is used.
        on_overflow: ``"truncate"`` (warn) or ``"error"``; ``None`` keeps a given tokenizer's setting, else
            ``"truncate"``.
        raw_text_in_info: Whether to copy the raw texts into ``info``.

    Attributes:
        tokenizer: The tokenizer in use; ``wrapper.tokenizer.to_config()`` is JSON and rebuilds it.
        text_keys: The tokenised keys (empty for a bare text observation).
        vocabulary_source: ``"tokenizer"``, ``"words"``, ``"declared"``, ``"babyai"``, ``"mission_space"`` or
            ``"hashing"``.

    Raises:
        ValueError: For an unknown key, a space with no text to tokenise, conflicting vocabulary arguments.
        TypeError: For an unsupported observation space or vocabulary type.

    Example:
        >>> env = TokenizeText(gym.make("BabyAI-GoToObj-v0"))  # doctest: +SKIP
        >>> env.observation_space["mission"]  # doctest: +SKIP
        Box(0, 33, (64,), int64)
    """

    def __init__(
        self,
        env: gym.Env,
        keys: Sequence[str] | str | None = None,
        vocabulary: Sequence[str] | Tokenizer | str | None = None,
        max_length: int | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        tokenizer_config: Mapping[str, Any] | None = None,
        n_buckets: int = 1024,
        on_overflow: str | None = None,
        raw_text_in_info: bool = True,
    ) -> None:
        super().__init__(env)
        observation_space = env.observation_space
        self.is_dict = isinstance(observation_space, spaces.Dict)
        self.text_keys: tuple[str, ...] = self._select_keys(observation_space, keys)
        self.raw_text_in_info = raw_text_in_info

        text_spaces = (
            {key: observation_space[key] for key in self.text_keys}
            if isinstance(observation_space, spaces.Dict)
            else {"": observation_space}
        )
        self.tokenizer, self.vocabulary_source = self._build_tokenizer(
            env, text_spaces, vocabulary, max_length, tokenizer, tokenizer_config, n_buckets, on_overflow
        )

        token_space = self.tokenizer.space()
        if isinstance(observation_space, spaces.Dict):
            self.observation_space = spaces.Dict(
                {key: (token_space if key in self.text_keys else sub) for key, sub in observation_space.spaces.items()}
            )
        else:
            self.observation_space = token_space

    # ------------------------------------------------------------------ construction helpers
    def _select_keys(self, observation_space: spaces.Space, keys: Sequence[str] | str | None) -> tuple[str, ...]:
        if isinstance(keys, str):
            keys = [keys]
        if not self.is_dict:
            if keys is not None:
                raise ValueError(
                    f"keys={list(keys)!r} given but the observation space is not a Dict: {observation_space}"
                )
            if not is_text_space(observation_space):
                raise TypeError(
                    "TokenizeText needs a Dict observation space with text keys or a text observation space "
                    f"(spaces.Text, MissionSpace, str samples); got {observation_space}"
                )
            return ()
        if keys is None:
            found = find_text_keys(observation_space)
            if not found:
                raise ValueError(
                    f"no text key found in {observation_space}; pass keys=[...] to name the keys that hold str"
                )
            return tuple(found)
        keys = list(keys)
        if not keys:
            raise ValueError("keys must name at least one text key")
        assert isinstance(observation_space, spaces.Dict)  # self.is_dict
        missing = [key for key in keys if key not in observation_space.spaces]
        if missing:
            raise ValueError(f"keys {missing} are not in the observation space; available: {list(observation_space)}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys in {keys}")
        return tuple(keys)

    @staticmethod
    def _build_tokenizer(
        env: gym.Env,
        text_spaces: Mapping[str, spaces.Space],
        vocabulary: Sequence[str] | Tokenizer | str | None,
        max_length: int | None,
        tokenizer: Tokenizer | None,
        tokenizer_config: Mapping[str, Any] | None,
        n_buckets: int,
        on_overflow: str | None,
    ) -> tuple[Tokenizer, str]:
        pairs = (("tokenizer", tokenizer), ("tokenizer_config", tokenizer_config))
        given = [name for name, value in pairs if value is not None]
        if vocabulary is not None and not (isinstance(vocabulary, str) and vocabulary == "auto"):
            given.append("vocabulary")
        if len(given) > 1:
            raise ValueError(f"pass only one of tokenizer, tokenizer_config and vocabulary (got {', '.join(given)})")

        if tokenizer_config is not None:
            tokenizer = Tokenizer.from_config(dict(tokenizer_config))
        if isinstance(vocabulary, Tokenizer):
            tokenizer, vocabulary = vocabulary, None
        if tokenizer is not None:
            if not isinstance(tokenizer, Tokenizer):
                raise TypeError(f"tokenizer must be an mmrl.tokenizer.Tokenizer, got {type(tokenizer).__name__}")
            return _with_overrides(tokenizer, max_length, on_overflow), "tokenizer"

        overflow = on_overflow or "truncate"
        if isinstance(vocabulary, str):
            if vocabulary not in ("auto", "hashing"):
                raise ValueError(
                    f"vocabulary={vocabulary!r}: expected a list of words, a Tokenizer, 'auto' or 'hashing'"
                )
            if vocabulary == "hashing":
                length = _first_length(max_length, _text_space_length(text_spaces))
                return Tokenizer(None, max_length=length, n_buckets=n_buckets, on_overflow=overflow), "hashing"
            vocabulary = None
        if vocabulary is not None:
            words = normalize_word_list(vocabulary)
            length = _first_length(max_length, _text_space_length(text_spaces))
            return Tokenizer(words, max_length=length, on_overflow=overflow), "words"

        found = vocabulary_from_env(env, text_spaces)
        if found is not None and found.tokenizer is not None:
            return _with_overrides(found.tokenizer, max_length, on_overflow), found.source
        if found is not None:
            length = _first_length(max_length, found.max_length, _text_space_length(text_spaces))
            return Tokenizer(found.words, max_length=length, on_overflow=overflow), found.source
        length = _first_length(max_length, _text_space_length(text_spaces))
        return Tokenizer(None, max_length=length, n_buckets=n_buckets, on_overflow=overflow), "hashing"

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        return self.observation(observation), self._with_raw_text(observation, info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self.observation(observation), reward, terminated, truncated, self._with_raw_text(observation, info)

    def observation(self, observation: Any) -> Any:
        """Tokenise the text keys of one observation (a new dict is returned; the input is not modified)."""
        if not self.is_dict:
            return self.tokenizer.encode(_as_text(observation, "observation"))
        if not isinstance(observation, Mapping):
            raise TypeError(f"expected a dict observation, got {type(observation).__name__}")
        tokenized = dict(observation)
        for key in self.text_keys:
            tokenized[key] = self.tokenizer.encode(_as_text(observation[key], key))
        return tokenized

    def _with_raw_text(self, observation: Any, info: dict[str, Any]) -> dict[str, Any]:
        if not self.raw_text_in_info:
            return info
        info = dict(info)
        if self.is_dict:
            for key in self.text_keys:
                info[key] = _as_text(observation[key], key)
        else:
            info[BARE_TEXT_INFO_KEY] = _as_text(observation, "observation")
        return info


def _as_text(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in ("U", "S"):
        return _as_text(value.item(), key)
    raise TypeError(f"TokenizeText expected a str at {key!r}, got {type(value).__name__}: {value!r}")


def _first_length(*candidates: int | None) -> int:
    """The first length that is not ``None``, else :data:`DEFAULT_MAX_LENGTH` (the Tokenizer validates it)."""
    return next((length for length in candidates if length is not None), DEFAULT_MAX_LENGTH)


def _text_space_length(text_spaces: Mapping[str, spaces.Space]) -> int | None:
    """Most words a ``spaces.Text`` of ``max_length`` characters can hold (one letter + one space per word), capped."""
    lengths = [space.max_length for space in text_spaces.values() if isinstance(space, spaces.Text)]
    if not lengths or len(lengths) != len(text_spaces):
        return None
    return min((max(lengths) + 1) // 2, MAX_INFERRED_MAX_LENGTH)


def _with_overrides(tokenizer: Tokenizer, max_length: int | None, on_overflow: str | None) -> Tokenizer:
    """``tokenizer`` itself, or a copy with another ``max_length``/``on_overflow`` (same vocabulary, same ids)."""
    config = tokenizer.to_config()
    if max_length is not None:
        config["max_length"] = max_length
    if on_overflow is not None:
        config["on_overflow"] = on_overflow
    return tokenizer if config == tokenizer.to_config() else Tokenizer.from_config(config)
