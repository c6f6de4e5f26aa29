// Live status on the calls list: asks the API what changed, and updates the rows in place.
//
// Every 2 s while a call on the page is in progress, every 15 s otherwise
// (to show new calls), and not while the tab is hidden. New calls that match
// the page's filters appear at the top. Without this script the page works
// the same, with a "Refresh" link.
(function () {
  "use strict";
  var table = document.querySelector("table.calls[data-live]");
  var template = document.getElementById("call-row");
  if (!table || !template || !window.fetch) {
    return;
  }
  var FAST = 2000;
  var SLOW = 15000;
  var OVERLAP = 5000; // ask a little further back than the last answer: a slow commit is not missed
  var asOf = table.getAttribute("data-as-of");
  var filters = table.getAttribute("data-filters") || "";
  var tbody = table.tBodies[0];
  var timer = null;

  function inProgress() {
    return tbody.querySelector("tr[data-active]") !== null;
  }

  function text(row, selector, value) {
    var cell = row.querySelector(selector);
    if (cell) {
      cell.textContent = value === null || value === undefined || value === "" ? "\u2014" : String(value);
    }
  }

  function fill(row, call) {
    row.setAttribute("data-call-sid", call.call_sid);
    row.setAttribute("data-created", call.created_at);
    if (call.in_progress) {
      row.setAttribute("data-active", "1");
    } else {
      row.removeAttribute("data-active");
    }
    var link = row.querySelector(".when a");
    link.href = "/calls/" + encodeURIComponent(call.call_sid);
    link.textContent = (call.started_at || "").slice(0, 16).replace("T", " ");
    var kind = row.querySelector(".kind span");
    kind.textContent = call.direction_label || "\u2014";
    kind.title = call.direction || "";
    text(row, ".from", call.from);
    text(row, ".to", call.to);
    text(row, ".status", call.status);
    text(row, ".duration", call.duration_s === null ? null : call.duration_s + " s");
    text(row, ".stage", call.transcript_label);
    if (!call.snippet_html) {
      // A search hit keeps its snippet; otherwise the start of the text.
      row.querySelector(".excerpt").textContent = call.preview || "";
    }
  }

  function show(call) {
    var rows = tbody.querySelectorAll("tr[data-call-sid]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-call-sid") === call.call_sid) {
        fill(rows[i], call);
        return;
      }
    }
    // A call not on the page is shown only if it is newer than every call here:
    // an older one that changed belongs on a later page.
    var newest = tbody.querySelector("tr[data-created]");
    if (newest && Date.parse(call.created_at) < Date.parse(newest.getAttribute("data-created"))) {
      return;
    }
    var row = template.content.firstElementChild.cloneNode(true);
    fill(row, call);
    tbody.insertBefore(row, tbody.firstChild);
    table.hidden = false;
    var empty = document.querySelector("p.empty");
    if (empty) {
      empty.remove();
    }
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, inProgress() ? FAST : SLOW);
  }

  function poll() {
    if (document.hidden) {
      schedule();
      return;
    }
    var since = new Date(Date.parse(asOf) - OVERLAP).toISOString();
    var query = (filters ? filters + "&" : "") + "updated_since=" + encodeURIComponent(since);
    fetch(table.getAttribute("data-live") + "?" + query, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        asOf = body.as_of;
        body.calls.slice().reverse().forEach(show);
      })
      .catch(function () {
        // Offline or logged out: try again later; the Refresh link still works.
      })
      .then(schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      poll();
    }
  });
  schedule();
})();
