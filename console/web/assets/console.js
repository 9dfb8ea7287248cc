// Orchestrix console: the live tail. Plain JavaScript, no dependencies.
"use strict";
(function () {
  if (document.body.dataset.page !== "tail") return;
  var form = document.getElementById("tail-filters");
  var body = document.querySelector("#tail tbody");
  var status = document.getElementById("tail-status");
  var pause = document.getElementById("pause");
  var source = null, paused = false, last = 0, maxRows = 500;

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text; // text, never markup
    tr.appendChild(td);
    return td;
  }
  function add(ev) {
    var row = JSON.parse(ev.data);
    last = Number(ev.lastEventId) || last;
    var tr = document.createElement("tr");
    tr.className = "tail-row";
    cell(tr, String(row.position));
    cell(tr, row.stream);
    var v = cell(tr, "");
    var a = document.createElement("a");
    a.href = "event?stream=" + encodeURIComponent(row.stream) + "&version=" + row.version;
    a.textContent = String(row.version);
    v.appendChild(a);
    cell(tr, row.type);
    cell(tr, row.time);
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > maxRows) body.removeChild(body.lastChild);
  }
  function connect() {
    if (source) source.close();
    var q = new URLSearchParams(new FormData(form));
    if (last > 0) q.set("from", String(last + 1));
    source = new EventSource("api/tail?" + q.toString());
    source.onopen = function () { status.textContent = "live"; };
    source.onmessage = add;
    source.addEventListener("failure", function (ev) { status.textContent = "error: " + JSON.parse(ev.data).error; });
    source.onerror = function () { status.textContent = "reconnecting"; };
  }
  form.addEventListener("submit", function (e) { e.preventDefault(); last = 0; body.textContent = ""; connect(); });
  pause.addEventListener("click", function () {
    paused = !paused;
    if (paused) { source.close(); status.textContent = "paused"; pause.textContent = "Resume"; }
    else { pause.textContent = "Pause"; connect(); }
  });
  connect();
})();

// Time travel: moving the slider fetches the state at that version.
(function () {
  var slider = document.getElementById("slider");
  if (!slider) return;
  var form = document.getElementById("travel");
  var out = document.getElementById("version");
  var state = document.getElementById("state");
  var label = document.getElementById("state-version");
  var seq = 0;
  function show() {
    var v = slider.value, mine = ++seq;
    out.textContent = v;
    var q = new URLSearchParams({ kind: form.dataset.kind, id: form.dataset.id, version: v });
    fetch("api/aggregate?" + q.toString()).then(function (r) { return r.json(); }).then(function (d) {
      if (mine !== seq) return; // a newer request is on its way
      if (d.error) { state.textContent = d.error; return; }
      state.textContent = d.state;
      label.textContent = String(d.version);
      var from = document.getElementById("from-snapshot");
      if (from) {
        from.textContent = d.from_snapshot ? "(snapshot " + d.from_snapshot + " + " + (d.version - d.from_snapshot) + " events)" : "(no snapshot at or below)";
      }
    });
  }
  slider.addEventListener("input", show);
})();
