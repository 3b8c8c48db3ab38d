"""Word-level tokenizer shared by the environments, the wrappers and saved models.

Two modes:

* **word list**: a fixed vocabulary ``[PAD, UNK, word_1, ..., word_n]``. Unknown words map to ``UNK``.
* **hashing**: no vocabulary is known; each word maps to ``2 + crc32(word) % n_buckets``. CRC-32 is stable
  across processes and Python versions, unlike the salted built-in ``hash``.

Ids ``0`` (PAD) and ``1`` (UNK) are reserved in both modes, so every id lies in ``[0, vocab_size - 1]`` and the
token space is ``Box(0, vocab_size - 1, (max_length,), int64)`` exactly (no off-by-one).

The configuration (:meth:`Tokenizer.to_config`) is plain JSON, so evaluation can tokenise exactly as training did.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.limits import check_limit, short_repr

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
RESERVED_IDS = 2

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words, dropping punctuation.

    >>> split_words("Go to the RED ball, then the box!")
    ['go', 'to', 'the', 'red', 'ball', 'then', 'the', 'box']
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str to tokenise, got {type(text).__name__}: {text!r}")
    return _WORD_RE.findall(text.lower())


class Tokenizer:
    """Maps instruction strings to fixed-length arrays of token ids.

    Args:
        words: The vocabulary (without PAD/UNK). ``None`` selects the hashing mode.
        max_length: Length ``L`` of every encoded array; shorter texts are padded with ``PAD_ID``.
        n_buckets: Number of hash buckets in hashing mode (ignored with a word list).
        on_overflow: What to do with a text longer than ``max_length`` words: ``"truncate"`` (keep the first
            ``max_length`` words and warn once) or ``"error"`` (raise ``ValueError``).
    """

    def __init__(
        self,
        words: Iterable[str] | None = None,
        max_length: int = 16,
        n_buckets: int = 1024,
        on_overflow: str = "truncate",
    ) -> None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {short_repr(max_length)}")
        check_limit("tokenizer max_length", max_length, "max_token_length")
        if on_overflow not in ("truncate", "error"):
            raise ValueError(f"on_overflow must be 'truncate' or 'error', got {on_overflow!r}")
        self.max_length = max_length
        self.on_overflow = on_overflow
        self._warned_overflow = False
        if words is None:
            if not isinstance(n_buckets, int) or n_buckets < 1:
                raise ValueError(f"n_buckets must be a positive int, got {n_buckets!r}")
            self.words: tuple[str, ...] | None = None
            self.n_buckets = n_buckets
            self._index: dict[str, int] = {}
        else:
            unique: list[str] = []
            seen: set[str] = set()
            for word in words:
                if not isinstance(word, str) or not word:
                    raise ValueError(f"vocabulary entries must be non-empty strings, got {word!r}")
                normalized = word.lower()
                if normalized in (PAD_TOKEN, UNK_TOKEN):
                    continue
                if normalized not in seen:
                    seen.add(normalized)
                    unique.append(normalized)
            self.words = tuple(unique)
            self.n_buckets = 0
            self._index = {word: RESERVED_IDS + i for i, word in enumerate(self.words)}

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of distinct ids, PAD and UNK included."""
        return RESERVED_IDS + (len(self.words) if self.words is not None else self.n_buckets)

    @property
    def mode(self) -> str:
        return "hashing" if self.words is None else "words"

    def space(self) -> spaces.Box:
        """The observation space of encoded texts: every id is inside it."""
        return spaces.Box(low=0, high=self.vocab_size - 1, shape=(self.max_length,), dtype=np.int64)

    # ------------------------------------------------------------------ encoding
    def word_id(self, word: str) -> int:
        if self.words is None:
            return RESERVED_IDS + zlib.crc32(word.encode("utf-8")) % self.n_buckets
        return self._index.get(word, UNK_ID)

    def encode(self, text: str) -> np.ndarray:
        """Encode one text to an ``int64`` array of shape ``(max_length,)``."""
        words = split_words(text)
        if len(words) > self.max_length:
            if self.on_overflow == "error":
                raise ValueError(
                    f"text has {len(words)} words but the tokenizer keeps at most {self.max_length}: {text!r}. "
                    "Raise max_length or use on_overflow='truncate'."
                )
            if not self._warned_overflow:
                warnings.warn(
                    f"text longer than max_length={self.max_length} words was truncated: {text!r}",
                    stacklevel=2,
                )
                self._warned_overflow = True
            words = words[: self.max_length]
        tokens_L = np.zeros(self.max_length, dtype=np.int64)
        tokens_L[: len(words)] = [self.word_id(word) for word in words]
        return tokens_L

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Encode several texts to an array of shape ``(len(texts), max_length)``."""
        tokens_BL = np.zeros((len(texts), self.max_length), dtype=np.int64)
        for i, text in enumerate(texts):
            tokens_BL[i] = self.encode(text)
        return tokens_BL

    def decode(self, tokens_L: np.ndarray) -> str:
        """Best-effort inverse of :meth:`encode` (hashing mode shows bucket ids).

        Raises:
            TypeError: The ids are not whole numbers.
            ValueError: An id lies outside ``[0, vocab_size - 1]``.
        """
        ids = np.asarray(tokens_L)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            # float observations (e.g. after a policy's preprocessing) are fine when they hold whole numbers
            if not np.issubdtype(ids.dtype, np.floating) or not np.array_equal(ids, np.round(ids)):
                raise TypeError(f"token ids must be integers, got an array of {ids.dtype}: {tokens_L!r}")
            ids = ids.astype(np.int64)
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"token id {int(ids[bad].flat[0])} is outside this tokenizer's ids [0, {self.vocab_size - 1}]; "
                "decode ids produced by the same tokenizer (check its vocabulary and max_length)"
            )
        out = []
        for token in ids.reshape(-1).tolist():
            if token == PAD_ID:
                continue
            if token == UNK_ID:
                out.append(UNK_TOKEN)
            elif self.words is None:
                out.append(f"<{token}>")
            else:
                out.append(self.words[token - RESERVED_IDS])
        return " ".join(out)

    # ------------------------------------------------------------------ serialisation
    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable description from which :meth:`from_config` rebuilds an identical tokenizer."""
        return {
            "mode": self.mode,
            "words": list(self.words) if self.words is not None else None,
            "n_buckets": self.n_buckets,
            "max_length": self.max_length,
            "on_overflow": self.on_overflow,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        if not isinstance(config, dict) or "mode" not in config:
            raise ValueError(f"tokenizer config must be a dict with a 'mode' key, got {config!r}")
        if config["mode"] == "words":
            words = config.get("words")
            if not isinstance(words, list):
                raise ValueError("tokenizer config in 'words' mode needs a 'words' list")
            return cls(words, max_length=int(config["max_length"]), on_overflow=config.get("on_overflow", "truncate"))
        if config["mode"] == "hashing":
            return cls(
                None,
                max_length=int(config["max_length"]),
                n_buckets=int(config["n_buckets"]),
                on_overflow=config.get("on_overflow", "truncate"),
            )
        raise ValueError(f"unknown tokenizer mode {config['mode']!r}; expected 'words' or 'hashing'")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash((self.mode, self.words, self.n_buckets, self.max_length))

    def __repr__(self) -> str:
        return f"Tokenizer(mode={self.mode!r}, vocab_size={self.vocab_size}, max_length={self.max_length})"
