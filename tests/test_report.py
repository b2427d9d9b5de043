"""The report stage from hand-made evaluate outputs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from retrollm.artifacts import ArtifactError
from retrollm.metrics import Aggregate
from stages.report import ReportParams, build_report


def _metrics(dataset: str, method: str, acc: float, tokens: float) -> dict:
    aggregate = Aggregate(
        n=50, acc=acc, em=acc / 2, f1=acc * 0.8, r1=30.0, r5=60.0, tokens=tokens,
        tokens_in=tokens - 10, tokens_out=10,
        well_formed=96.0, acc_ci95=13.6, status={"ok": 50},
    )  # fmt: skip
    return {"dataset": dataset, "method": method} | aggregate.model_dump()


def _write(eval_dir: Path, rows: list[dict]) -> None:
    for row in rows:
        folder = eval_dir / row["dataset"] / row["method"]
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(row))
        # The same 50 questions everywhere; the first acc% of them answered correctly.
        correct = round(row["acc"] / 100 * row["n"])
        scores = {f"q{i}": {"acc": float(i < correct), "em": 0.0, "f1": float(i < correct)}
                  for i in range(row["n"])}  # fmt: skip
        (folder / "scores.json").write_text(json.dumps(scores))


def _dvclive(folder: Path) -> None:
    path = folder / "plots" / "metrics" / "train" / "loss.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("timestamp\tstep\tloss\n1\t0\t3.5\n2\t1\t2.5\n3\t2\t2.0\n")


def test_report_table_metrics_plots_and_targets(tmp_path: Path) -> None:
    rows = [
        _metrics("nq", "rag-bm25", 30.0, 800),
        _metrics("nq", "direct", 10.0, 60),
        _metrics("nq", "retrollm-lora", 60.0, 300),
        _metrics("nq", "no-clue-expansion", 36.0, 280),
        _metrics("triviaqa", "rag-dense", 40.0, 900),
        _metrics("triviaqa", "retrollm-lora", 38.0, 500),
    ]
    _write(tmp_path / "eval", rows)
    _dvclive(tmp_path / "log")
    _write(tmp_path / "eval", [_metrics("nq", "removed-method", 99.0, 1)])  # not configured
    params = ReportParams(ablations=["no-clue-expansion"])
    cells = [(r["dataset"], r["method"]) for r in rows]
    counts = build_report(tmp_path / "eval", tmp_path / "report", params, cells, tmp_path / "log")
    assert counts == {"rows": 6, "loss_points": 3}
    out = tmp_path / "report"

    table = (out / "results.md").read_text()
    main_table = table.split("\n## ")[0]  # the results table, before targets and funnel
    lines = [line for line in main_table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Dataset | Method | Acc | EM | F1 | Tok | R@1")
    body = [line.split(" | ")[:3] for line in lines[1:]]
    assert [cells[1] for cells in body] == [
        "rag-bm25", "direct", "retrollm-lora", "no-clue-expansion", "rag-dense", "retrollm-lora"
    ]  # fmt: skip
    assert "| nq | rag-bm25 | 30.0 | 15.0 | 24.0 | 800 | 30.0 | 60.0 | 96 | 50 |" in table
    # Targets, from the paired tests: nq 30 of 50 right against 15 (interval above zero)
    # with 300 <= 400 tokens; the ablation (18 of 50) is below; triviaqa 19 against 20 of
    # 50 is not separable, and 500 > 450 tokens.
    assert "nq: retrollm-lora against the best naive RAG (rag-bm25): Acc 60.0 vs 30.0" in table
    assert "difference +30.0 points" in table and "above -> met" in table
    assert "ratio 0.38, met" in table
    assert "ablation no-clue-expansion: Acc 36.0 vs 60.0: full method above" in table
    assert "Acc 38.0 vs 40.0" in table and "not separable at n=50 -> MISSED" in table
    assert "| nq | retrollm-lora | rag-bm25 | 50 | 15 | 0 |" in table  # McNemar counts
    paired = json.loads((out / "paired.json").read_text())
    assert paired["nq"][0]["mcnemar_p"] == pytest.approx(2 / 2**15)

    headline = json.loads((out / "metrics.json").read_text())
    assert headline["nq"]["retrollm-lora"] == {"acc": 60.0, "f1": 48.0, "tokens": 300.0}
    assert set(headline["triviaqa"]) == {"rag-dense", "retrollm-lora"}

    with open(out / "acc_vs_tokens.csv") as handle:
        plotted = list(csv.DictReader(handle))
    assert len(plotted) == 6 and plotted[1]["method"] == "direct"
    assert float(plotted[1]["tokens"]) == 60 and float(plotted[1]["acc"]) == 10
    for name in ("acc_vs_tokens.png", "train_loss.png", "manifest.json", "results.json"):
        assert (out / name).stat().st_size > 0


def test_latency_comes_from_the_run_logs_and_stays_out_of_the_report(tmp_path: Path) -> None:
    from retrollm.artifacts import run_log_path, write_run_log

    rows = [_metrics("nq", "direct", 10.0, 60), _metrics("nq", "rag-bm25", 20.0, 900)]
    _write(tmp_path / "eval", rows)
    log = {"latency_ms": 812.4, "questions_per_min": 73.9, "setup_s": 1.5, "resumed": 2}
    write_run_log(tmp_path / "eval/nq/rag-bm25", log)  # nq/direct: pulled, no run log
    cells = [("nq", "direct"), ("nq", "rag-bm25")]
    build_report(tmp_path / "eval", tmp_path / "report", ReportParams(), cells)
    first = {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir() if p.is_file()}
    assert b"812" not in first["results.md"] and b"812" not in first["results.json"]
    latency = json.loads(run_log_path(tmp_path / "report").read_text())["latency"]
    assert latency == [{"dataset": "nq", "method": "rag-bm25"} | log]

    write_run_log(tmp_path / "eval/nq/rag-bm25", log | {"latency_ms": 90.0})  # a faster rerun
    build_report(tmp_path / "eval", tmp_path / "report", ReportParams(), cells)
    again = {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir() if p.is_file()}
    assert again == first


def test_report_without_results_or_training_log_still_writes_every_file(tmp_path: Path) -> None:
    params = ReportParams()
    assert build_report(tmp_path / "eval", tmp_path / "report", params, None, tmp_path / "x") == {
        "rows": 0,
        "loss_points": 0,
    }
    for name in ("results.md", "metrics.json", "acc_vs_tokens.csv", "train_loss.png"):
        assert (tmp_path / "report" / name).is_file()


def test_a_configured_cell_without_results_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "eval", [_metrics("nq", "direct", 10.0, 60)])
    params = ReportParams()
    with pytest.raises(ArtifactError, match=r"nq/rag-bm25"):
        build_report(
            tmp_path / "eval", tmp_path / "report", params, [("nq", "direct"), ("nq", "rag-bm25")]
        )
    # Without a configuration every cell found is reported.
    assert build_report(tmp_path / "eval", tmp_path / "report", params)["rows"] == 1


def test_a_tampered_evaluate_output_is_refused(tmp_path: Path) -> None:
    from retrollm.artifacts import write_manifest
    from schemas.manifest import Manifest
    from stages.report import verify_cells

    rows = [_metrics("nq", "direct", 10.0, 60), _metrics("nq", "rag-bm25", 20.0, 900)]
    _write(tmp_path / "eval", rows)
    for row in rows:
        folder = tmp_path / "eval" / row["dataset"] / row["method"]
        write_manifest(folder, Manifest(schema_name="eval", schema_version=1, stage="test"))
    cells = [("nq", "direct"), ("nq", "rag-bm25")]
    verify_cells(tmp_path / "eval", cells)
    metrics = tmp_path / "eval" / "nq" / "rag-bm25" / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"acc": 20.0', '"acc": 90.0'))
    with pytest.raises(ArtifactError, match=r"nq/rag-bm25/metrics\.json: sha256 differs"):
        verify_cells(tmp_path / "eval", cells)


def test_report_writes_the_inspector_page_and_the_offline_plots_template(tmp_path: Path) -> None:
    from retrollm.artifacts import write_records
    from retrollm.inspector import CorpusView
    from tests import inspector_support as support

    cells = []
    for dataset, method, predictions in support.cells():
        folder = tmp_path / "eval" / dataset / method
        folder.mkdir(parents=True)
        metrics = _metrics(dataset, method, 50.0, 100) | {"n": len(predictions)}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        scores = {p.id: {"acc": 1.0, "em": 0.0, "f1": 1.0} for p in predictions}
        (folder / "scores.json").write_text(json.dumps(scores))
        write_records(folder / "predictions.msgpack", predictions)
        cells.append((dataset, method))
    corpus = CorpusView(support.corpus(), support.span_text)
    counts = build_report(tmp_path / "eval", tmp_path / "report", ReportParams(), cells, None,
                          corpus, offline_plots=True)  # fmt: skip
    assert counts["inspect_questions"] == len(support.QUESTIONS) + 1  # and one triviaqa
    page = (tmp_path / "report" / "inspect" / "index.html").read_text()
    assert counts["inspect_bytes"] == len(page.encode())
    assert support.NEEDLE in page
    # Nothing to fetch: no URL, src or href outside the data (where the corpus has some).
    markup = re.sub(r'(id="inspector-data">).*?</script>', r"\1", page, flags=re.DOTALL)
    assert len(markup) < len(page) / 2 and not re.search(r"https?:|\b(src|href)=", markup)
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    assert manifest["counts"]["inspect_questions"] == counts["inspect_questions"]
    template = (tmp_path / "report" / "plots_template.html").read_text()
    assert "{plot_divs}" in template and "{scripts}" not in template
    assert "window.vegaEmbed" in template and "<script src" not in template
