"""The evidence inspector: a static, offline HTML page showing how each answer was found
(clues, candidate documents, kept windows, evidence inside its document, RAG passages
side by side, the funnel step where the gold answer was lost)."""

from retrollm.inspector.build import build_inspector, corpus_view, load_cell, write_one
from retrollm.inspector.data import Cell, CorpusView, PageData, page_data
from retrollm.inspector.page import PAGE_FILE, render_page, script_safe_json, write_page

__all__ = [
    "PAGE_FILE",
    "Cell",
    "CorpusView",
    "PageData",
    "build_inspector",
    "corpus_view",
    "load_cell",
    "page_data",
    "render_page",
    "script_safe_json",
    "write_one",
    "write_page",
]
