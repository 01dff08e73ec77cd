"""The soak's PNG: RSS, open descriptors and watches replaced per second over time, a
line per proxy; the load's second half shaded, with the fitted RSS line the verdict
uses drawn over it. matplotlib is imported here only, with the Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .soak_report import fitted_slope

__all__ = ["draw"]

_COLORS = {"kubectl": "#326ce5", "kproxy": "#e8710a"}
_NAMES = {"kproxy": "kproxy", "kubectl": "kubectl proxy"}


def _churn(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Watches replaced per second between consecutive readings of the load."""
    xs, ys = [], []
    for before, after in zip(rows, rows[1:]):
        if "replaced" in before and "replaced" in after and after["t"] > before["t"]:
            xs.append(after["t"] / 60)
            ys.append((after["replaced"] - before["replaced"]) / (after["t"] - before["t"]))
    return xs, ys


def draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = result["settings"]
    seconds = settings["load_seconds"]
    fig, (rss_ax, fds_ax, churn_ax) = plt.subplots(1, 3, figsize=(15, 4))
    for name in result["summary"]:
        rows = [r for r in result["samples"] if r["target"] == name]
        color, label = _COLORS.get(name, "#555555"), _NAMES.get(name, name)
        rss_ax.plot([r["t"] / 60 for r in rows], [r["rss_mib"] for r in rows], color=color, label=label)
        fds_ax.plot([r["t"] / 60 for r in rows], [r["fds"] for r in rows], color=color, label=label)
        load = [r for r in rows if r["phase"] == "load"]
        churn_ax.plot(*_churn(load), color=color, label=label)
        half = [(r["t"], r["rss_mib"]) for r in load if r["t"] >= seconds / 2]
        slope = fitted_slope(half)
        if slope is not None:
            mx = sum(x for x, _ in half) / len(half)
            my = sum(y for _, y in half) / len(half)
            ends = (half[0][0], half[-1][0])
            rss_ax.plot([x / 60 for x in ends], [my + slope * (x - mx) for x in ends], color=color, linestyle="--")
    for ax, title in (
        (rss_ax, "RSS (MiB); dashed: the fitted second half"),
        (fds_ax, "open descriptors"),
        (churn_ax, f"watches replaced per second (target {settings['churn']:g})"),
    ):
        ax.axvspan(seconds / 120, seconds / 60, color="#eeeeee", zorder=0)
        ax.axvline(seconds / 60, color="#999999", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("minutes since the load started (grey: second half; then after close)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"soak — {result['started']} — {settings['watches']:,} watches, {settings['churn']:g} replaced/s, "
        f"{settings['gets_per_second']:g} GETs/s, {settings['slow_clients']} slow readers",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
