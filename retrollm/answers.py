"""One answer rule for every method: what the metrics score is cut out of the generated
text the same way, whether a RAG baseline or RetroLLM (after its forced " The answer is")
wrote it.

The answer is the first non-empty line of the generated answer text, without a lead-in a
small model writes despite the instruction ("Answer:", "The answer is"). Metrics then
normalise it as FlashRAG does (retrollm.metrics).
"""

from __future__ import annotations

import re

# Lead-ins small models write despite the instruction; the answer is what follows them.
_LEAD_IN = re.compile(r"^\s*(?:answer\s*:|the answer is\s*:?)\s*", re.IGNORECASE)


def extract_answer(generated: str) -> str:
    """The answer is the first non-empty line, without a lead-in like 'Answer:'."""
    for line in generated.strip().splitlines():
        if line.strip():
            return _LEAD_IN.sub("", line).strip()
    return ""
