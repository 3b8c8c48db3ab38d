"""The multimodal SB3 features extractor and its building blocks.

Public API: :class:`MultimodalExtractor`, :func:`policy_kwargs`, and the name -> class registries
:data:`IMAGE_ENCODERS`, :data:`TEXT_ENCODERS` and :data:`FUSIONS`.
"""

from mmrl.extractor.extractor import MultimodalExtractor
from mmrl.extractor.fusion import FUSIONS
from mmrl.extractor.image_encoders import IMAGE_ENCODER_CHOICES, IMAGE_ENCODERS
from mmrl.extractor.policy import policy_kwargs
from mmrl.extractor.roles import assign_roles, image_channel_axis
from mmrl.extractor.text_encoders import TEXT_ENCODERS

__all__ = [
    "FUSIONS",
    "IMAGE_ENCODERS",
    "IMAGE_ENCODER_CHOICES",
    "TEXT_ENCODERS",
    "MultimodalExtractor",
    "assign_roles",
    "image_channel_axis",
    "policy_kwargs",
]
