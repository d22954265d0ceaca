/* The triage report: reads the embedded JSON and builds the page. Every value from the run goes
   into the page with textContent (or as a canvas label), never as HTML. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const NUM = new Intl.NumberFormat("en-GB");
  const COLOURS = {
    FALSE_POSITIVE: "#7f8c9a", PARSING_ERROR: "#8e6cc7", SPELLING_ERROR: "#d64545",
    ABSOLUTE_GRAMMATICAL_ERROR: "#e07b24", POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR: "#e8b730",
    STYLISTIC_PREFERENCE: "#3a9c6b", CONSISTENCY_ERROR: "#2b7bb9", AMBIGUOUS_PHRASING: "#5cb8c4",
    FACTUAL_INACCURACY: "#a0306b",
  };
  const LABELS = {
    requests: "Requests sent", input_tokens: "Input tokens", output_tokens: "Output tokens",
    estimated_cost_usd: "Estimated cost", started_at: "Started", finished_at: "Finished",
    duration_seconds: "Run time",
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(key, value) {
    if (value === null || value === undefined || value === "") return "–";
    if (typeof value === "number") {
      if (/cost/.test(key)) return "$" + value.toFixed(value < 1 ? 4 : 2);
      if (/seconds$/.test(key)) return duration(value);
      return NUM.format(value);
    }
    if (typeof value === "object") return Object.entries(value).map(([k, v]) => k + ": " + fmt(key, v)).join(", ");
    return String(value);
  }
  function duration(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m < 60 ? m + " min " + s + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function humanise(key) {
    const text = LABELS[key] || key.replace(/[_-]+/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
  function row(table, cells, numeric) {
    const tr = el("tr");
    cells.forEach((c, i) => tr.appendChild(el(i === 0 ? "th" : "td", i > 0 && numeric ? "num" : "", c)));
    table.appendChild(tr);
  }
  function safeHref(href) {
    return typeof href === "string" && !/^[a-z][a-z0-9+.-]*:/i.test(href) && !href.startsWith("//") ? href : null;
  }

  /* Overview */
  const ov = data.overview;
  const cards = document.getElementById("cards");
  function card(label, value, warn) {
    const c = el("div", "card" + (warn ? " warn" : ""));
    c.appendChild(el("div", "value", typeof value === "number" ? NUM.format(value) : value));
    c.appendChild(el("div", "label", label));
    cards.appendChild(c);
  }
  card("flags", ov.flags);
  card("documents", ov.documents);
  card("subjects", ov.subjects);
  Object.entries(ov.statuses).forEach(([s, n]) => card("status " + s, n, s === "failed" || s === "missing"));
  if (ov.skippedDocuments) card("documents skipped", ov.skippedDocuments, true);
  if (ov.skippedRows) card("report rows skipped", ov.skippedRows, true);
  if (ov.warnings) card("warnings", ov.warnings);
  const catTable = document.getElementById("category-table");
  Object.entries(ov.categories).forEach(([c, n]) =>
    row(catTable, [c, NUM.format(n), ((100 * n) / Math.max(ov.flags, 1)).toFixed(1) + "%"], true));
  const runTable = document.getElementById("run-table");
  ov.models.forEach(([provider, model, n]) =>
    row(runTable, ["Provider / model", (provider || "–") + " / " + (model || "–") + " (" + NUM.format(n) + " flags)"]));
  ov.summary.forEach(([key, value]) => row(runTable, [humanise(key), fmt(key, value)]));

  /* Charts */
  if (window.Chart) {
    Chart.defaults.animation = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    const ch = data.charts;
    const subjectsCanvas = document.getElementById("chart-subjects");
    subjectsCanvas.parentElement.style.height = 130 + 26 * Math.max(ch.subjects.length, 4) + "px";
    new Chart(subjectsCanvas, {
      type: "bar",
      data: {
        labels: ch.subjects,
        datasets: Object.entries(ch.categoriesBySubject).map(([c, values]) => ({
          label: c, data: values, backgroundColor: COLOURS[c] || "#999",
        })),
      },
      options: {
        indexAxis: "y", maintainAspectRatio: false,
        scales: {
          x: { stacked: true, title: { display: true, text: "flags" } },
          y: { stacked: true, ticks: { autoSkip: false } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
    new Chart(document.getElementById("chart-confidence"), {
      type: "line",
      data: {
        labels: ch.confidenceBins,
        datasets: Object.entries(ch.confidenceByCategory).map(([c, values]) => ({
          label: c, data: values, borderColor: COLOURS[c] || "#999", backgroundColor: COLOURS[c] || "#999", tension: 0,
        })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { x: { title: { display: true, text: "confidence" } }, y: { beginAtZero: true, title: { display: true, text: "flags" } } },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
    document.getElementById("rules-caption").textContent =
      "LanguageTool rules ranked by false-positive share (the " + ch.rules.length +
      " highest of the rules with at least " + data.feedback.minRuleFlags + " answered flags)";
    const rulesCanvas = document.getElementById("chart-rules");
    rulesCanvas.parentElement.style.height = 70 + 24 * Math.max(ch.rules.length, 3) + "px";
    new Chart(rulesCanvas, {
      type: "bar",
      data: {
        labels: ch.rules.map((r) => r[0] + " (" + r[1] + "/" + r[2] + ")"),
        datasets: [{
          label: "false-positive share (%)",
          data: ch.rules.map((r) => Math.round((1000 * r[1]) / r[2]) / 10),
          backgroundColor: ch.rules.map((r) => (r[1] / r[2] >= data.feedback.minRuleShare ? "#5f6b7a" : "#b8c2cc")),
          maxBarThickness: 18,
        }],
      },
      options: {
        indexAxis: "y", maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: 100, title: { display: true, text: "% of the rule's flags judged FALSE_POSITIVE" } },
          y: { ticks: { autoSkip: false } },
        },
        plugins: { legend: { display: false } },
      },
    });
  }

  /* LanguageTool feedback */
  const fb = data.feedback;
  document.getElementById("feedback-intro").textContent =
    "Words to accept: flagged by a spelling rule, judged FALSE_POSITIVE with confidence " + fb.minWordConfidence +
    " or more, and never judged anything else in that subject. Rules: at least " + fb.minRuleFlags +
    " answered flags, " + Math.round(fb.minRuleShare * 100) + "% or more of them FALSE_POSITIVE. The same lists are in " +
    decodeURIComponent(fb.folder) + "/ (see the README for how to give them to LanguageTool).";
  const disable = document.getElementById("disable-table");
  row(disable, ["Rule", "False positives", "Flags", "Share"]);
  if (!fb.disable.length) row(disable, ["none"]);
  fb.disable.forEach(([rule, fp, n]) => row(disable, [rule, NUM.format(fp), NUM.format(n), ((100 * fp) / n).toFixed(0) + "%"], true));
  const perSubject = document.getElementById("feedback-subjects");
  fb.subjects.forEach(([subject, words, rules, wordsHref, rulesHref]) => {
    const box = el("details");
    box.appendChild(el("summary", "", subject + ": " + words.length + " word(s) to accept, " + rules.length + " rule(s) to consider disabling"));
    const links = el("p", "muted");
    [[wordsHref, "word list (spelling.txt)"], [rulesHref, "rules (disable-rules.txt)"]].forEach(([target, label], i) => {
      const a = el("a", "", label);
      const href = safeHref(target);
      if (href) a.href = href;
      if (i) links.appendChild(document.createTextNode(" · "));
      links.appendChild(a);
    });
    box.appendChild(links);
    if (words.length) {
      const list = el("ul", "words");
      words.forEach((w) => list.appendChild(el("li", "", w)));
      box.appendChild(list);
    }
    if (rules.length) {
      const t = el("table", "plain");
      rules.forEach(([rule, fp, n]) => row(t, [rule, NUM.format(fp) + " of " + NUM.format(n)], true));
      box.appendChild(t);
    }
    perSubject.appendChild(box);
  });

  /* Flags table */
  const at = Object.fromEntries(data.fields.map((f, i) => [f, i]));
  const rows = data.rows.map((r, i) => {
    const d = data.documents[r[at.doc]];
    return {
      id: i + 1, subject: d[0], filename: d[1], href: d[2], issue_id: r[at.issue_id], page: r[at.page],
      rule_id: r[at.rule_id], type: r[at.type], issue: r[at.issue], context: r[at.context],
      category: r[at.category], confidence: r[at.confidence], reasoning: r[at.reasoning],
      message: r[at.message], suggestions: r[at.suggestions], status: r[at.status], error: r[at.error],
    };
  });
  function searchText(r) {
    if (r._s === undefined) {
      r._s = [r.issue, r.context, r.reasoning, r.rule_id, r.message, r.suggestions, r.filename, r.error]
        .join("\u0001").toLowerCase();
    }
    return r._s;
  }
  function textCell(cell) {
    const v = cell.getValue();
    const span = el("span", "", v === null || v === undefined ? "" : v);
    span.title = span.textContent;
    return span;
  }
  function contextCell(cell) {
    const r = cell.getRow().getData();
    const span = el("span", "ctx");
    const context = String(r.context || "");
    const issue = String(r.issue || "");
    // LanguageTool wraps the match in ** but the Markdown around it may hold ** too (bold
    // text): mark the flagged text itself where it stands wrapped, else alternate on **.
    const at = issue ? context.indexOf("**" + issue + "**") : -1;
    if (at >= 0) {
      span.appendChild(document.createTextNode(context.slice(0, at).split("**").join("")));
      span.appendChild(el("mark", "", issue));
      span.appendChild(document.createTextNode(context.slice(at + issue.length + 4).split("**").join("")));
    } else {
      context.split("**").forEach((part, i) => {
        span.appendChild(i % 2 ? el("mark", "", part) : document.createTextNode(part));
      });
    }
    span.title = r.message + (r.suggestions ? " Suggestions: " + r.suggestions : "");
    return span;
  }
  function documentCell(cell) {
    const r = cell.getRow().getData();
    const a = el("a", "", r.filename);
    const href = safeHref(r.href);
    if (href) a.href = href;
    a.title = "Open this document's CSV";
    return a;
  }
  function reasonCell(cell) {
    const r = cell.getRow().getData();
    const span = el("span", "", r.reasoning);
    if (r.error) span.appendChild(el("span", "err", r.error));
    return span;
  }
  function statusCell(cell) {
    const v = cell.getValue();
    return el("span", "badge " + (/^[a-z]+$/.test(v) ? v : ""), v);
  }
  const table = new Tabulator("#flags-table", {
    data: rows,
    index: "id",
    height: "75vh",
    layout: "fitColumns",
    renderVertical: "virtual",
    placeholder: "No flag matches these filters",
    rowFormatter: (tr) => {
      const s = tr.getData().status;
      if (s === "failed" || s === "missing") tr.getElement().classList.add("flag-" + s);
    },
    columns: [
      { title: "#", field: "id", sorter: "number", width: 58, formatter: textCell },
      { title: "Subject", field: "subject", minWidth: 90, widthGrow: 1, formatter: textCell },
      { title: "Document", field: "filename", minWidth: 110, widthGrow: 1.2, formatter: documentCell },
      { title: "Page", field: "page", sorter: "number", width: 62, formatter: textCell },
      { title: "Rule", field: "rule_id", minWidth: 100, widthGrow: 1.2, formatter: textCell },
      { title: "Flag", field: "issue", minWidth: 80, widthGrow: 1, formatter: textCell },
      { title: "Context", field: "context", minWidth: 200, widthGrow: 3, formatter: contextCell, cssClass: "wrap" },
      { title: "Category", field: "category", minWidth: 110, widthGrow: 1.4, formatter: textCell },
      { title: "Conf.", field: "confidence", sorter: "number", width: 66, hozAlign: "right", formatter: textCell },
      { title: "Reason", field: "reasoning", minWidth: 200, widthGrow: 3, formatter: reasonCell, cssClass: "wrap" },
      { title: "Status", field: "status", width: 84, formatter: statusCell },
    ],
  });

  const $ = (id) => document.getElementById(id);
  const controls = { search: $("f-search"), subject: $("f-subject"), document: $("f-document"),
    category: $("f-category"), status: $("f-status"), min: $("f-min"), max: $("f-max") };
  function options(select, values) {
    while (select.options.length > 1) select.remove(1);
    values.forEach((v) => { const o = el("option", "", v); o.value = v; select.appendChild(o); });
  }
  const sorted = (values) => Array.from(new Set(values)).sort((a, b) => a.localeCompare(b));
  options(controls.subject, sorted(data.documents.map((d) => d[0])));
  options(controls.document, sorted(data.documents.map((d) => d[1])));
  options(controls.category, sorted(rows.map((r) => r.category).filter(Boolean)));
  options(controls.status, sorted(rows.map((r) => r.status)));

  function number(input, fallback) {
    const v = input.value === "" ? NaN : Number(input.value);
    return Number.isFinite(v) ? v : fallback;
  }
  function applyFilters() {
    const q = controls.search.value.trim().toLowerCase();
    const subject = controls.subject.value, documentName = controls.document.value;
    const category = controls.category.value, status = controls.status.value;
    const lo = number(controls.min, 0), hi = number(controls.max, 100);
    const ranged = lo > 0 || hi < 100;
    const active = q || subject || documentName || category || status || ranged;
    if (!active) table.clearFilter();
    else table.setFilter((r) =>
      (!subject || r.subject === subject) && (!documentName || r.filename === documentName) &&
      (!category || r.category === category) && (!status || r.status === status) &&
      (!ranged || (r.confidence !== null && r.confidence !== "" && r.confidence >= lo && r.confidence <= hi)) &&
      (!q || searchText(r).includes(q)));
    showCount();
    delete document.body.dataset.pending;
  }
  let timer = null;
  function later() {
    document.body.dataset.pending = "1";
    clearTimeout(timer);
    timer = setTimeout(applyFilters, 150);
  }
  [controls.search, controls.min, controls.max].forEach((c) => c.addEventListener("input", later));
  controls.subject.addEventListener("change", () => {
    const s = controls.subject.value;
    options(controls.document, sorted(data.documents.filter((d) => !s || d[0] === s).map((d) => d[1])));
    applyFilters();
  });
  [controls.document, controls.category, controls.status].forEach((c) => c.addEventListener("change", applyFilters));
  $("filters").addEventListener("reset", () => {
    document.body.dataset.pending = "1";
    setTimeout(() => {
      options(controls.document, sorted(data.documents.map((d) => d[1])));
      applyFilters();
    }, 0);
  });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });

  function showCount() {
    const shown = table.getDataCount("active");
    $("f-count").textContent = NUM.format(shown) + " of " + NUM.format(rows.length) + " flags";
    document.body.dataset.shown = String(shown);
  }
  table.on("tableBuilt", () => {
    showCount();
    document.body.dataset.readyMs = performance.now().toFixed(0);
    document.body.dataset.ready = "1";
  });
  window.triageReport = { table: table, applyFilters: applyFilters };
})();
