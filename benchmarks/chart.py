"""The PNG: one small panel per headline metric, a bar per target (median) with the
min–max range over rounds as an error bar. matplotlib is imported here only, with the
non-interactive Agg backend, so the harness runs without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["HEADLINE", "draw"]

HEADLINE = (
    "list.mb_s",
    "list_gzip.lists_s",
    "startup.startup_s",
    "memory.peak_rss_mb",
    "watch.rss_mb",
    "watch.event_p99_ms",
    "echo.rtt_p50_ms",
    "echo.mb_s",
)
_COLORS = {"direct": "#9e9e9e", "direct TLS": "#616161", "kubectl": "#326ce5", "kproxy": "#e8710a"}


def draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    connections = list(result["config"]["connections"])
    top = f"get_c{max(connections)}" if connections else ""
    keys = [f"get_c{c}.rps" for c in connections] + [f"{top}.p99_ms", f"{top}.cpu_us_per_req", *HEADLINE]
    panels = [
        key for key in keys if key in result["summary"] and any(s for s in result["summary"][key]["targets"].values())
    ]
    cols = 4
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.1 * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        entry = result["summary"][key]
        bars = list(entry["targets"].items())
        if key == "list.mb_s" and "list_tls.mb_s" in result["summary"]:
            # The baseline the list is judged against, next to the plain-HTTP one.
            bars.insert(1, ("direct TLS", result["summary"]["list_tls.mb_s"]["targets"].get("direct")))
        names, medians, low, high, colors = [], [], [], [], []
        for target, stats in bars:
            if not stats:
                continue
            names.append(target)
            medians.append(stats["median"])
            low.append(stats["median"] - stats["min"])
            high.append(stats["max"] - stats["median"])
            colors.append(_COLORS.get(target, "#555555"))
        ax.bar(names, medians, yerr=[low, high], color=colors, capsize=4)
        ratio = entry["ratio_kproxy_kubectl"]
        title = f"{entry['label']}\n{entry['unit']} ({'higher' if entry['higher_better'] else 'lower'} is better)"
        if ratio:
            title += f"; kproxy/kubectl {ratio['median']:.2f}×"
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    machine = result["machine"]
    fig.suptitle(
        f"kproxy vs kubectl proxy vs direct — {result['started']} — {machine['cpus']} × {machine['cpu']}; "
        f"{len(result['rounds'])} rounds, bars = median, whiskers = min–max",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
