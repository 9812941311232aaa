"""Listings that stay fast and fit the terminal: one line per row, written as plain text.

A rich ``Table`` measures every cell of every row before it prints the first
one (minutes and gigabytes at 100,000 trials); a listing here is padded
strings, sized once, written in blocks. Nothing is markup, so names holding
``[...]`` print as they are. A table that is wider than the terminal drops
its optional columns from the end and shortens its last one at a word
boundary, never inside a word; ``-o wide`` prints every column in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from rich.cells import cell_len as _rich_cell_len


def cell_len(text: str) -> int:
    """Terminal cells ``text`` takes: its length when it is printable ASCII (ids, numbers, most names), else
    rich's count of wide and zero-width characters (a listing measures every cell: 10^6 calls at 100k trials)."""
    return len(text) if text.isascii() and text.isprintable() else _rich_cell_len(text)


GAP = "  "
MORE = "…"


@dataclass(frozen=True)
class Column:
    """A column of a listing.

    ``right``: numbers, aligned right. ``optional``: left out when the terminal
    is too narrow (the rightmost first). ``min_width``: how narrow the last
    column may be shortened before optional columns are left out for it.
    """

    name: str
    right: bool = False
    optional: bool = False
    min_width: int = 0


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None
        ) -> tuple[list[int], list[int], list[str]]:
    """(indices of the columns shown, their widths, names of the columns left out) for a terminal ``width``.

    ``None`` is every column at its full width (``-o wide``). Otherwise the last
    column, when it is text, is shortened between words (:func:`shorten`) down
    to its ``min_width``; then optional columns before it are left out, from the
    right; then it is shortened down to its header; then left out if optional.
    Required columns are never cut: if they alone are too wide, lines are longer.
    """
    widths = [max(cell_len(c.name), _widest([r[i] for r in rows])) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    if width is None:
        return shown, widths, []

    def used(indices: list[int]) -> int:
        return sum(widths[i] for i in indices) + len(GAP) * (len(indices) - 1)

    left_out: list[str] = []
    while shown and used(shown) > width:
        last, column = shown[-1], columns[shown[-1]]
        room = width - used(shown[:-1]) - len(GAP)
        header = cell_len(column.name)
        if not column.right and room >= min(widths[last], max(header, column.min_width)):
            widths[last] = room
            break
        before = [i for i in shown[:-1] if columns[i].optional]
        if before:
            drop = before[-1]
        elif not column.right and room >= header:
            widths[last] = room
            break
        elif column.optional:
            drop = last
        else:
            break
        shown.remove(drop)
        left_out.insert(0, columns[drop].name)
    return shown, [widths[i] for i in shown], left_out


def _widest(cells: list[str]) -> int:
    """The most cells any of ``cells`` takes; counted by ``len`` when all are printable ASCII (one check)."""
    if not cells:
        return 0
    joined = "".join(cells)
    return max(map(len if joined.isascii() and joined.isprintable() else cell_len, cells))


def shorten(text: str, width: int) -> str:
    """``text`` in ``width`` cells, cut between words and ended with "…" when it does not fit."""
    if cell_len(text) <= width:
        return text
    out = ""
    for word in text.split(" "):
        candidate = f"{out} {word}" if out else word
        if cell_len(candidate) + len(" " + MORE) > width:
            break
        out = candidate
    return f"{out} {MORE}" if out else MORE


def lines(columns: Sequence[Column], rows: Iterable[Sequence[str]], shown: Sequence[int],
          widths: Sequence[int]) -> Iterator[str]:
    """The header and one line per row, padded to ``widths``; the last column is not padded on the right."""
    last = len(shown) - 1

    def line(cells: Sequence[str]) -> str:
        out = []
        for k, (i, w) in enumerate(zip(shown, widths)):
            text = shorten(cells[i], w) if k == last else cells[i]
            if k == last and not columns[i].right:
                out.append(text)
            elif text.isascii() and text.isprintable():  # a cell per character: str pads it, in C
                out.append(text.rjust(w) if columns[i].right else text.ljust(w))
            else:
                pad = " " * (w - cell_len(text))
                out.append(pad + text if columns[i].right else text + pad)
        return GAP.join(out).rstrip()

    yield line([c.name for c in columns])
    for row in rows:
        yield line(row)


def write(file: IO[str], text_lines: Iterable[str], block: int = 10_000) -> None:
    """``text_lines`` to ``file``, ``block`` lines per write."""
    chunk: list[str] = []
    for text in text_lines:
        chunk.append(text)
        if len(chunk) == block:
            file.write("\n".join(chunk) + "\n")
            chunk = []
    if chunk:
        file.write("\n".join(chunk) + "\n")
