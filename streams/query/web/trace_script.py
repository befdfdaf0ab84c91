"""The trace page's inline stylesheet and script (trace.py puts both in the page).

The script draws the waterfall's rows from the page's JSON (trace_layout.py, `ROW_FIELDS`) when
they first show, opens a span's details, collapses and expands subtrees and runs find; it fetches
a span's details and find's texts from the worker that served the page (trace_fetch.py).
"""

from __future__ import annotations

TRACE_CSS = """
.trace-tools { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center;
               margin: 8px 0; }
.trace-tools button, .trace-tools .button { font: inherit; font-size: 13px; padding: 3px 10px;
    border: 1px solid #cbd2d9; border-radius: 4px; background: #fff; color: #1f2933;
    cursor: pointer; text-decoration: none; }
.trace-tools input { font: inherit; padding: 3px 8px; border: 1px solid #cbd2d9;
                     border-radius: 4px; }
.trace-tools input[type=search] { width: 240px; }
.trace-tools input[name=b] { width: 280px; font-family: ui-monospace, Menlo, monospace;
                             font-size: 12px; }
.trace-tools form { display: flex; gap: 6px; align-items: center; margin: 0; }
button.twisty { border: 0; background: none; padding: 0; width: 14px; cursor: pointer;
                color: #52606d; font-size: 11px; flex: none; }
button.twisty::before { content: "\\25BE"; }
details.collapsed button.twisty::before { content: "\\25B8"; }
i.twisty { width: 14px; flex: none; }
details.span.match > summary { background: #fff4c2; }
details.span.match > summary .span-label .name { text-decoration: underline #d9a400 2px; }
.span-detail:empty { display: none; }
details.span.loading > summary { cursor: progress; }
"""

TRACE_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var waterfall = document.querySelector(".waterfall");
  var head = waterfall.querySelector(".wf-head");
  // A row (trace_layout.ROW_FIELDS): span id, depth, service, operation, bar left %, bar width %,
  // duration, classes, critical-path stretches [left %, width %, ...], 0 leaf / 1 parent /
  // 2 parent collapsed when the page opens.
  var rows = data.rows, n = rows.length;
  var depth = rows.map(function (r) { return r[1]; });
  var collapsed = rows.map(function (r) { return r[9] === 2; });
  var at = {};
  rows.forEach(function (r, i) { at[r[0]] = i; });
  // Each row's element, made the first time the row shows: a 5,000-span trace that opens
  // collapsed makes a few dozen.
  var els = [];
  // Rows of find's matches and their ancestors: shown through collapsed subtrees, which stay
  // collapsed for when the find is cleared.
  var pinned = [], matched = [];
  function isParent(i) { return rows[i][9] > 0; }
  function add(parent, tag, cls) {
    var e = document.createElement(tag);
    e.className = cls;
    parent.appendChild(e);
    return e;
  }
  function make(i) {
    var r = rows[i], service = data.services[r[2]];
    var d = document.createElement("details");
    d.className = "span" + (r[7] ? " " + r[7] : "");
    d.classList.toggle("collapsed", collapsed[i]);
    d.classList.toggle("match", !!matched[i]);
    d.id = "span-" + r[0];
    d.setAttribute("data-span-id", r[0]);
    d.setAttribute("data-depth", r[1]);
    d.tpRow = i;
    var summary = add(d, "summary", "span-row");
    var label = add(summary, "span", "span-label");
    label.style.paddingLeft = (10 + 16 * r[1]) + "px";
    if (isParent(i)) {
      var twisty = add(label, "button", "twisty");
      twisty.type = "button";
      twisty.title = "collapse or expand this subtree";
    } else {
      add(label, "i", "twisty");
    }
    add(label, "i", "swatch").style.background = service[1];
    add(label, "span", "service").textContent = service[0];
    add(label, "span", "name").textContent = data.names[r[3]];
    if (d.classList.contains("error")) {
      label.appendChild(document.createTextNode(" "));
      add(label, "span", "err-badge").textContent =
        d.classList.contains("error-origin") ? "error origin" : "error";
    }
    var timeline = add(summary, "span", "span-timeline");
    var bar = add(timeline, "i", "span-bar");
    bar.style.left = r[4] + "%";
    bar.style.width = r[5] + "%";
    bar.style.background = service[1];
    for (var k = 0; k < r[8].length; k += 2) {
      var stretch = add(timeline, "i", "cp-segment");
      stretch.style.left = r[8][k] + "%";
      stretch.style.width = r[8][k + 1] + "%";
    }
    add(summary, "span", "span-duration").textContent = r[6] + " ms";
    add(d, "div", "span-detail");
    return d;
  }
  // A row shows when none of its ancestors is collapsed, or it is pinned (rows are in tree
  // order, so a row's ancestors are the nearest rows before it of each smaller depth).
  function layout() {
    var hideBelow = Infinity, cursor = head;
    for (var i = 0; i < n; i++) {
      var show = true;
      if (depth[i] > hideBelow) {
        show = !!pinned[i];
      } else {
        hideBelow = collapsed[i] ? depth[i] : Infinity;
      }
      if (show && !els[i]) {
        els[i] = make(i);
        cursor.after(els[i]);
      }
      if (els[i]) {
        els[i].hidden = !show;
        cursor = els[i];
      }
    }
  }
  function ancestors(i, each) {
    for (var j = i - 1, d = depth[i]; j >= 0 && d > 0; j--) {
      if (depth[j] < d) {
        if (each(j) === false) { return; }
        d = depth[j];
      }
    }
  }
  function setCollapsed(i, collapse) {
    collapsed[i] = collapse;
    if (els[i]) { els[i].classList.toggle("collapsed", collapse); }
  }
  function pin(i) {
    pinned[i] = true;
    ancestors(i, function (j) {
      if (pinned[j]) { return false; }
      pinned[j] = true;
    });
  }
  // Expands a span's ancestors and scrolls to it (an error origin's link, ?span=, #span-).
  function reveal(i) {
    ancestors(i, function (j) { setCollapsed(j, false); });
    layout();
    els[i].scrollIntoView({block: "center"});
  }
  function setAll(collapse) {
    for (var i = 0; i < n; i++) {
      if (isParent(i)) { setCollapsed(i, collapse); }
    }
    layout();
  }
  // A span's details come from the worker when the span first opens (trace_fetch.span_details).
  function load(d) {
    if (d.tpLoaded || d.tpLoading) { return; }
    d.tpLoading = true;
    d.classList.add("loading");
    var box = d.querySelector(".span-detail");
    fetch(data.span_url + encodeURIComponent(d.getAttribute("data-span-id")))
      .then(function (res) {
        return res.text().then(function (body) {
          if (res.ok) {
            box.innerHTML = body;
            d.tpLoaded = true;
            return;
          }
          var problem = new DOMParser().parseFromString(body, "text/html")
            .querySelector(".problem");
          throw new Error(problem ? problem.textContent : "HTTP " + res.status);
        });
      })
      .catch(function (err) {
        box.textContent = "The span's details did not load: " + err.message +
          " (close and open the span to try again).";
      })
      .then(function () {
        d.tpLoading = false;
        d.classList.remove("loading");
      });
  }
  waterfall.addEventListener("toggle", function (e) {
    if (e.target.matches("details.span") && e.target.open) { load(e.target); }
  }, true);
  waterfall.addEventListener("click", function (e) {
    var button = e.target.closest("button.twisty");
    if (!button) { return; }
    e.preventDefault();
    var i = button.closest("details.span").tpRow;
    setCollapsed(i, !collapsed[i]);
    layout();
  });
  document.addEventListener("click", function (e) {
    var a = e.target.closest("a[href^='#span-']");
    var i = a ? at[a.getAttribute("href").slice(6)] : undefined;
    if (i !== undefined) { reveal(i); }
  });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("expand-all").addEventListener("click", function () { setAll(false); });

  // Find: a span's service, operation, attribute and resource keys and values. The attributes
  // and resources come from the worker (trace_fetch.find_text) the first time the find box is used.
  var find = document.getElementById("find"), count = document.getElementById("find-count");
  var texts = null, failed = "", asked = false, haystack = null, matches = [], current = -1;
  function fetchTexts() {
    if (asked) { return; }
    asked = true;
    fetch(data.find_url)
      .then(function (res) {
        if (!res.ok) { throw new Error("HTTP " + res.status); }
        return res.json();
      })
      .then(function (got) { texts = got; }, function (err) { failed = err.message; })
      .then(function () { haystack = null; run(); });
  }
  function text(i) {
    var r = rows[i], parts = [data.services[r[2]][0], data.names[r[3]]];
    var own = texts && texts.spans[r[0]];
    if (own) { parts.push(own[0], texts.resources[own[1]]); }
    return parts.join("\\n").toLowerCase();
  }
  function run() {
    var q = find.value.trim().toLowerCase();
    if (q !== "" && !texts && !failed) {
      fetchTexts();
      count.textContent = "reading the spans' attributes…";
      return;
    }
    if (!haystack && q !== "") { haystack = rows.map(function (r, i) { return text(i); }); }
    matches = [];
    pinned = [];
    matched = [];
    current = -1;
    for (var i = 0; i < n; i++) {
      if (q !== "" && haystack[i].indexOf(q) >= 0) {
        matched[i] = true;
        matches.push(i);
        pin(i);
      }
    }
    layout();
    els.forEach(function (el, i) { el.classList.toggle("match", !!matched[i]); });
    count.textContent = q === "" ? "" : matches.length + " of " + n + " spans match" +
      (failed ? " (services and operations only: the attributes did not load, " + failed + ")"
              : "");
    if (matches.length) { els[matches[0]].scrollIntoView({block: "nearest"}); }
  }
  find.addEventListener("focus", fetchTexts);
  find.addEventListener("input", run);
  find.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !matches.length) { return; }
    e.preventDefault();
    current = (current + 1) % matches.length;
    els[matches[current]].scrollIntoView({block: "center"});
  });

  layout();
  var wanted = at[data.open];
  if (wanted === undefined && location.hash.indexOf("#span-") === 0) {
    wanted = at[location.hash.slice(6)];
  }
  if (wanted !== undefined) {
    reveal(wanted);
    if (data.open) { els[wanted].open = true; }
  }
})();
"""
