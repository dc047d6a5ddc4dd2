/* batchflow report: draws the tests table and the timeline from the JSON block.
   Text from the suite goes in through esc() or textContent, never as markup. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("batchflow-data").textContent);
  var S = D.strings, T = D.tests, DETAILS = D.details;
  // Each test's memory (KiB above its worker's at its start) and CPU (ms), beside the
  // rows; absent when the run did not measure them, null for a test never measured.
  var MEMORY = D.memory || null, CPU = D.cpu || null, OVER = {};
  (D.over_limit || []).forEach(function (i) { OVER[i] = true; });
  // Columns of a test row (see report/html.py, _payload); the last three may be missing.
  var FILE = 0, NAME = 1, BATCH = 2, OUT = 3, DUR = 4, START = 5, STOP = 6, WORKER = 7,
      DET = 8, LINE = 9, TRIES = 10, NOTES = 11;
  var PAGE = 100;
  var PALETTE = ["#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#bab0ac", "#e15759"];
  var OUTCOME_COLOURS = {passed: "#3a9a4a", failed: "#d33", error: "#a0229a", flaky: "#e8a317",
                         quarantined: "#c77d0a", skipped: "#999", xfailed: "#b5b5b5",
                         xpassed: "#6a8"};
  var ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"};

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return ESCAPES[c]; });
  }
  function byId(id) { return document.getElementById(id); }
  function nodeid(t) { var f = S[t[FILE]]; return f ? f + "::" + t[NAME] : t[NAME]; }
  function size(kib) {  // as core/resources.py's format_size
    var value = kib * 1024, units = ["B", "KiB", "MiB", "GiB", "TiB"], step = 0;
    while (value >= 1024 && step < units.length - 1) { value /= 1024; step++; }
    var text = step === 0 || value >= 100 ? value.toFixed(0)
                                          : value.toPrecision(3).replace(/\.?0+$/, "");
    return text + " " + units[step];
  }
  function seconds(value) {
    if (value === 0) return "0s";
    if (Math.round(value * 100) >= 6000) {  // rounded first: 119.97 is 2m 0.0s, not 1m 60.0s
      var tenths = Math.round(value * 10);
      return Math.floor(tenths / 600) + "m " + ((tenths % 600) / 10).toFixed(1) + "s";
    }
    // Under 0.01 s four decimals, without trailing zeros (0.008s, not 0.0080s);
    // under a tenth of a millisecond, not 0s, which is a time of none at all.
    if (value > 0 && value < 0.0001) return "<0.0001s";
    return (value < 0.01 ? String(+value.toFixed(4)) : value.toFixed(2)) + "s";
  }

  // -- the tests table ----------------------------------------------------------
  var state = {outcome: "", batch: "", text: "", sort: "", descending: false, page: 0,
               view: null, open: {}};
  var lowered = null;  // each test's searchable text, built on the first search

  function fillSelect(select, words) {
    words.forEach(function (word) {
      var option = document.createElement("option");
      option.value = option.textContent = word;
      select.appendChild(option);
    });
  }
  var present = {};
  T.forEach(function (t) { present[S[t[OUT]]] = true; });
  fillSelect(byId("filter-outcome"), D.outcomes.filter(function (o) { return present[o]; }));
  fillSelect(byId("filter-batch"), D.batches);

  function searchable(i) {
    if (lowered === null) {
      lowered = T.map(function (t) {
        var d = t[DET] >= 0 ? DETAILS[t[DET]] : null;
        // Earlier attempts' failures too: a flaky test's error is only there.
        var attempts = d && d.a ? d.a.map(function (a) { return a[3] || ""; }).join("\n") : "";
        return (nodeid(t) + "\n" + (d && d.r ? d.r : "") + "\n" + attempts + "\n" +
                (t[NOTES] ? t[NOTES].join("\n") : "")).toLowerCase();
      });
    }
    return lowered[i];
  }

  // Sortable numbers: a test without a figure sorts below every test with one.
  var NUMERIC = {
    duration: function (i) { return T[i][DUR]; },
    memory: function (i) { return MEMORY[i] === null ? -1 : MEMORY[i]; },
    cpu: function (i) { return CPU[i] === null ? -1 : CPU[i]; }
  };
  var COLUMNS = document.querySelectorAll("#test-table thead th").length;

  function computeView() {
    var outcome = state.outcome, batch = state.batch, text = state.text.toLowerCase();
    var view = [];
    for (var i = 0; i < T.length; i++) {
      var t = T[i];
      if (outcome && S[t[OUT]] !== outcome) continue;
      if (batch && S[t[BATCH]] !== batch) continue;
      if (text && searchable(i).indexOf(text) < 0) continue;
      view.push(i);
    }
    var key = NUMERIC[state.sort];
    if (key) {
      view.sort(function (a, b) { return key(a) - key(b) || a - b; });
    } else if (state.sort === "name") {
      var names = {};
      view.forEach(function (i) { names[i] = nodeid(T[i]); });
      view.sort(function (a, b) { return names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0; });
    }
    if (state.descending) view.reverse();
    state.view = view;
  }

  function pre(cls, title, text) {
    return "<h4>" + esc(title) + "</h4><pre class=\"" + cls + "\">" + esc(text) + "</pre>";
  }

  function detailHtml(i) {
    var t = T[i];
    var d = t[DET] >= 0 ? DETAILS[t[DET]] : {};
    var parts = [];
    var file = S[t[FILE]].split("::")[0];
    var where = file ? file + (t[LINE] ? ":" + t[LINE] : "") : "";
    parts.push("<p class=\"where\">" + esc(where) + " · batch " + esc(S[t[BATCH]]) +
               " · worker " + esc(S[t[WORKER]]) + " · " + seconds(t[DUR]) +
               (MEMORY && MEMORY[i] !== null ? " · memory " + size(MEMORY[i]) + " · CPU " +
                seconds(CPU[i] / 1000) : "") + "</p>");
    if (d.p) parts.push("<p>depends on: " + d.p.map(function (p) {
      return "<code>" + esc(p) + "</code>"; }).join(", ") + "</p>");
    (d.a || []).forEach(function (a, k) {
      parts.push(pre("attempt", "attempt " + (k + 1) + ": " + a[0] + " on " + a[1] + " (" +
                     seconds(a[2]) + ")", a[3] || "(no failure text)"));
    });
    if (d.r) parts.push(pre("longrepr", d.a ? "last attempt" : S[t[OUT]], d.r));
    if (d.o) parts.push(pre("stdout", "captured stdout", d.o));
    if (d.e) parts.push(pre("stderr", "captured stderr", d.e));
    if (d.g) parts.push(pre("log", "captured log", d.g));
    if (parts.length === 1) {
      parts.push("<p class=\"empty\">Nothing captured" +
                 (S[t[OUT]] === "passed" ? " (the output of passing tests is left out)" : "") +
                 ".</p>");
    }
    return parts.join("");
  }

  function resourceCells(i) {
    if (!MEMORY) return "";
    if (MEMORY[i] === null) return "<td class=\"n\">-</td><td class=\"n\">-</td>";
    return "<td class=\"n" + (OVER[i] ? " bad\" title=\"over the memory limit" : "") + "\">" +
           size(MEMORY[i]) + "</td><td class=\"n\">" + seconds(CPU[i] / 1000) + "</td>";
  }

  function renderRows() {
    if (state.view === null) computeView();
    var view = state.view, pages = Math.max(1, Math.ceil(view.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var html = [], first = state.page * PAGE, last = Math.min(view.length, first + PAGE);
    for (var k = first; k < last; k++) {
      var i = view[k], t = T[i], outcome = S[t[OUT]];
      var tries = t[TRIES] ? " <span class=\"tries\">(" + (t[TRIES] + 1) + " attempts)</span>" : "";
      var notes = t[NOTES] ? t[NOTES].map(function (n) {
        return " <span class=\"note-tag\">" + esc(n) + "</span>"; }).join("") : "";
      html.push("<tr class=\"test-row o-" + esc(outcome) + (state.open[i] ? " open" : "") +
                "\" data-i=\"" + i + "\"><td class=\"mono\">" + esc(nodeid(t)) + notes +
                "</td><td>" + esc(S[t[BATCH]]) + "</td><td class=\"outcome\">" + esc(outcome) +
                tries + "</td><td class=\"n\">" + seconds(t[DUR]) + "</td>" + resourceCells(i) +
                "<td>" + esc(S[t[WORKER]]) + "</td></tr>");
      if (state.open[i]) {
        html.push("<tr class=\"test-detail\"><td colspan=\"" + COLUMNS + "\">" + detailHtml(i) +
                  "</td></tr>");
      }
    }
    byId("test-rows").innerHTML = html.join("");
    byId("test-count").textContent = view.length + " of " + T.length + " tests";
    byId("page-info").textContent = view.length ?
      "rows " + (first + 1) + "-" + last + " of " + view.length + " (page " + (state.page + 1) +
      " of " + pages + ")" : "no test matches";
    byId("page-prev").disabled = state.page === 0;
    byId("page-next").disabled = state.page >= pages - 1;
  }

  function refilter() { state.view = null; state.page = 0; renderRows(); }
  byId("filter-outcome").addEventListener("change", function (e) {
    state.outcome = e.target.value; refilter(); });
  byId("filter-batch").addEventListener("change", function (e) {
    state.batch = e.target.value; refilter(); });
  var typing = null;
  byId("filter-text").addEventListener("input", function (e) {
    clearTimeout(typing);
    typing = setTimeout(function () { state.text = e.target.value; refilter(); }, 120);
  });
  Array.prototype.forEach.call(document.querySelectorAll("th[data-sort]"), function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-sort");
      state.descending = state.sort === key ? !state.descending : key in NUMERIC;
      state.sort = key;
      Array.prototype.forEach.call(document.querySelectorAll("th[data-sort]"), function (o) {
        o.classList.remove("asc", "desc"); });
      th.classList.add(state.descending ? "desc" : "asc");
      state.view = null; renderRows();
    });
  });
  byId("test-rows").addEventListener("click", function (e) {
    var row = e.target.closest("tr.test-row");
    if (!row) return;
    var i = +row.getAttribute("data-i");
    if (state.open[i]) delete state.open[i]; else state.open[i] = true;
    renderRows();
  });
  function turnPage(step) {
    state.page += step;
    renderRows();
    // A shorter last page leaves the reader below the table when the sections after it
    // keep the page long: go back to the table's top.
    if (byId("test-table").getBoundingClientRect().top < 0) byId("tests").scrollIntoView();
  }
  byId("page-prev").addEventListener("click", function () { turnPage(-1); });
  byId("page-next").addEventListener("click", function () { turnPage(1); });

  // -- the timeline ---------------------------------------------------------------
  var LANE = 22, LEFT = 90, TOP = 20;
  var lanes = [], laneOf = {};
  T.forEach(function (t, i) {
    var w = t[WORKER];
    // The xdist controller runs no test: its skips (a dependency failed) take no time.
    if (/(^|\/)controller$/.test(S[w])) return;
    if (!(w in laneOf)) { laneOf[w] = lanes.length; lanes.push({worker: w, tests: []}); }
    lanes[laneOf[w]].tests.push(i);
  });
  // gw2 before gw10.
  lanes.sort(function (a, b) {
    return S[a.worker].localeCompare(S[b.worker], "en", {numeric: true});
  });
  lanes.forEach(function (lane) {
    lane.tests.sort(function (a, b) { return T[a][START] - T[b][START]; });
  });
  var end = 0;
  T.forEach(function (t) { if (t[STOP] > end) end = t[STOP]; });
  var svg = byId("timeline-svg"), tip = byId("timeline-tip"), width = 0, scale = 1;

  function colourOf(t, by) {
    return by === "outcome" ? (OUTCOME_COLOURS[S[t[OUT]]] || "#777")
                            : PALETTE[D.batches.indexOf(S[t[BATCH]]) % PALETTE.length];
  }

  function drawTimeline() {
    var by = byId("timeline-colour").value;
    width = Math.max(600, (byId("timeline-box").clientWidth || 1000) - 4);
    scale = end > 0 ? (width - LEFT - 10) / end : 1;
    var height = TOP + lanes.length * LANE + 4, parts = [];
    var ticks = 8;
    for (var k = 0; k <= ticks; k++) {
      var x = LEFT + (width - LEFT - 10) * k / ticks;
      parts.push("<line class=\"tick\" x1=\"" + x.toFixed(1) + "\" y1=\"" + (TOP - 4) +
                 "\" x2=\"" + x.toFixed(1) + "\" y2=\"" + height + "\"/><text class=\"tick\" x=\"" +
                 x.toFixed(1) + "\" y=\"12\"" + (k === ticks ? " text-anchor=\"end\"" : "") + ">" + seconds(end * k / ticks) + "</text>");
    }
    lanes.forEach(function (lane, row) {
      var y = TOP + row * LANE;
      parts.push("<text class=\"lane\" x=\"4\" y=\"" + (y + 15) + "\">" + esc(S[lane.worker]) +
                 "</text>");
      // Bars narrower than a pixel merge with their neighbour of the same colour:
      // 50,000 tests must not mean 50,000 elements.
      var runX = -1, runEnd = -1, runColour = null;
      function flush() {
        if (runColour !== null) {
          parts.push("<rect x=\"" + runX.toFixed(1) + "\" y=\"" + (y + 2) + "\" width=\"" +
                     Math.max(1, runEnd - runX).toFixed(1) + "\" height=\"" + (LANE - 4) +
                     "\" fill=\"" + runColour + "\"/>");
        }
      }
      lane.tests.forEach(function (i) {
        var t = T[i], x1 = LEFT + t[START] * scale, x2 = LEFT + t[STOP] * scale;
        var colour = colourOf(t, by);
        if (colour === runColour && x1 - runEnd < 1 && x2 - runX < 3) {
          runEnd = Math.max(runEnd, x2);
        } else {
          flush();
          runX = x1; runEnd = x2; runColour = colour;
        }
      });
      flush();
    });
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.innerHTML = parts.join("");
    var legend = by === "outcome" ? Object.keys(present) : D.batches;
    byId("timeline-legend").innerHTML = legend.map(function (word) {
      var colour = by === "outcome" ? (OUTCOME_COLOURS[word] || "#777")
                                    : PALETTE[D.batches.indexOf(word) % PALETTE.length];
      return "<span class=\"key\"><i style=\"background:" + colour + "\"></i>" + esc(word) +
             "</span>";
    }).join(" ");
  }

  function testAt(lane, time, slack) {
    var list = lane.tests, lo = 0, hi = list.length - 1, found = -1;
    while (lo <= hi) {  // the last test starting at or before ``time``
      var mid = (lo + hi) >> 1;
      if (T[list[mid]][START] <= time + slack) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    for (var k = found; k >= 0 && k > found - 50; k--) {
      var t = T[list[k]];
      if (t[START] <= time + slack && t[STOP] >= time - slack) return list[k];
    }
    return -1;
  }

  svg.addEventListener("mousemove", function (e) {
    var box = svg.getBoundingClientRect();
    var x = e.clientX - box.left, row = Math.floor((e.clientY - box.top - TOP) / LANE);
    var lane = lanes[row];
    var i = lane && x >= LEFT ? testAt(lane, (x - LEFT) / scale, 1.5 / scale) : -1;
    if (i < 0) { tip.hidden = true; return; }
    var t = T[i];
    tip.textContent = nodeid(t) + "\n" + S[t[OUT]] + " · " + seconds(t[DUR]) + " · batch " +
                      S[t[BATCH]] + " · " + S[t[WORKER]];
    tip.style.left = Math.min(x + 12, width - 320) + "px";
    tip.style.top = (e.clientY - box.top + 14) + "px";
    tip.hidden = false;
  });
  svg.addEventListener("mouseleave", function () { tip.hidden = true; });
  byId("timeline-colour").addEventListener("change", drawTimeline);

  renderRows();
  drawTimeline();
  window.batchflowReadyAt = performance.now();
  document.documentElement.dataset.ready = "1";
})();
