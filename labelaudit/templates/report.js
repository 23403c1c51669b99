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

  // An id as text, with a line-break opportunity after each "/": a narrow column wraps a path
  // between its folders rather than inside a name.
  function pathText(node, text) {
    text.split("/").forEach(function (part, i, parts) {
      node.appendChild(document.createTextNode(part + (i < parts.length - 1 ? "/" : "")));
      if (i < parts.length - 1) { node.appendChild(document.createElement("wbr")); }
    });
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
      var body = markedText(el("div", open ? "text full" : "text"),
                            open || text.length <= PREVIEW_CHARS ? text : text.slice(0, PREVIEW_CHARS) + "…", row);
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

  // A sample is two table rows: the row a reviewer decides on, and beneath it why it was flagged.
  function buildRow(row) {
    var tr = el("tr", "item");
    var d = decisionOf(row);
    tr.dataset.index = String(row._i);
    if (d) { tr.classList.add("d-" + d.decision); }
    if (view[state.cursor] === row) { tr.classList.add("selected"); }
    tr.appendChild(el("td", "num", row.rank === null ? "–" : row.rank));
    tr.appendChild(sampleCell(row));
    var idCell = el("td");
    idCell.appendChild(pathText(el("span", "id"), String(row.id)));
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
    tr.appendChild(quality);
    tr.appendChild(decisionCell(row));
    tr.addEventListener("click", function () { select(row); });

    var why = el("tr", "why" + (d ? " d-" + d.decision : ""));
    why.appendChild(el("td", "gutter"));
    var cell = el("td");
    cell.colSpan = 6;
    var box = el("div", "reasons");
    box.appendChild(probabilitiesOf(row));
    box.appendChild(checksOf(row));
    var compare = R.kind === "images" ? neighboursOf(row) : R.kind === "tabular" ? mediansOf(row)
      : wordsOf(row);
    if (compare) { box.appendChild(compare); }
    cell.appendChild(box);
    why.appendChild(cell);
    why.addEventListener("click", function () { select(row); });
    var fragment = document.createDocumentFragment();
    fragment.appendChild(tr);
    fragment.appendChild(why);
    return fragment;
  }

  function percent(p) {
    return p === null || p === undefined ? "n/a" : p >= 0.995 ? "100%" : p < 0.005 && p > 0 ? "<1%"
      : Math.round(p * 100) + "%";
  }

  // The pooled ensemble's three likeliest classes, the given label among them or beneath them.
  function probabilitiesOf(row) {
    var box = el("div", "reason probs");
    box.appendChild(el("div", "reason-head", "The ensemble's classes"));
    var top = row.top || [];
    var seen = false;
    var line = function (name, p, extra) {
      var item = el("div", "prob" + extra);
      var chip = el("span", "label" + extra, name);
      chip.title = name;
      item.appendChild(chip);
      var bar = el("span", "bar");
      var fill = el("span");
      fill.style.width = Math.max(0, Math.min(1, p || 0)) * 100 + "%";
      bar.appendChild(fill);
      item.appendChild(bar);
      item.appendChild(el("span", "pct", percent(p)));
      if (extra.trim() === "given") { item.appendChild(el("span", "tag", "given")); }
      box.appendChild(item);
    };
    top.forEach(function (pair) {
      var name = classes[pair[0]];
      var isGiven = name === row.given_label;
      seen = seen || isGiven;
      line(name, pair[1], isGiven ? " given" : name === row.suggested_label ? " suggested" : "");
    });
    if (!seen && row.given_p !== undefined) { line(row.given_label, row.given_p, " given"); }
    if (!top.length) { box.appendChild(el("div", "muted", "no probabilities in this report")); }
    return box;
  }

  // The checks (the ensemble's members) in plain words: a sample is flagged when the voting ones
  // that doubt its label through their own confident learning make at least half of all the
  // checks that could vote; one far less accurate than the best (R.weak) counts as not doubting.
  // The training history only ranks: it has no vote. Each name's title keeps the member's exact
  // label quality.
  function checksOf(row) {
    var flaggedBy = row.flagged_by || [];
    var voting = R.voting || R.members || [];
    var weak = R.weak || [];
    var words = R.member_words || {};
    var members = R.members || [];
    var doubting = voting.filter(function (name) { return flaggedBy.indexOf(name) >= 0; });
    var box = el("div", "reason checks");
    box.appendChild(el("div", "reason-head doubt-count",
      doubting.length + " of " + voting.length + " checks doubt this label" +
      (weak.length ? " (" + R.vote_needs + " needed)" : "")));
    var list = el("div", "members");
    var add = function (name, i) {
      var value = row.evidence ? row.evidence[i] : null;
      var shown = value === null || value === undefined ? "n/a" : value.toFixed(3);
      var votes = voting.indexOf(name) >= 0;
      var tooWeak = weak.indexOf(name) >= 0;
      var doubt = flaggedBy.indexOf(name) >= 0;
      var item = el("span", "member" + (!votes ? " novote" : doubt ? " doubt" : " agree"),
                    (!votes ? "" : doubt ? "✗ " : "✓ ") + (words[name] || name) +
                    (tooWeak ? " · too weak to vote" : !votes ? " · ranks, no vote" : ""));
      item.dataset.member = name;
      item.title = tooWeak
        ? name + ": far less accurate on these labels than the best check (by more than 0.1), " +
          "so its doubt does not count; it ranks with a small weight (its label quality " +
          shown + ")"
        : !votes
        ? name + ": ranks the sample (its label quality " + shown + ") but has no vote"
        : name + (doubt ? " doubts this label" : " does not doubt this label") +
          " (its own confident learning; its own label quality " + shown + ")";
      list.appendChild(item);
    };
    // Doubting checks first, then those that agree, then the one without a vote.
    [function (n) { return voting.indexOf(n) >= 0 && flaggedBy.indexOf(n) >= 0; },
     function (n) { return voting.indexOf(n) >= 0 && flaggedBy.indexOf(n) < 0; },
     function (n) { return voting.indexOf(n) < 0; }].forEach(function (wanted) {
      members.forEach(function (name, i) { if (wanted(name)) { add(name, i); } });
    });
    box.appendChild(list);
    return box;
  }

  function isImage(uri) { return typeof uri === "string" && uri.indexOf("data:image/") === 0; }

  // The nearest unflagged images with the given and with the suggested label, side by side.
  function neighboursOf(row) {
    if (!row.neighbours || !R.neighbours) { return null; }
    var box = el("div", "reason compare neighbours");
    [[row.given_label, row.neighbours[0], "given"], [row.suggested_label, row.neighbours[1], "suggested"]]
      .forEach(function (part) {
        if (!part[1] || !part[1].length) { return; }
        var group = el("div", "near-group");
        var head = el("div", "reason-head");
        head.appendChild(document.createTextNode("Nearest labelled "));
        head.appendChild(el("span", "label " + part[2], part[0])).title = part[0];
        group.appendChild(head);
        var strip = el("div", "near");
        part[1].forEach(function (ref) {
          var item = R.neighbours[ref];
          if (!item) { return; }
          var src = item.row !== undefined && rows[item.row] ? rows[item.row].thumbnail : item.thumbnail;
          if (!isImage(src)) { return; }
          var img = el("img", "nthumb pixelated");
          img.alt = "neighbour " + item.id;
          img.title = item.id;
          img.decoding = "async";
          img.src = src;
          strip.appendChild(img);
        });
        group.appendChild(strip);
        box.appendChild(group);
      });
    return box;
  }

  // A table's most telling columns: the sample's value beside the given and suggested classes'
  // medians (modes for categories), the columns that speak most for the suggestion first.
  function mediansOf(row) {
    if (!row.contrast || !R.centres || !row.values) { return null; }
    var g = classes.indexOf(row.given_label), s = classes.indexOf(row.suggested_label);
    var box = el("div", "reason compare medians");
    var grid = el("div", "mini");
    grid.appendChild(el("span", "h", "column"));
    grid.appendChild(el("span", "h num", "this sample"));
    [[row.given_label, "given"], [row.suggested_label, "suggested"]].forEach(function (part) {
      var head = el("span", "h num");
      head.appendChild(el("span", "label " + part[1], part[0])).title = part[0];
      head.appendChild(el("span", "", " median"));
      grid.appendChild(head);
    });
    row.contrast.slice(0, 5).forEach(function (pair) {
      var j = pair[0];
      var name = el("span", "k", R.feature_columns[j]);
      name.title = R.feature_columns[j] + ": " + (pair[1] === null ? "n/a" : pair[1].toFixed(2)) +
        " (how much nearer the suggested class's median than the given class's, in interquartile ranges)";
      grid.appendChild(name);
      grid.appendChild(el("span", "num v", row.values[j]));
      var closer = pair[1] > 0 ? "suggested" : pair[1] < 0 ? "given" : "";
      grid.appendChild(el("span", "num" + (closer === "given" ? " closer" : ""), R.centres[g] ? R.centres[g][j] : ""));
      grid.appendChild(el("span", "num" + (closer === "suggested" ? " closer" : ""), R.centres[s] ? R.centres[s][j] : ""));
    });
    box.appendChild(grid);
    return box;
  }

  // The words of a text that weigh most for each class; the text itself marks them.
  function wordsOf(row) {
    if (!row.words) { return null; }
    var box = el("div", "reason compare words");
    [[row.given_label, row.words[0], "given"], [row.suggested_label, row.words[1], "suggested"]]
      .forEach(function (part) {
        var line = el("div", "word-line");
        line.appendChild(el("span", "muted", "Words for "));
        line.appendChild(el("span", "label " + part[2], part[0])).title = part[0];
        line.appendChild(el("span", "muted", ": "));
        if (!part[1] || !part[1].length) { line.appendChild(el("span", "muted", "none")); }
        (part[1] || []).forEach(function (word) { line.appendChild(el("mark", "w-" + part[2], word)); });
        box.appendChild(line);
      });
    return box;
  }

  var WORD = /[\p{L}\p{N}_]{2,}/gu;  // scikit-learn's default tokens, near enough

  // The text as text nodes with the weighing words in <mark> elements; nothing parsed as HTML.
  function markedText(node, text, row) {
    var given = new Set(row.words ? row.words[0] : []);
    var suggested = new Set(row.words ? row.words[1] : []);
    if (!given.size && !suggested.size) { node.textContent = text; return node; }
    var last = 0, match;
    WORD.lastIndex = 0;
    while ((match = WORD.exec(text)) !== null) {
      var word = match[0].toLowerCase();
      var side = given.has(word) ? "given" : suggested.has(word) ? "suggested" : "";
      if (!side) { continue; }
      if (match.index > last) { node.appendChild(document.createTextNode(text.slice(last, match.index))); }
      node.appendChild(el("mark", "w-" + side, match[0]));
      last = match.index + match[0].length;
    }
    if (last < text.length) { node.appendChild(document.createTextNode(text.slice(last))); }
    return node;
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
    updateBulk();
  }

  function rowElement(row) {
    return tbody.querySelector('tr[data-index="' + row._i + '"]');
  }

  function redrawRow(row) {
    var old = rowElement(row);
    if (!old) { return; }
    var why = old.nextElementSibling;
    if (why && why.classList.contains("why")) { why.remove(); }
    old.replaceWith(buildRow(row));
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

  // ------------------------------------------------------------------ bulk decisions

  // Each bulk action remembers the decisions it replaced, so one click restores exactly those.
  var undoStack = [];

  function decideAll(accept) {
    if (!view.length) { return; }
    var before = new Map();
    view.forEach(function (row) {
      before.set(row.id, decisionOf(row));
      decisions.set(row.id, accept && row.suggested_label !== row.given_label
        ? { decision: "relabel", new_label: row.suggested_label } : { decision: "keep", new_label: "" });
    });
    var n = before.size.toLocaleString();
    undoStack.push({ label: accept ? "accepted " + n + " suggestions" : "kept " + n, before: before });
    saveDecisions();
    refresh(true);
  }

  function undoBulk() {
    var last = undoStack.pop();
    if (!last) { return; }
    last.before.forEach(function (d, id) {
      if (d) { decisions.set(id, d); } else { decisions.delete(id); }
    });
    saveDecisions();
    refresh(true);
  }

  function updateBulk() {
    var n = view.length.toLocaleString();
    $("bulk-accept").textContent = "Accept the suggestion for all " + n + " shown";
    $("bulk-keep").textContent = "Keep all " + n + " shown";
    $("bulk-accept").disabled = $("bulk-keep").disabled = !view.length;
    var last = undoStack[undoStack.length - 1];
    $("bulk-undo").hidden = !last;
    $("bulk-undo").textContent = last ? "Undo: " + last.label : "Undo";
  }

  $("bulk-accept").addEventListener("click", function () { decideAll(true); });
  $("bulk-keep").addEventListener("click", function () { decideAll(false); });
  $("bulk-undo").addEventListener("click", undoBulk);

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
