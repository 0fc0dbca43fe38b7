"""Ruled tables from the rules a page draws: a lattice finder over plain tuples.

It follows PyMuPDF's `find_tables` with its default "lines" strategy (pdfplumber's lattice algorithm)
step by step — the same edges from the same drawings, snapped, joined, intersected and grouped with the
same tolerances, in the same order — so it finds the same cells. What it leaves out is what makes
`find_tables` slow: a dict of two dozen keys for every character and every edge, a second reading of
the page's text, a header guessed for every table, and loops over all pairs where sorted lists do. It
reads the characters the loader has already read (ordinary glyph boxes where find_tables asks for
small, "accurate" ones: that only changes which frames of drawings count as holding text; on the 228
ruled pages of ../shared/data/docs it moved five tables' boxes by under a point and changed no table's
Markdown). `find_grids` answers None where it is not sure
to agree (a rotated or mirrored page): the caller then asks `find_tables`.
"""

from __future__ import annotations

import bisect
import itertools
import string
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

Box = tuple[float, float, float, float]  # x0, top, x1, bottom in page coordinates (y down)

SNAP = 3.0  # find_tables' defaults: rules this close are one rule...
JOIN = 3.0  # ...collinear pieces this close are one piece...
MIN_LENGTH = 3.0  # ...shorter ones are dropped, and a rectangle this thin is a rule...
CROSS = 3.0  # ...and a rule ending this close to another still crosses it
WHITESPACE = set(string.whitespace)


class Edge(NamedTuple):
    """A horizontal ("h") or vertical ("v") rule. length is carried the way find_tables carries its
    width/height (updated on joins, not recomputed), so lengths compare the same at the threshold."""

    orientation: str
    x0: float
    x1: float
    top: float
    bottom: float
    length: float


@dataclass(frozen=True)
class Row:
    """One row of a grid: a box per column (None where a merged cell from the left or above covers it)."""

    cells: list[Box | None]
    bbox: Box


@dataclass(frozen=True)
class Grid:
    """A ruled table's cells, shaped like PyMuPDF's Table where page_tables reads it (rows, bbox, counts)."""

    cells: list[Box]

    @cached_property
    def bbox(self) -> Box:
        return (min(c[0] for c in self.cells), min(c[1] for c in self.cells), max(c[2] for c in self.cells), max(c[3] for c in self.cells))

    @cached_property
    def rows(self) -> list[Row]:
        """Cells grouped by their top, each row laid over every column start of the table (worked out
        once: page_tables asks for them row by row)."""
        xs = sorted({c[0] for c in self.cells})
        rows = []
        for _, group in itertools.groupby(sorted(self.cells, key=lambda c: (c[1], c[0])), key=lambda c: c[1]):
            by_x = {c[0]: c for c in group}
            cells = [by_x.get(x) for x in xs]
            present = [c for c in cells if c is not None]
            rows.append(Row(cells, (min(c[0] for c in present), min(c[1] for c in present), max(c[2] for c in present), max(c[3] for c in present))))
        return rows

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def col_count(self) -> int:
        return max(len(r.cells) for r in self.rows)


# --- characters --------------------------------------------------------------------------------------


Char = tuple[float, float, float, float, str]  # x0, top, x1, bottom, text


@dataclass(frozen=True)
class Line:
    """A text line of rawdict blocks: its box (the union of its characters' boxes), and its characters
    that overlap the clip (the ones a textpage made with that clip holds), read only when asked for:
    the searches below skip most lines by their box."""

    bbox: Box
    raw: dict[str, Any]
    clip: Box

    @cached_property
    def chars(self) -> list[Char]:
        x0, y0, x1, y1 = self.clip
        found = [(*ch["bbox"], ch["c"]) for span in self.raw["spans"] for ch in span["chars"]]
        return [c for c in found if c[0] < x1 and c[2] > x0 and c[1] < y1 and c[3] > y0]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def text_lines(blocks: list[dict[str, Any]], clip: Box) -> list[Line]:
    """The text lines of rawdict blocks that overlap clip."""
    return [Line(tuple(line["bbox"]), line, clip) for block in blocks if _overlap(block["bbox"], clip) for line in block.get("lines", []) if _overlap(line["bbox"], clip)]


# --- edges -------------------------------------------------------------------------------------------


def _neighbours(r1: Box, r2: Box) -> bool:
    """Whether two boxes touch within the snap tolerance (find_tables' test, both ways round)."""
    if r1[2] + SNAP < r2[0] or r2[2] + SNAP < r1[0] or r1[3] + SNAP < r2[1] or r2[3] + SNAP < r1[1]:
        return False  # apart by more than the tolerance (boxes are x0 <= x1, y0 <= y1): the test below says no
    for a, b in ((r1, r2), (r2, r1)):
        if (b[0] - SNAP <= a[0] <= b[2] + SNAP or b[0] - SNAP <= a[2] <= b[2] + SNAP) and (b[1] - SNAP <= a[1] <= b[3] + SNAP or b[1] - SNAP <= a[3] <= b[3] + SNAP):
            return True
    return False


def drawing_clusters(paths: list[dict[str, Any]], lines: list[Line], height: float) -> list[Box]:
    """Boxes around groups of drawings that touch, where a character lies inside: find_tables draws
    their four sides as rules too, so a table ruled only between rows still gets its outer frame.
    (find_tables compares the character's y extent in PDF space, y up from the page's foot at height,
    with the box's in page space: a quirk kept so that the same clusters count.)"""
    rects = sorted({tuple(p["rect"]) for p in paths}, key=lambda r: (r[3], r[0]))
    clusters = []
    while rects:
        box = rects[0]
        grown = True
        while grown:
            grown = False
            for i in range(len(rects) - 1, 0, -1):
                if _neighbours(box, rects[i]):
                    r = rects[i]
                    box = (min(box[0], r[0], r[2]), min(box[1], r[1], r[3]), max(box[2], r[0], r[2]), max(box[3], r[1], r[3]))
                    del rects[i]
                    grown = True
        top, bottom = height - box[3], height - box[1]  # the box mirrored: where a character "inside" it lies
        if any(
            line.bbox[2] >= box[0] and line.bbox[0] <= box[2] and line.bbox[3] >= top and line.bbox[1] <= bottom
            and any(box[0] <= c[0] and c[2] <= box[2] and top <= c[1] and c[3] <= bottom for c in line.chars)
            for line in lines
        ):
            clusters.append(box)
        del rects[0]
    return clusters


def _line(p1: tuple[float, float], p2: tuple[float, float], clip: Box) -> Edge | None:
    """A rule between two points, cut to the clip; None unless it is (nearly) axis-parallel."""
    if not (abs(p1[0] - p2[0]) <= SNAP or abs(p1[1] - p2[1]) <= SNAP):
        return None
    x0, x1 = min(p1[0], p2[0]), max(p1[0], p2[0])
    y0, y1 = min(p1[1], p2[1]), max(p1[1], p2[1])
    if x0 > clip[2] or x1 < clip[0] or y0 > clip[3] or y1 < clip[1]:
        return None
    x0, x1, y0, y1 = max(x0, clip[0]), min(x1, clip[2]), max(y0, clip[1]), min(y1, clip[3])
    width, height = x1 - x0, y1 - y0
    if width == height == 0:
        return None
    if y0 == y1:  # find_tables calls a rule horizontal only when it is exactly so
        return Edge("h", x0, x1, y0, y1, width)
    return Edge("v", x0, x1, y0, y1, height)


def page_edges(paths: list[dict[str, Any]], clip: Box, clusters: list[Box]) -> list[Edge]:
    """Every rule the drawings make inside the clip, in find_tables' order (the order decides the
    averages that snapping takes, and so the exact coordinates)."""
    out: list[Edge | None] = []
    for path in paths:
        items = list(path["items"])
        if path.get("closePath") and items and items[0][0] == "l" and items[-1][0] == "l":
            items.append(("l", items[-1][2], items[0][1]))
        for item in items:
            kind = item[0]
            if kind == "l":
                out.append(_line(item[1], item[2], clip))
            elif kind == "re":
                x0, y0, x1, y1 = item[1]
                x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
                width, height = x1 - x0, y1 - y0
                if width <= MIN_LENGTH and width < height:  # a filled bar drawn as a vertical rule
                    x = abs(x1 + x0) / 2
                    out.append(_line((x, y0), (x, y1), clip))
                elif height <= MIN_LENGTH and height < width:  # ...as a horizontal rule
                    y = abs(y1 + y0) / 2
                    out.append(_line((x0, y), (x1, y), clip))
                else:
                    out += [_line((x0, y0), (x0, y1), clip), _line((x0, y1), (x1, y1), clip), _line((x1, y1), (x1, y0), clip), _line((x1, y0), (x0, y0), clip)]
            elif kind == "qu":
                ul, ur, ll, lr = item[1]
                out += [_line(ul, ll, clip), _line(ll, lr, clip), _line(lr, ur, clip), _line(ur, ul, clip)]
    for x0, y0, x1, y1 in clusters:
        out += [_line((x0, y0), (x1, y0), clip), _line((x0, y1), (x1, y1), clip), _line((x0, y0), (x0, y1), clip), _line((x1, y0), (x1, y1), clip)]
    return [e for e in out if e is not None]


def _snap(edges: list[Edge], vertical: bool) -> list[Edge]:
    """Rules within the snap tolerance of one another moved to their mean position (chained: a run of
    positions each close to the last is one cluster), with find_tables' arithmetic."""
    if not edges:
        return []
    pos = (lambda e: e.x0) if vertical else (lambda e: e.top)
    values = sorted({pos(e) for e in edges})
    cluster_of: dict[float, int] = {}
    n = 0
    for i, v in enumerate(values):
        if i and v > values[i - 1] + SNAP:
            n += 1
        cluster_of[v] = n
    groups: list[list[Edge]] = [[] for _ in range(n + 1)]
    for e in edges:
        groups[cluster_of[pos(e)]].append(e)
    snapped = []
    for group in groups:
        mean = sum(pos(e) for e in group) / len(group)
        for e in group:
            d = mean - pos(e)
            snapped.append(e._replace(x0=e.x0 + d, x1=e.x1 + d) if vertical else e._replace(top=e.top + d, bottom=e.bottom + d))
    return snapped


def _join(group: list[Edge]) -> list[Edge]:
    """Collinear pieces of a rule that overlap or nearly touch, made one."""
    horizontal = group[0].orientation == "h"
    start = (lambda e: e.x0) if horizontal else (lambda e: e.top)
    end = (lambda e: e.x1) if horizontal else (lambda e: e.bottom)
    ordered = sorted(group, key=start)
    joined = [ordered[0]]
    for e in ordered[1:]:
        last = joined[-1]
        if start(e) <= end(last) + JOIN:
            if end(e) > end(last):  # (find_tables recomputes a width but adds to a height: kept, for the same floats)
                joined[-1] = last._replace(x1=e.x1, length=e.x1 - last.x0) if horizontal else last._replace(bottom=e.bottom, length=last.length + (e.bottom - last.bottom))
        else:
            joined.append(e)
    return joined


def merge_edges(edges: list[Edge]) -> list[Edge]:
    """find_tables' get_edges: rules of length 1 or more, snapped, joined, then those of MIN_LENGTH or more."""
    vertical = [e for e in edges if e.orientation == "v" and e.length >= 1]
    horizontal = [e for e in edges if e.orientation == "h" and e.length >= 1]
    snapped = _snap(vertical, True) + _snap(horizontal, False)
    def line_of(e: Edge) -> tuple[str, float]:
        return e.orientation, e.top if e.orientation == "h" else e.x0

    joined = [j for _, group in itertools.groupby(sorted(snapped, key=line_of), key=line_of) for j in _join(list(group))]
    return [e for e in joined if e.length >= MIN_LENGTH]


# --- cells and tables --------------------------------------------------------------------------------


def intersections(edges: list[Edge]) -> dict[tuple[float, float], tuple[set[Box], set[Box]]]:
    """Where a vertical rule meets a horizontal one (within the tolerance): the point, and the boxes of
    the vertical and of the horizontal rules through it."""
    vertical = sorted((e for e in edges if e.orientation == "v"), key=lambda e: (e.x0, e.top))
    horizontal = sorted((e for e in edges if e.orientation == "h"), key=lambda e: (e.top, e.x0))
    tops = [h.top for h in horizontal]
    points: dict[tuple[float, float], tuple[set[Box], set[Box]]] = {}
    for v in vertical:
        lo = bisect.bisect_left(tops, v.top - CROSS - 0.01)  # a little wide: the exact test below decides
        hi = bisect.bisect_right(tops, v.bottom + CROSS + 0.01)
        for h in horizontal[lo:hi]:
            if h.x0 - CROSS <= v.x0 <= h.x1 + CROSS and v.top <= h.top + CROSS and v.bottom >= h.top - CROSS:
                vs, hs = points.setdefault((v.x0, h.top), (set(), set()))
                vs.add((v.x0, v.top, v.x1, v.bottom))
                hs.add((h.x0, h.top, h.x1, h.bottom))
    return points


def cells(points: dict[tuple[float, float], tuple[set[Box], set[Box]]]) -> list[Box]:
    """For each crossing, the smallest cell it is the top-left corner of: the nearest crossing below it
    on a shared vertical rule and to its right on a shared horizontal rule whose far corner exists and is
    joined to both."""
    ordered = sorted(points)
    by_x: dict[float, list[tuple[float, float]]] = {}
    by_y: dict[float, list[tuple[float, float]]] = {}
    for p in ordered:
        by_x.setdefault(p[0], []).append(p)
        by_y.setdefault(p[1], []).append(p)

    def joined_v(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return not points[a][0].isdisjoint(points[b][0])

    def joined_h(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return not points[a][1].isdisjoint(points[b][1])

    found = []
    for pt in ordered:
        column, row = by_x[pt[0]], by_y[pt[1]]
        below = column[column.index(pt) + 1 :]
        right = row[row.index(pt) + 1 :]
        cell = None
        for b in below:
            if not joined_v(pt, b):
                continue
            for r in right:
                if not joined_h(pt, r):
                    continue
                corner = (r[0], b[1])
                if corner in points and joined_v(corner, r) and joined_h(corner, b):
                    cell = (pt[0], pt[1], corner[0], corner[1])
                    break
            if cell:
                break
        if cell:
            found.append(cell)
    return found


def tables(found: list[Box], lines: list[Line]) -> list[list[Box]]:
    """Cells sharing a corner grouped into tables; a table needs two column starts, two column ends and
    a character on it. Top to bottom, then left to right."""
    by_corner: dict[tuple[float, float], list[int]] = {}
    for i, (x0, y0, x1, y1) in enumerate(found):
        for corner in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
            by_corner.setdefault(corner, []).append(i)
    seen: set[int] = set()
    groups = []
    for i in range(len(found)):
        if i in seen:
            continue
        seen.add(i)
        stack, group = [i], []
        while stack:
            j = stack.pop()
            group.append(found[j])
            x0, y0, x1, y1 = found[j]
            for corner in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
                for k in by_corner[corner]:
                    if k not in seen:
                        seen.add(k)
                        stack.append(k)
        groups.append(group)
    kept = []
    for group in groups:
        if len({c[0] for c in group}) < 2 or len({c[2] for c in group}) < 2:
            continue
        x0, y0 = min(c[0] for c in group), min(c[1] for c in group)
        x1, y1 = max(c[2] for c in group), max(c[3] for c in group)
        if any(_overlap(line.bbox, (x0, y0, x1, y1)) and any(_overlap(c[:4], (x0, y0, x1, y1)) and c[4] not in WHITESPACE for c in line.chars) for line in lines):
            kept.append(group)
    return sorted(kept, key=lambda g: min((c[1], c[0]) for c in g))


def find_grids(page: Any, clip: Box, paths: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> list[Grid] | None:
    """The ruled tables inside clip, as find_tables(clip=clip) would find them; None where this finder
    is not sure to agree (ask find_tables then). paths: the page's get_cdrawings(); blocks: its
    characters as rawdict blocks (find_tables reads them with small, accurate glyph boxes; the
    ordinary ones change which frames of drawings hold text only where text touches a frame)."""
    if page.rotation:  # find_tables un-rotates the page first; not worth copying for the few rotated pages
        return None
    matrix = tuple(page.transformation_matrix)
    if matrix[:4] != (1, 0, 0, -1):  # the PDF-space quirk in drawing_clusters, written for an upright page
        return None
    lines = text_lines(blocks, clip)
    edges = page_edges(paths, clip, drawing_clusters(paths, lines, matrix[5]))
    return [Grid(group) for group in tables(cells(intersections(merge_edges(edges))), lines)]
