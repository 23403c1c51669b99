// labelaudit review: filter, sort, paginate and decide on the flagged samples.
// Every value from the data is put on the page with textContent or a DOM property, never as HTML.
(function () {
  "use strict";

  var R = JSON.parse(document.getElementById("review-data").textContent);
  var table = document.getElementById("samples");
  if (!table) { return; }  // no audit or nothing flagged: no review table on the page

  var rows = R.rows;
  var classes = R.classes;
  var STORE = "labelaudit:decisions:" + R.report_id;
  var PREVIEW_CHARS = 240;
  var PREVIEW_VALUES = 6;
  var DECISIONS = ["keep", "relabel", "remove"];
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var $ = function (id) { return document.getElementById(id); };
  var tbody = table.tBodies[0];

  // Lower-cased search strings, computed once so filtering 5,000 rows stays instant.
  rows.forEach(function (row, i) {
    row._i = i;
    row._search = (row.id + "\n" + (row.text || "")).toLowerCase();
  });

  var storageOk = true;
  var decisions = loadDecisions();  // Map id -> {decision, new_label}; a Map so any id is safe
  var expanded = new Set();
  var state = { given: "", suggested: "", status: "", query: "", sort: "rank", dir: 1,
                page: 0, size: 50, cursor: 0 };
  var view = [];

  // ------------------------------------------------------------------ storage

  function loadDecisions() {
    var map = new Map();
    try {
      var raw = window.localStorage.getItem(STORE);
      var known = new Set(rows.map(function (r) { return r.id; }));
      if (raw) {
        JSON.parse(raw).forEach(function (entry) {
          if (Array.isArray(entry) && known.has(entry[0]) && DECISIONS.indexOf(entry[1]) >= 0) {
            map.set(entry[0], { decision: entry[1], new_label: entry[1] === "relabel" ? String(entry[2]) : "" });
          }
        });
      }
    } catch (err) {
      storageOk = false;
    }
    return map;
  }

  function saveDecisions() {
    var list = [];
    decisions.forEach(function (d, id) { list.push([id, d.decision, d.new_label]); });
    try {
      window.localStorage.setItem(STORE, JSON.stringify(list));
      storageOk = true;
    } catch (err) {
      storageOk = false;
    }
    $("storage-warning").hidden = storageOk;
  }

  // ------------------------------------------------------------------ decisions

  function decide(row, decision, newLabel) {
    if (decision === "relabel" && (newLabel === row.given_label || classes.indexOf(newLabel) < 0)) {
      decision = newLabel === row.given_label ? "keep" : null;
    }
    if (!decision) {
      decisions.delete(row.id);
    } else {
      decisions.set(row.id, { decision: decision, new_label: decision === "relabel" ? newLabel : "" });
    }
    saveDecisions();
    redrawRow(row);
    updateProgress();
  }

  function decisionOf(row) { return decisions.get(row.id) || null; }

  // ------------------------------------------------------------------ filter, sort, paginate

  function sortKey(row) {
    var d;
    switch (state.sort) {
      case "rank": return row.rank === null ? Infinity : row.rank;
      case "label_quality": return row.label_quality === null ? Infinity : row.label_quality;
      case "decision":
        d = decisionOf(row);
        return d ? DECISIONS.indexOf(d.decision) + 1 : 0;
      case "text": return row.text || "";
      default: return row[state.sort] || "";
    }
  }

  function compare(a, b) {
    var x = sortKey(a), y = sortKey(b), c;
    c = (typeof x === "number" && typeof y === "number") ? (x < y ? -1 : x > y ? 1 : 0)
      : collator.compare(String(x), String(y));
    return c * state.dir || a._i - b._i;
  }

  function matches(row) {
    if (state.given && row.given_label !== state.given) { return false; }
    if (state.suggested && row.suggested_label !== state.suggested) { return false; }
    if (state.query && row._search.indexOf(state.query) < 0) { return false; }
    if (state.status) {
      var d = decisionOf(row);
      if (state.status === "todo") { return !d; }
      if (state.status === "done") { return !!d; }
      return !!d && d.decision === state.status;
    }
    return true;
  }

  function refresh(keepCursor) {
    var current = view[state.cursor];
    view = rows.filter(matches).sort(compare);
    var at = keepCursor && current ? view.indexOf(current) : -1;
    state.cursor = at >= 0 ? at : 0;
    state.page = Math.floor(state.cursor / state.size);
    draw();
  }

  // ------------------------------------------------------------------ drawing

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function button(label, className, title, onClick) {
    var b = el("button", className, label);
    b.type = "button";
    b.title = title;
    b.addEventListener("click", function (event) { event.stopPropagation(); onClick(); });
    return b;
  }

  function sampleCell(row) {
    var td = el("td", "sample");
    var open = expanded.has(row.id);
    if (R.kind === "images") {
      if (typeof row.thumbnail === "string" && row.thumbnail.indexOf("data:image/") === 0) {
        var img = el("img", "thumb");
        img.alt = "image " + row.id;
        img.title = row.id;
        img.decoding = "async";
        img.addEventListener("load", function () {
          if (img.naturalWidth < 48) { img.classList.add("pixelated"); }
        });
        img.src = row.thumbnail;
        td.appendChild(img);
      }
    } else if (R.kind === "text") {
      var text = row.text || "";
      var long = text.length > PREVIEW_CHARS || row.text_length > text.length;
      var body = el("div", open ? "text full" : "text",
                    open || text.length <= PREVIEW_CHARS ? text : text.slice(0, PREVIEW_CHARS) + "…");
      td.appendChild(body);
      if (open && row.text_length > text.length) {
        td.appendChild(el("div", "muted", "(first " + text.length.toLocaleString() + " of " +
                          row.text_length.toLocaleString() + " characters; the data file has the rest)"));
      }
      if (long) {
        td.appendChild(button(open ? "Show less" : "Show full text", "more", "show or hide the full text (o)",
                              function () { toggleOpen(row); }));
      }
    } else {
      var values = row.values || [];
      var grid = el("div", "values");
      var n = open ? values.length : Math.min(values.length, PREVIEW_VALUES);
      for (var k = 0; k < n; k++) {
        var kv = el("span", "kv");
        var key = el("span", "k", R.feature_columns[k]);
        key.title = R.feature_columns[k];
        kv.appendChild(key);
        kv.appendChild(el("span", "v", values[k]));
        grid.appendChild(kv);
      }
      td.appendChild(grid);
      if (values.length > PREVIEW_VALUES) {
        td.appendChild(button(open ? "Show fewer" : "+" + (values.length - PREVIEW_VALUES) + " more values",
                              "more", "show or hide all values (o)", function () { toggleOpen(row); }));
      }
    }
    return td;
  }

  function decisionCell(row) {
    var td = el("td");
    var box = el("div", "decide");
    var d = decisionOf(row);
    var on = function (name) { return d && d.decision === name; };
    box.appendChild(button("Keep", "keep" + (on("keep") ? " on" : ""), "keep the given label (g)",
                           function () { select(row); decide(row, on("keep") ? null : "keep"); }));
    if (row.suggested_label !== row.given_label) {
      var toSuggested = on("relabel") && d.new_label === row.suggested_label;
      box.appendChild(button("→ " + row.suggested_label, "relabel" + (toSuggested ? " on" : ""),
                             "relabel to the suggested label " + row.suggested_label + " (s)", function () {
                               select(row);
                               decide(row, toSuggested ? null : "relabel", row.suggested_label);
                             }));
    }
    var picker = el("select", on("relabel") && d.new_label !== row.suggested_label ? "on" : "");
    picker.title = "relabel to another class (c)";
    picker.setAttribute("aria-label", "relabel " + row.id + " to");
    picker.appendChild(el("option", "", "Relabel to…")).value = "";
    classes.forEach(function (name) {
      if (name === row.given_label) { return; }
      var option = el("option", "", name);
      option.value = name;
      if (on("relabel") && d.new_label === name) { option.selected = true; }
      picker.appendChild(option);
    });
    picker.addEventListener("click", function (event) { event.stopPropagation(); select(row); });
    picker.addEventListener("change", function () {
      if (picker.value) {
        decide(row, "relabel", picker.value);
        picker.blur();
        move(1);
      }
    });
    box.appendChild(picker);
    box.appendChild(button("Remove", "remove" + (on("remove") ? " on" : ""), "remove the sample (x)",
                           function () { select(row); decide(row, on("remove") ? null : "remove"); }));
    td.appendChild(box);
    var status = d ? (d.decision === "keep" ? "kept as " + row.given_label
      : d.decision === "remove" ? "removed" : "relabeled to " + d.new_label) : "";
    td.appendChild(el("span", "status" + (d ? " " + d.decision : ""), status));
    return td;
  }

  function buildRow(row) {
    var tr = el("tr");
    var d = decisionOf(row);
    tr.dataset.index = String(row._i);
    if (d) { tr.classList.add("d-" + d.decision); }
    if (view[state.cursor] === row) { tr.classList.add("selected"); }
    tr.appendChild(el("td", "num", row.rank === null ? "–" : row.rank));
    tr.appendChild(sampleCell(row));
    var idCell = el("td");
    idCell.appendChild(el("span", "id", row.id));
    tr.appendChild(idCell);
    var given = el("td");
    given.appendChild(el("span", "label", row.given_label)).title = row.given_label;
    tr.appendChild(given);
    var suggested = el("td");
    suggested.appendChild(el("span", "label suggested", row.suggested_label)).title = row.suggested_label;
    tr.appendChild(suggested);
    var quality = el("td");
    var q = el("div", "quality");
    var bar = el("span", "bar");
    var fill = el("span");
    fill.style.width = Math.max(0, Math.min(1, row.label_quality || 0)) * 100 + "%";
    bar.appendChild(fill);
    q.appendChild(bar);
    q.appendChild(el("span", "", row.label_quality === null ? "n/a" : row.label_quality.toFixed(3)));
    quality.appendChild(q);
    quality.appendChild(evidenceOf(row));
    tr.appendChild(quality);
    tr.appendChild(decisionCell(row));
    tr.addEventListener("click", function () { select(row); });
    return tr;
  }

  // Each signal's own label quality (normalized margin; below 0.5 it prefers another class to
  // the given label), marked where the member's own confident learning flagged the label: a
  // sample is flagged when at least half of the members flag it. The training dynamics only
  // rank: they have no vote.
  function evidenceOf(row) {
    var box = el("div", "members");
    var flaggedBy = row.flagged_by || [];
    var voting = R.voting || R.members || [];
    (R.members || []).forEach(function (name, i) {
      var value = row.evidence ? row.evidence[i] : null;
      var missing = value === null || value === undefined;
      var shown = missing ? "n/a" : value.toFixed(3);
      var doubt = flaggedBy.indexOf(name) >= 0;
      var item = el("span", doubt ? "member doubt" : "member",
                    name + " " + (missing ? "n/a" : value.toFixed(2)));
      item.title = voting.indexOf(name) < 0
        ? name + ": its label quality " + shown + " joins the ranking; it has no vote"
        : name + (doubt ? " flags this label" : " does not flag this label") +
          " (its own confident learning; its own label quality " + shown + ")";
      box.appendChild(item);
    });
    return box;
  }

  function pageRows() {
    var start = state.page * state.size;
    return view.slice(start, start + state.size);
  }

  function draw() {
    var fragment = document.createDocumentFragment();
    pageRows().forEach(function (row) { fragment.appendChild(buildRow(row)); });
    tbody.replaceChildren(fragment);
    var pages = Math.max(1, Math.ceil(view.length / state.size));
    var start = view.length ? state.page * state.size + 1 : 0;
    var end = Math.min(view.length, (state.page + 1) * state.size);
    $("page-info").textContent = "Page " + (state.page + 1) + " of " + pages + " · samples " +
      start.toLocaleString() + "–" + end.toLocaleString() + " of " + view.length.toLocaleString() +
      (view.length < rows.length ? " (filtered from " + rows.length.toLocaleString() + ")" : "");
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    $("empty").hidden = view.length > 0;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (th.dataset.sort && th.dataset.sort === state.sort) {
        th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    updateProgress();
  }

  function rowElement(row) {
    return tbody.querySelector('tr[data-index="' + row._i + '"]');
  }

  function redrawRow(row) {
    var old = rowElement(row);
    if (old) { old.replaceWith(buildRow(row)); }
  }

  function updateProgress() {
    var counts = { keep: 0, relabel: 0, remove: 0 };
    decisions.forEach(function (d) { counts[d.decision] += 1; });
    var done = counts.keep + counts.relabel + counts.remove;
    $("progress").textContent = "Reviewed " + done.toLocaleString() + " of " + rows.length.toLocaleString() +
      " · keep " + counts.keep + " · relabel " + counts.relabel + " · remove " + counts.remove;
    $("progress-bar").style.width = (rows.length ? 100 * done / rows.length : 0) + "%";
  }

  // ------------------------------------------------------------------ selection and keys

  function select(row) {
    var at = view.indexOf(row);
    if (at < 0 || at === state.cursor) { return; }
    var before = view[state.cursor];
    state.cursor = at;
    if (before) {
      var old = rowElement(before);
      if (old) { old.classList.remove("selected"); }
    }
    var now = rowElement(row);
    if (now) { now.classList.add("selected"); }
  }

  function move(delta) {
    if (!view.length) { return; }
    var target = Math.max(0, Math.min(view.length - 1, state.cursor + delta));
    var page = Math.floor(target / state.size);
    if (page !== state.page) {
      state.cursor = target;
      state.page = page;
      draw();
    } else {
      select(view[target]);
    }
    var node = rowElement(view[state.cursor]);
    if (node) { node.scrollIntoView({ block: "nearest" }); }
  }

  function goPage(delta) {
    var pages = Math.max(1, Math.ceil(view.length / state.size));
    var page = Math.max(0, Math.min(pages - 1, state.page + delta));
    if (page === state.page) { return; }
    state.page = page;
    state.cursor = page * state.size;
    draw();
    table.scrollIntoView({ block: "start" });
  }

  function toggleOpen(row) {
    if (expanded.has(row.id)) { expanded.delete(row.id); } else { expanded.add(row.id); }
    redrawRow(row);
  }

  function current() { return view[state.cursor]; }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    if (tag === "BUTTON" && (event.key === "Enter" || event.key === " ")) { return; }
    var row = current();
    var handled = true;
    switch (event.key) {
      case "j": case "ArrowDown": move(1); break;
      case "k": case "ArrowUp": move(-1); break;
      case "n": goPage(1); break;
      case "p": goPage(-1); break;
      case "/": $("search").focus(); break;
      case "g": if (row) { decide(row, "keep"); move(1); } break;
      case "s":
        if (row) { decide(row, row.suggested_label === row.given_label ? "keep" : "relabel", row.suggested_label); move(1); }
        break;
      case "x": if (row) { decide(row, "remove"); move(1); } break;
      case "u": if (row) { decide(row, null); } break;
      case "o": case "Enter": if (row) { toggleOpen(row); } break;
      case "c":
        if (row) {
          var node = rowElement(row);
          var picker = node && node.querySelector("select");
          if (picker) {
            picker.focus();
            try { picker.showPicker(); } catch (err) { /* older browsers: focused is enough */ }
          }
        }
        break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  });

  // ------------------------------------------------------------------ export

  function csvField(value) {
    var s = String(value);
    return /[",\r\n]|^\s|\s$/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function decisionsCsv() {
    var lines = ["id,given_label,decision,new_label"];
    rows.forEach(function (row) {
      var d = decisionOf(row);
      if (d) {
        lines.push([row.id, row.given_label, d.decision, d.new_label].map(csvField).join(","));
      }
    });
    return lines.join("\r\n") + "\r\n";
  }

  $("export").addEventListener("click", function () {
    var blob = new Blob([decisionsCsv()], { type: "text/csv;charset=utf-8" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "decisions.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
  });

  $("clear").addEventListener("click", function () {
    if (!decisions.size) { return; }
    if (window.confirm("Clear all " + decisions.size + " decisions of this report?")) {
      decisions.clear();
      saveDecisions();
      refresh(true);
    }
  });

  // ------------------------------------------------------------------ controls

  ["filter-given", "filter-suggested"].forEach(function (id) {
    var box = $(id);
    var used = new Set(rows.map(function (r) { return id === "filter-given" ? r.given_label : r.suggested_label; }));
    classes.forEach(function (name) {
      if (!used.has(name)) { return; }
      var option = el("option", "", name);
      option.value = name;
      box.appendChild(option);
    });
  });
  $("filter-given").addEventListener("change", function (e) { state.given = e.target.value; refresh(false); });
  $("filter-suggested").addEventListener("change", function (e) { state.suggested = e.target.value; refresh(false); });
  $("filter-status").addEventListener("change", function (e) { state.status = e.target.value; refresh(false); });
  $("page-size").addEventListener("change", function (e) {
    state.size = parseInt(e.target.value, 10) || 50;
    refresh(true);
  });
  var searchTimer = null;
  $("search").addEventListener("input", function (e) {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { state.query = e.target.value.trim().toLowerCase(); refresh(false); }, 120);
  });
  $("prev").addEventListener("click", function () { goPage(-1); });
  $("next").addEventListener("click", function () { goPage(1); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    if (!th.dataset.sort) { return; }
    th.tabIndex = 0;
    var sortBy = function () {
      state.dir = state.sort === th.dataset.sort ? -state.dir : 1;
      state.sort = th.dataset.sort;
      refresh(true);
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.stopPropagation(); sortBy(); } });
  });

  $("storage-warning").hidden = storageOk;
  refresh(false);
}());
