"""The one YAML reader of the package: ``yaml.safe_load`` semantics, bounded in time and memory.

Aliases (``*name``) are refused, so a few hundred bytes cannot expand into gigabytes (a "billion laughs" bomb);
document size, node count and nesting depth are capped (:mod:`mmrl.limits`: ``max_yaml_bytes``,
``max_yaml_nodes``, ``max_json_depth``). Python object tags are refused as by ``safe_load``. Every failure is a
:class:`YamlError` (a ``ValueError``) whose message names the source and quotes at most a short excerpt.

>>> load_yaml_text("n_steps: 64", "--set")
{'n_steps': 64}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mmrl.limits import get_limit

__all__ = ["YamlError", "load_yaml_file", "load_yaml_text"]


class YamlError(ValueError):
    """A YAML document is malformed, too large, uses aliases or Python tags; the message names its source."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and counts nodes and depth while composing."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._nodes = 0
        self._depth = 0
        self._max_nodes = get_limit("max_yaml_nodes")
        self._max_depth = get_limit("max_json_depth")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlError(
                f"{self._source}: YAML aliases (*{str(event.anchor)[:40]}) are not supported; write the value out"
            )
        self._nodes += 1
        if self._nodes > self._max_nodes:
            raise YamlError(
                f"{self._source}: more than {self._max_nodes:,} YAML nodes; set MMRL_MAX_YAML_NODES to allow more"
            )
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                raise YamlError(
                    f"{self._source}: YAML nested deeper than {self._max_depth} levels; set MMRL_MAX_JSON_DEPTH "
                    "to allow more"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document from ``text``.

    Args:
        text: The document.
        source: Where it comes from, for messages (a path, ``"--set net_arch"``).

    Raises:
        YamlError: Too large, aliases, too deep, Python tags or invalid YAML.
    """
    max_bytes = get_limit("max_yaml_bytes")
    if len(text) > max_bytes:
        raise YamlError(
            f"{source}: YAML document of {len(text):,} characters is over the limit of {max_bytes:,}; "
            "set MMRL_MAX_YAML_BYTES to allow more"
        )
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    except YamlError:
        raise
    except yaml.constructor.ConstructorError as error:
        raise YamlError(
            f"{source}: unsupported YAML tag ({str(error.problem)[:80]}); YAML is read with safe_load semantics, so "
            "Python object tags such as !!python/object are refused: use plain numbers, strings, lists and mappings"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(getattr(error, "problem", None) or "invalid YAML")[:80]
        raise YamlError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise YamlError(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """Parse the YAML file ``path`` (a regular file within ``max_yaml_bytes``; UTF-8).

    Raises:
        FileNotFoundError: No such file.
        YamlError: Not a regular file, too large, not UTF-8, or as :func:`load_yaml_text`.
    """
    from mmrl.files import read_text_capped

    path = Path(path)
    text = read_text_capped(path, get_limit("max_yaml_bytes"), "YAML file", "MMRL_MAX_YAML_BYTES", YamlError)
    return load_yaml_text(text, str(path))
