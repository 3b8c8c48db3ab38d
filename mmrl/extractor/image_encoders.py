"""Convolutional image encoders that expose their spatial feature maps.

Every encoder maps a channel-first float image ``image_BCHW`` to a feature map ``feature_map_BCHW`` through a
sequence of *stages*. Fusion modules that need spatial features (gated attention, FiLM, cross-attention) work on
that map, and FiLM (Perez et al., 2018) modulates the output of a stage with a per-channel ``(gamma, beta)`` pair
inside :meth:`ImageEncoder.trunk`, so an encoder's :meth:`ImageEncoder.film_stages` tells the FiLM generator
which stages it modulates and how many channels each has.
Flattening the map into a vector is left to the fusion, so no encoder has a dense head of its own.

Encoders (see :data:`IMAGE_ENCODERS`):

* ``"patch"``: a patch stem aligned to grid tiles (one vector per 8-px tile of a render, per cell of a symbolic
  view) and one 3x3 layer, 16 channels each (``"auto"`` for small images: PPO reached the same greedy success per
  frame as with ``"small"`` on mmrl/GoTo-v0 and mmrl/PickUp-5x5-v0 at 1.6-1.9x the frames per second).
* ``"small"``: three conv layers (16, 32, 32 channels) whose strides bring the map to at most 8 pixels on its
  smaller side (a 7x7 symbolic view stays 7x7; a 56x56 render reaches 7x7 through a 4x4 stride-4 stem and a
  stride-2 layer): 1.0 M multiply-adds per 56x56 image, trained 1.7x faster than the Nature CNN (2.2 M).
* ``"nature"``: the DQN encoder of Mnih et al. (2015), "Human-level control through deep reinforcement learning".
  It needs images of at least 36x36 pixels.
* ``"impala"``: the residual encoder of Espeholt et al. (2018), "IMPALA: Scalable Distributed Deep-RL with
  Importance Weighted Actor-Learner Architectures" (three stacks of conv, max-pool and two residual blocks).
* ``"pointwise"``: two 1x1 layers of 64 channels, every cell encoded on its own; with a pooled read-out
  (``image_pool``, :mod:`mmrl.extractor.fusion`) for questions about a scene seen whole (mmrl/VisualQuery-*).
* ``"factored"``: ``"pointwise"`` whose first layer reads each attribute of an integer-coded cell (kind, colour,
  state) on its own; FiLM conditions that layer only and the second layer combines the attributes (on
  mmrl/GoTo-5x5-v0 it found held-out colour/kind pairs far more often than the encoders above).
* ``"factored_words"``: ``"factored"`` whose attribute groups are each conditioned on the words they attend to
  (the mmrl/VisualQuery-* preset, with a pooled read-out: held-out colour/kind questions of VisualQuery-v0
  answered at 0.95, against 0.49 with ``"pointwise"``).
* ``"factored_match"``: ``"factored_words"`` whose map never sees the instruction and two attributes at once: the
  first layer stays unconditioned and each attribute group adds a few match scores against the words it attends
  to, which the second layer combines (the preset of PickUp-v0; on VisualQuery-Exists, whose read-out pools the
  map, held-out combinations 0.915 against 0.775 with ``"factored_words"``, median of 3 seeds).
* ``"factored_locate"``: ``"factored_match"`` whose scores are each a softmax over the map (where the colour
  named is), so none says which word was named without saying where (the navigation preset of the 5x5 and 8x8
  rooms: held-out combinations of GoTo-5x5, PickUp-5x5 and GoTo-v0 0.94, 0.975 and 0.95, median of 3 seeds).
* ``"factored_sink"``: ``"factored_locate"`` whose softmax scores the floor (empty, unseen and agent cells, all
  coded red) with a learned constant, so it no longer answers "red" (the GoTo-12x12 preset).
* ``"factored_bilinear"``: ``"factored_match"`` whose scores have no part from the words alone (``W (gamma(words)
  * x)``), unnormalised, so a pooled read-out still counts (the preset of VisualQuery-Count and -Exists: held-out
  combinations 0.955 and 0.925, median of 3 seeds, against 0.88 and 0.915 with ``"factored_match"``).

:func:`build_image_encoder` builds one, with every convolution ``image_channels`` wide if asked (BabyAI 1.1 uses
128 channels). :func:`resolve_image_encoder` turns ``"auto"`` into a concrete name: ``"factored"`` for an
integer-coded grid whose cells are embedded (MiniGrid's symbolic view; :data:`AUTO_GRID_CHANNELS` wide unless
``image_channels`` is given), else ``"patch"`` when the smaller image side is below :data:`AUTO_NATURE_MIN_SIDE`
(64) pixels, otherwise ``"nature"``.
"""

from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import torch
from torch import nn

from mmrl.extractor.cell_embedding import AGENT_KIND, EMPTY_KINDS, CellEmbedding

#: Smallest image side for which ``image_encoder="auto"`` picks the Nature CNN (Atari frames are 84x84).
AUTO_NATURE_MIN_SIDE = 64
#: Width ``image_encoder="auto"`` gives the ``"factored"`` encoder it picks for embedded grids (mmrl's room presets).
AUTO_GRID_CHANNELS = 48
#: Smallest image side the Nature CNN accepts (8x8 stride 4, 4x4 stride 2, 3x3 stride 1).
NATURE_MIN_SIDE = 36

#: A FiLM modulation of one stage: ``(gamma_BC11, beta_BC11)``, shaped to broadcast over ``feature_map_BCHW``.
Modulation = tuple[torch.Tensor, torch.Tensor]


class FiLMStage(NamedTuple):
    """A stage FiLM modulates (see :meth:`ImageEncoder.film_stages`).

    Attributes:
        channels: The stage's output channels.
        groups: Consecutive, equal channel groups that each read one attribute of a cell (1: the stage reads whole
            cells or pixels). Each group is then conditioned on the words it attends to, not on the whole sentence.
    """

    channels: int
    groups: int = 1


def _modulate(feature_map_BCHW: torch.Tensor, modulation: Modulation | None) -> torch.Tensor:
    """Applies ``gamma * x + beta`` channel-wise (FiLM) when a modulation is given."""
    if modulation is None:
        return feature_map_BCHW
    gamma_BC11, beta_BC11 = modulation
    return torch.addcmul(beta_BC11, feature_map_BCHW, gamma_BC11)


class InputConv2d(nn.Conv2d):
    """The ``Conv2d`` that sees the raw image: a constant input scale (e.g. 1/255) is folded into its weights.

    ``conv(x * s) == conv_{W * s}(x)``, so scaling the few weights instead of the whole image batch gives the same
    outputs and gradients while saving one pass over the images in every forward (SB3's own ``x / 255`` is such a
    pass, see :func:`mmrl.extractor.policy_kwargs`). The state dict is that of a plain ``Conv2d``.
    """

    input_scale: float = 1.0

    def forward(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        if self.input_scale == 1.0:
            return super().forward(image_BCHW)
        return self._conv_forward(image_BCHW, self.weight * self.input_scale, self.bias)


class ImageEncoder(nn.Module):
    """Base class: a stack of stages turning ``image_BCHW`` into ``feature_map_BCHW``.

    Subclasses fill :attr:`stages` and :attr:`stage_channels` and set :attr:`final_activation`. After every stage
    the optional FiLM modulation is applied, then :attr:`stage_activation` (ReLU for plain CNNs, identity for the
    residual IMPALA stacks, whose output feeds the next stack un-rectified), and :attr:`final_activation` at the end.
    The first convolution, the one applied to the image, is an :class:`InputConv2d`, so :attr:`input_scale` can be
    folded into it.

    Args:
        image_shape: ``(channels, height, width)`` of the channel-first input.
    """

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.register_module("cell_embedding", None)  # set by :meth:`embed_cells` for integer-coded grids
        self.stages = nn.ModuleList()
        self.stage_channels: list[int] = []
        self.stage_activation: nn.Module = nn.ReLU()
        self.final_activation: nn.Module = nn.Identity()
        #: 0: FiLM modulates every stage but the stem; n >= 1: the stem only, in n groups each conditioned on the
        #: words it attends to (1: one group, the sentence vector). See :meth:`film_stages`.
        self.film_stem_groups = 0

    @property
    def input_scale(self) -> float:
        """Factor applied to the input image (by folding it into the first convolution's weights)."""
        return self._input_conv().input_scale

    @input_scale.setter
    def input_scale(self, scale: float) -> None:
        self._input_conv().input_scale = float(scale)

    def _input_conv(self) -> InputConv2d:
        first = next((module for module in self.modules() if isinstance(module, InputConv2d)), None)
        assert first is not None, f"{type(self).__name__} must build its first convolution as an InputConv2d"
        return first

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the feature map, from one dummy forward pass."""
        with torch.no_grad():
            return tuple(self.trunk(torch.zeros(1, *self.image_shape)).shape[1:])  # type: ignore[return-value]

    def film_stages(self) -> list[FiLMStage | None]:
        """The stages a FiLM fusion modulates, ``None`` for a stage it leaves alone.

        As in BabyAI, every stage but the stem (the stage that reads the raw image; a one-stage encoder's only stage
        is modulated). An encoder whose first stage reads one cell attribute per channel group sets
        :attr:`film_stem_groups`: FiLM then conditions only that stage, and the later stages, left alone, combine
        the attributes.
        """
        if self.film_stem_groups:
            stem = FiLMStage(self.stage_channels[0], self.film_stem_groups)
            return [stem, *([None] * (len(self.stage_channels) - 1))]
        if len(self.stage_channels) == 1:
            return [FiLMStage(self.stage_channels[0])]
        return [None, *(FiLMStage(channels) for channels in self.stage_channels[1:])]

    def trunk(self, image_BCHW: torch.Tensor, modulations: list[Modulation | None] | None = None) -> torch.Tensor:
        """Encodes images into a feature map, FiLM-modulating each stage when ``modulations`` is given.

        Args:
            image_BCHW: Float images, channel first.
            modulations: One ``(gamma_BC11, beta_BC11)`` or ``None`` per stage, or ``None`` for no modulation.

        Returns:
            ``feature_map_BCHW``.
        """
        features = image_BCHW if self.cell_embedding is None else self.cell_embedding(image_BCHW)
        for index, stage in enumerate(self.stages):
            features = stage(features)
            features = _modulate(features, None if modulations is None else modulations[index])
            features = self.stage_activation(features)
        return self.final_activation(features)

    def forward(self, image_BCHW: torch.Tensor) -> torch.Tensor:
        return self.trunk(image_BCHW)

    def embed_cells(self, categories: tuple[int, ...], blank_kinds: int = 0) -> ImageEncoder:
        """Puts a :class:`CellEmbedding` in front: the encoder, built for ``(dim, H, W)``, then reads integer-coded
        grids of ``len(categories)`` channels (``blank_kinds``: see :class:`CellEmbedding`). Returns ``self``."""
        dim, height, width = self.image_shape
        self.cell_embedding = CellEmbedding(categories, dim, blank_kinds=blank_kinds)
        self.image_shape = (len(categories), height, width)
        return self


class SmallCNN(ImageEncoder):
    """Cheap three-layer CNN for small images whose strides adapt to the image size.

    With ``n`` the number of halvings that bring the smaller side down to at most ``target_side`` pixels (capped at
    3): ``n = 0`` uses three 3x3 stride-1 convolutions (a MiniGrid 7x7 view keeps one feature per cell);
    ``n = 1`` starts with a 2x2 stride-2 patch convolution; ``n >= 2`` with a 4x4 stride-4 patch convolution (a
    "patchify" stem as in ConvNeXt, Liu et al., 2022), followed for ``n = 3`` by a 4x4 stride-2 convolution; the
    remaining layers are 3x3 stride 1. A 56x56 image thus becomes a 7x7 map for about 1.0 M multiply-adds (the
    Nature CNN needs 2.2 M).

    Args:
        image_shape: ``(channels, height, width)``.
        channels: Output channels of the three conv layers.
        target_side: Largest side of the output map the strides aim for.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], channels: tuple[int, int, int] = (16, 32, 32), target_side: int = 8
    ) -> None:
        super().__init__(image_shape)
        side = min(image_shape[1:])
        n_halvings = min(3, math.ceil(math.log2(side / target_side))) if side > target_side else 0
        first_channels, second_channels, third_channels = channels
        in_channels = image_shape[0]
        if n_halvings == 0:
            first = InputConv2d(in_channels, first_channels, kernel_size=3, padding=1)
        else:
            patch = 2 if n_halvings == 1 else 4
            first = InputConv2d(in_channels, first_channels, kernel_size=patch, stride=patch)
        if n_halvings == 3:
            second = nn.Conv2d(first_channels, second_channels, kernel_size=4, stride=2, padding=1)
        else:
            second = nn.Conv2d(first_channels, second_channels, kernel_size=3, padding=1)
        third = nn.Conv2d(second_channels, third_channels, kernel_size=3, padding=1)
        self.stages.extend([first, second, third])
        self.stage_channels.extend(channels)


class PatchCNN(ImageEncoder):
    """Two-layer CNN: a patch embedding aligned to grid tiles, then one 3x3 convolution for neighbourhood context.

    The stem is a ``p x p`` convolution with stride ``p`` (a "patchify" stem as in ViT and ConvNeXt, Liu et al.,
    2022), with ``p`` the smallest power of two (at most 8) that brings the smaller image side down to
    ``target_side`` pixels or fewer: a 56x56 gridworld render (7x7 tiles of 8 px, mmrl's and MiniGrid's
    ``RGBImgPartialObsWrapper`` default) gives one feature vector per tile, a 7x7 symbolic view (``p = 1``) one per
    cell. A 3x3 stride-1 convolution then mixes each cell with its neighbours. For a 56x56 image this is
    0.27 M multiply-adds (``"small"``: 1.0 M, Nature CNN: 2.2 M).

    Args:
        image_shape: ``(channels, height, width)``.
        channels: Output channels of the stem and of the 3x3 layer.
        target_side: Largest smaller-side of the output map the stem aims for.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], channels: tuple[int, int] = (16, 16), target_side: int = 8
    ) -> None:
        super().__init__(image_shape)
        side = min(image_shape[1:])
        patch = min(8, 2 ** math.ceil(math.log2(side / target_side))) if side > target_side else 1
        stem_channels, context_channels = channels
        stem = (
            InputConv2d(image_shape[0], stem_channels, kernel_size=3, padding=1)
            if patch == 1
            else InputConv2d(image_shape[0], stem_channels, kernel_size=patch, stride=patch)
        )
        self.stages.extend([stem, nn.Conv2d(stem_channels, context_channels, kernel_size=3, padding=1)])
        self.stage_channels.extend(channels)


class PointwiseCNN(ImageEncoder):
    """Per-cell network: 1x1 convolutions only, so every position is encoded on its own.

    For scenes seen whole where the question is about what is in them, not where (mmrl/VisualQuery-*): each cell
    gets the same small MLP, the instruction can FiLM-modulate every layer after the first, and the fusion pools
    the cells (``image_pool="sum"`` counts them). Neighbouring cells never mix, so a count is never blurred.

    Args:
        image_shape: ``(channels, height, width)``.
        channels: Output channels of each 1x1 layer.
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...] = (64, 64)) -> None:
        super().__init__(image_shape)
        in_channels = image_shape[0]
        for index, out_channels in enumerate(channels):
            conv_class = InputConv2d if index == 0 else nn.Conv2d
            self.stages.append(conv_class(in_channels, out_channels, kernel_size=1))
            in_channels = out_channels
        self.stage_channels.extend(channels)


class FactoredCNN(PointwiseCNN):
    """Per-cell network whose first layer reads each cell attribute on its own (kind, colour, state).

    On an integer-coded grid, the cell embedding keeps one vector per attribute (concatenated, not summed) and the
    first 1x1 layer is grouped by attribute, so each of its channels is a function of one attribute. FiLM conditions
    that layer only, from the instruction's sentence vector (does this colour match the colour named?), and the
    second layer, left alone, combines the attributes (colour *and* kind match). A combination of attributes never
    seen together in training is then read from features that each were. (Modulating the second layer as well let
    the instruction reach colour-kind pairs directly: on mmrl/GoTo-5x5-v0 the held-out combinations fell from 0.97
    to 0.58, median of 3 seeds.) On pictures it is :class:`PointwiseCNN`.

    Args:
        image_shape: ``(channels, height, width)``.
        channels: Output channels of each 1x1 layer (the first is rounded up to a multiple of the attributes).
    """

    #: Whether each attribute group is conditioned on the words it attends to (:class:`FactoredWordsCNN`).
    words_per_attribute = False

    def embed_cells(self, categories: tuple[int, ...], blank_kinds: int = 0) -> ImageEncoder:
        dim, height, width = self.image_shape
        n_attributes = len(categories)
        first_channels = -(-self.stage_channels[0] // n_attributes) * n_attributes
        self.cell_embedding = CellEmbedding(categories, dim, combine="concat", blank_kinds=blank_kinds)
        self.stages[0] = InputConv2d(n_attributes * dim, first_channels, kernel_size=1, groups=n_attributes)
        if len(self.stages) > 1:
            second = self.stages[1]
            assert isinstance(second, nn.Conv2d)
            self.stages[1] = nn.Conv2d(first_channels, second.out_channels, kernel_size=1)
        self.stage_channels[0] = first_channels
        self.image_shape = (n_attributes, height, width)
        self.film_stem_groups = n_attributes if self.words_per_attribute else 1
        return self


class FactoredWordsCNN(FactoredCNN):
    """:class:`FactoredCNN` whose attribute groups are each FiLM-conditioned on the words they attend to.

    Each group of the first layer (kind, colour, state) has its own learned query over the instruction's words
    (:class:`~mmrl.extractor.fusion.AttributeFiLM`), so the colour group can be modulated by the colour word alone
    and a kind word never shapes the colour features. On mmrl/PickUp-5x5-v0 this found held-out colour/kind
    combinations more often than the sentence vector of ``"factored"`` (0.835 against 0.665, median of 3 seeds), at
    a lower success on the training split (0.945 against 0.965); on mmrl/GoTo-5x5-v0 less often (benchmarks/
    RESULTS.md, "The 5x5 preset"). On pictures it is :class:`PointwiseCNN`.
    """

    words_per_attribute = True


class FactoredMatchCNN(FactoredWordsCNN):
    """:class:`FactoredWordsCNN` in which the instruction reaches the cells only through per-attribute match scores.

    The first layer's attribute groups stay unconditioned (what is in the cell, for navigation), and each group adds
    :attr:`match_channels` channels read from its own FiLM-modulated features alone: a function of one cell
    attribute and the words that group attends to ("is this cell's colour the colour named?"). The second layer
    combines the groups' scores ("colour *and* kind match"). A colour/kind pair never named in training then gives
    scores each seen in training, since no channel of the map sees the instruction and two attributes at once. On
    mmrl/PickUp-5x5-v0 the held-out combinations rose from 0.83 (``"factored"``) to 0.965 and 0.95 came after 40k
    frames instead of 70k; on mmrl/GoTo-5x5-v0 the worst of 3 seeds rose from 0.555 to 0.865, the median fell from
    0.93 to 0.885 (benchmarks/RESULTS.md, "The 5x5 preset"); on mmrl/Sequence-v0, from a cloned start, the
    held-out combinations rose from 0.245 to 0.73 (median of 3 seeds). On pictures it is :class:`PointwiseCNN`.

    Example:
        >>> import mmrl
        >>> kwargs = mmrl.policy_kwargs(image_encoder="factored_match", fusion="film", image_channels=48)
    """

    #: Match channels of each attribute group.
    match_channels = 4
    #: Whether each score is a softmax over the map's cells (:class:`FactoredLocateCNN`).
    scores_over_map = False
    #: Whether that softmax scores empty and unseen cells and the agent's own with one learned logit per match
    #: channel, whatever the words (:class:`FactoredSinkCNN`).
    floor_sink = False
    #: Whether a score keeps its part from the words alone, ``W beta(words)`` (:class:`FactoredBilinearCNN`: no).
    scores_keep_word_offset = True

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...] = (64, 64)) -> None:
        super().__init__(image_shape, channels)
        self.register_module("match", None)  # set by :meth:`embed_cells`

    def embed_cells(self, categories: tuple[int, ...], blank_kinds: int = 0) -> ImageEncoder:
        super().embed_cells(categories, blank_kinds)
        groups = len(categories)
        first_channels = self.stage_channels[0]
        assert len(self.stages) == 2, "the match scores feed the second layer"
        self.match = nn.Conv2d(first_channels, groups * self.match_channels, kernel_size=1, groups=groups)
        second = self.stages[1]
        assert isinstance(second, nn.Conv2d)
        self.stages[1] = nn.Conv2d(first_channels + groups * self.match_channels, second.out_channels, kernel_size=1)
        if self.floor_sink:
            self.floor_logit_C = nn.Parameter(torch.zeros(groups * self.match_channels))
        return self

    def trunk(self, image_BCHW: torch.Tensor, modulations: list[Modulation | None] | None = None) -> torch.Tensor:
        if self.match is None or self.cell_embedding is None:
            return super().trunk(image_BCHW, modulations)
        cells_BCHW = self.stages[0](self.cell_embedding(image_BCHW))
        modulation = None if modulations is None else modulations[0]
        if modulation is not None and not self.scores_keep_word_offset:
            conditioned_BCHW = cells_BCHW * modulation[0]  # gamma(words) * x: no part from the words alone
        else:
            conditioned_BCHW = _modulate(cells_BCHW, modulation)
        scores_BCHW = self.match(conditioned_BCHW)
        if self.scores_over_map:
            logits_BCN = scores_BCHW.flatten(2)
            if self.floor_sink:
                kinds_B1HW = image_BCHW[:, :1]
                floor_B1N = ((kinds_B1HW < EMPTY_KINDS) | (kinds_B1HW == AGENT_KIND)).flatten(2)
                logits_BCN = torch.where(floor_B1N, self.floor_logit_C.view(1, -1, 1), logits_BCN)
            scores_BCHW = logits_BCN.softmax(dim=-1).view_as(scores_BCHW)
        features = self.stage_activation(torch.cat([cells_BCHW, scores_BCHW], dim=1))
        features = self.stage_activation(
            _modulate(self.stages[1](features), None if modulations is None else modulations[1])
        )
        return self.final_activation(features)


class FactoredLocateCNN(FactoredMatchCNN):
    """:class:`FactoredMatchCNN` whose match scores are each a softmax over the map: where the attribute named is.

    A match score is ``W (gamma(words) * x + beta(words))``; its part ``W beta(words)``, the same at every cell,
    tells the second layer *which* colour was named without saying where it is, and a detector of one colour/kind
    pair can still form on it. Normalised over the cells, any part shared by every cell cancels: on a map where no
    cell stands out the scores are the same whatever was named. For navigation, where the policy needs where the
    named object is: held-out colour/kind pairs found, median of 3 seeds, mmrl/GoTo-5x5-v0 0.94 (0.885 with
    :class:`FactoredMatchCNN`), mmrl/PickUp-5x5-v0 0.975 (0.965), mmrl/GoTo-v0 0.95 (0.825), with 0.95 success after
    20k, 50k and 200k frames (benchmarks/RESULTS.md, "The 5x5 preset" and the status table). Not for counting over a
    pooled read-out: the scores of three red keys share what one red key would get (mmrl/VisualQuery-Count-v0, seed
    0: 0.845 greedy against 1.00; VisualQuery-Exists seed 0: held-out combinations 0.67 against 0.915). On pictures
    it is :class:`PointwiseCNN`.

    Example:
        >>> import mmrl
        >>> kwargs = mmrl.policy_kwargs(image_encoder="factored_locate", fusion="film", image_channels=48)
    """

    scores_over_map = True


class FactoredSinkCNN(FactoredLocateCNN):
    """:class:`FactoredLocateCNN` whose softmax scores the floor with a learned constant, not by its colour.

    MiniGrid codes empty and unseen cells and the agent's own cell with colour 0, red, so the score of "red" spreads
    over the floor and a red object does not stand out. Here those cells enter the softmax with one learned logit
    per match channel, whatever the words: the floor stays the reference for "nothing here matches" but no longer
    answers "red". On mmrl/GoTo-12x12-v0, held-out combinations 0.935 / 0.895 / 0.87 on seeds 0-2 against 0.70 /
    0.895 / 0.89 (seed 0's misses there were time-outs on the red key; benchmarks/RESULTS.md). Unlike
    ``blank_empty_cells`` the cell features stay as they are. On pictures it is :class:`PointwiseCNN`.

    Example:
        >>> import mmrl
        >>> kwargs = mmrl.policy_kwargs(image_encoder="factored_sink", fusion="film", image_channels=48)
    """

    floor_sink = True


class FactoredBilinearCNN(FactoredMatchCNN):
    """:class:`FactoredMatchCNN` whose match scores have no part from the words alone: ``W (gamma(words) * x)``.

    A score of :class:`FactoredMatchCNN` is ``W (gamma(words) * x + beta(words))``; its part ``W beta(words)`` is the
    same at every cell and tells the second layer which word was named, on which a detector of one colour/kind pair
    can form. Here the score is bilinear in the cell's features and the words, so it is zero wherever the cell's
    group features are, and it says which word was named only through how the cell answers it. Unlike
    :class:`FactoredLocateCNN` it is not normalised over the map, so a pooled read-out still counts.
    Held-out combinations, median of 3 seeds: mmrl/VisualQuery-Count-v0 0.955 (0.88 with :class:`FactoredMatchCNN`,
    whose misses were all "red keys", the colour MiniGrid's codes give every empty cell), mmrl/VisualQuery-Exists-v0
    0.925 (0.915; its worst seed 0.85 against 0.615) (benchmarks/RESULTS.md, "VisualQuery: encoders and held-out
    combinations"). On pictures it is :class:`PointwiseCNN`.

    Example:
        >>> import mmrl
        >>> kwargs = mmrl.policy_kwargs(image_encoder="factored_bilinear", fusion="film", image_pool="max_sum")
    """

    scores_keep_word_offset = False


class NatureCNN(ImageEncoder):
    """The convolutional part of the DQN network (Mnih et al., 2015): 32x8x8/4, 64x4x4/2, 64x3x3/1.

    Raises:
        ValueError: If the image is smaller than :data:`NATURE_MIN_SIDE` pixels on a side.
    """

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__(image_shape)
        if min(image_shape[1:]) < NATURE_MIN_SIDE:
            raise ValueError(
                f"image_encoder='nature' needs images of at least {NATURE_MIN_SIDE}x{NATURE_MIN_SIDE} pixels, got "
                f"(C, H, W)={tuple(image_shape)}; use image_encoder='patch', 'small' or 'auto' for small images"
            )
        in_channels = image_shape[0]
        for out_channels, kernel_size, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            conv_class = InputConv2d if not self.stages else nn.Conv2d
            self.stages.append(conv_class(in_channels, out_channels, kernel_size=kernel_size, stride=stride))
            self.stage_channels.append(out_channels)
            in_channels = out_channels


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 convolutions (IMPALA, Espeholt et al., 2018)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv_out = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, feature_map_BCHW: torch.Tensor) -> torch.Tensor:
        hidden_BCHW = self.conv_in(torch.relu(feature_map_BCHW))
        return feature_map_BCHW + self.conv_out(torch.relu(hidden_BCHW))


class ImpalaStack(nn.Sequential):
    """One IMPALA stack: 3x3 conv, 3x3 max-pool with stride 2, two residual blocks.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        takes_image: Whether this is the first stack (its conv is then an :class:`InputConv2d`).
    """

    def __init__(self, in_channels: int, out_channels: int, takes_image: bool = False) -> None:
        conv_class = InputConv2d if takes_image else nn.Conv2d
        super().__init__(
            conv_class(in_channels, out_channels, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ResidualBlock(out_channels),
            ResidualBlock(out_channels),
        )


class ImpalaCNN(ImageEncoder):
    """The IMPALA residual encoder (Espeholt et al., 2018) with stacks of 16, 32, 32 channels and a final ReLU."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...] = (16, 32, 32)) -> None:
        super().__init__(image_shape)
        self.stage_activation = nn.Identity()
        self.final_activation = nn.ReLU()
        in_channels = image_shape[0]
        for out_channels in channels:
            self.stages.append(ImpalaStack(in_channels, out_channels, takes_image=not self.stages))
            self.stage_channels.append(out_channels)
            in_channels = out_channels


#: Registry of image encoder names to classes (``"auto"`` is resolved by :func:`resolve_image_encoder`).
IMAGE_ENCODERS: dict[str, type[ImageEncoder]] = {
    "patch": PatchCNN,
    "small": SmallCNN,
    "nature": NatureCNN,
    "impala": ImpalaCNN,
    "pointwise": PointwiseCNN,
    "factored": FactoredCNN,
    "factored_words": FactoredWordsCNN,
    "factored_match": FactoredMatchCNN,
    "factored_locate": FactoredLocateCNN,
    "factored_sink": FactoredSinkCNN,
    "factored_bilinear": FactoredBilinearCNN,
}
IMAGE_ENCODER_CHOICES = ("auto", *IMAGE_ENCODERS)


def build_image_encoder(name: str, image_shape: tuple[int, int, int], channels: int | None = None) -> ImageEncoder:
    """Builds the concrete encoder ``name`` (see :func:`resolve_image_encoder`) for ``(C, H, W)`` images.

    Args:
        name: A key of :data:`IMAGE_ENCODERS`.
        image_shape: ``(channels, height, width)`` of what the encoder reads (cell vectors for embedded grids).
        channels: Width of every convolution (``None``: the encoder's own widths, e.g. 16 and 16 for ``"patch"``).
            BabyAI 1.1 (Hui et al., 2020) uses 128 channels on MiniGrid's 7x7 views.

    Raises:
        ValueError: If ``channels`` is given for ``"nature"``, whose widths are fixed.
    """
    encoder_class = IMAGE_ENCODERS[name]
    if channels is None:
        return encoder_class(image_shape)
    if encoder_class is NatureCNN:
        raise ValueError(
            "image_encoder='nature' has the fixed widths 32, 64, 64; leave image_channels unset or use "
            "image_encoder='small', 'patch' or 'impala'"
        )
    n_stages = len(inspect.signature(encoder_class).parameters["channels"].default)
    return encoder_class(image_shape, channels=(channels,) * n_stages)  # type: ignore[call-arg]


def resolve_image_encoder(name: str, image_shape: tuple[int, int, int], grid: bool = False) -> str:
    """The concrete encoder name for ``name``: ``"auto"`` becomes ``"factored"``, ``"patch"`` or ``"nature"``.

    ``"auto"`` is ``"factored"`` on an integer-coded grid whose cells are embedded (``grid``): each cell attribute
    read on its own, the instruction conditioning that first layer (with ``fusion="auto"``, which is FiLM there).
    It is the network of mmrl's room presets, and the only one measured that solved BabyAI-GoToLocal-v0 through
    ``mmrl.wrappers.auto_wrap`` (benchmarks/RESULTS.md, "Other people's envs"). On pictures it is ``"patch"``
    below :data:`AUTO_NATURE_MIN_SIDE` pixels on the smaller side and ``"nature"`` from there on.

    Args:
        name: One of :data:`IMAGE_ENCODER_CHOICES`.
        image_shape: ``(channels, height, width)``.
        grid: Whether the image is an integer-coded grid whose cells are embedded.

    Raises:
        ValueError: For an unknown name.
    """
    if name == "auto":
        if grid:
            return "factored"
        return "nature" if min(image_shape[1:]) >= AUTO_NATURE_MIN_SIDE else "patch"
    if name not in IMAGE_ENCODERS:
        raise ValueError(f"unknown image_encoder {name!r}; valid choices: {', '.join(IMAGE_ENCODER_CHOICES)}")
    return name
