"""Draws a benchmark results file (bench/run.ts's JSON) as one PNG.

usage: python chart.py RESULTS.json OUT.png

Panels: server peak RSS against file size (the reference grows with size, the service should
not); large-transfer throughput as a ratio of direct S3; small-file ops/s by concurrency; list and
retrieve p99. Panels without data say so.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1024 * 1024
COLORS = {
    "grpc": "#1f77b4",
    "grpcjs": "#17becf",
    "grpcgo": "#aec7e8",
    "grpcio": "#393b79",
    "rest": "#2ca02c",
    "resth2": "#98df8a",
    "uploads": "#9467bd",
    "floor": "#8c564b",
    "llama": "#d62728",
    "direct": "#7f7f7f",
}
LABELS = {
    "grpc": "service gRPC",
    "grpcjs": "service gRPC (grpc-js)",
    "grpcgo": "service gRPC (grpc-go)",
    "grpcio": "service gRPC (grpcio)",
    "rest": "service REST",
    "resth2": "service REST (HTTP/2)",
    "uploads": "service Uploads API",
    "floor": "floor (bare node:http)",
    "llama": "reference (llama-stack)",
    "direct": "direct S3",
}
SERVER_TARGETS = ["grpc", "grpcjs", "grpcgo", "grpcio", "rest", "resth2", "uploads", "floor", "llama"]


def empty(ax, title):
    ax.set_title(title)
    ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes, color="#888")
    ax.set_xticks([])
    ax.set_yticks([])


def memory_panel(ax, large):
    title = "Server peak RSS (VmHWM) by file size"
    rows = [r for r in large if r.get("memory")]
    if not rows:
        return empty(ax, title)
    for target in SERVER_TARGETS:
        mine = sorted((r for r in rows if r["target"] == target), key=lambda r: r["sizeBytes"])
        if not mine:
            continue
        xs = [r["sizeBytes"] / MIB for r in mine]
        ax.plot(xs, [r["memory"]["peakRssBytes"] / MIB for r in mine], "o-", color=COLORS[target], label=f"{LABELS[target]} peak")
        ax.plot(xs, [r["memory"]["idleRssBytes"] / MIB for r in mine], "x:", color=COLORS[target], label=f"{LABELS[target]} idle")
    ax.set_xscale("log", base=2)
    sizes = sorted({r["sizeBytes"] / MIB for r in rows})
    ax.set_xticks(sizes, [f"{s:g} MiB" if s < 1024 else f"{s / 1024:g} GiB" for s in sizes])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def throughput_panel(ax, large, ratios):
    title = "Large transfers: throughput ÷ direct S3 (same run)"
    if not any(r.get("uploadVsDirect") for r in ratios):  # also: --storage local, no direct S3
        return empty(ax, title)
    sizes = sorted({r["sizeBytes"] for r in ratios})
    series = [(t, op) for t in SERVER_TARGETS for op in ["upload", "download"] if any(r["target"] == t for r in ratios)]
    width = 0.8 / max(1, len(series))
    for i, (target, op) in enumerate(series):
        values = []
        for size in sizes:
            r = next((r for r in ratios if r["target"] == target and r["sizeBytes"] == size), None)
            v = r and r[f"{op}VsDirect"]
            values.append(v or 0)
        xs = [j + i * width for j in range(len(sizes))]
        ax.bar(xs, values, width, color=COLORS[target], alpha=1.0 if op == "upload" else 0.55, label=f"{LABELS[target]} {op}")
    ax.axhline(0.9, color="black", linestyle="--", linewidth=1, label="target 0.9×")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))])
    ax.set_xticklabels([f"{s / MIB:g} MiB" for s in sizes])
    ax.set_ylabel("× direct S3")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))


def small_panel(ax, small):
    title = "Small files (4 KiB uploads): ops/s by concurrency"
    if not small:
        return empty(ax, title)
    for target in ["direct", "grpc", "grpcjs", "grpcgo", "grpcio", "rest", "llama"]:
        mine = sorted((r for r in small if r["target"] == target), key=lambda r: r["concurrency"])
        if mine:
            ax.plot([r["concurrency"] for r in mine], [r["opsPerSecond"] for r in mine], "o-", color=COLORS[target], label=LABELS[target])
    ax.set_xscale("log", base=2)
    levels = sorted({r["concurrency"] for r in small})
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.minorticks_off()
    ax.set_xlabel("concurrency")
    ax.set_ylabel("uploads/s")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def latency_panel(ax, results):
    title = f"List page and retrieve p99 at {results['options']['rows']} rows"
    bars = []
    for r in results.get("list", []):
        bars.append((f"list\n{r['target']}", r["pageLatency"]["p99Ms"], r["target"]))
    for r in results.get("retrieve", []):
        bars.append((f"retrieve\n{r['target']}", r["latency"]["p99Ms"], r["target"]))
    if not bars:
        return empty(ax, title)
    values = [b[1] for b in bars]
    ax.bar(range(len(bars)), values, color=[COLORS[b[2]] for b in bars])
    for i, v in enumerate(values):
        ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    # Log only when the bars span orders of magnitude; otherwise it hides the differences.
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
        ax.set_ylabel("p99 (ms, log scale)")
    else:
        ax.set_ylabel("p99 (ms)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source) as f:
        results = json.load(f)
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    memory_panel(axes[0][0], results.get("large", []))
    throughput_panel(axes[0][1], results.get("large", []), results.get("ratios", {}).get("large", []))
    small_panel(axes[1][0], results.get("small", []))
    latency_panel(axes[1][1], results)
    fig.suptitle(f"s3-files-service benchmark, {results['date']} ({results['machine']['cpus']} CPUs, S3: {results['s3']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(target, dpi=100)


if __name__ == "__main__":
    main()
