// Filters (kept in the URL's hash, so a view can be linked) and rendering.
function correct(q, m) {
  const v = m ? q.methods[m] : null;
  return v && v.acc != null ? v.acc >= 0.5 : null;
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
    const vs = found.map((q) => q.methods[m]).filter((v) => v && v.acc != null);
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
