"""Observations of N worlds, assembled by array indexing (no per-world Python loop).

* ``view="full"``: the whole grid, top-down.
* ``view="agent"``: an egocentric ``V x V`` window, the agent at the bottom centre facing up (as in MiniGrid);
  cells outside the grid are ``UNSEEN``. Walls do not occlude (the window sees through them).

Each view comes as RGB (tiles from :mod:`mmrl.engine.atlas`) or symbolic (``kind, colour, state`` per cell, with
MiniGrid's codes; in the full view the agent's cell reads ``(AGENT, 0, heading)``).

``show_progress=True`` marks the sub-goals done (``stage_N``) in the agent's own cell, which every view shows:
symbolic images write it in the cell's colour channel (``(AGENT, stage, heading)``), RGB images draw the agent on
a floor tile of colour ``stage`` (none while no sub-goal is done). It gives a policy without memory what it
cannot otherwise see in a multi-step task.

``show_carried=True`` (egocentric view only) shows what the agent carries in its own cell, as MiniGrid does:
symbolic images read ``(kind, colour, 0)`` of the carried object there instead of ``(AGENT, 0, heading)`` (the
window's agent cell is always the bottom centre, so nothing is lost), RGB images draw the agent over that object's
tile. Without it, carrying a key and not having fetched it yet look the same once the key has left the view. With
both options, the progress mark takes the symbolic colour channel and the carried object the RGB tile.

``show_visited=True`` shows where the agent has been this episode: every empty cell it has stood on, but the one
it stands on, reads as grey floor (``(FLOOR, GREY, 0)``; a grey floor tile in RGB), so a policy without memory
can tell ground it has searched from new ground. It does not break a loop of turning in place, where the trail
does not change (measured on GoTo-12x12: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mmrl.engine.atlas import N_OVERLAYS, build_atlas
from mmrl.engine.constants import DIRECTION_DELTAS, N_COLOURS, N_STATES, Colour, Direction, Kind
from mmrl.engine.world import WorldState

VIEWS = ("agent", "full")
IMAGE_MODES = ("rgb", "symbolic")


@functools.lru_cache(maxsize=16)
def _egocentric_offsets(view_size: int) -> np.ndarray:
    """``offsets[heading, i, j] = (d_row, d_col)`` of view cell ``(i, j)`` from the agent, shape (4, V, V, 2)."""
    forward = (view_size - 1) - np.arange(view_size)[:, None]  # rows: far (top) to near (bottom)
    lateral = np.arange(view_size)[None, :] - view_size // 2  # columns: left to right
    offsets = np.zeros((4, view_size, view_size, 2), dtype=np.int64)
    for heading in range(4):
        ahead = DIRECTION_DELTAS[heading]
        right = DIRECTION_DELTAS[(heading + 1) % 4]
        offsets[heading] = forward[..., None] * ahead + lateral[..., None] * right
    offsets.setflags(write=False)
    return offsets


#: The cell code of a visited empty cell with ``show_visited``: grey floor.
VISITED_CODE = (int(Kind.FLOOR) * N_COLOURS + int(Colour.GREY)) * N_STATES


def cell_codes(
    world: WorldState, view: str, view_size: int, show_visited: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(base, overlay)`` grids of the view, each ``(N, h, w)`` int32.

    ``base = (kind * N_COLOURS + colour) * N_STATES + state`` packs a cell into one code (0 is ``UNSEEN``), so the
    egocentric window costs one gather instead of three; ``overlay`` is 1 + heading at the agent's cell, else 0.
    ``show_visited`` codes the empty cells the agent has stood on as :data:`VISITED_CODE`.
    """
    n = world.n_worlds
    worlds = np.arange(n)
    base_NHW = (world.kind_NHW.astype(np.int32) * N_COLOURS + world.colour_NHW) * N_STATES + world.state_NHW
    if show_visited:
        trail_NHW = world.visited_NHW & (world.kind_NHW == Kind.EMPTY)
        # the agent's own cell shows the agent
        trail_NHW[worlds, world.agent_pos_N2[:, 0], world.agent_pos_N2[:, 1]] = False
        base_NHW = np.where(trail_NHW, VISITED_CODE, base_NHW)
    if view == "full":
        overlay = np.zeros(base_NHW.shape, dtype=np.int32)
        # question tasks have no agent to draw
        overlay[worlds, world.agent_pos_N2[:, 0], world.agent_pos_N2[:, 1]] = np.where(
            world.answer_N < 0, 1 + world.agent_dir_N, 0
        )
        return base_NHW, overlay
    if view != "agent":
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    height, width = world.grid_shape
    offsets_NVV2 = _egocentric_offsets(view_size)[world.agent_dir_N]
    rows = world.agent_pos_N2[:, 0, None, None] + offsets_NVV2[..., 0]
    cols = world.agent_pos_N2[:, 1, None, None] + offsets_NVV2[..., 1]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    flat = worlds[:, None, None] * (height * width) + np.clip(rows, 0, height - 1) * width + np.clip(cols, 0, width - 1)
    base = np.take(base_NHW.ravel(), flat)
    base *= inside  # outside the grid: code 0, UNSEEN
    return base, _egocentric_overlay(n, view_size)


def visible_cells(world: WorldState, i: int, view: str = "agent", view_size: int = 7) -> np.ndarray:
    """The cells of world ``i`` its view shows, ``(H, W)`` bool: every cell for ``view="full"``, else the cells of
    the egocentric ``view_size`` window that lie inside the grid (walls do not occlude)."""
    height, width = world.grid_shape
    if view == "full":
        return np.ones((height, width), dtype=bool)
    if view != "agent":
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    cells_K2 = world.agent_pos_N2[i] + _egocentric_offsets(view_size)[int(world.agent_dir_N[i])].reshape(-1, 2)
    inside_K = (cells_K2[:, 0] >= 0) & (cells_K2[:, 0] < height) & (cells_K2[:, 1] >= 0) & (cells_K2[:, 1] < width)
    shown_HW = np.zeros((height, width), dtype=bool)
    shown_HW[cells_K2[inside_K, 0], cells_K2[inside_K, 1]] = True
    return shown_HW


@functools.lru_cache(maxsize=16)
def _egocentric_overlay_one(view_size: int) -> np.ndarray:
    overlay = np.zeros((view_size, view_size), dtype=np.int32)
    overlay[view_size - 1, view_size // 2] = 1 + Direction.NORTH
    return overlay


def _egocentric_overlay(n: int, view_size: int) -> np.ndarray:
    return np.broadcast_to(_egocentric_overlay_one(view_size), (n, view_size, view_size))


def rgb_image(codes: tuple[np.ndarray, np.ndarray], tile_size: int) -> np.ndarray:
    """Compose RGB frames ``(N, h * tile, w * tile, 3)`` from cell codes by indexing the tile atlas.

    One gather writes the frames in their final memory order: output pixel row ``y`` of cell ``(i, j)`` is row
    ``y`` of the cell's tile, so the atlas is indexed by ``tile * tile_size + y`` rows of ``tile_size * 3`` bytes
    (each row viewed as one opaque item, which numpy copies whole).
    """
    base, overlay = codes
    t = tile_size
    ids_Nhw = base * N_OVERLAYS + overlay
    n, h, w = ids_Nhw.shape
    rows_NhYw = ids_Nhw[:, :, None, :] * t + np.arange(t, dtype=np.int32)[None, None, :, None]
    frames = np.take(_atlas_rows(t), rows_NhYw)
    return frames.view(np.uint8).reshape(n, h * t, w * t, 3)


@functools.lru_cache(maxsize=8)
def _atlas_rows(tile_size: int) -> np.ndarray:
    """The atlas as one opaque item per pixel row: ``(N_TILES * tile_size,)`` of ``tile_size * 3`` bytes."""
    atlas = np.ascontiguousarray(build_atlas(tile_size))
    rows = atlas.reshape(atlas.shape[0] * tile_size, tile_size * 3)
    return rows.view(np.dtype((np.void, tile_size * 3))).ravel()


def symbolic_image(codes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Symbolic frames ``(N, h, w, 3)``: kind, colour and state codes; the agent's cell shows its heading."""
    base, overlay = codes
    image = np.stack([base // (N_COLOURS * N_STATES), (base // N_STATES) % N_COLOURS, base % N_STATES], axis=-1).astype(
        np.uint8
    )
    agent = overlay > 0
    if agent.any():
        image[agent] = np.stack(
            [np.full(agent.sum(), Kind.AGENT), np.zeros(agent.sum()), overlay[agent] - 1], axis=-1
        ).astype(np.uint8)
    return image


def observe(
    world: WorldState,
    view: str,
    view_size: int,
    image_mode: str,
    tile_size: int,
    show_progress: bool = False,
    show_carried: bool = False,
    show_visited: bool = False,
) -> np.ndarray:
    """The image observation of every world (``show_progress``: the sub-goals done, in the agent's cell;
    ``show_carried``: what the agent carries, in its cell of the egocentric window; ``show_visited``: the cells
    the agent has stood on, as grey floor)."""
    if image_mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
    if show_carried and view != "agent":
        raise ValueError("show_carried=True draws in the egocentric window's agent cell: use view='agent'")
    base, overlay = cell_codes(world, view, view_size, show_visited)
    agent_cell = _agent_cell(world, view, view_size) if show_progress or show_carried else None
    carrying_N = world.carry_kind_N != Kind.EMPTY if show_carried else None
    if image_mode == "rgb":
        if agent_cell is not None and show_progress:
            floor = (Kind.FLOOR * N_COLOURS + world.stage_N) * N_STATES
            base[agent_cell] = np.where(world.stage_N > 0, floor, base[agent_cell])
        if agent_cell is not None and carrying_N is not None:
            carried = (world.carry_kind_N.astype(np.int32) * N_COLOURS + world.carry_colour_N) * N_STATES
            base[agent_cell] = np.where(carrying_N, carried, base[agent_cell])
        return rgb_image((base, overlay), tile_size)
    image = symbolic_image((base, overlay))
    if agent_cell is not None and carrying_N is not None:
        cell_N3 = image[agent_cell]
        cell_N3[carrying_N] = np.stack(
            [world.carry_kind_N, world.carry_colour_N, np.zeros_like(world.carry_kind_N)], axis=-1
        )[carrying_N]
        image[agent_cell] = cell_N3
    if agent_cell is not None and show_progress:
        image[agent_cell + (1,)] = world.stage_N
    return image


def _agent_cell(world: WorldState, view: str, view_size: int) -> tuple:
    """Index of the agent's cell in every world's ``(N, h, w)`` view."""
    if view == "agent":
        return (slice(None), view_size - 1, view_size // 2)
    return (np.arange(world.n_worlds), world.agent_pos_N2[:, 0], world.agent_pos_N2[:, 1])


CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Pixels left of and right of caption text.
CAPTION_MARGIN = 4


def text_width(text: str, scale: float = 0.45) -> int:
    """Width in pixels of ``text`` drawn as a caption line."""
    (width, _), _ = cv2.getTextSize(text, CAPTION_FONT, scale, 1)
    return width


def wrap_caption(lines: list[str], width: int, scale: float = 0.45) -> list[str]:
    """Break ``lines`` at spaces so that each fits a frame ``width`` pixels wide (margins included).

    A single word wider than the frame is split between characters, so no text is ever cut off.

    Args:
        lines: Caption lines (each may be too long).
        width: Frame width in pixels.
        scale: OpenCV font scale.

    Returns:
        The lines to draw, in order.
    """
    room = max(1, width - 2 * CAPTION_MARGIN)
    wrapped: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if text_width(candidate, scale) <= room:
                current = candidate
                continue
            if current:
                wrapped.append(current)
            current = word
            while len(current) > 1 and text_width(current, scale) > room:  # a word wider than the frame
                cut = len(current) - 1
                while cut > 1 and text_width(current[:cut], scale) > room:
                    cut -= 1
                wrapped.append(current[:cut])
                current = current[cut:]
        wrapped.append(current)
    return wrapped


def caption(
    frame: np.ndarray, lines: list[str], scale: float = 0.45, min_lines: int = 0, wrap: bool = False
) -> np.ndarray:
    """Return ``frame`` with a black strip below it holding ``lines`` of white text (drawn with OpenCV).

    With ``wrap=True`` lines too long for the frame are wrapped (:func:`wrap_caption`) and the strip grows with
    the text; pass ``min_lines`` too when frames of different texts must keep one size (videos).

    Args:
        frame: An ``(H, W, 3)`` uint8 image.
        lines: The text, one entry per line.
        scale: OpenCV font scale.
        min_lines: Reserve room for at least this many lines (equal-sized frames for texts of different length).
        wrap: Wrap long lines instead of letting the frame's edge cut them.
    """
    if wrap:
        lines = wrap_caption(lines, frame.shape[1], scale)
    line_height = int(22 * scale / 0.45)
    strip = np.zeros((line_height * max(len(lines), min_lines) + 6, frame.shape[1], 3), dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            strip,
            line,
            (CAPTION_MARGIN, line_height * (i + 1) - 4),
            CAPTION_FONT,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([frame, strip], axis=0)
