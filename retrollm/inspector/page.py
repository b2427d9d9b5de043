"""The inspector's HTML: one self-contained file (styles, script and data inline) that
works from file:// with no network at all.

The data travels as JSON inside <script type="application/json">. JSON escapes quotes and
backslashes but not "<", so corpus text containing "</script>" or "<!--" would end the
block early; every "<", ">" and "&" is written as a \\u escape instead (still the same
JSON), and so are U+2028/U+2029. A Content-Security-Policy allows only the page's own
script (by hash) and no connection anywhere, as a second line of defence.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from retrollm.inspector.data import PageData

ASSETS = Path(__file__).parent / "assets"
PAGE_FILE = "index.html"
# One script in one function scope, in this order (later files call the earlier ones).
SCRIPTS = ("marks.js", "cards.js", "filters.js")
_JSON_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                "\u2028": "\\u2028", "\u2029": "\\u2029"}  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def script_safe_json(text: str) -> str:
    """JSON text that cannot close or comment out the <script> element it sits in."""
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_UNSAFE[m.group()], text)


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")  # fmt: skip


def render_page(data: PageData) -> str:
    """The page's HTML text for `data`."""
    template = (ASSETS / "page.html").read_text(encoding="utf-8")
    parts = [(ASSETS / "js" / name).read_text(encoding="utf-8") for name in SCRIPTS]
    script = '(function () {\n"use strict";\n' + "\n".join(parts) + "})();\n"
    values = {
        "title": html.escape(data.title),
        "csp": html.escape(_csp(script)),
        "css": (ASSETS / "inspector.css").read_text(encoding="utf-8"),
        "js": script,
        "data": script_safe_json(data.model_dump_json(exclude_none=True)),
    }
    # One pass, so text inserted for one placeholder is never read as another.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def write_page(data: PageData, path: Path) -> Path:
    """Write the page to `path` (its folder is created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(data), encoding="utf-8")
    return path
