"""A tiny, randomly initialised BERT saved as a local Hugging Face model directory, built without any download.

For tests and offline trials of ``text_encoder="hf"``: the word-piece vocabulary is the given words plus BERT's
special tokens, so every mmrl instruction tokenises to whole words.

    >>> from mmrl.envs.grammar import VOCABULARY
    >>> path = save_tiny_bert("tiny-bert", VOCABULARY)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def save_tiny_bert(
    out_dir: str | os.PathLike[str], words: Iterable[str], hidden_size: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """Writes a tiny BERT (``hidden_size`` wide, ``layers`` deep) and its fast tokenizer to ``out_dir``.

    Raises:
        ValueError: Without the optional ``transformers`` package (``pip install -c constraints-cpu.txt -e ".[hf]"``).
    """
    try:
        import torch
        from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]
    except ImportError:
        raise ValueError('save_tiny_bert needs transformers: pip install -c constraints-cpu.txt -e ".[hf]"') from None
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    vocabulary = list(SPECIAL_TOKENS) + sorted(set(words) - set(SPECIAL_TOKENS))
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocabulary) + "\n")
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(vocabulary)})
    else:
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden_size // 16),
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(path), safe_serialization=True)
    return path
