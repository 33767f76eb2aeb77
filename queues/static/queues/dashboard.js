/* The queues dashboard's live refresh: fetch the stats JSON every few seconds and update the page in place
   (counts, state, workers, chart, health, progress bars, the actions that apply); no reload, no framework. */
(function () {
  "use strict";

  function text(el, value) {
    if (el && el.textContent !== String(value)) { el.textContent = String(value); }
  }

  function show(el, visible) {
    if (el) { el.hidden = !visible; }
  }

  function updateQueue(row, q) {
    Object.keys(q.counts).forEach(function (state) {
      row.querySelectorAll('[data-count="' + state + '"]').forEach(function (el) { text(el, q.counts[state]); });
    });
    text(row.querySelector('[data-field="workers"]'), q.workers);
    show(row.querySelector("[data-state-paused]"), q.paused);
    show(row.querySelector("[data-state-running]"), !q.paused);
    show(row.querySelector("[data-state-limited]"), q.counts.rate_limited > 0);
    row.querySelectorAll("[data-when-running]").forEach(function (el) { show(el, !q.paused); });
    row.querySelectorAll("[data-when-paused]").forEach(function (el) { show(el, q.paused); });
    row.querySelectorAll("[data-when-failed]").forEach(function (el) { show(el, q.counts.failed > 0); });
    // Server-rendered (escaped by Django's templates) cells: the chart's SVG and the health marks.
    ["chart", "health"].forEach(function (field) {
      var cell = row.querySelector('[data-field="' + field + '"]');
      if (cell && q.html && cell.innerHTML !== q.html[field]) { cell.innerHTML = q.html[field]; }
    });
  }

  function updateProgress(root, progress) {
    root.querySelectorAll('.queues-jobs[data-state="active"] tr[data-job]').forEach(function (tr) {
      var value = progress[tr.getAttribute("data-job")];
      if (value === undefined) { return; }
      var bar = tr.querySelector("progress");
      if (bar && typeof value === "number") {
        bar.value = value;
        text(tr.querySelector("[data-progress-text]"), Math.round(value) + " %");
      } else if (typeof value !== "number") {
        text(tr.querySelector("[data-progress-text]"), JSON.stringify(value));
      }
    });
  }

  function start(root) {
    var url = root.getAttribute("data-stats-url");
    var every = parseInt(root.getAttribute("data-refresh-ms"), 10) || 5000;
    var stamp = root.querySelector("[data-refreshed]");
    var timer = null;
    var lastOk = null;

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, every);
    }

    function refresh() {
      if (document.hidden) { schedule(); return; }
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().then(function (data) {
            if (!response.ok) { throw new Error(data.error || ("HTTP " + response.status)); }
            return data;
          });
        })
        .then(function (data) {
          data.queues.forEach(function (q) {
            root.querySelectorAll("[data-queue]").forEach(function (row) {
              if (row.getAttribute("data-queue") === q.name) { updateQueue(row, q); }
            });
          });
          updateProgress(root, data.progress || {});
          lastOk = new Date().toLocaleTimeString();
          if (stamp) {
            stamp.classList.remove("queues-stale");
            text(stamp, "live: updated " + lastOk);
          }
        })
        .catch(function (error) {
          if (stamp) {
            stamp.classList.add("queues-stale");
            text(stamp, (lastOk ? "not updated since " + lastOk : "not updated") + ": " + error.message);
          }
        })
        .then(schedule);
    }

    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".queues-live[data-stats-url]").forEach(start);
  });
})();
