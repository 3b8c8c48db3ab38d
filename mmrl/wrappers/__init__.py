"""Wrappers that plug other people's environments into mmrl.

* :class:`TokenizeText`: text observations (Gymnasium ``Text``, MiniGrid/BabyAI missions, ``str`` keys) to token
  arrays ``Box(0, V - 1, (L,), int64)``.
* :class:`ResizeImage`, :class:`TransposeImage` (alias :class:`ChannelOrder`), :class:`GrayscaleImage`,
  :class:`RenderToImage`: OpenCV image helpers for ``Dict`` and plain ``Box`` observation spaces.
* :class:`StackImageFrames`: frame stacking of image keys only (SB3's ``VecFrameStack`` also stacks token keys).
* :func:`auto_wrap`: one call that applies the wrappers above that fit an env (MiniGrid grids, text, grey frames),
  with a JSON spec (:func:`wrap_spec`) that :func:`apply_wrap_spec` rebuilds from.
* :func:`normalizable_keys`: the keys ``VecNormalize`` may normalise (never the tokens).

Data flows one way (env -> wrappers -> extractor -> agents): nothing here imports mmrl's environments or extractor.
"""

from mmrl.wrappers.auto import apply_wrap_spec, auto_wrap, check_wrap_spec, make_wrapped, wrap_spec
from mmrl.wrappers.frame_stack import StackImageFrames
from mmrl.wrappers.image import ChannelOrder, GrayscaleImage, ResizeImage, TransposeImage
from mmrl.wrappers.normalize import normalizable_keys
from mmrl.wrappers.render import RenderToImage
from mmrl.wrappers.tokenize_text import TokenizeText
from mmrl.wrappers.vocabulary import (
    EnvVocabulary,
    babyai_vocabulary,
    find_text_keys,
    is_text_space,
    vocabulary_from_env,
)

__all__ = [
    "ChannelOrder",
    "EnvVocabulary",
    "GrayscaleImage",
    "RenderToImage",
    "ResizeImage",
    "StackImageFrames",
    "TokenizeText",
    "TransposeImage",
    "apply_wrap_spec",
    "auto_wrap",
    "babyai_vocabulary",
    "check_wrap_spec",
    "find_text_keys",
    "is_text_space",
    "make_wrapped",
    "normalizable_keys",
    "vocabulary_from_env",
    "wrap_spec",
]
