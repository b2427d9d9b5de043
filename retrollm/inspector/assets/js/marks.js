// Page data, constants and the pieces every card is made of. Every piece of corpus
// text and model output is untrusted, so it only ever reaches the page as textContent
// (never innerHTML), inside elements that isolate its bidirectional marks.
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

// Whether a gold answer is in something; a question without gold answers has no say.
function goldFlag(q, value) {
  return q.golds.length ? flag(value) : el("span", "na", "-");
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
