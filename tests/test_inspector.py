"""The evidence inspector's data and HTML, without a browser (tests/test_inspector_browser.py
loads the page in one)."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrollm.artifacts import ArtifactError, write_records
from retrollm.inspector import Cell, CorpusView, load_cell, page_data, render_page
from retrollm.inspector.page import script_safe_json
from retrollm.inspector.spans import gold_spans, locate
from retrollm.metrics import has_answer
from tests import inspector_support as support
from tests.params_support import write_params


def _data(span_text=support.span_text):  # type: ignore[no-untyped-def]
    cells = [Cell(d, m, p) for d, m, p in support.cells()]
    return page_data(cells, CorpusView(support.corpus(), span_text), support.FULL, support.RAGS)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("abtheAn .,'-\u0130\u00df\n")), max_size=40),
    gold=st.text(alphabet=st.sampled_from(list("abtheAn .,")), min_size=1, max_size=6),
)
def test_gold_spans_find_exactly_what_acc_finds(text: str, gold: str) -> None:
    spans = gold_spans(text, [gold])
    assert bool(spans) == has_answer(text, [gold])
    for start, end in spans:  # each marked piece holds (part of) a normalized match
        assert 0 <= start < end <= len(text)


def test_gold_spans_map_back_to_the_original_characters() -> None:
    text = "It was built by the U.S. Army, then THE  Army of Gustave   Eiffel."
    assert [text[s:e] for s, e in gold_spans(text, ["the us army", "Gustave Eiffel"])] == [
        "U.S. Army",
        "Gustave   Eiffel",
    ]
    assert gold_spans(text, ["The"]) == []  # normalizes to nothing: matches nothing
    assert locate("Title\n text here", " text here ") == (7, 16)  # stripped: in the text
    assert locate("Title", "absent") is None


def test_page_data_scores_steps_and_documents_once() -> None:
    data = _data()
    assert data.datasets == ["nq", "triviaqa"] and data.full_method == support.FULL
    questions = {q.key: q for q in data.questions}
    assert list(questions)[:5] == [f"nq/{q[0]}" for q in support.QUESTIONS]
    eiffel = questions["nq/q-eiffel"]
    full = eiffel.methods[support.FULL]
    assert (full.acc, full.lost, full.windowed) == (0.0, "answer", True)
    assert full.steps == {"documents": True, "located": True, "kept": True, "evidence": True,
                          "first_evidence": True, "answer": False}  # fmt: skip
    ev = full.evidences[0]
    doc = data.documents[support.EIFFEL].text or ""
    assert ev.at is not None and doc[ev.at[0] : ev.at[1]].endswith("Gustave Eiffel")
    assert [doc[s:e] for s, e in eiffel.gold[support.EIFFEL]] == ["Gustave Eiffel"]
    assert [c.gold for c in full.candidates] == [True, False, False]
    bm25 = eiffel.methods["rag-bm25"]
    assert (bm25.acc, bm25.windowed, bm25.steps["located"], bm25.lost) == (1.0, False, None, None)
    assert eiffel.methods["rag-dense"].lost == "answer"
    direct = eiffel.methods["direct"]
    assert direct.steps["documents"] is None and direct.lost == "answer"  # no retrieval step
    # The Moon is a candidate without the gold answer, window or evidence: title only.
    assert data.documents[2].text is None and data.documents[2].title == "Moon"
    assert "q-rag-only" not in {k.split("/")[1] for k, q in questions.items()
                                if support.FULL in q.methods}  # fmt: skip
    # Without the located windows' text the funnel step is unknown, not "lost".
    unknown = _data(span_text=None).questions[0].methods[support.FULL]
    assert unknown.steps["located"] is None and unknown.steps["kept"] is True


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def test_untrusted_text_cannot_leave_the_data_block() -> None:
    data = _data()
    page = render_page(data)
    parser = _Scripts()
    parser.feed(page)
    # Exactly the page's two scripts, whatever the corpus and the answers contain.
    assert [attrs.get("type") for attrs, _ in parser.scripts] == ["application/json", None]
    payload = parser.scripts[0][1]
    assert not re.search(r"[<>&\u2028\u2029]", payload)
    back = json.loads(payload)
    assert back["documents"][str(support.HOSTILE)]["text"].endswith(support.HOSTILE_TEXT)
    assert back["questions"][2]["question"].startswith("<script>")
    assert back["questions"][2]["methods"][support.FULL]["answer"] == "\u202eZanzibar\u202c"
    assert script_safe_json('"</script><!--"') == '"\\u003c/script\\u003e\\u003c!--"'
    # The policy admits the page's own script only, and no connection anywhere.
    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    csp = html.unescape(found.group(1)) if found else ""
    assert "connect-src 'none'" in csp and "default-src 'none'" in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", csp)


def test_a_long_document_shown_by_two_methods_is_embedded_once() -> None:
    page = render_page(_data())
    assert page.count(support.NEEDLE) == 1
    assert support.LONG_BYTES < len(page.encode()) < 3 * support.LONG_BYTES


def test_predictions_from_another_corpus_are_refused() -> None:
    cells = [Cell(d, m, p) for d, m, p in support.cells()]
    small = CorpusView(support.corpus()[:3])
    with pytest.raises(ArtifactError, match=r"nq/rag-bm25, question q-eiffel: document 15"):
        page_data(cells, small, support.FULL, support.RAGS)


def test_load_cell_names_the_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nq/x/predictions.msgpack: missing"):
        load_cell(tmp_path, "nq", "x")
    folder = tmp_path / "nq" / "y"
    folder.mkdir(parents=True)
    (folder / "predictions.msgpack").write_bytes(b"\xc1 not msgpack")
    with pytest.raises(ArtifactError, match=r"nq/y/predictions.msgpack"):
        load_cell(tmp_path, "nq", "y")
    write_records(folder / "predictions.msgpack", support.cells()[0][2])
    assert len(load_cell(tmp_path, "nq", "y").predictions) == len(support.QUESTIONS)


def test_inspect_command_prints_and_opens_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    from retrollm.__main__ import main

    params = tmp_path / "params.yaml"
    write_params(params, {"paths": {"report": str(tmp_path / "report")}})
    page = tmp_path / "report" / "inspect" / "index.html"
    assert main(["inspect", "--params", str(params)]) == 1
    assert f"{page}: not built yet" in capsys.readouterr().err
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    opened: list[str] = []

    class Browser:
        def open(self, url: str) -> bool:
            opened.append(url)
            return True

    monkeypatch.setattr(webbrowser, "get", lambda: Browser())
    assert main(["inspect", "--params", str(params), "--open"]) == 0
    assert capsys.readouterr().out.strip() == str(page) and opened == [page.as_uri()]

    def no_browser() -> None:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    assert main(["inspect", "--params", str(params), "--open"]) == 0
    assert "no browser found here" in capsys.readouterr().err


def test_a_question_without_gold_answers_has_no_outcome_and_no_funnel(tmp_path: Path) -> None:
    from retrollm.inspector import write_one

    asked = support.cells()[3][2][0].model_copy(update={"golden_answers": []})
    page = write_one(asked, support.corpus(), support.span_text, tmp_path / "a" / "one.html")
    payload = page.read_text().split('id="inspector-data">')[1].split("</script>")[0]
    view = json.loads(payload)["questions"][0]["methods"][support.FULL]
    assert "acc" not in view and "lost" not in view  # None: left out of the JSON
    assert set(view["steps"].values()) == {None}
    assert view["evidences"][0]["at"] and view["clues"] == asked.clues
