"""``CellEmbedding``: integer-coded grid cells (MiniGrid's ``(object, colour, state)`` ids) to learned vectors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AGENT_KIND", "EMPTY_KINDS", "CellEmbedding"]

#: MiniGrid's object kinds that carry no colour or state: 0 (unseen) and 1 (empty) (``CellEmbedding(blank_kinds=)``).
EMPTY_KINDS = 2
#: MiniGrid's object kind of the agent's own cell, ``(10, 0, heading)``: colour 0, red, as an empty cell.
AGENT_KIND = 10


class CellEmbedding(nn.Module):
    """Embeds a grid of integer-coded cells, such as MiniGrid's ``(object, colour, state)`` ids.

    Every value of every channel has a learned vector; a cell's vector is the sum over its channels (the
    "bag-of-words" image embedding of BabyAI 1.1, Hui et al., 2020, "BabyAI 1.1"). A convolution on the raw ids
    scaled to [0, 1] would have to untangle categories from magnitudes (key = 5, ball = 6, box = 7); the embedding
    hands it one-hot information at the cost of a gather.

    Args:
        categories: Number of values of each channel (``high + 1`` of the channel's bounds).
        dim: Width of the cell vectors (the channels the image encoder then sees).
        combine: ``"sum"`` adds a cell's channel vectors (``dim`` output channels); ``"concat"`` keeps them side
            by side (``len(categories) * dim`` channels, for :class:`~mmrl.extractor.image_encoders.FactoredCNN`).
        blank_kinds: Cells whose first channel (the object kind) is below this have no other attribute: each other
            channel reads an extra "none" value there. MiniGrid codes an unseen or an empty cell (kinds 0 and 1) with
            colour 0, red, so without it every empty cell also reads as red (:data:`EMPTY_KINDS` blanks them).
            0 keeps every id as it is.
    """

    offsets_1C11: torch.Tensor
    highest_1C11: torch.Tensor

    def __init__(self, categories: tuple[int, ...], dim: int, combine: str = "sum", blank_kinds: int = 0) -> None:
        super().__init__()
        if blank_kinds < 0 or (blank_kinds and len(categories) < 2):
            raise ValueError(
                f"blank_kinds={blank_kinds} needs cells of at least two channels (the kind first), "
                f"got {len(categories)} channel(s); use 0"
            )
        self.combine = combine
        self.categories = tuple(int(count) for count in categories)
        self.blank_kinds = int(blank_kinds)
        # with blank_kinds, every channel after the first gets one more value: "none", its last
        table = [count + (1 if self.blank_kinds and index else 0) for index, count in enumerate(self.categories)]
        offsets = [sum(table[:index]) for index in range(len(table))]
        self.register_buffer("offsets_1C11", torch.tensor(offsets).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("highest_1C11", torch.tensor(self.categories).view(1, -1, 1, 1) - 1, persistent=False)
        self.embedding = nn.Embedding(sum(table), dim)

    def forward(self, ids_BCHW: torch.Tensor) -> torch.Tensor:
        """Integer ids (any dtype, e.g. SB3's floats) ``(B, C, H, W)`` to cell vectors ``(B, dim, H, W)``.

        Values outside a channel's range are clamped into it (an env breaking its declared bounds must not make the
        gather fail or read another channel's vectors).
        """
        ids_BCHW = torch.minimum(ids_BCHW.long().clamp(min=0), self.highest_1C11)
        if self.blank_kinds:
            blank_B1HW = ids_BCHW[:, :1] < self.blank_kinds
            none_1C11 = self.highest_1C11 + 1  # the "none" value of each channel (the first never reads it)
            ids_BCHW = torch.cat([ids_BCHW[:, :1], torch.where(blank_B1HW, none_1C11[:, 1:], ids_BCHW[:, 1:])], 1)
        ids_BCHW = ids_BCHW + self.offsets_1C11
        vectors_BCHWD = self.embedding(ids_BCHW)
        if self.combine == "concat":  # one block of dim channels per input channel: (B, C * dim, H, W)
            return vectors_BCHWD.permute(0, 1, 4, 2, 3).flatten(1, 2)
        return vectors_BCHWD.sum(dim=1).permute(0, 3, 1, 2)
