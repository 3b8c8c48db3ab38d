"""Autoencoders on the extractor's own encoders: image, text, and the fused latent of both.

* **image**: the extractor's image encoder (its trunk's feature map) and a small decoder; the loss suits the image
  kind: mean squared error per pixel (scaled to [0, 1]) for pictures, cross-entropy per cell and channel for
  integer-coded grids (``image_mode="symbolic"``).
* **text**: the extractor's text encoder (the sentence vector) and a decoder that predicts the token id at every
  position (cross-entropy, PAD included, so the length is reconstructed too).
* **fused**: both codes fused by the extractor's fusion module into one latent, from which a second pair of decoders
  reconstructs both modalities (the multimodal autoencoder).

All three are trained together (the losses are summed); the encoder weights then go into a pre-trained bundle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

import numpy as np
import torch
from torch import nn

from mmrl.extractor.extractor import MultimodalExtractor
from mmrl.extractor.image_encoders import ImageEncoder
from mmrl.extractor.text_encoders import TextEncoder

#: Width of the decoders' hidden layer.
DECODER_HIDDEN = 256
#: Channels of the coarse map the image decoders paint from.
DECODER_CHANNELS = 32


def _mlp(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, DECODER_HIDDEN), nn.ReLU(), nn.Linear(DECODER_HIDDEN, outputs))


class ImageDecoder(nn.Module):
    """A code to an image: per-pixel values in [0, 1] (pictures) or per-cell logits per channel (grids).

    The code goes through a hidden layer to a coarse ``DECODER_CHANNELS x h x w`` map on the image encoder's own
    grid, and a transposed convolution with stride ``H / h`` paints each coarse cell's pixels (one tile per cell on
    mmrl's tile-aligned images); where the sizes do not divide, a linear layer predicts every output directly.

    Args:
        code_dim: Width of the flattened code.
        shape_CHW: The image shape the extractor reads.
        categories: Values per channel for integer-coded grids, ``None`` for pictures.
        grid_HW: The image encoder's output grid ``(h, w)``.
    """

    def __init__(
        self,
        code_dim: int,
        shape_CHW: tuple[int, int, int],
        categories: tuple[int, ...] | None,
        grid_HW: tuple[int, int],
    ) -> None:
        super().__init__()
        self.shape_CHW = shape_CHW
        self.categories = categories
        channels, height, width = shape_CHW
        out_channels = sum(categories) if categories else channels
        grid_h, grid_w = grid_HW
        self.grid_HW = grid_HW
        if height % grid_h == 0 and width % grid_w == 0:
            self.net = _mlp(code_dim, DECODER_CHANNELS * grid_h * grid_w)
            self.stride = (height // grid_h, width // grid_w)
            # a transposed convolution with kernel = stride, as one matrix product (several times faster on a CPU)
            self.paint: nn.Module | None = nn.Linear(DECODER_CHANNELS, out_channels * self.stride[0] * self.stride[1])
        else:
            self.net = _mlp(code_dim, out_channels * height * width)
            self.paint = None

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        _, height, width = self.shape_CHW
        if self.paint is None:
            return self.net(code).view(code.shape[0], -1, height, width)
        batch, (grid_h, grid_w), (stride_h, stride_w) = code.shape[0], self.grid_HW, self.stride
        coarse_BhwC = torch.relu(self.net(code)).view(batch, grid_h, grid_w, DECODER_CHANNELS)
        tiles = self.paint(coarse_BhwC).view(batch, grid_h, grid_w, -1, stride_h, stride_w)
        return tiles.permute(0, 3, 1, 4, 2, 5).reshape(batch, -1, height, width)

    def loss(self, output: torch.Tensor, target_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, accuracy or error): cross-entropy and cell accuracy for grids, MSE and mean absolute error else."""
        if self.categories is None:
            reconstruction = torch.sigmoid(output)
            with torch.no_grad():
                error = (reconstruction - target_BCHW).abs().mean()
            return nn.functional.mse_loss(reconstruction, target_BCHW), error
        losses, correct = [], []
        for channel, logits in enumerate(output.split(list(self.categories), dim=1)):
            target_BHW = target_BCHW[:, channel].long()
            losses.append(nn.functional.cross_entropy(logits, target_BHW))
            correct.append((logits.detach().argmax(dim=1) == target_BHW).float().mean())
        return torch.stack(losses).mean(), torch.stack(correct).mean()

    def reconstruct(self, output: torch.Tensor) -> torch.Tensor:
        """The decoded image: values in [0, 1] for pictures, the most likely id per cell and channel for grids."""
        if self.categories is None:
            return torch.sigmoid(output)
        return torch.stack([logits.argmax(dim=1) for logits in output.split(list(self.categories), dim=1)], dim=1)


class TextDecoder(nn.Module):
    """A code to logits over the vocabulary at every token position."""

    def __init__(self, code_dim: int, vocab_size: int, max_length: int) -> None:
        super().__init__()
        self.vocab_size, self.max_length = vocab_size, max_length
        self.net = _mlp(code_dim, vocab_size * max_length)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code).view(code.shape[0], self.max_length, self.vocab_size)

    def loss(self, logits_BLV: torch.Tensor, tokens_BL: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy over every position, share of sentences reconstructed exactly)."""
        loss = nn.functional.cross_entropy(logits_BLV.flatten(0, 1), tokens_BL.flatten())
        exact = (logits_BLV.detach().argmax(dim=-1) == tokens_BL).all(dim=1).float().mean()
        return loss, exact


class MultimodalAutoencoder(nn.Module):
    """The three autoencoders around one extractor (its first image key and first text key).

    Args:
        extractor: A :class:`~mmrl.extractor.MultimodalExtractor` with at least one image key and one text key; its
            encoders and fusion are trained in place.
        parts: Which autoencoders to train: any of ``"image"``, ``"text"``, ``"fused"``.
    """

    def __init__(self, extractor: MultimodalExtractor, parts: tuple[str, ...] = ("image", "text", "fused")) -> None:
        super().__init__()
        if not extractor.image_keys or not extractor.text_keys:
            raise ValueError("the autoencoders need an image key and a text key in the observations")
        unknown = sorted(set(parts) - {"image", "text", "fused"})
        if unknown or not parts:
            raise ValueError(f"parts must be some of image, text, fused; got {list(parts)}")
        self.extractor = extractor
        self.parts = tuple(parts)
        self.image_key, self.text_key = extractor.image_keys[0], extractor.text_keys[0]
        image_input = extractor.image_inputs[0]
        self.image_input = image_input
        text_encoder = cast(TextEncoder, extractor.text_encoders[0])
        map_shape = self.image_encoder.output_shape
        map_dim, grid_HW = math.prod(map_shape), (map_shape[1], map_shape[2])
        self.image_decoder = ImageDecoder(map_dim, image_input.shape_CHW, image_input.categories, grid_HW)
        self.text_decoder = TextDecoder(text_encoder.output_dim, text_encoder.vocab_size, text_encoder.max_length)
        self.fused_image_decoder = ImageDecoder(
            extractor.fused_dim, image_input.shape_CHW, image_input.categories, grid_HW
        )
        self.fused_text_decoder = TextDecoder(extractor.fused_dim, text_encoder.vocab_size, text_encoder.max_length)

    @property
    def image_encoder(self) -> ImageEncoder:
        """The extractor's (first) image encoder, trained in place."""
        return cast(ImageEncoder, self.extractor.image_encoders[0])

    def image_target(self, image: torch.Tensor) -> torch.Tensor:
        """The image as the decoder predicts it: channel-first, [0, 1] for pictures, ids for grids."""
        image_BCHW = image.float().permute(0, 3, 1, 2) if self.image_input.channels_last else image.float()
        if self.image_input.categories is not None:
            return image_BCHW
        scale = self.image_encoder.input_scale
        return (image_BCHW * (scale if scale != 1.0 else 1.0 / 255.0)).clamp(0.0, 1.0)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Losses and metrics of every trained part: ``{"image": {"loss", "metric", "output"}, ...}``."""
        extractor = self.extractor
        image = batch[self.image_key].float()
        image_BCHW = image.permute(0, 3, 1, 2) if self.image_input.channels_last else image
        tokens_BL = batch[self.text_key].long()
        text = extractor.encode_text(self.text_key, tokens_BL)
        fusion = extractor.fusion
        modulations = fusion.modulations([text]) if "fused" in self.parts else None
        image_target = self.image_target(batch[self.image_key])
        results: dict[str, dict[str, torch.Tensor]] = {}
        if "image" in self.parts:
            plain_map = self.image_encoder.trunk(image_BCHW, None)
            output = self.image_decoder(plain_map)
            loss, metric = self.image_decoder.loss(output, image_target)
            results["image"] = {"loss": loss, "metric": metric, "output": output}
        if "text" in self.parts:
            logits = self.text_decoder(text.sentence_BD)
            loss, metric = self.text_decoder.loss(logits, tokens_BL)
            results["text"] = {"loss": loss, "metric": metric, "output": logits}
        if "fused" in self.parts:
            image_map = self.image_encoder.trunk(image_BCHW, None if modulations is None else modulations[0])
            fused = fusion([image_map], [text], [])
            image_output = self.fused_image_decoder(fused)
            image_loss, image_metric = self.fused_image_decoder.loss(image_output, image_target)
            logits = self.fused_text_decoder(fused)
            text_loss, text_metric = self.fused_text_decoder.loss(logits, tokens_BL)
            results["fused_image"] = {"loss": image_loss, "metric": image_metric, "output": image_output}
            results["fused_text"] = {"loss": text_loss, "metric": text_metric, "output": logits}
        return results


def reconstruction_grid(model: MultimodalAutoencoder, batch: Mapping[str, torch.Tensor], count: int = 8) -> np.ndarray:
    """An RGB uint8 picture: originals on the top row, image-autoencoder reconstructions below, then the fused
    latent's reconstructions (grids are drawn with one grey level per id and channel)."""
    with torch.no_grad():
        sample = {key: value[:count] for key, value in batch.items()}
        results = model(sample)
        target = model.image_target(sample[model.image_key])
        rows = [target]
        for name, decoder in (("image", model.image_decoder), ("fused_image", model.fused_image_decoder)):
            if name in results:
                rows.append(decoder.reconstruct(results[name]["output"]).float())
    categories = model.image_input.categories
    pictures = []
    for row in rows:
        if categories is not None:
            row = row / torch.tensor([max(c - 1, 1) for c in categories], dtype=torch.float32)[None, :, None, None]
        row = row[:, :3] if row.shape[1] >= 3 else row[:, :1].expand(-1, 3, -1, -1)
        pictures.append(torch.cat(list(row), dim=2))  # C, H, count * W
    grid_CHW = torch.cat(pictures, dim=1)
    scale = max(1, 224 // grid_CHW.shape[1] if categories is not None else 2)
    grid_CHW = grid_CHW.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return (grid_CHW.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
