// The evidence inspector: renders the JSON block #inspector-data. Every piece of corpus
// text and model output is untrusted, so it only ever reaches the page as textContent
// (never innerHTML), inside elements that isolate its bidirectional marks.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("inspector-data").textContent);
  const PAGE = 30; // cards rendered at a time: a card with four documents is a lot of DOM
  const CONTEXT = 1500; // characters shown either side of an evidence in a long document
  const LONG = 4000; // a document longer than this is clipped around its evidence
  const STEP_LABEL = {
    documents: "documents", located: "located windows", kept: "kept windows",
    evidence: "any evidence", first_evidence: "first evidence", answer: "answer",
  };
  const KEYS = ["dataset", "method", "outcome", "compare", "lost", "q"];
  const state = { shown: PAGE, open: false };
  const byId = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Untrusted text: its own bidi context, so an RTL override inside cannot flip the page.
  function untrusted(tag, cls, text) {
    const node = el(tag, cls ? cls + " u" : "u", text);
    node.dir = "auto";
    return node;
  }

  function fmt(value, digits) {
    return value === undefined || value === null ? "-" : Number(value).toFixed(digits);
  }

  function flag(value) {
    if (value === undefined || value === null) return el("span", "na", "-");
    return value ? el("span", "yes", "yes") : el("span", "no", "no");
  }

  // `chars` is the text as code points (spans are code point offsets, as Python counts);
  // each layer is {spans: [[start, end], ...], cls}; pieces covered by a layer are marks.
  function marked(chars, from, to, layers, cls) {
    const box = untrusted("span", cls);
    const cuts = new Set([from, to]);
    for (const layer of layers) {
      for (const [s, e] of layer.spans) {
        if (e > from && s < to) { cuts.add(Math.max(s, from)); cuts.add(Math.min(e, to)); }
      }
    }
    const points = Array.from(cuts).sort((a, b) => a - b);
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i], b = points[i + 1];
      const piece = chars.slice(a, b).join("");
      const classes = layers
        .filter((l) => l.spans.some(([s, e]) => s <= a && b <= e)).map((l) => l.cls);
      box.appendChild(classes.length ? el("mark", classes.join(" "), piece)
        : document.createTextNode(piece));
    }
    return box;
  }

  function markedText(text, layers, cls) {
    const chars = Array.from(text);
    return marked(chars, 0, chars.length, layers, cls);
  }

  // A document with its marks; a long one shows the evidence's neighbourhood first.
  function docView(doc, layers, focus) {
    const info = DATA.documents[doc];
    const box = el("div", "doc");
    if (!info || info.text === undefined || info.text === null) {
      box.appendChild(el("span", "na", "(document text not embedded)"));
      return box;
    }
    const chars = docChars(doc);
    const render = (from, to) => {
      box.textContent = "";
      if (from > 0) box.appendChild(el("span", "na", "\u2026 "));
      box.appendChild(marked(chars, from, to, layers));
      if (to < chars.length) box.appendChild(el("span", "na", " \u2026"));
      if (from > 0 || to < chars.length) {
        const all = el("button", "link", "whole document (" + chars.length + " characters)");
        all.type = "button";
        all.addEventListener("click", () => render(0, chars.length));
        box.appendChild(all);
      }
    };
    if (chars.length > LONG && focus) {
      render(Math.max(0, focus[0] - CONTEXT), Math.min(chars.length, focus[1] + CONTEXT));
    } else {
      render(0, chars.length);
    }
    return box;
  }

  function title(doc) {
    const info = DATA.documents[doc];
    return info ? info.title : doc < 0 ? "(not in the corpus)" : "document " + doc;
  }

  function goldSpans(q, doc) { return q.gold[doc] || []; }

  const CHARS = new Map(); // document -> its code points, split once
  function docChars(doc) {
    const info = DATA.documents[doc];
    if (!info || info.text === undefined || info.text === null) return null;
    if (!CHARS.has(doc)) CHARS.set(doc, Array.from(info.text));
    return CHARS.get(doc);
  }

  // An evidence, window or passage: inside its document when located, else on its own.
  // `whole`: the whole document around it; else only its own span of the document.
  function passageView(q, p, extra) {
    const chars = p.at ? docChars(p.doc) : null;
    const gold = { spans: chars ? goldSpans(q, p.doc) : p.text_gold || [], cls: "gold" };
    if (chars && extra.whole) {
      const layers = [{ spans: [p.at], cls: extra.cls }];
      if (extra.window) layers.push({ spans: [extra.window], cls: "win" });
      layers.push(gold);
      return docView(p.doc, layers, p.at);
    }
    const box = el("div", extra.small ? "doc small" : "doc");
    box.appendChild(chars ? marked(chars, p.at[0], p.at[1], [gold])
      : markedText(p.text || "", [gold]));
    return box;
  }

  function table(headers, rows) {
    const t = el("table", "grid");
    const head = t.createTHead().insertRow();
    for (const h of headers) head.appendChild(el("th", null, h));
    const body = t.createTBody();
    for (const cells of rows) {
      const row = body.insertRow();
      for (const cell of cells) {
        const td = row.insertCell();
        if (cell instanceof Node) td.appendChild(cell);
        else { td.textContent = cell === null || cell === undefined ? "-" : String(cell); }
        if (typeof cell === "number" || (typeof cell === "string" && /^[-+0-9.]+$/.test(cell))) {
          td.className = "num";
        }
      }
    }
    return t;
  }

  function chips(values, cls) {
    const box = el("span");
    // A newline inside a clue is part of it: shown as a visible mark, not a line break.
    for (const v of values) box.appendChild(untrusted("span", cls || "chip", v.replace(/\n/g, " \u23ce ")));
    if (!values.length) box.appendChild(el("span", "na", "none"));
    return box;
  }

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

  function answersTable(q, methods) {
    const rows = methods.map((m) => {
      const v = q.methods[m];
      return [
        el("span", null, m),
        markedText(v.answer || "", [{ spans: v.answer_gold || [], cls: "gold" }]),
        flag(v.acc >= 0.5), fmt(v.em, 0), fmt(v.f1, 2), String(v.tokens),
        v.status + (v.well_formed ? "" : ", malformed"),
        v.lost ? STEP_LABEL[v.lost] : el("span", "yes", "not lost"),
      ];
    });
    return table(["method", "answer", "Acc", "EM", "F1", "Tok", "status", "gold lost at"], rows);
  }

  function traceSection(q, m) {
    const v = q.methods[m];
    const s = el("section", "trace");
    s.dataset.method = m;
    s.appendChild(el("h3", null, m + ": clues, documents, windows, evidence"));
    s.appendChild(funnelStrip(v));
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
      head.appendChild(flag(e.gold));
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
        fmt(w.weight, 2), untrusted("span", null, w.clue || ""), flag(w.gold),
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
          fmt(c.clue_score, 2), c.clue_rank ?? "-", c.sparse_rank ?? "-", flag(c.gold), show];
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
        line.appendChild(flag(p.gold));
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

  function correct(q, m) {
    const v = m ? q.methods[m] : null;
    return v ? v.acc >= 0.5 : null;
  }

  function focusMethod() { return state.method || DATA.full_method || DATA.methods[0] || ""; }

  function matches(q) {
    if (state.dataset && q.dataset !== state.dataset) return false;
    if (state.method && !q.methods[state.method]) return false;
    const focus = focusMethod();
    if (state.outcome) {
      const ok = correct(q, focus);
      if (ok === null || ok !== (state.outcome === "correct")) return false;
    }
    if (state.compare) {
      const full = correct(q, DATA.full_method);
      const rags = DATA.rag_methods.map((m) => correct(q, m)).filter((v) => v !== null);
      if (full === null || !rags.length) return false;
      if (state.compare === "full-wrong-rag-right" && (full || !rags.some((v) => v))) return false;
      if (state.compare === "full-right-rag-wrong" && (!full || rags.some((v) => v))) return false;
    }
    if (state.lost) {
      const v = q.methods[focus];
      if (!v || (v.lost || "none") !== state.lost) return false;
    }
    if (state.q) {
      const needle = state.q.toLowerCase();
      const hay = [q.question, q.id, ...q.golds].join("\n").toLowerCase();
      if (!hay.includes(needle)) return false;
    }
    return true;
  }

  function summary(found) {
    const box = byId("summary");
    box.textContent = "";
    const line = el("div", null, found.length + " of " + DATA.questions.length + " questions match");
    line.id = "count";
    line.dataset.count = String(found.length);
    box.appendChild(line);
    const methods = DATA.methods.filter((m) => !state.method || m === state.method);
    const rows = methods.map((m) => {
      const vs = found.map((q) => q.methods[m]).filter(Boolean);
      const mean = (key) => vs.length ? (100 * vs.reduce((a, v) => a + v[key], 0) / vs.length).toFixed(1) : "-";
      return [m, String(vs.length), mean("acc"), mean("em"), mean("f1")];
    }).filter((r) => r[1] !== "0");
    if (rows.length) box.appendChild(table(["method (over these questions)", "n", "Acc", "EM", "F1"], rows));
  }

  function render() {
    const found = DATA.questions.filter(matches);
    summary(found);
    const main = byId("questions");
    main.textContent = "";
    for (const q of found.slice(0, state.shown)) main.appendChild(card(q));
    if (!found.length) main.appendChild(el("div", "empty", "No question matches these filters."));
    const more = byId("more");
    more.hidden = found.length <= state.shown;
    more.textContent = "Show " + Math.min(PAGE, found.length - state.shown) + " more of "
      + (found.length - state.shown);
    byId("f-outcome-of").textContent = focusMethod() ? "(" + focusMethod() + ")" : "";
  }

  function options(select, values, labels) {
    values.forEach((v, i) => {
      const o = el("option", null, labels[i]);
      o.value = v;
      select.appendChild(o);
    });
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    for (const key of KEYS) state[key] = params.get(key) || "";
    state.open = params.get("open") === "1";
    for (const key of KEYS) {
      const input = byId("f-" + key);
      input.value = state[key];
      if (input.value !== state[key]) { state[key] = ""; input.value = ""; } // unknown option
    }
  }

  function writeHash() {
    const params = new URLSearchParams();
    for (const key of KEYS) if (state[key]) params.set(key, state[key]);
    if (state.open) params.set("open", "1");
    const hash = "#" + params.toString();
    try { history.replaceState(null, "", hash); } catch (error) { /* some file:// setups refuse */ }
  }

  function setup() {
    document.title = DATA.title;
    byId("page-title").textContent = DATA.title;
    options(byId("f-dataset"), ["", ...DATA.datasets], ["all", ...DATA.datasets]);
    options(byId("f-method"), ["", ...DATA.methods], ["all", ...DATA.methods]);
    options(byId("f-lost"), ["", ...DATA.steps, "none"],
      ["any", ...DATA.steps.map((s) => STEP_LABEL[s]), "not lost"]);
    const compare = byId("f-compare");
    if (!DATA.full_method || !DATA.rag_methods.length) compare.disabled = true;
    else {
      compare.options[1].textContent = DATA.full_method + " wrong where RAG right";
      compare.options[2].textContent = DATA.full_method + " right where every RAG wrong";
    }
    readHash();
    for (const key of KEYS) {
      byId("f-" + key).addEventListener(key === "q" ? "input" : "change", (event) => {
        state[key] = event.target.value.trim();
        state.shown = PAGE;
        writeHash();
        render();
      });
    }
    byId("filters").addEventListener("submit", (event) => event.preventDefault());
    byId("more").addEventListener("click", () => { state.shown += PAGE; render(); });
    window.addEventListener("hashchange", () => { readHash(); state.shown = PAGE; render(); });
    render();
  }

  setup();
})();
