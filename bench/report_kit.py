"""What the report's parts share: picking numbers out of rows, formatting, bars, tables."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional

OURS_COLOR, ALT_COLOR = "#2b8a3e", "#868e96"
Row = dict[str, Any]
Stat = Optional[tuple[float, float, float, int]]


def values(rows: list[Row], key: str, **where: Any) -> list[Optional[float]]:
    """`key` of each row that matches every `where` (None where a row lacks it)."""
    return [r.get(key) for r in rows if all(r.get(k) == v for k, v in where.items())]


def summary(found: list[Optional[float]]) -> Stat:
    """(median, min, max, runs) of the values that exist; None if there are none."""
    xs = [float(v) for v in found if v is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs), len(xs)


def mean(found: list[Optional[float]]) -> float:
    """The mean of the values that exist (0.0 if none): over equal time slices,
    the whole window's figure."""
    xs = [float(v) for v in found if v is not None]
    return statistics.fmean(xs) if xs else 0.0


def total(found: list[Any]) -> Stat:
    """A sum drawn as a bar without whiskers."""
    xs = [v for v in found if v is not None]
    return (float(sum(xs)),) * 3 + (len(xs),) if xs else None  # type: ignore[return-value]


def fmt(
    s: Optional[tuple[float, float, float, int]], scale: float = 1.0, unit: str = "", nd: int = 0
) -> str:
    if s is None:
        return "n/a"
    med, lo, hi = (v * scale for v in s[:3])
    return f"{med:.{nd}f}{unit} ({lo:.{nd}f}–{hi:.{nd}f})"


def is_ours(name: str) -> bool:
    return name.startswith("ours")


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def hbars(
    ax: Any,
    labels: list[str],
    stats: list[Optional[tuple[float, float, float, int]]],
    scale: float,
    unit: str,
    title: str,
    notes: Optional[list[str]] = None,
) -> None:
    ys = list(range(len(labels)))[::-1]
    for y, label, s, i in zip(ys, labels, stats, range(len(labels))):
        color = OURS_COLOR if is_ours(label) else ALT_COLOR
        if s is None:
            ax.text(0, y, "  never / n/a", va="center", fontsize=9, color="#c92a2a")
            continue
        med, lo, hi = s[0] * scale, s[1] * scale, s[2] * scale
        ax.barh(y, med, color=color, height=0.6)
        ax.errorbar(
            med, y, xerr=[[med - lo], [hi - med]], fmt="none", ecolor="black", capsize=3, lw=1
        )
        digits = 0 if med >= 10 or float(med).is_integer() else 1 if med >= 1 else 2
        text = f" {med:.{digits}f}{unit}"
        if notes:
            text += f"  {notes[i]}"
        ax.text(hi, y, text, va="center", fontsize=9)
    ax.set_yticks(ys, labels)
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.9 if notes else 0.35)  # room for the value and note right of each bar
    ax.set_xlim(left=0)
    if all(s is None or s[2] == 0 for s in stats):
        ax.set_xlim(0, 1)  # all zero: a bare axis rather than a symmetric one


def save(fig: Any, path: Path, caption: str) -> None:
    lines = caption.count("\n") + 1
    fig.text(0.01, 0.01, caption, fontsize=8, color="#495057")
    fig.tight_layout(rect=(0, 0.035 * lines + 0.01, 1, 1))
    fig.savefig(path, dpi=110)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
