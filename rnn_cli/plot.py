"""The train/validation loss curve of a model's history, as text for a terminal or as an SVG file.

history is the model file's (N, 4) float64 array: step, train loss, val loss, seconds (nan where
a value was not measured). No dependency beyond numpy; nothing here prints.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

TRAIN_MARK, VAL_MARK, BOTH_MARK = "•", "◆", "◆"
SERIES = (("train", 1, "#1f77b4"), ("val", 2, "#ff7f0e"))


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def text_plot(history: np.ndarray, width: int = 60, height: int = 10,
              unit: str = "nats/token") -> list[list[tuple[str, str]]]:
    """A character plot (N >= 1 rows of history): a list of rows, each a list of (text, style)
    pieces (style "" for none), so a caller may colour the marks; the plain row is the joined text.
    """
    steps = history[:, 0]
    lo, hi = _finite_range(history[:, 1:3].ravel())
    s0, s1 = float(steps.min()), float(steps.max())
    grid = [[" "] * width for _ in range(height)]
    for col_name, col, _ in SERIES:
        mark = TRAIN_MARK if col_name == "train" else VAL_MARK
        ok = np.isfinite(history[:, col])
        xs, ys = steps[ok], history[ok, col]
        if xs.size == 0:
            continue
        # one mark per column between the first and last evaluation, linearly interpolated
        cols = [0] if s1 == s0 else range(round((xs[0] - s0) / (s1 - s0) * (width - 1)),
                                          round((xs[-1] - s0) / (s1 - s0) * (width - 1)) + 1)
        for c in cols:
            y = ys[0] if s1 == s0 else float(np.interp(s0 + (s1 - s0) * c / (width - 1), xs, ys))
            r = round((hi - y) / (hi - lo) * (height - 1))
            cell = grid[r][c]
            grid[r][c] = BOTH_MARK if cell not in (" ", mark) else mark
    rows = []
    for r in range(height):
        tick = r in (0, height // 2, height - 1)
        label = f"{hi - (hi - lo) * r / (height - 1):8.3f} ┤" if tick else " " * 9 + "│"
        pieces = [(label, "dim")]
        line = "".join(grid[r]).rstrip()
        for ch in line:
            pieces.append((ch, "cyan" if ch == TRAIN_MARK else "magenta" if ch == VAL_MARK else ""))
        rows.append(pieces)
    rows.append([(" " * 9 + "└" + "─" * width, "dim")])
    left, right = f"{s0:.0f}", f"{s1:.0f}"
    axis = " " * 10 + left + "step".center(width - len(left) - len(right)) + right
    rows.append([(axis, "dim")])
    rows.append([(" " * 10, ""), (TRAIN_MARK, "cyan"), (" train loss   ", ""),
                 (VAL_MARK, "magenta"), (f" validation loss   ({unit})", "")])
    return rows


def svg_plot(history: np.ndarray, title: str, width: int = 640, height: int = 400,
             unit: str = "nats/token") -> str:
    """A standalone SVG: axes with ticks and labels, one polyline per series, a legend."""
    ml, mr, mt, mb = 70, 20, 40, 50  # margins: left, right, top, bottom
    pw, ph = width - ml - mr, height - mt - mb
    steps = history[:, 0]
    s0, s1 = float(steps.min()), float(steps.max())
    if s1 == s0:
        s0, s1 = s0 - 1, s1 + 1
    lo, hi = _finite_range(history[:, 1:3].ravel())

    def sx(s):
        return ml + (s - s0) / (s1 - s0) * pw

    def sy(v):
        return mt + (hi - v) / (hi - lo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">'
           f'{escape(title)}</text>',
           f'<path d="M{ml},{mt} V{mt + ph} H{ml + pw}" fill="none" stroke="black"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        s = s0 + (s1 - s0) * i / 4
        y, x = sy(v), sx(s)
        out.append(f'<line x1="{ml - 5}" y1="{y:.1f}" x2="{ml}" y2="{y:.1f}" stroke="black"/>'
                   f'<text x="{ml - 8}" y="{y + 4:.1f}" text-anchor="end">{v:.3f}</text>')
        out.append(f'<line x1="{x:.1f}" y1="{mt + ph}" x2="{x:.1f}" y2="{mt + ph + 5}" '
                   f'stroke="black"/><text x="{x:.1f}" y="{mt + ph + 18}" '
                   f'text-anchor="middle">{s:.0f}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 10}" text-anchor="middle">step</text>')
    out.append(f'<text transform="translate(16,{mt + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">loss ({unit})</text>')
    for k, (name, col, colour) in enumerate(SERIES):
        pts = [(sx(s), sy(v)) for s, v in zip(steps, history[:, col]) if math.isfinite(v)]
        if pts:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
            out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
                       for x, y in pts)
        ly = mt + 10 + 18 * k
        out.append(f'<line x1="{ml + pw - 120}" y1="{ly}" x2="{ml + pw - 96}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/><text x="{ml + pw - 90}" y="{ly + 4}">'
                   f'{name} loss</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
