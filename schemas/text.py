"""Text hygiene shared by every record type.

NUL characters and lone surrogates are rejected (they break tokenizers and JSON round
trips); directional marks are removed, since they are invisible, never part of an answer,
and would split otherwise identical token sequences in the index.

Ids are the exception: an id is a key that gold labels and other files refer to, so it is
never changed silently. One that hygiene would change (directional marks, a non-NFC
form, surrounding white space) is refused, which the readers turn into an error naming
file and line, or a counted skip in the manifest.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: str) -> str:
    """Return `value` NFC-normalised without bidi controls; raise ValueError if unusable."""
    if "\x00" in value:
        raise ValueError("text contains a NUL character")
    if _SURROGATE.search(value):
        raise ValueError("text contains a lone surrogate")
    return unicodedata.normalize("NFC", _BIDI_CONTROLS.sub("", value))


def check_id(value: str) -> str:
    """Return `value` if text hygiene leaves it unchanged; raise ValueError otherwise."""
    clean = check_text(value).strip()
    if clean != value:
        what = "directional marks" if _BIDI_CONTROLS.search(value) else "non-NFC or padded text"
        raise ValueError(f"id {value!r} contains {what}; hygiene would change it to {clean!r}")
    return value
