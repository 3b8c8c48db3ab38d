"""``text_encoder="hf"``: a frozen, local Hugging Face language model (BERT or MiniLM style) as instruction encoder.

The extractor's token ids are decoded back to words with the env's vocabulary (id ``2 + i`` is word ``i``; PAD is
dropped, UNK becomes the model's unknown token), the words are encoded by the model, and its last hidden states are
mean-pooled over the real (sub-word) tokens into one sentence vector; a trainable ``Linear`` projects it to the
extractor's ``text_dim``. Per-word vectors (for ``fusion="cross_attention"``) are the means over each word's
sub-word tokens, projected the same way.

The language model is frozen and never part of the policy's parameters or ``state_dict`` (saved models stay small,
and nothing of it is trained). Each distinct instruction is run through it once and remembered, so after the first
rollout a frame costs a dictionary look-up and the projection. Usage::

    policy_kwargs = mmrl.policy_kwargs(text_encoder="hf", text_model="path/to/all-MiniLM-L6-v2")

Nothing is downloaded: ``text_model`` must be a local directory holding ``config.json``, ``*.safetensors`` weights
(pickled ``pytorch_model.bin`` files are refused) and the tokenizer files, as ``save_pretrained`` writes them.
``transformers`` is the optional extra ``[hf]``: ``pip install -c constraints-cpu.txt -e ".[hf]"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmrl.extractor.text_encoders import TextEncoder, TextEncoding
from mmrl.tokenizer import PAD_ID, RESERVED_IDS

#: Distinct instructions remembered before the cache is emptied (bounds its memory: a few KB each).
MAX_CACHED_INSTRUCTIONS = 65_536
#: Instructions encoded by the language model in one call when many new ones arrive at once.
ENCODE_CHUNK = 256

INSTALL_HINT = 'pip install -c constraints-cpu.txt -e ".[hf]"'


def default_vocabulary(vocab_size: int) -> tuple[str, ...] | None:
    """mmrl's own instruction vocabulary if ``vocab_size`` is its size (PAD and UNK included), else ``None``."""
    from mmrl.envs.grammar import VOCABULARY

    return VOCABULARY if vocab_size == len(VOCABULARY) + RESERVED_IDS else None


def _load_backend(text_model: str) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory; one-line ``ValueError`` for a missing extra or a bad directory."""
    path = Path(text_model).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ValueError(
            f"text_model={text_model!r} is not a local Hugging Face model directory (it needs config.json, "
            f"*.safetensors weights and tokenizer files, as save_pretrained writes them); nothing is downloaded"
        )
    if not any(path.glob("*.safetensors")):
        raise ValueError(
            f"text_model={text_model!r} has no *.safetensors weights; pickled weights (pytorch_model.bin) are "
            f"refused because loading them can run code: convert them with save_pretrained(safe_serialization=True)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ValueError(f"text_encoder='hf' needs the optional transformers package: {INSTALL_HINT}") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"text_model={text_model!r}: cannot load the model or its tokenizer: {first_line}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"text_model={text_model!r}: its tokenizer has no fast (Rust) version, which is needed to map sub-words "
            f"back to words; save a tokenizer.json with the model (tokenizer.save_pretrained of a *TokenizerFast)"
        )
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, tokenizer


class HFTextEncoder(TextEncoder):
    """A frozen local Hugging Face model, mean-pooled and projected to ``text_dim`` (see the module docstring).

    Args:
        vocab_size: Number of token ids of the extractor's text space.
        max_length: Length ``L`` of the token rows.
        text_dim: Width of the projected encodings.
        text_model: Local model directory (required).
        vocabulary: The words of the token ids ``2 ..`` (``env.unwrapped.vocabulary``); ``None``: mmrl's own
            vocabulary when ``vocab_size`` matches it.

    Raises:
        ValueError: For a missing ``text_model``, a vocabulary that does not fit ``vocab_size``, a directory that is
            not a usable local model, or a missing ``transformers``.
    """

    reads_text_model = True

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        text_dim: int,
        text_model: str | None = None,
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if text_model is None:
            raise ValueError(
                "text_encoder='hf' needs text_model=PATH, a local Hugging Face model directory "
                "(e.g. mmrl.policy_kwargs(text_encoder='hf', text_model='models/all-MiniLM-L6-v2'))"
            )
        if vocabulary is None:
            vocabulary = default_vocabulary(vocab_size)
            if vocabulary is None:
                raise ValueError(
                    f"text_encoder='hf' must decode token ids back to words, but the text space has {vocab_size} ids "
                    f"and mmrl's vocabulary does not match it; pass text_vocabulary=[...] (the words of ids 2, 3, ..., "
                    f"e.g. env.unwrapped.tokenizer.words)"
                )
        if not isinstance(vocabulary, Sequence) or not all(isinstance(word, str) for word in vocabulary):
            raise ValueError("text_vocabulary must be a list of words (the words of token ids 2, 3, ...)")
        if len(vocabulary) + RESERVED_IDS != vocab_size:
            raise ValueError(
                f"text_vocabulary has {len(vocabulary)} words (+ PAD and UNK = {len(vocabulary) + RESERVED_IDS} ids) "
                f"but the text space has {vocab_size} ids; pass the vocabulary of the env's tokenizer"
            )
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.output_dim = text_dim
        self.text_model = str(text_model)
        self.vocabulary = tuple(vocabulary)
        model, tokenizer = _load_backend(self.text_model)
        self._backend: tuple[Any, Any] | None = (model, tokenizer)
        self.hidden_dim = int(model.config.hidden_size)
        self._words = ["", tokenizer.unk_token or "[UNK]", *self.vocabulary]
        self._cache: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}
        self.projection = nn.Linear(self.hidden_dim, text_dim)

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (``deepcopy``, ``torch.save``) leave the language model and the cache out; both are rebuilt."""
        state = self.__dict__.copy()
        state["_backend"] = None
        state["_cache"] = {}
        return state

    @property
    def backend(self) -> tuple[Any, Any]:
        """The (model, tokenizer) pair, loaded again after unpickling."""
        if self._backend is None:
            self._backend = _load_backend(self.text_model)
        return self._backend

    @property
    def cached_instructions(self) -> int:
        """How many distinct instructions have been run through the language model and remembered."""
        return len(self._cache)

    def decode(self, row_L: Sequence[int]) -> list[str]:
        """The words of one token row (PAD dropped, UNK as the model's unknown token)."""
        return [self._words[token] for token in row_L if token != PAD_ID and 0 <= token < self.vocab_size]

    @torch.no_grad()
    def _run_model(self, sentences: list[list[str]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(sentence_H, words_WH) for each sentence (lists of words), on the CPU."""
        model, tokenizer = self.backend
        results: list[tuple[torch.Tensor, torch.Tensor]] = []
        for start in range(0, len(sentences), ENCODE_CHUNK):
            chunk = [words or [tokenizer.unk_token or "[UNK]"] for words in sentences[start : start + ENCODE_CHUNK]]
            batch = tokenizer(chunk, is_split_into_words=True, padding=True, truncation=True, return_tensors="pt")
            hidden_BTH = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask_BT1 = batch["attention_mask"].unsqueeze(-1).to(hidden_BTH.dtype)
            sentence_BH = (hidden_BTH * mask_BT1).sum(dim=1) / mask_BT1.sum(dim=1).clamp(min=1.0)
            for row, words in enumerate(sentences[start : start + ENCODE_CHUNK]):
                word_ids = batch.word_ids(row)
                words_WH = hidden_BTH.new_zeros(len(words), self.hidden_dim)
                counts_W = hidden_BTH.new_zeros(len(words))
                for position, word in enumerate(word_ids):
                    if word is not None and word < len(words):
                        words_WH[word] += hidden_BTH[row, position]
                        counts_W[word] += 1
                words_WH /= counts_W.clamp(min=1.0).unsqueeze(-1)
                results.append((sentence_BH[row].float().cpu(), words_WH.float().cpu()))
        return results

    def forward(self, tokens_BL: torch.Tensor) -> TextEncoding:
        rows = tokens_BL.detach().cpu().numpy()
        keys = [row[row != PAD_ID].tobytes() for row in rows]  # trailing padding never splits an instruction
        missing: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in self._cache and key not in missing:
                missing[key] = index
        if missing:
            if len(self._cache) + len(missing) > MAX_CACHED_INSTRUCTIONS:
                self._cache.clear()
            encoded = self._run_model([self.decode(rows[index].tolist()) for index in missing.values()])
            self._cache.update(zip(missing, encoded, strict=True))
        device = self.projection.weight.device
        entries = [self._cache[key] for key in keys]
        padding_mask_BL = tokens_BL == PAD_ID
        real_BL = ~padding_mask_BL  # the words of a row sit at its non-PAD positions, in order
        nonempty_B1 = real_BL.any(dim=1, keepdim=True).to(self.projection.weight.dtype)
        sentence_BD = self.projection(torch.stack([sentence_H for sentence_H, _ in entries]).to(device)) * nonempty_B1

        def tokens() -> torch.Tensor:
            words_BLH = sentence_BD.new_zeros(tokens_BL.shape[0], tokens_BL.shape[1], self.hidden_dim)
            for row, (_, words_WH) in enumerate(entries):
                positions = real_BL[row].nonzero().flatten()[: words_WH.shape[0]]
                words_BLH[row, positions] = words_WH[: len(positions)].to(device)
            return self.projection(words_BLH) * real_BL.unsqueeze(-1).to(sentence_BD.dtype)

        return TextEncoding(sentence_BD, tokens, padding_mask_BL)
