"""Retrieval around the decoder: SPLADE expansion and ranking, clue-based candidate
documents, future windows and their relevance, and the naive-RAG retrievers.

One job per module; importing this package loads nothing heavy, so the decoder can use
`candidates` and `windows` without pulling in torch:

    splade      SpladeEncoder, SparseRows, SparseDocIndex (docs/method.md §3-4)
    candidates  clue_document_scores, fuse, select_documents (paper eq. 4-6, 8)
    windows     find_windows, score_windows, top_windows, term_variants (docs/method.md §5)
    scorer      RelevanceScorer, BiEncoderScorer, CrossEncoderScorer, load_scorer
    bm25        BM25Retriever (naive RAG baseline)
    dense       DenseRetriever (naive RAG baseline)
"""
