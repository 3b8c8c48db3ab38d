"""Tile atlas: every (object, colour, state, agent heading) cell image drawn once with OpenCV.

Frames are then assembled by indexing the atlas with a grid of tile ids (:mod:`mmrl.engine.view`): rendering N
worlds costs one gather and one copy, with no per-world or per-cell drawing.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mmrl.engine.constants import COLOUR_RGB, N_COLOURS, N_KINDS, N_STATES, DoorState, Kind

#: Agent overlays per tile: none, then one per heading.
N_OVERLAYS = 5
N_TILES = N_KINDS * N_COLOURS * N_STATES * N_OVERLAYS

_SUPERSAMPLE = 64
_GRID_RGB = (60, 60, 60)
_WALL_RGB = (110, 110, 110)
_AGENT_RGB = (255, 60, 60)


def tile_ids(kind: np.ndarray, colour: np.ndarray, state: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Atlas index of each cell (all arrays broadcast together; ``overlay`` is 0 or 1 + heading)."""
    base = (kind.astype(np.int32) * N_COLOURS + colour) * N_STATES + state
    return base * N_OVERLAYS + overlay


def _draw_object(canvas: np.ndarray, kind: int, colour: int, state: int) -> None:
    s = canvas.shape[0]
    rgb = tuple(int(v) for v in COLOUR_RGB[colour])
    if kind == Kind.UNSEEN:
        canvas[:] = 0
        return
    # background with a thin grid line, as in MiniGrid
    canvas[:] = 0
    cv2.rectangle(canvas, (0, 0), (s - 1, s - 1), _GRID_RGB, max(1, s // 32))
    m = s // 8
    if kind == Kind.WALL:
        canvas[:] = _WALL_RGB
    elif kind == Kind.FLOOR:
        canvas[1:, 1:] = COLOUR_RGB[colour] // 3
    elif kind == Kind.GOAL:
        canvas[1:, 1:] = (40, 200, 60)
    elif kind == Kind.LAVA:
        canvas[1:, 1:] = (255, 128, 0)
    elif kind == Kind.BALL:
        cv2.circle(canvas, (s // 2, s // 2), int(s * 0.32), rgb, -1, cv2.LINE_AA)
    elif kind == Kind.BOX:
        cv2.rectangle(canvas, (2 * m, 2 * m), (s - 2 * m, s - 2 * m), rgb, max(2, s // 10))
        cv2.line(canvas, (2 * m, s // 2), (s - 2 * m, s // 2), rgb, max(2, s // 16))
    elif kind == Kind.KEY:
        cv2.circle(canvas, (int(s * 0.62), int(s * 0.3)), int(s * 0.16), rgb, max(2, s // 14), cv2.LINE_AA)
        cv2.rectangle(canvas, (int(s * 0.56), int(s * 0.42)), (int(s * 0.68), int(s * 0.85)), rgb, -1)
        cv2.rectangle(canvas, (int(s * 0.38), int(s * 0.60)), (int(s * 0.56), int(s * 0.68)), rgb, -1)
        cv2.rectangle(canvas, (int(s * 0.38), int(s * 0.75)), (int(s * 0.56), int(s * 0.83)), rgb, -1)
    elif kind == Kind.DOOR:
        if state == DoorState.OPEN:
            cv2.rectangle(canvas, (m // 2, m // 2), (s - 1 - m // 2, s - 1 - m // 2), rgb, max(2, s // 16))
        else:
            canvas[m // 2 : s - m // 2, m // 2 : s - m // 2] = rgb
            inner = tuple(int(v) // 2 for v in rgb)
            cv2.rectangle(canvas, (2 * m, 2 * m), (s - 2 * m, s - 2 * m), inner, max(2, s // 20))
            if state == DoorState.LOCKED:
                cv2.rectangle(canvas, (int(s * 0.55), s // 2 - m // 2), (int(s * 0.75), s // 2 + m // 2), inner, -1)
            else:
                cv2.circle(canvas, (int(s * 0.72), s // 2), max(2, s // 14), inner, -1, cv2.LINE_AA)


def _draw_agent(canvas: np.ndarray, heading: int) -> None:
    s = canvas.shape[0]
    # a triangle pointing east, rotated to the heading
    points = np.array([[0.85, 0.5], [0.18, 0.2], [0.18, 0.8]]) - 0.5
    angle = heading * np.pi / 2
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = (points @ rotation.T + 0.5) * s
    cv2.fillPoly(canvas, [np.round(xy).astype(np.int32)], _AGENT_RGB, cv2.LINE_AA)


@functools.lru_cache(maxsize=8)
def build_atlas(tile_size: int) -> np.ndarray:
    """All tiles at ``tile_size`` pixels: an array of shape ``(N_TILES, tile_size, tile_size, 3)``, uint8.

    Tiles are drawn at a high resolution and reduced with area interpolation (anti-aliased). Cached per size.
    """
    if not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    big = max(_SUPERSAMPLE, tile_size)
    atlas = np.zeros((N_TILES, tile_size, tile_size, 3), dtype=np.uint8)
    canvas = np.zeros((big, big, 3), dtype=np.uint8)
    for kind in range(N_KINDS):
        for colour in range(N_COLOURS):
            for state in range(N_STATES):
                _draw_object(canvas, kind, colour, state)
                base = canvas.copy()
                for overlay in range(N_OVERLAYS):
                    canvas[:] = base
                    if overlay:
                        _draw_agent(canvas, overlay - 1)
                    index = tile_ids(np.array(kind), np.array(colour), np.array(state), np.array(overlay))
                    atlas[int(index)] = cv2.resize(canvas, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
    atlas.setflags(write=False)
    return atlas
