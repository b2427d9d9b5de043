// One card per question: answers and scores, RetroLLM's trace, RAG passages.
function funnelStrip(v) {
  const strip = el("div", "funnel");
  for (const step of DATA.steps) {
    const value = v.steps[step];
    const mark = value === undefined || value === null ? "\u2013" : value ? "\u2713" : "\u2717";
    const cls = value === undefined || value === null ? "" : value ? "in" : "out";
    const chip = el("span", cls + (v.lost === step ? " lost" : ""), mark + " " + STEP_LABEL[step]);
    strip.appendChild(chip);
  }
  return strip;
}

// The first step without a gold answer; a right answer after such a step did without it.
function lostCell(v) {
  if (v.acc == null) return el("span", "na", "-");
  if (!v.lost) return el("span", "yes", "not lost");
  return v.acc >= 0.5 ? el("span", "na", "right, though not in " + STEP_LABEL[v.lost])
    : STEP_LABEL[v.lost];
}

function answersTable(q, methods) {
  const rows = methods.map((m) => {
    const v = q.methods[m];
    return [
      el("span", null, m),
      markedText(v.answer || "", [{ spans: v.answer_gold || [], cls: "gold" }]),
      flag(v.acc == null ? null : v.acc >= 0.5), fmt(v.em, 0), fmt(v.f1, 2), String(v.tokens),
      v.status + (v.well_formed ? "" : ", malformed"),
      lostCell(v),
    ];
  });
  return table(["method", "answer", "Acc", "EM", "F1", "Tok", "status", "gold lost at"], rows);
}

function traceSection(q, m) {
  const v = q.methods[m];
  const s = el("section", "trace");
  s.dataset.method = m;
  s.appendChild(el("h3", null, m + ": clues, documents, windows, evidence"));
  if (v.acc != null) s.appendChild(funnelStrip(v)); // no gold answers: no funnel
  const clues = el("div");
  clues.append("Clues: ", chips(v.clues || []));
  s.appendChild(clues);
  const terms = el("div");
  terms.append("Expansion terms: ", chips(v.expansion || []));
  s.appendChild(terms);
  const windows = v.windows || [];
  const evidences = v.evidences || [];
  s.appendChild(el("h4", null, "Evidence (" + evidences.length + "), inside its document"));
  evidences.forEach((e, i) => {
    const head = el("div", "evhead");
    head.appendChild(el("span", "title", "Evidence " + (i + 1) + ": "));
    head.appendChild(untrusted("span", "title", title(e.doc)));
    const w = e.window !== undefined && e.window !== null ? windows[e.window] : null;
    head.append(w ? "  (from kept window " + e.window + ")" : "", "  gold: ");
    head.appendChild(goldFlag(q, e.gold));
    if (e.verbatim === false) head.appendChild(el("span", "no", "  not verbatim corpus text"));
    s.appendChild(head);
    const sameDoc = w && w.at && w.doc === e.doc ? w.at : null;
    s.appendChild(passageView(q, e, { cls: "ev", whole: true, window: sameDoc }));
  });
  if (!evidences.length) s.appendChild(el("div", "na", "no evidence written"));
  s.appendChild(el("h4", null, "Kept windows (" + windows.length + ")"));
  const used = new Map();
  evidences.forEach((e, i) => { if (e.window !== undefined && e.window !== null) used.set(e.window, i + 1); });
  s.appendChild(table(["#", "document", "S(w)", "weight", "clue", "gold", "evidence", "text"],
    windows.map((w, k) => [String(k), untrusted("span", null, title(w.doc)), fmt(w.score, 3),
      fmt(w.weight, 2), untrusted("span", null, w.clue || ""), goldFlag(q, w.gold),
      used.has(k) ? String(used.get(k)) : "-", passageView(q, w, { cls: "win", small: true })])));
  const details = el("details");
  details.open = state.open;
  const cands = v.candidates || [];
  const gold = cands.filter((c) => c.gold).length;
  details.appendChild(el("summary", null, "Candidate documents (" + cands.length + ", "
    + gold + " holding a gold answer)"));
  details.appendChild(table(["#", "document", "fused", "clue score", "clue rank", "SPLADE rank", "gold", ""],
    cands.map((c, i) => {
      let show = "";
      if (c.gold) {
        show = el("button", "link", "show");
        show.type = "button";
        show.addEventListener("click", () => {
          show.replaceWith(docView(c.doc, [{ spans: goldSpans(q, c.doc), cls: "gold" }], null));
        });
      }
      return [String(i + 1), untrusted("span", null, title(c.doc)), fmt(c.fused, 3),
        fmt(c.clue_score, 2), c.clue_rank ?? "-", c.sparse_rank ?? "-", goldFlag(q, c.gold), show];
    })));
  s.appendChild(details);
  if ((v.notes || []).length) s.appendChild(untrusted("div", "notes", "notes: " + v.notes.join("; ")));
  return s;
}

function ragSection(q, methods) {
  const s = el("section", "trace");
  s.appendChild(el("h3", null, "RAG passages, side by side"));
  const grid = el("div", "rag");
  for (const m of methods) {
    const v = q.methods[m];
    const col = el("div");
    col.dataset.method = m;
    const head = el("h4", null, m + " (answer " + (v.acc >= 0.5 ? "correct" : "incorrect") + ")");
    col.appendChild(head);
    (v.evidences || []).forEach((p, i) => {
      const box = el("div", "passage");
      const line = el("div");
      line.append("#" + (i + 1) + " ");
      line.appendChild(untrusted("span", "title", title(p.doc)));
      line.append("  gold: ");
      line.appendChild(goldFlag(q, p.gold));
      box.appendChild(line);
      box.appendChild(passageView(q, p, { cls: "ev" }));
      col.appendChild(box);
    });
    grid.appendChild(col);
  }
  s.appendChild(grid);
  return s;
}

function card(q) {
  const art = el("article", "q");
  art.dataset.qid = q.key;
  const head = el("header");
  head.appendChild(el("span", "badge", q.dataset));
  head.appendChild(untrusted("span", "qid", q.id));
  head.appendChild(untrusted("h2", null, q.question));
  const golds = el("div", "golds");
  golds.append("Gold: ", chips(q.golds, "chip goldchip"));
  head.appendChild(golds);
  art.appendChild(head);
  const methods = DATA.methods.filter((m) => q.methods[m] && (!state.method || state.method === m));
  art.appendChild(answersTable(q, methods));
  for (const m of methods.filter((m) => q.methods[m].windowed)) art.appendChild(traceSection(q, m));
  const rag = methods.filter((m) => !q.methods[m].windowed && (q.methods[m].evidences || []).length);
  if (rag.length) art.appendChild(ragSection(q, rag));
  return art;
}
