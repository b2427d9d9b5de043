"""The report's figures: where each method loses the gold answer, Acc against tokens per
question, and the training loss. Each writes one PNG (and the acc-vs-tokens CSV that DVC
plots) from rows the report stage has already loaded."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt

from retrollm.funnel import FunnelRow


def write_funnel_plot(rows: list[tuple[str, FunnelRow]], png_path: Path) -> None:
    """One panel per dataset: per method, a bar per funnel step (RAG: passages only)."""
    datasets = list(dict.fromkeys(d for d, _ in rows)) or ["(none)"]
    labels = ("documents", "located", "kept", "evidence", "first_evidence", "answer")
    fig, axes = plt.subplots(len(datasets), 1, figsize=(9, 3.2 * len(datasets)), squeeze=False)
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        cells = [r for d, r in rows if d == dataset]
        width = 0.8 / len(labels)
        for j, step in enumerate(labels):
            values = [getattr(r, step) or 0.0 for r in cells]
            xs = [i + (j - len(labels) / 2 + 0.5) * width for i in range(len(cells))]
            ax.bar(xs, values, width, label=step.replace("_", " "), color=f"C{j}")
        ax.set_xticks(range(len(cells)), [r.method for r in cells], rotation=20, fontsize=8)
        ax.set(title=f"{dataset}: where the gold answer is", ylabel="% of questions")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=6, frameon=False, loc="upper right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def write_acc_vs_tokens(results: list[dict[str, Any]], csv_path: Path, png_path: Path) -> None:
    fields = ["dataset", "method", "tokens", "acc", "em", "f1"]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for r in results:
            writer.writerow(
                {k: (round(r[k], 3) if isinstance(r[k], float) else r[k]) for k in fields}
            )
    datasets = list(dict.fromkeys(r["dataset"] for r in results)) or ["(none)"]
    methods = list(dict.fromkeys(r["method"] for r in results))
    markers = "osD^v<>ph*"
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for r in (r for r in results if r["dataset"] == dataset):
            i = methods.index(r["method"])  # one colour and marker per method in every panel
            ax.errorbar(
                r["tokens"], r["acc"], yerr=r.get("acc_ci95", 0.0), color=f"C{i % 10}",
                marker=markers[i % len(markers)], label=r["method"], markersize=6, capsize=3,
                linestyle="none",
            )  # fmt: skip
        ax.set(title=dataset, xlabel="tokens per question (in + out)", ylabel="Acc (%), 95% CI")
        ax.set_ylim(bottom=-2)  # Acc 0 stays visible
        ax.grid(alpha=0.3)
    if methods:
        legend: dict[str, Any] = {}
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                legend.setdefault(label, handle)
        fig.legend(legend.values(), legend.keys(), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86 if methods else 1, 1))
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def read_loss(train_log: Path) -> list[tuple[float, float]]:
    """(step, loss) rows from dvclive's plots/metrics/**/loss.tsv, else another *loss*.tsv."""
    metrics = Path(train_log) / "plots" / "metrics"
    for path in [*sorted(metrics.glob("**/loss.tsv")), *sorted(metrics.glob("**/*loss*.tsv"))]:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            value = next(k for k in rows[0] if k not in ("step", "timestamp"))
            return [(float(r["step"]), float(r[value])) for r in rows]
    return []


def write_loss_plot(points: list[tuple[float, float]], png_path: Path, window: int = 8) -> None:
    """Raw per-step loss, faint, under its running mean: batches grouped by length make
    the raw curve saw-toothed, and the trend is what a reader looks for."""
    fig, ax = plt.subplots(figsize=(5, 4))
    if points:
        steps, values = [s for s, _ in points], [v for _, v in points]
        ax.plot(steps, values, alpha=0.35, label="per step")
        means = [sum(values[max(0, i - window + 1) : i + 1]) / min(window, i + 1)
                 for i in range(len(values))]  # fmt: skip
        ax.plot(steps, means, label=f"mean of last {window}")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no training log found", ha="center", va="center")
    ax.set(title="training loss", xlabel="step", ylabel="loss")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
