"""Print a Prediction's trace for people: clues, documents, windows, each evidence shown
inside its document's text, the answer and where the time went."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from schemas.prediction import EvidenceTrace, Prediction

CONTEXT_CHARS = 240  # document text shown either side of an evidence


def render(
    prediction: Prediction,
    detokenize: Callable[[int, int], str] | None,
    doc_span: Callable[[int], tuple[int, int]] | None,
    console: Console | None = None,
    top_documents: int = 10,
) -> None:
    """detokenize(start, end) gives the text of global tokens [start, end); doc_span(d)
    a document's [start, end). Without them evidences are shown on their own."""
    console = console or Console()
    p = prediction
    head = Text.assemble(("Q: ", "bold"), p.question, "\n", ("method ", "dim"), p.method)
    head.append(f"   status {p.status}", style="green" if p.status == "ok" else "yellow")
    head.append(f"   well-formed {p.well_formed}", style="dim")
    console.print(Panel(head, title="RetroLLM", expand=False))
    console.print(Text.assemble(("Clues: ", "bold"), " | ".join(map(repr, p.clues)) or "-"))
    if p.expansion_terms:
        console.print(Text.assemble(("Expansion: ", "bold"), ", ".join(p.expansion_terms)))
    if p.documents:
        console.print(_documents(p, top_documents))
    if p.windows:
        console.print(_windows(p))
    for i, evidence in enumerate(p.evidences, start=1):
        console.print(_evidence(i, evidence, detokenize, doc_span))
    console.print(Panel(Text(p.answer or "(empty)", style="bold green"), title="Answer"))
    console.print(_costs(p))
    for note in p.notes:
        console.print(Text(f"note: {note}", style="dim"))


def _documents(p: Prediction, top: int) -> Table:
    table = Table(title=f"Candidate documents (top {min(top, len(p.documents))} of "
                  f"{len(p.documents)})", title_justify="left")  # fmt: skip
    for column in ("#", "title", "fused", "S_gen", "clue rank", "SPLADE rank"):
        table.add_column(column, justify="right" if column != "title" else "left")
    for rank, d in enumerate(p.documents[:top], start=1):
        table.add_row(str(rank), d.title, f"{d.score:.3f}", f"{d.clue_score:.2f}",
                      str(d.clue_rank or "-"), str(d.sparse_rank or "-"))  # fmt: skip
    return table


def _windows(p: Prediction) -> Table:
    table = Table(title="Kept future windows", title_justify="left")
    for column in ("#", "S(w)", "doc", "clue", "text"):
        table.add_column(column, overflow="fold")
    for k, w in enumerate(p.windows):
        text = w.text.replace("\n", " ")
        table.add_row(str(k), f"{w.score:.3f}", str(w.doc_index), w.clue,
                      text[:160] + ("..." if len(text) > 160 else ""))  # fmt: skip
    return table


def _evidence(
    number: int,
    e: EvidenceTrace,
    detokenize: Callable[[int, int], str] | None,
    doc_span: Callable[[int], tuple[int, int]] | None,
) -> Panel:
    title = f"Evidence {number}"
    if not e.verbatim:
        return Panel(Text(e.text, style="red"), title=f"{title}: not in the corpus")
    title += f": {e.title} (doc {e.doc_index}, tokens {e.start}-{e.end}"
    title += f", window {e.window})" if e.window is not None else ")"
    if detokenize is None or doc_span is None:
        return Panel(Text(e.text, style="bold reverse"), title=title)
    doc_start, doc_end = doc_span(e.doc_index)
    before = detokenize(doc_start, e.start)
    after = detokenize(e.end, doc_end)
    shown = Text()
    if len(before) > CONTEXT_CHARS:
        shown.append("..." + before[-CONTEXT_CHARS:], style="dim")
    else:
        shown.append(before, style="dim")
    shown.append(detokenize(e.start, e.end), style="bold black on yellow")
    shown.append(after[:CONTEXT_CHARS] + ("..." if len(after) > CONTEXT_CHARS else ""), "dim")
    return Panel(shown, title=title)


def _costs(p: Prediction) -> Table:
    table = Table(title="Cost", title_justify="left", show_header=False)
    table.add_column("what", style="dim")
    table.add_column("value", justify="right")
    table.add_row("tokens in / out", f"{p.tokens_in} / {p.tokens_out}")
    table.add_row("forward passes", str(p.forward_passes))
    for key, seconds in p.timings.items():
        table.add_row(f"{key} (s)", f"{seconds:.3f}")
    return table
