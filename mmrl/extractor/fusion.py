"""Fusion of image feature maps, instruction encodings and other vectors into one feature vector.

A fusion receives, per forward pass,

* ``image_maps``: one ``feature_map_BCHW`` per image key (the output of the image encoder's trunk),
* ``texts``: one :class:`~mmrl.extractor.text_encoders.TextEncoding` per text key,
* ``vectors``: one ``vector_BD`` per other key (already encoded by a small MLP),

and returns ``fused_BF``; the extractor's head projects it to ``features_dim``. Fusions that condition the image on
the instruction use the *instruction vector*: the concatenation of the sentence vectors of all text keys.
FiLM acts inside the image encoder, so a fusion may also return per-stage modulations from
:meth:`Fusion.modulations`, which the extractor passes to the image trunks before calling :meth:`Fusion.forward`.

Fusions (see :data:`FUSIONS`):

* ``"concat"``: concatenation of the flattened maps, sentence vectors and vectors.
* ``"sum"``, ``"product"``: every key (modality) is projected to ``fusion_dim`` (ReLU for the sum, linear for the
  element-wise product) and the projections are added / multiplied (Chaplot et al. (2018) compare both).
* ``"weighted"``: ``z = sum_k softmax(w)_k x_k`` over the projected modalities, with learned logits ``w``.
* ``"gated"``: gated attention (Chaplot et al., 2018, "Gated-Attention Architectures for Task-Oriented Language
  Grounding"): ``sigmoid(W t)`` gates the channels of each image map, which is then flattened.
* ``"film"``: FiLM (Perez et al., 2018, "FiLM: Visual Reasoning with a General Conditioning Layer"), as in BabyAI
  (Chevalier-Boisvert et al., 2019): each stage of the image encoder after the stem is modulated by
  ``(1 + gamma(t), beta(t))`` computed from the instruction vector ``t``; the modulated map is flattened.
* ``"cross_attention"``: co-attention (Lu et al., 2019, ViLBERT): image patches (feature-map positions plus learned
  position embeddings) attend to the instruction tokens and the tokens attend to the patches (multi-head scaled
  dot-product attention, Vaswani et al., 2017); both streams are mean-pooled (padding masked) and concatenated with
  the flattened maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch import nn

from mmrl.extractor.image_encoders import FiLMStage, Modulation
from mmrl.extractor.limits import check_layer_parameters
from mmrl.extractor.text_encoders import TextEncoding

#: How a fusion turns an image feature map into a vector: ``"none"`` flattens it (every position keeps its own
#: features: where things are, what navigation needs); the others pool each channel over all positions (what is
#: in the scene, wherever it is): ``"max"`` (BabyAI 1.1, Hui et al. 2020, max-pools after its FiLM layers),
#: ``"mean"``, ``"sum"`` (divided by ``sqrt(H * W)``: linear in the number of objects, so it counts, at the scale of
#: a few cells, which keeps the policy's tanh layer out of saturation), and ``"max_sum"`` (both, concatenated:
#: max-pooling learns "is there" fastest, the sum counts).
IMAGE_POOLS = ("none", "max", "mean", "sum", "max_sum")


def read_out(feature_map_BCHW: torch.Tensor, pool: str) -> torch.Tensor:
    """``feature_map_BCHW`` as ``(B, C*H*W)`` (``pool="none"``), pooled over positions to ``(B, C)``, or
    ``(B, 2C)`` for ``"max_sum"`` (see :data:`IMAGE_POOLS`)."""
    if pool == "none":
        return feature_map_BCHW.flatten(1)
    if pool == "max":
        return feature_map_BCHW.amax(dim=(2, 3))
    if pool == "mean":
        return feature_map_BCHW.mean(dim=(2, 3))
    scaled_sum_BC = feature_map_BCHW.sum(dim=(2, 3)) * (feature_map_BCHW.shape[2] * feature_map_BCHW.shape[3]) ** -0.5
    if pool == "sum":
        return scaled_sum_BC
    return torch.cat([feature_map_BCHW.amax(dim=(2, 3)), scaled_sum_BC], dim=1)


def read_out_width(map_shape: tuple[int, ...], pool: str) -> int:
    """Width of :func:`read_out` for a ``(C, H, W)`` map."""
    channels, height, width = map_shape
    return channels * height * width if pool == "none" else 2 * channels if pool == "max_sum" else channels


class Fusion(nn.Module):
    """Base class of the fusions.

    Args:
        map_shapes: ``(C, H, W)`` of the feature map of each image key.
        stage_channels: Per image key and encoder stage, what FiLM modulates, ``None`` for a stage it leaves alone
            (:meth:`~mmrl.extractor.image_encoders.ImageEncoder.film_stages`).
        text_dims: Sentence-vector width of each text key.
        vector_dims: Width of each encoded other key.
        fusion_dim: Width of the projections / attention model where the fusion has one.
        image_pool: How each image map becomes a vector (:data:`IMAGE_POOLS`).
    """

    #: Whether the fusion needs at least one image key and one text key.
    needs_image_and_text = False

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
    ) -> None:
        super().__init__()
        if self.needs_image_and_text and (not map_shapes or not text_dims):
            name = next((key for key, value in FUSIONS.items() if value is type(self)), type(self).__name__)
            raise ValueError(
                f"fusion={name!r} conditions images on text and needs at least one image key and one text key, got "
                f"{len(map_shapes)} image key(s) and {len(text_dims)} text key(s); use fusion='concat' otherwise"
            )
        if image_pool not in IMAGE_POOLS:
            raise ValueError(f"unknown image_pool {image_pool!r}; valid choices: {', '.join(IMAGE_POOLS)}")
        self.map_shapes = [tuple(shape) for shape in map_shapes]
        self.instruction_dim = sum(text_dims)
        self.image_pool = image_pool
        #: Width of each image key's read-out (:meth:`read_out`).
        self.read_out_dims = [read_out_width(shape, image_pool) for shape in self.map_shapes]

    def read_out(self, feature_map_BCHW: torch.Tensor) -> torch.Tensor:
        """One image key's map as a vector: flattened (``image_pool="none"``) or pooled over positions."""
        return read_out(feature_map_BCHW, self.image_pool)

    def modulations(self, texts: list[TextEncoding]) -> list[list[Modulation | None] | None] | None:
        """Per image key, one FiLM modulation or ``None`` per encoder stage (``None`` overall: no modulation)."""
        return None

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError


def _concatenate(parts_BF: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(parts_BF, dim=1)``, without copying a single part."""
    return parts_BF[0] if len(parts_BF) == 1 else torch.cat(parts_BF, dim=1)


def _instruction(texts: list[TextEncoding]) -> torch.Tensor:
    """Concatenated sentence vectors of all text keys, ``instruction_BT``."""
    return _concatenate([text.sentence_BD for text in texts])


class ConcatFusion(Fusion):
    """Concatenates flattened image maps, sentence vectors and other vectors."""

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        parts = [self.read_out(feature_map) for feature_map in image_maps]
        parts += [text.sentence_BD for text in texts]
        # A lone sentence vector may be the text memo's own tensor: copy it rather than hand it out.
        return torch.cat(parts + vectors, dim=1) if texts else _concatenate(parts + vectors)


class _ProjectedFusion(Fusion):
    """Projects every modality (key) to ``fusion_dim``; subclasses combine the projections."""

    projection_activation: type[nn.Module] = nn.ReLU

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
    ) -> None:
        super().__init__(map_shapes, stage_channels, text_dims, vector_dims, fusion_dim, image_pool)
        input_dims = self.read_out_dims + list(text_dims) + list(vector_dims)
        for input_dim in input_dims:
            check_layer_parameters("a fusion projection (flattened input -> fusion_dim)", input_dim, fusion_dim)
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(input_dim, fusion_dim), self.projection_activation()) for input_dim in input_dims
        )

    def project(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        """Stacked projections, ``modalities_BMF``."""
        inputs = [self.read_out(feature_map) for feature_map in image_maps] + [text.sentence_BD for text in texts]
        inputs += vectors
        return torch.stack([projection(x) for projection, x in zip(self.projections, inputs, strict=True)], dim=1)


class SumFusion(_ProjectedFusion):
    """Sum of the ReLU projections of all modalities."""

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        return self.project(image_maps, texts, vectors).sum(dim=1)


class ProductFusion(_ProjectedFusion):
    """Element-wise (Hadamard) product of the linear projections of all modalities."""

    projection_activation = nn.Identity

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        return self.project(image_maps, texts, vectors).prod(dim=1)


class WeightedFusion(_ProjectedFusion):
    """``z = sum_k softmax(w)_k x_k`` with one learned logit per modality (initialised equal)."""

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
    ) -> None:
        super().__init__(map_shapes, stage_channels, text_dims, vector_dims, fusion_dim, image_pool)
        self.modality_logits = nn.Parameter(torch.zeros(len(self.projections)))

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        weights_M1 = torch.softmax(self.modality_logits, dim=0).unsqueeze(-1)
        return (self.project(image_maps, texts, vectors) * weights_M1).sum(dim=1)


class GatedAttentionFusion(Fusion):
    """Gated attention (Chaplot et al., 2018): the instruction gates the channels of every image map."""

    needs_image_and_text = True

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
    ) -> None:
        super().__init__(map_shapes, stage_channels, text_dims, vector_dims, fusion_dim, image_pool)
        self.gates = nn.ModuleList(nn.Linear(self.instruction_dim, channels) for channels, _, _ in map_shapes)

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        instruction_BT = _instruction(texts)
        parts = []
        for gate, feature_map_BCHW in zip(self.gates, image_maps, strict=True):
            gate_BC = torch.sigmoid(gate(instruction_BT))
            parts.append(self.read_out(feature_map_BCHW * gate_BC[:, :, None, None]))
        return _concatenate(parts + vectors)


#: Scale of an attribute group's word-attention scores, on top of ``1/sqrt(D)``. With ``1/sqrt(D)`` alone the
#: attention stayed close to uniform over the words and PickUp-5x5's held-out combinations reached 0.78 (seed 0),
#: against 0.79-0.92 in five runs with 4 (benchmarks/RESULTS.md, "The 5x5 preset").
WORD_ATTENTION_SHARPNESS = 4.0


class AttributeFiLM(nn.Module):
    """``(gamma, beta)`` for a stage whose channel groups each read one cell attribute: each group attends over the
    instruction's words with its own learned query and is conditioned on the words it attends to.

    A colour group that attends to the colour word is then modulated by that word alone, so a colour and a kind
    never named together in training still each find their features.

    Args:
        channels: The stage's channels.
        groups: Its attribute groups (``channels`` is a multiple).
        text_dims: Token width of each text key.
    """

    def __init__(self, channels: int, groups: int, text_dims: list[int]) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} attribute groups")
        self.queries = nn.ParameterList(nn.Parameter(torch.randn(groups, dim) * dim**-0.5) for dim in text_dims)
        # SB3's ortho_init zeroes these biases; gamma = 1 + W t + b keeps its 1 outside (see FiLMFusion).
        self.generators = nn.ModuleList(nn.Linear(sum(text_dims), 2 * (channels // groups)) for _ in range(groups))

    def forward(self, texts: list[TextEncoding]) -> Modulation:
        pooled = []
        for text, queries_GD in zip(texts, self.queries, strict=True):
            tokens_BLD, padding_BL = text.tokens_BLD, text.padding_mask_BL
            scale = WORD_ATTENTION_SHARPNESS * tokens_BLD.shape[-1] ** -0.5
            scores_BLG = (tokens_BLD @ queries_GD.T * scale).masked_fill(padding_BL.unsqueeze(-1), -1e9)
            # An all-PAD instruction (a blanked mission) attends to nothing: zero weights, not a uniform mix of PADs.
            weights_BLG = scores_BLG.softmax(dim=1) * (~padding_BL).unsqueeze(-1).to(scores_BLG.dtype)
            pooled.append(torch.einsum("blg,bld->bgd", weights_BLG, tokens_BLD))
        words_BGT = torch.cat(pooled, dim=-1)
        parameters = [generator(words_BGT[:, group]) for group, generator in enumerate(self.generators)]
        gamma_BC = 1.0 + torch.cat([part.chunk(2, dim=1)[0] for part in parameters], dim=1)
        beta_BC = torch.cat([part.chunk(2, dim=1)[1] for part in parameters], dim=1)
        return gamma_BC[..., None, None], beta_BC[..., None, None]


class FiLMFusion(Fusion):
    """FiLM (Perez et al., 2018): per-stage ``(gamma, beta)`` from the instruction modulate the image encoder.

    The encoder says which stages (:meth:`~mmrl.extractor.image_encoders.ImageEncoder.film_stages`): as in
    BabyAI (Chevalier-Boisvert et al., 2019), every stage but the stem, which also skips the largest feature map,
    where modulation costs the most, each conditioned on the sentence vector; only the first stage of
    ``image_encoder="factored"`` on cells; with ``"factored_words"``, each of that stage's attribute groups
    conditioned on the words it attends to (:class:`AttributeFiLM`).
    """

    needs_image_and_text = True

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
    ) -> None:
        super().__init__(map_shapes, stage_channels, text_dims, vector_dims, fusion_dim, image_pool)
        self.stage_layouts = stage_channels
        # Per image key, one linear layer yields [gamma_1, beta_1, gamma_2, beta_2, ...] of its whole-cell stages,
        # with gamma = 1 + W t + b. The 1 is a constant buffer added in forward rather than folded into the bias,
        # because SB3's ``ortho_init`` re-initialises every Linear bias of the extractor to zero (gamma would
        # start at 0).
        self.generators = nn.ModuleDict()
        self.split_sizes: dict[int, list[int]] = {}
        self.attribute_films = nn.ModuleDict()
        for index, layout in enumerate(stage_channels):
            whole = [stage.channels for stage in layout if stage is not None and stage.groups == 1]
            if whole:
                self.generators[str(index)] = nn.Linear(self.instruction_dim, 2 * sum(whole))
                self.split_sizes[index] = [count for count in whole for _ in range(2)]
                offset = torch.cat(
                    [
                        torch.full((size,), float(1 - position % 2))
                        for position, size in enumerate(self.split_sizes[index])
                    ]
                )
                self.register_buffer(f"gamma_offset_{index}", offset, persistent=False)
            for stage_index, stage in enumerate(layout):
                if stage is not None and stage.groups > 1:
                    self.attribute_films[f"{index}_{stage_index}"] = AttributeFiLM(
                        stage.channels, stage.groups, text_dims
                    )

    def modulations(self, texts: list[TextEncoding]) -> list[list[Modulation | None] | None]:
        """Per image key and stage, ``(gamma_BC11, beta_BC11)``, or ``None`` for a stage left alone."""
        instruction_BT = _instruction(texts)
        per_image: list[list[Modulation | None] | None] = []
        for index, layout in enumerate(self.stage_layouts):
            whole: Iterator[Modulation] = iter(())
            if str(index) in self.generators:
                parameters = self.generators[str(index)](instruction_BT) + getattr(self, f"gamma_offset_{index}")
                pieces = parameters.view(*parameters.shape, 1, 1).split(self.split_sizes[index], dim=1)
                whole = iter(zip(pieces[0::2], pieces[1::2], strict=True))
            stages: list[Modulation | None] = []
            for stage_index, stage in enumerate(layout):
                if stage is None:
                    stages.append(None)
                elif stage.groups == 1:
                    stages.append(next(whole))
                else:
                    stages.append(self.attribute_films[f"{index}_{stage_index}"](texts))
            per_image.append(stages)
        return per_image

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        return _concatenate([self.read_out(feature_map) for feature_map in image_maps] + vectors)


class CrossAttentionFusion(Fusion):
    """Co-attention (Lu et al., 2019, ViLBERT): the instruction tokens attend to the image patches and the patches
    attend to the tokens, both at once, each reading the other stream's inputs.

    A patch is a feature-map position: its ``C`` channels plus a learned position embedding (in channel space). A
    token is a per-token output of the text encoder. Attention is multi-head scaled dot-product attention (Vaswani
    et al., 2017) with linear query, key and value maps; padding tokens are never attended to.

    * Text stream: each token queries the patches; ``LayerNorm(W_t token + attended)``, mean-pooled over the real
      tokens. This is where the image's spatial content enters (the keys carry the positions).
    * Image stream: each patch queries the tokens; the patch vectors ``W_p patch + attended`` are mean-pooled over
      the patches, then ``LayerNorm``.

    The output concatenates the flattened feature maps (their layout is what a policy needs to find things; without
    them the pooled summaries did not learn PickUp-5x5 at all) and both pooled vectors.

    The patch-side maps are applied in the ``C``-dimensional channel space instead of to ``fusion_dim``-wide patch
    vectors (a score is ``(W_k^T q) . patch`` rather than ``q . (W_k patch)``, and pooling comes before the linear
    maps): the same function, but no ``B x P x fusion_dim`` tensor is ever built. On a 7x7x16 map a PPO minibatch
    costs about 2x gated attention, where two ``nn.MultiheadAttention`` blocks over projected patches cost 15-20x.

    Args:
        n_heads: Attention heads (``fusion_dim`` must be divisible by it).
        (others): see :class:`Fusion`.
    """

    needs_image_and_text = True

    def __init__(
        self,
        map_shapes: list[tuple[int, int, int]],
        stage_channels: list[list[FiLMStage | None]],
        text_dims: list[int],
        vector_dims: list[int],
        fusion_dim: int,
        image_pool: str = "none",
        n_heads: int = 4,
    ) -> None:
        super().__init__(map_shapes, stage_channels, text_dims, vector_dims, fusion_dim, image_pool)
        if fusion_dim % n_heads:
            raise ValueError(f"fusion_dim={fusion_dim} must be divisible by n_heads={n_heads} for cross_attention")
        self.n_heads = n_heads
        self.fusion_dim = fusion_dim
        self.patch_positions = nn.ParameterList(
            nn.Parameter(0.02 * torch.randn(height * width, channels)) for channels, height, width in map_shapes
        )
        channels = [shape[0] for shape in map_shapes]
        # Patch side, one map per image key (weights (fusion_dim, C)). Keys need no bias: q . b_k is the same for
        # every key of a query, and softmax ignores it. Queries have none either; that only leaves out b_q . k, a
        # learned preference for some tokens shared by all patches.
        self.patch_embeddings = nn.ModuleList(nn.Linear(count, fusion_dim) for count in channels)
        self.patch_queries = nn.ModuleList(nn.Linear(count, fusion_dim, bias=False) for count in channels)
        self.patch_keys = nn.ModuleList(nn.Linear(count, fusion_dim, bias=False) for count in channels)
        self.patch_values = nn.ModuleList(nn.Linear(count, fusion_dim) for count in channels)
        # Token side: every text key's tokens projected to fusion_dim (four maps in one).
        self.token_projections = nn.ModuleList(nn.Linear(text_dim, 4 * fusion_dim) for text_dim in text_dims)
        self.image_norm = nn.LayerNorm(fusion_dim)
        self.token_norm = nn.LayerNorm(fusion_dim)

    def _heads(self, layer: nn.Module) -> torch.Tensor:
        """The weight ``(fusion_dim, C)`` of a patch-side ``nn.Linear`` as ``(H, D/H, C)``."""
        weight_DC = cast(torch.Tensor, layer.weight)
        return weight_DC.view(self.n_heads, -1, weight_DC.shape[1])

    def forward(
        self, image_maps: list[torch.Tensor], texts: list[TextEncoding], vectors: list[torch.Tensor]
    ) -> torch.Tensor:
        n_heads = self.n_heads
        scale = (self.fusion_dim // n_heads) ** -0.5
        patches = [
            feature_map_BCHW.flatten(2).transpose(1, 2) + positions_PC
            for positions_PC, feature_map_BCHW in zip(self.patch_positions, image_maps, strict=True)
        ]
        projected = [
            projection(text.tokens_BLD) for projection, text in zip(self.token_projections, texts, strict=True)
        ]
        tokens_BL4D = projected[0] if len(projected) == 1 else torch.cat(projected, dim=1)
        token_BLD, query_BLD, key_BLD, value_BLD = tokens_BL4D.chunk(4, dim=-1)
        query_BHLd, key_BHLd, value_BHLd = (
            x.unflatten(-1, (n_heads, -1)).transpose(1, 2) for x in (query_BLD, key_BLD, value_BLD)
        )
        padding_mask_BL = torch.cat([text.padding_mask_BL for text in texts], dim=1)
        # Rows without any real token would mask every key (NaN attention): let them attend to the first position.
        ignore_BL = padding_mask_BL.clone()
        ignore_BL[:, 0] &= ~padding_mask_BL.all(dim=1)

        # Text stream: tokens query the patches of every image key (one softmax over all patches).
        scores = [
            torch.einsum("bhlc,bpc->bhlp", torch.einsum("bhld,hdc->bhlc", query_BHLd, self._heads(keys)), patch_BPC)
            for keys, patch_BPC in zip(self.patch_keys, patches, strict=True)
        ]
        attention_BHLP = torch.softmax(torch.cat(scores, dim=-1) * scale, dim=-1)
        seen_BHLd: torch.Tensor | None = None
        for values, patch_BPC, weights_BHLP in zip(
            self.patch_values, patches, attention_BHLP.split([p.shape[1] for p in patches], dim=-1), strict=True
        ):
            read_BHLC = (weights_BHLP.flatten(1, 2) @ patch_BPC).unflatten(1, (n_heads, -1))
            bias_BHLd = weights_BHLP.sum(dim=-1, keepdim=True) * cast(torch.Tensor, values.bias).view(n_heads, 1, -1)
            read_BHLd = torch.einsum("bhlc,hdc->bhld", read_BHLC, self._heads(values))
            seen_BHLd = (read_BHLd if seen_BHLd is None else seen_BHLd + read_BHLd) + bias_BHLd
        assert seen_BHLd is not None  # there is at least one image key
        seen_BLD = seen_BHLd.transpose(1, 2).flatten(2)
        tokens_BLD = self.token_norm(token_BLD + seen_BLD)
        real_BL1 = (~padding_mask_BL).unsqueeze(-1).to(tokens_BLD.dtype)
        pooled_tokens_BD = (tokens_BLD * real_BL1).sum(dim=1) / real_BL1.sum(dim=1).clamp(min=1.0)

        # Image stream: patches query the tokens; mean over the patches of all image keys.
        n_patches = sum(patch_BPC.shape[1] for patch_BPC in patches)
        pooled_patches_BD: torch.Tensor | None = None
        for embeddings, queries, patch_BPC in zip(self.patch_embeddings, self.patch_queries, patches, strict=True):
            keys_BHLC = torch.einsum("bhld,hdc->bhlc", key_BHLd, self._heads(queries))
            # Laid out (B, H, L, P) with the softmax over L: PyTorch's CPU softmax over a short last axis is slow.
            scores_BHLP = torch.einsum("bhlc,bpc->bhlp", keys_BHLC, patch_BPC) * scale
            weights_BHLP = torch.softmax(scores_BHLP.masked_fill(ignore_BL[:, None, :, None], float("-inf")), dim=2)
            read_BD = (weights_BHLP.sum(dim=3).unsqueeze(2) @ value_BHLd).flatten(1)  # sum over patches, then values
            share = patch_BPC.shape[1] / n_patches
            embedded_BD = embeddings(patch_BPC.mean(dim=1)) * share
            pooled_patches_BD = (embedded_BD if pooled_patches_BD is None else pooled_patches_BD + embedded_BD) + (
                read_BD / n_patches
            )
        assert pooled_patches_BD is not None  # there is at least one image key
        image_BD = self.image_norm(pooled_patches_BD)
        maps = [self.read_out(feature_map_BCHW) for feature_map_BCHW in image_maps]
        return torch.cat([*maps, image_BD, pooled_tokens_BD, *vectors], dim=1)


#: Registry of fusion names to classes.
FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "weighted": WeightedFusion,
    "product": ProductFusion,
    "gated": GatedAttentionFusion,
    "film": FiLMFusion,
    "cross_attention": CrossAttentionFusion,
}

#: Names a ``fusion`` argument accepts: the registry's, and ``"auto"`` (:func:`resolve_fusion`).
FUSION_CHOICES = ("auto", *FUSIONS)


def resolve_fusion(name: str, n_image_keys: int, n_text_keys: int, grids: bool = False) -> str:
    """Turns ``"auto"`` into ``"film"`` (embedded grids and text), ``"gated"`` (pictures and text) or ``"concat"``.

    On integer-coded grids whose cells are embedded (``grids``: MiniGrid's symbolic view through
    ``mmrl.wrappers.auto_wrap``, mmrl's ``image_mode="symbolic"``) with a text key, FiLM: the instruction scales and
    shifts the first layer of the ``"factored"`` encoder that ``image_encoder="auto"`` picks there, the network of
    mmrl's room presets; it was the only configuration measured that solved BabyAI-GoToLocal-v0.

    On pictures with a text key, gated attention: the instruction selects image channels before the policy reads
    them; on a 72x72 RGB env with a ``spaces.Text`` colour instruction it reached 0.90 in 95k frames against 175k
    with concatenation (``benchmarks/other_envs.py``, figures in ``benchmarks/RESULTS.md``). Without both an image
    and a text key there is nothing to condition, so ``"concat"``.

    Args:
        name: A name in :data:`FUSION_CHOICES`.
        n_image_keys: Image keys the extractor encodes.
        n_text_keys: Text keys the extractor encodes.
        grids: Whether every image key is an integer-coded grid whose cells are embedded.
    """
    if name != "auto":
        return name
    if not (n_image_keys and n_text_keys):
        return "concat"
    return "film" if grids else "gated"
