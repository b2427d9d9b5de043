"""Stage report: every evaluate output in one table, headline metrics and plots.

    python -m stages.report

Reads data/eval/*/*/metrics.json; writes data/report/: results.md (dataset x method),
metrics.json (headline numbers, registered as DVC metrics, so `dvc exp show` lists them),
acc_vs_tokens.csv (a DVC plot source), acc_vs_tokens.png, funnel.png (where each method
loses the gold answer), train_loss.png, inspect/index.html (the evidence inspector: every
question's answers, trace and evidence inside its documents, offline; it reads the
predictions, the corpus, its tokens and the tokenizer) and plots_template.html (what
`dvc plots show` uses, through .dvc/config, to render offline). Wall times are not part of
any of these (a rerun must give the same bytes): the latency of each cell comes from the
evaluations' run logs into the report's own (data/report.run.json) and onto the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from retrollm.artifacts import (
    ArtifactError,
    atomic_dir,
    read_run_log,
    write_json,
    write_manifest,
    write_run_log,
)
from retrollm.figures import read_loss, write_acc_vs_tokens, write_funnel_plot, write_loss_plot
from retrollm.funnel import FunnelRow
from retrollm.funnel import markdown as markdown_funnel
from retrollm.inspector import CorpusView, build_inspector, corpus_view
from retrollm.plots import TEMPLATE_FILE, write_offline_template
from retrollm.stats import PairedComparison, compare
from schemas.manifest import Manifest
from stages.common import (
    StageParams,
    checked_input,
    load_params,
    load_paths,
    load_yaml,
    run_stage,
)

REPORT_SCHEMA = "report"
REPORT_VERSION = 1
COLUMNS = (  # (key in metrics.json, header, format)
    ("acc", "Acc", "{:.1f}"),
    ("em", "EM", "{:.1f}"),
    ("f1", "F1", "{:.1f}"),
    ("tokens", "Tok", "{:.0f}"),
    ("r1", "R@1", "{:.1f}"),
    ("r5", "R@5", "{:.1f}"),
    ("well_formed", "Well-formed %", "{:.0f}"),
    ("n", "n", "{}"),
)


class ReportParams(StageParams):
    """The `report:` section of params.yaml."""

    headline: list[str] = Field(
        ["acc", "f1", "tokens"], description="Metrics per dataset/method in metrics.json."
    )
    full_method: str = Field("retrollm-lora", description="The method the targets are about.")
    rag_methods: list[str] = Field(
        ["rag-bm25", "rag-dense", "rag-lora"], description="Naive RAG rows (plain and tuned)."
    )
    ablations: list[str] = Field(default_factory=list, description="Rows expected below full.")


def load_results(eval_dir: Path, cells: list[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """metrics.json of each (dataset, method) cell, in `cells` order; None: every cell
    found, sorted. Cells left over from methods no longer configured are not reported."""
    eval_dir = Path(eval_dir)
    if cells is None:
        found = sorted(eval_dir.glob("*/*/metrics.json"))
        cells = [(p.parent.parent.name, p.parent.name) for p in found]
    missing = [f"{d}/{m}" for d, m in cells if not (eval_dir / d / m / "metrics.json").is_file()]
    if missing:
        raise ArtifactError(f"{eval_dir}: no metrics.json for {missing}; run their evaluate stages")
    return [json.loads((eval_dir / d / m / "metrics.json").read_text()) for d, m in cells]


def configured_cells() -> list[tuple[str, str]]:
    """Every dataset x method of params.yaml `evaluate`, methods in the order written."""
    section = load_yaml().get("evaluate") or {}
    groups = ("baseline_methods", "rag_lora_methods", "methods", "adapter_methods")
    methods = [name for group in groups for name in section.get(group) or {}]
    return [(dataset, method) for dataset in section.get("datasets") or [] for method in methods]


def markdown_table(
    results: list[dict[str, Any]], columns: tuple[tuple[str, str, str], ...] = COLUMNS
) -> str:
    head = ["Dataset", "Method", *(header for _, header, _ in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["dataset"], r["method"], *(fmt.format(r[key]) for key, _, fmt in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_scores(eval_dir: Path, dataset: str, method: str) -> dict[str, dict[str, float]]:
    """Per-question scores of one cell ({question id: {acc, em, f1}}, values 0-1)."""
    path = Path(eval_dir) / dataset / method / "scores.json"
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; rerun evaluate {dataset} {method}")
    return json.loads(path.read_text())


def paired(
    results: list[dict[str, Any]], params: ReportParams, eval_dir: Path
) -> dict[str, list[PairedComparison]]:
    """Per dataset: the full method against every other method, question by question."""
    out: dict[str, list[PairedComparison]] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        methods = [r["method"] for r in results if r["dataset"] == dataset]
        if params.full_method not in methods:
            continue
        full = load_scores(eval_dir, dataset, params.full_method)
        out[dataset] = [
            compare(params.full_method, other, full, load_scores(eval_dir, dataset, other))
            for other in methods
            if other != params.full_method
        ]
    return out


def paired_lines(comparisons: dict[str, list[PairedComparison]]) -> list[str]:
    lines = [
        "| Dataset | A | B | n | only A right | only B right | McNemar p | "
        "Acc A-B [95% CI] | EM A-B [95% CI] | F1 A-B [95% CI] | Acc verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ci(value: tuple[float, float, float]) -> str:
        return f"{value[0]:+.1f} [{value[1]:+.1f}, {value[2]:+.1f}]"

    for dataset, rows in comparisons.items():
        for c in rows:
            lines.append(
                f"| {dataset} | {c.a} | {c.b} | {c.n} | {c.only_a} | {c.only_b} | "
                f"{c.mcnemar_p:.3g} | {ci(c.acc)} | {ci(c.em)} | {ci(c.f1)} | {c.verdict()} |"
            )
    return lines


def target_lines(
    results: list[dict[str, Any]],
    params: ReportParams,
    comparisons: dict[str, list[PairedComparison]] | None = None,
) -> list[str]:
    """The targets, checked per dataset with the paired tests: the full method above the
    best naive RAG (the Acc interval excludes zero) with at most half its tokens, and
    every ablation below the full method."""
    comparisons = comparisons or {}
    lines = []
    for dataset in sorted({r["dataset"] for r in results}):
        rows = {r["method"]: r for r in results if r["dataset"] == dataset}
        full = rows.get(params.full_method)
        rags = [rows[m] for m in params.rag_methods if m in rows]
        if full is None or not rags:
            continue
        versus = {c.b: c for c in comparisons.get(dataset, [])}
        best = max(rags, key=lambda r: r["acc"])
        ok_tok = full["tokens"] <= best["tokens"] / 2
        pair = versus.get(best["method"])
        if pair is not None:
            verdict = pair.verdict()
            acc = f"Acc {full['acc']:.1f} vs {best['acc']:.1f}, {ci_text(pair.acc)}: {verdict}"
            met = verdict == "above"
        else:
            acc = f"Acc {full['acc']:.1f} vs {best['acc']:.1f} (no paired scores)"
            met = full["acc"] > best["acc"]
        lines.append(
            f"- {dataset}: {params.full_method} against the best naive RAG ({best['method']}): "
            f"{acc} -> {'met' if met else 'MISSED'}; tokens {full['tokens']:.0f} vs "
            f"{best['tokens']:.0f} (ratio {full['tokens'] / max(best['tokens'], 1e-9):.2f}, "
            f"{'met' if ok_tok else 'MISSED'})"
        )
        for name in params.ablations:
            if name in rows:
                pair = versus.get(name)
                verdict = pair.verdict() if pair is not None else "no paired scores"
                lines.append(
                    f"  - ablation {name}: Acc {rows[name]['acc']:.1f} vs {full['acc']:.1f}: "
                    f"full method {verdict}"
                )
    return lines


def ci_text(value: tuple[float, float, float]) -> str:
    return f"difference {value[0]:+.1f} points [95% CI {value[1]:+.1f}, {value[2]:+.1f}]"


def results_markdown(
    results: list[dict[str, Any]],
    params: ReportParams,
    comparisons: dict[str, list[PairedComparison]] | None = None,
) -> str:
    ci = max((r.get("acc_ci95", 0.0) for r in results), default=0.0)
    parts = [
        "# Results\n",
        "Answerable test questions (a gold answer occurs in the corpus), the same sample for "
        "every method of a dataset. Acc/EM/F1/R@k in percent; Tok = input + output tokens "
        f"per question. Acc 95% interval half width up to {ci:.1f} points at these n. "
        "Latency: report.run.json beside this folder, from the evaluations' run logs.\n",
        markdown_table(results),
    ]
    if targets := target_lines(results, params, comparisons):
        parts += ["\n## Targets\n", "\n".join(targets) + "\n"]
    if comparisons:
        parts += [
            "\n## Paired comparisons\n",
            f"{params.full_method} (A) against every other method (B) on the same questions: "
            "questions only one gets right (Acc), the exact McNemar p-value, and paired "
            "bootstrap 95% intervals (10,000 resamples of questions) on the differences, in "
            "points. 'above' means the Acc interval lies above zero.\n",
            "\n".join(paired_lines(comparisons)) + "\n",
        ]
    if funnel := funnel_rows(results):
        parts += [
            "\n## Retrieval funnel\n",
            "Share of questions (%) whose gold answer (as Acc matches it) is in what the "
            "method had at each step; RAG rows have one step, their passages "
            "(`python -m bench.funnel` prints the same from the predictions).\n",
            "\n".join(markdown_funnel(funnel)) + "\n",
        ]
    return "\n".join(parts)


def funnel_rows(results: list[dict[str, Any]]) -> list[tuple[str, FunnelRow]]:
    """(dataset, funnel) of every cell whose metrics carry one."""
    return [
        (r["dataset"], FunnelRow.model_validate(r["funnel"])) for r in results if r.get("funnel")
    ]


LATENCY_COLUMNS = (  # (key in an evaluation's run log, header, format)
    ("latency_ms", "Latency (ms)", "{:.0f}"),
    ("questions_per_min", "q/min", "{:.1f}"),
    ("setup_s", "Setup (s)", "{:.1f}"),
    ("resumed", "Resumed", "{}"),
)


def latency_rows(eval_dir: Path, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wall times of the reported cells that were evaluated on this machine (a pulled
    cell has no run log): per question, batch time shared, noisy on a shared CPU."""
    rows = []
    for r in results:
        log = read_run_log(Path(eval_dir) / r["dataset"] / r["method"])
        if log is not None:
            cell = {"dataset": r["dataset"], "method": r["method"]}
            rows.append(cell | {key: log[key] for key, _, _ in LATENCY_COLUMNS})
    return rows


def build_report(
    eval_dir: Path,
    out_dir: Path,
    params: ReportParams,
    cells: list[tuple[str, str]] | None = None,
    train_log: Path | None = None,
    corpus: CorpusView | None = None,
    offline_plots: bool = False,
) -> dict[str, int]:
    """Write the report folder from the evaluate outputs under `eval_dir` and the
    training log (a dvclive folder) when there is one; with `corpus`, the inspector page
    over every cell's predictions; with `offline_plots`, the offline plots template."""
    results = load_results(eval_dir, cells)
    comparisons = paired(results, params, eval_dir)
    headline: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        row = {k: round(float(r[k]), 2) for k in params.headline}
        headline.setdefault(r["dataset"], {})[r["method"]] = row
    loss = read_loss(train_log) if train_log is not None else []
    counts = {"rows": len(results), "loss_points": len(loss)}
    with atomic_dir(out_dir) as out:
        (out / "results.md").write_text(results_markdown(results, params, comparisons))
        write_json(
            out / "paired.json",
            {d: [c.model_dump() for c in rows] for d, rows in comparisons.items()},
        )
        write_json(out / "metrics.json", headline)
        write_json(out / "results.json", results)
        write_acc_vs_tokens(results, out / "acc_vs_tokens.csv", out / "acc_vs_tokens.png")
        write_loss_plot(loss, out / "train_loss.png")
        write_funnel_plot(funnel_rows(results), out / "funnel.png")
        if corpus is not None:
            cells_done = [(r["dataset"], r["method"]) for r in results]
            counts |= build_inspector(eval_dir, cells_done, corpus, out / "inspect",
                                      params.full_method, params.rag_methods)  # fmt: skip
        if offline_plots:
            write_offline_template(out / TEMPLATE_FILE)
        write_manifest(
            out,
            Manifest(
                schema_name=REPORT_SCHEMA,
                schema_version=REPORT_VERSION,
                stage="report",
                params=params.model_dump(mode="json"),
                counts=counts,
            ),
        )
    latency = latency_rows(eval_dir, results)
    write_run_log(out_dir, {"latency": latency})  # also when empty: no stale rows survive
    if latency:
        print(markdown_table(latency, LATENCY_COLUMNS), end="", flush=True)
    return counts


def verify_cells(eval_dir: Path, cells: list[tuple[str, str]]) -> None:
    """The files read from each evaluate output match its manifest."""
    for dataset, method in cells:
        folder = Path(eval_dir) / dataset / method
        checked_input(folder, "eval", ["metrics.json", "scores.json"])


def report() -> dict[str, int]:
    paths = load_paths()
    params = load_params("report", ReportParams)
    cells = configured_cells()
    verify_cells(paths.eval, cells)
    # The loss curve comes from wherever the train stage logs (one place: train.live_dir).
    live_dir = (load_yaml().get("train") or {}).get("live_dir")
    train_log = Path(live_dir) if live_dir else None
    corpus = corpus_view(paths.corpus, paths.tokens, paths.model)
    return build_report(paths.eval, paths.report, params, cells, train_log, corpus,
                        offline_plots=True)  # fmt: skip


if __name__ == "__main__":
    run_stage("report", report)
