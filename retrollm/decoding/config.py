"""Every knob of the RetroLLM decoder, with the paper's value as the default.

docs/method.md marks paper behaviour P and released-code behaviour U. Where the paper
gives a number it is the default here; where only the released code does (clue lengths, window
caps, evidence length rules) that number is the default, because nothing else exists to
reproduce. Each field's description says which source it comes from, so a reader of
params.yaml can tell a reproduction knob from an implementation choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StrategyName = Literal["retrollm", "retrollm-hard-windows", "naive-constrained", "unconstrained"]


class DecodeConfig(BaseModel):
    """The `decode:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: StrategyName = Field(
        "retrollm",
        description="Decoding strategy: retrollm (P: eq. 12 forward-looking bonus over "
        "candidate documents), retrollm-hard-windows (U: evidence i confined to window i), "
        "naive-constrained (no clues, evidence constrained by the whole corpus), "
        "unconstrained (format only, no corpus constraint).",
    )
    # ------------------------------------------------------------------ ablations
    clue_generation: bool = Field(
        True, description="Ablation switch: False emits an empty clue block (paper Table 3)."
    )
    clue_expansion: bool = Field(
        True, description="Ablation switch: False drops the SPLADE expansion terms."
    )
    future_windows: bool = Field(
        True,
        description="Ablation switch: False drops windows and the eq. 12 bonus; evidence is "
        "then constrained by the candidate documents only.",
    )
    # ---------------------------------------------------------------------- clues
    max_clues: int = Field(5, ge=1, description="P: at most 5 clues (U: 3).")
    max_clue_tokens: int = Field(7, ge=1, description="U: a clue has at most 7 tokens.")
    min_clue_tokens_before_sep: int = Field(
        2, ge=1, description="U: <|sep|> or <|/clue|> only once the clue has 2 tokens."
    )
    k_aux: int = Field(8, ge=0, description="P: SPLADE expansion terms joining the clues.")
    expansion_for_documents: bool = Field(
        True,
        description="P: expansion terms also score documents (eq. 4-6); U (False): they "
        "only locate windows.",
    )
    max_clue_corpus_hits: int | None = Field(
        None,
        description="U skips clues with more corpus hits than this (1000) in document "
        "scoring; None (P) keeps all.",
    )
    # ------------------------------------------------------------------ documents
    top_docs: int = Field(25, ge=1, description="P: candidate documents (25 single-hop, 50 multi).")
    sparse_top_docs: int = Field(
        100, ge=1, description="Length of the SPLADE ranking R2 that is fused (not in paper)."
    )
    fusion: bool = Field(
        True,
        description="P eq. 8: fuse the clue ranking R1 with the SPLADE ranking R2; False "
        "ranks by R1 alone (an ablation, not the released code, which fuses R1's top 5).",
    )
    fusion_weight_clues: float = Field(1.0, description="P eq. 8: w1, weight of R1 (clues).")
    fusion_weight_sparse: float = Field(2.0, description="P eq. 8: w2, weight of R2 (SPLADE).")
    # -------------------------------------------------------------------- windows
    window_radius: int = Field(32, ge=1, description="P: +-32 tokens around a clue hit.")
    max_window: int = Field(128, ge=2, description="P: merged windows up to 128 tokens.")
    max_hits_per_clue: int = Field(
        64, ge=1, description="U: occurrences per clue per document that make windows."
    )
    max_windows_per_doc: int = Field(
        32, ge=1, description="U: windows per document (32 single-hop, 12 multi-hop)."
    )
    max_windows_total: int = Field(512, ge=1, description="U: windows scored per question.")
    top_windows: int = Field(5, ge=1, description="P: kept windows (5 single-hop, 10 multi).")
    window_doc_prior: float = Field(
        0.0,
        ge=0,
        description="Rank windows by their min-max scorer score plus this weight times "
        "their document's prior, 1 - rank / documents in the fused ranking (not in paper; "
        "0: the scorer alone). bench/window_choice.py measures the kept windows' recall.",
    )
    scorer_max_length: int = Field(
        128, ge=8, description="P: (question, window) inputs truncated to 128 tokens."
    )
    scorer: Literal["biencoder", "cross-encoder"] = Field(
        "biencoder",
        description="Window relevance model S(w): P uses a cross-encoder (BGE-reranker-base); "
        "the offline default is the all-MiniLM-L6-v2 bi-encoder (docs/design.md §4).",
    )
    scorer_model: str | None = Field(
        None, description="Folder of the scorer (None: <paths.assets>/biencoder)."
    )
    splade_model: str | None = Field(
        None, description="Folder of the SPLADE encoder (None: <paths.assets>/splade)."
    )
    scorer_activation: Literal["identity", "sigmoid"] = Field(
        "identity",
        description="Cross-encoder output: the raw logit (identity, as the released code) or "
        "its sigmoid; the bi-encoder's cosine is used as is.",
    )
    window_cache: int = Field(
        65536,
        ge=0,
        description="Bi-encoder window vectors kept across batches and questions, by window "
        "text (a window's vector does not depend on the question); each text is embedded "
        "once per batch. 0: every window embedded every time (the earlier path). About "
        "1.5 kB a vector for a 384-dimensional scorer.",
    )
    max_kept_windows_per_doc: int | None = Field(
        2,
        ge=1,
        description="Window diversity before the top-k cut: at most this many kept windows "
        "per document (null: no cap, the paper). Measured choice, see docs/evidence.md.",
    )
    disjoint_windows: bool = Field(
        True,
        description="Kept windows never overlap (a window overlapping a better one is "
        "skipped before the top-k cut); merged windows may still overlap otherwise.",
    )
    window_score_norm: Literal["none", "minmax"] = Field(
        "minmax",
        description="S(w) per question before eq. 12: none (raw scorer output, the paper) or "
        "minmax, mapped onto [window_score_floor, 1] over the kept windows.",
    )
    window_score_floor: float = Field(
        0.5,
        ge=0,
        le=1,
        description="minmax: the worst kept window's S. Every kept window then beats text "
        "outside any window by at least lambda * floor, and windows differ by at most "
        "lambda * (1 - floor), which the LM's own logits can overturn.",
    )
    forward_lambda: float = Field(
        20.0,
        description="Eq. 12 lambda, weight of S(w). P: 100 on raw scores; with minmax "
        "scores 20 gives +10..+20 logits in a window, 0 outside (docs/evidence.md).",
    )
    distinct_windows: bool = Field(
        True,
        description="Each new evidence is steered to kept windows no earlier evidence of the "
        "row used or overlapped, and no evidence overlaps an earlier one in the corpus "
        "(False: every evidence sees all kept windows again).",
    )
    anchored_start: bool = Field(
        True,
        description="An evidence must start at an anchor of an unused kept window: a sentence "
        "start in the window's first anchor_fraction, else the window's first token (False: "
        "any token of the candidate documents, all window tokens equally favoured).",
    )
    anchor_fraction: float = Field(
        0.35, gt=0, le=1, description="Share of a window, from its start, holding its anchors."
    )
    stop_at_sentence_end: bool = Field(
        True,
        description="Once an evidence has min_evidence_tokens and its last token ends a "
        "sentence, the stop tokens get the same bonus as the best continuation, so the LM "
        "alone decides whether to end there (False: stop tokens get no bonus).",
    )
    min_evidences: int = Field(
        0,
        ge=0,
        description="While fewer evidences are written and unused windows remain, only "
        "<|sep|> may end an evidence (0: the model decides).",
    )
    hard_window_start_fraction: float = Field(
        0.2, gt=0, le=1, description="U hard windows: evidence starts in the first fifth."
    )
    # ------------------------------------------------------------------- evidence
    min_evidence_tokens: int = Field(
        64, ge=0, description="U: <|sep|>/<|/evidence|> only after 64 evidence tokens."
    )
    max_evidence_tokens: int = Field(
        160, ge=1, description="U: after 160 evidence tokens only <|sep|>/<|/evidence|>."
    )
    budget_tokens: int = Field(1200, ge=16, description="U: generated tokens in all.")
    new_evidence_min_budget: int = Field(
        80, ge=0, description="U: no new evidence when fewer tokens of budget remain."
    )
    force_end_margin: int = Field(
        15, ge=1, description="U: <|/evidence|> is forced when fewer tokens remain."
    )
    max_evidences: int | None = Field(
        None,
        description="P: at most as many evidences as kept windows (None); a number caps it "
        "further (and bounds strategies without windows; then 5).",
    )
    # --------------------------------------------------------------------- answer
    answer_prefix: str = Field(" The answer is", description="P: forced after <|/evidence|>.")
    max_answer_tokens: int = Field(
        32, ge=1, description="Free answer tokens after the prefix (not in paper)."
    )
    answer_from_evidence: bool = Field(
        False,
        description="The answer copies a span of the written evidence, ended by a period "
        "or a stop token as the training target ends (not in paper; False: free answer).",
    )
    answer_match: Literal["tokens", "classes"] = Field(
        "tokens",
        description="answer_from_evidence: how answer tokens match evidence tokens. tokens: "
        "the same id; classes: the same text up to a leading space and the case of the "
        "first letter (the answer's ' Cesium' copies the evidence's 'cesium').",
    )
    # ---------------------------------------------------------------------- input
    max_question_tokens: int = Field(
        64, ge=1, description="U: questions are cut to 64 tokens (noted in the trace)."
    )
    batch_size: int = Field(16, ge=1, description="Questions decoded together.")
    jump_forward: bool = Field(
        True,
        description="Feed forced runs (forced text, an evidence whose prefix occurs once) "
        "as one chunk per forward pass and keep what greedy decoding would have chosen; "
        "the output is the same token for token (not in paper).",
    )
    jump_max_tokens: int = Field(
        32, ge=1, description="Most tokens drafted after a chosen token in one pass."
    )
    jump_call_cost: float = Field(
        4.0,
        ge=0,
        description="A forward call's fixed cost in fed cells (one row, one position): "
        "chunks widen only where the calls saved outweigh the padding fed. Measured per "
        "device by whole runs (bench/decode.py --call-costs; the output is the same for "
        "any value): 4 on this 2-core CPU (4 to 8 equally fast; 2, 16, 20, 66 slower); "
        "far more on a GPU, where cells are nearly free.",
    )
    split_head: bool = Field(
        True,
        description="Stop the forward pass at the last hidden state and apply the LM head "
        "only where the decoder reads: per visited row, the allowed ids (or the whole row "
        "when many are allowed); padding and forced tokens never reach it (False: "
        "full-vocabulary logits at every fed position, the earlier path; same output up "
        "to float rounding).",
    )
    device: str = Field(
        "cpu",
        pattern=r"^(cpu|auto|cuda(:\d+)?)$",
        description="Where the LM, the window scorer and SPLADE run: cpu, cuda, cuda:N or "
        "auto (CUDA when present). The index and the constraint rules stay numpy on the "
        "CPU; per step only allowed ids and bonuses go to the device.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Model weights' dtype at decode time (auto: bfloat16 on CUDA, float32 "
        "on a CPU).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DecodeConfig:
        if self.min_evidence_tokens > self.max_evidence_tokens:
            raise ValueError("min_evidence_tokens must not exceed max_evidence_tokens")
        if self.force_end_margin >= self.budget_tokens:
            raise ValueError("force_end_margin must be below budget_tokens")
        return self

    def evidence_cap(self, n_windows: int | None) -> int:
        """How many evidences a hypothesis may write: one per kept window (P) when the
        strategy has windows, else max_evidences or the single-hop default of 5."""
        cap = self.max_evidences if self.max_evidences is not None else self.top_windows
        if n_windows is None:
            return cap
        return max(1, min(cap, n_windows))
