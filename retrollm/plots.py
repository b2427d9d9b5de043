"""An HTML template that makes `dvc plots show` work offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without a network its
plots stay blank. This template carries the three libraries inline, taken from the
vl-convert-python package (installed with the project; `vl_convert.javascript_bundle`
gives them as one classic script that defines window.vegaEmbed). It has DVC's
`{plot_divs}` placeholder and no `{scripts}` one, so DVC adds no CDN script tags.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

TEMPLATE_FILE = "plots_template.html"
_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots (offline)</title>
<!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {vega_embed}, from vl-convert-python -->
<script>{bundle}</script>
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


@functools.cache
def offline_template() -> str:
    """The template's text (building the bundle takes seconds, so it is made once)."""
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    # The bundle sits inside <script>: "</script" in it would end the element, and DVC
    # fills placeholders by plain text replacement over the whole page.
    bundle = re.sub("</(script)", lambda m: "<\\/" + m.group(1), bundle, flags=re.IGNORECASE)
    if "<!--" in bundle or any(p in bundle for p in _PLACEHOLDERS):
        raise RuntimeError("the Vega bundle holds '<!--' or a DVC placeholder: cannot inline it")
    return _PAGE.format(
        bundle=bundle,
        vega=vl_convert.get_vega_version(),
        vega_lite=vl_convert.get_vegalite_versions()[-1],
        vega_embed=vl_convert.get_vega_embed_version(),
    )


def write_offline_template(path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(offline_template(), encoding="utf-8")
    return path
