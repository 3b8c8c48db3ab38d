"""``StackedFramesEncoder``: one image encoder applied to each of several frames stacked along the channel axis.

A frame-stacked observation (``mmrl`` envs' ``frame_stack``, :class:`mmrl.wrappers.StackImageFrames`, SB3's
``VecFrameStack``) holds ``K`` frames of ``C`` channels as ``K * C`` channels, oldest first. Read as one image, a
cell encoder would give each frame's attributes their own tables and never share what it learns about a colour
between frames. Here every frame goes through the same encoder (one batch of ``B * K`` frames), and the ``K``
feature maps are laid side by side along the channel axis for the fusion to read: ``(B, K * C', H', W')``.
"""

from __future__ import annotations

import torch

from mmrl.extractor.image_encoders import FiLMStage, ImageEncoder, InputConv2d, Modulation

__all__ = ["MAX_IMAGE_FRAMES", "StackedFramesEncoder"]

#: Largest number of stacked frames an image key may hold.
MAX_IMAGE_FRAMES = 16


class StackedFramesEncoder(ImageEncoder):
    """Encodes ``frames`` stacked frames with one shared ``frame_encoder`` and concatenates their feature maps.

    FiLM modulations computed once per instruction are applied to every frame alike. Used by
    :class:`~mmrl.extractor.MultimodalExtractor` with ``image_frames > 1``.

    Args:
        frame_encoder: The encoder of one frame (built, and for grids given its cell embedding, for one frame).
        frames: Number of frames stacked along the channel axis (>= 2).

    Example:
        >>> import gymnasium as gym, mmrl
        >>> env = gym.make("mmrl/GoTo-12x12-v0", image_mode="symbolic", frame_stack=4)
        >>> kwargs = mmrl.policy_kwargs(image_encoder="factored_locate", fusion="film", image_frames=4)
    """

    def __init__(self, frame_encoder: ImageEncoder, frames: int) -> None:
        channels, height, width = frame_encoder.image_shape
        super().__init__((channels * frames, height, width))
        self.frame_encoder = frame_encoder
        self.frames = int(frames)
        self.stage_channels = list(frame_encoder.stage_channels)
        self.film_stem_groups = frame_encoder.film_stem_groups

    def _input_conv(self) -> InputConv2d:
        return self.frame_encoder._input_conv()

    def film_stages(self) -> list[FiLMStage | None]:
        return self.frame_encoder.film_stages()

    def trunk(self, image_BCHW: torch.Tensor, modulations: list[Modulation | None] | None = None) -> torch.Tensor:
        batch, channels, height, width = image_BCHW.shape
        frames_ZCHW = image_BCHW.reshape(batch * self.frames, channels // self.frames, height, width)  # Z = B * K
        if modulations is not None:
            modulations = [
                None
                if modulation is None
                else tuple(  # type: ignore[misc]
                    part if part.shape[0] == 1 else part.repeat_interleave(self.frames, dim=0) for part in modulation
                )
                for modulation in modulations
            ]
        maps_ZCHW = self.frame_encoder.trunk(frames_ZCHW, modulations)
        return maps_ZCHW.reshape(batch, self.frames * maps_ZCHW.shape[1], *maps_ZCHW.shape[2:])

    def embed_cells(self, categories: tuple[int, ...], blank_kinds: int = 0) -> ImageEncoder:
        raise TypeError("embed the cells of the frame encoder before wrapping it in StackedFramesEncoder")
