"""One sentence's attention (`rnn-cli translate --attention-out FILE`): a matrix with a row per
output token (its <EOS> last when the output ended) and a column per source token (its <EOS>
last), each row the weights that output step gave the source positions (they sum to 1). As an
SVG heatmap (FILE ending in .svg: darker is more weight, tokens along the axes, the weight in
each cell's tooltip) or as TSV (any other name: a header of source tokens, then one row per
output token with its weights). No dependency beyond numpy; nothing here prints.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import numpy as np

EOS = "<EOS>"


def _label(token: str) -> str:
    """A token as a readable label: a space or line end written visibly."""
    return {" ": "␣", "\n": EOS, "\t": "⇥"}.get(token, token)


def axes(source_tokens: list[str], output_tokens: list[str], attention: np.ndarray
         ) -> tuple[list[str], list[str]]:
    """(column labels, row labels): the output's <EOS> row only when the matrix has it."""
    cols = [_label(t) for t in source_tokens]
    rows = [_label(t) for t in output_tokens] + [EOS] * (attention.shape[0] - len(output_tokens))
    if attention.shape != (len(rows), len(cols)):
        raise ValueError(f"attention {attention.shape} does not fit {len(rows)} output and "
                         f"{len(cols)} source tokens")
    return cols, rows


def to_tsv(source_tokens: list[str], output_tokens: list[str], attention: np.ndarray) -> str:
    cols, rows = axes(source_tokens, output_tokens, attention)
    clean = (lambda s: s.replace("\t", "⇥"))
    lines = ["\t".join(["output\\source"] + [clean(c) for c in cols])]
    for label, row in zip(rows, attention):
        lines.append("\t".join([clean(label)] + [f"{w:.4f}" for w in row]))
    return "\n".join(lines) + "\n"


def to_svg(source_tokens: list[str], output_tokens: list[str], attention: np.ndarray,
           title: str = "", cell: int = 28) -> str:
    """A standalone SVG heatmap (module docstring)."""
    cols, rows = axes(source_tokens, output_tokens, attention)
    left = 12 + 8 * max([len(r) for r in rows] + [4])
    top = 30 + 8 * max([len(c) for c in cols] + [4])
    width, height = left + cell * len(cols) + 20, top + cell * len(rows) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>')
    for j, c in enumerate(cols):
        x = left + cell * j + cell / 2
        out.append(f'<text transform="translate({x:.1f},{top - 6}) rotate(-60)">'
                   f'{escape(c)}</text>')
    for i, (r, weights) in enumerate(zip(rows, attention)):
        y = top + cell * i
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
                   f'{escape(r)}</text>')
        for j, w in enumerate(weights):
            shade = int(round(255 * (1.0 - min(max(float(w), 0.0), 1.0))))
            out.append(f'<rect x="{left + cell * j}" y="{y}" width="{cell}" height="{cell}" '
                       f'fill="rgb({shade},{shade},{shade})" stroke="#ddd">'
                       f'<title>{escape(r)} ← {escape(cols[j])}: {w:.3f}</title></rect>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path: str, source_tokens: list[str], output_tokens: list[str],
          attention: np.ndarray, title: str = "") -> None:
    """SVG when `path` ends in .svg, else TSV (written atomically enough: one write)."""
    text = (to_svg(source_tokens, output_tokens, attention, title)
            if path.lower().endswith(".svg") else
            to_tsv(source_tokens, output_tokens, attention))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
