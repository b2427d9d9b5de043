"""Command line: ask the RetroLLM decoder one question and see how it answered, or find
the evidence inspector page the report stage wrote.

    python -m retrollm ask "Who designed the Eiffel Tower?" [--params params.yaml]
        [--adapter DIR] [--strategy NAME] [--json] [--html FILE] [--threads 2]
    python -m retrollm inspect [--open] [--params params.yaml]

Artifacts come from params.yaml's `paths` and decoding knobs from its `decode` section,
so the answer is the one `dvc repro` would give for the same question.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m retrollm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question and print its trace")
    ask.add_argument("question", help="the question (quote it)")
    ask.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    ask.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder")
    ask.add_argument("--strategy", default=None, help="override decode.strategy")
    ask.add_argument("--json", action="store_true", help="print the Prediction record as JSON")
    ask.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ask.add_argument(
        "--html", type=Path, default=None, help="also write the inspector view to this file"
    )
    inspect = commands.add_parser(
        "inspect", help="print the path of the evidence inspector page (report stage output)"
    )
    inspect.add_argument("--open", action="store_true", help="open it in a browser if any")
    inspect.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return parser


def ask(args: argparse.Namespace) -> int:
    import torch

    from retrollm.decoding import DecodeConfig
    from retrollm.decoding.pipeline import RetroLLM
    from retrollm.decoding.render import render
    from retrollm.settings import load_params, load_paths, verify_contents

    torch.set_num_threads(args.threads)
    paths = load_paths(args.params)
    config = load_params("decode", DecodeConfig, args.params)
    if args.strategy:
        config = DecodeConfig.model_validate(config.model_dump() | {"strategy": args.strategy})
    decoder = RetroLLM.from_artifacts(
        paths, config, args.adapter, stored_queries=False, verify=verify_contents(args.params)
    )
    prediction = decoder.answer([args.question])[0]
    if args.html is not None:
        _write_html(decoder, prediction, args.html)
    if args.json:
        print(prediction.model_dump_json(indent=2))
        return 0
    detokenize = doc_span = None
    if decoder.index is not None:
        index, tokenizer = decoder.index, decoder.tokenizer

        def detokenize(start: int, end: int) -> str:
            return tokenizer.decode(index.extract(start, end).tolist())

        def doc_span(doc: int) -> tuple[int, int]:
            return int(index.doc_offsets[doc]), int(index.doc_offsets[doc + 1])

    render(prediction, detokenize, doc_span)
    return 0


def _write_html(decoder: Any, prediction: Any, path: Path) -> None:
    from retrollm.funnel import CorpusText
    from retrollm.inspector import write_one

    span_text = None
    if decoder.index is not None and decoder.corpus is not None:
        contents = [r.contents for r in decoder.corpus]
        span_text = CorpusText(contents, decoder.index.extract, decoder.tokenizer).span
    write_one(prediction, decoder.corpus or [], span_text, path)
    print(f"inspector view: {path.resolve()}", file=sys.stderr)


def inspect(args: argparse.Namespace) -> int:
    import webbrowser

    from retrollm.inspector import PAGE_FILE
    from retrollm.settings import load_paths

    page = (load_paths(args.params).report / "inspect" / PAGE_FILE).resolve()
    if not page.is_file():
        print(f"{page}: not built yet; run `dvc repro report` (or python -m stages.report)",
              file=sys.stderr)  # fmt: skip
        return 1
    print(page)
    if args.open:
        try:
            webbrowser.get().open(page.as_uri())
        except webbrowser.Error:
            print("no browser found here: open the path above in one", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ask":
        return ask(args)
    if args.command == "inspect":
        return inspect(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
