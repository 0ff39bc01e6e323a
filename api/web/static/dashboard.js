/* Faro dashboard: draws the charts of a page from its <script type="application/json"> blocks.
 * Loaded as a file (the pages' Content-Security-Policy allows no inline script).
 *
 * A chart element: <div class="chart" data-chart="line" data-source="ID"></div>, where the block
 * ID holds {"x": ["2026-11-01", ...], "series": [{"label": "sent", "values": [3, null, ...]}]}.
 * A null value is a suppressed ("<5") or missing cell: the line has a gap there.
 */
(function () {
  "use strict";

  var COLOURS = ["#0b6e79", "#d1495b", "#edae49", "#5b3f8c", "#2f7d32", "#8c564b", "#1f77b4", "#7f7f7f"];

  function readData(id) {
    var block = document.getElementById(id);
    if (!block) { return null; }
    try { return JSON.parse(block.textContent || "null"); } catch (e) { return null; }
  }

  function toSeconds(day) {
    return Date.parse(day + "T00:00:00Z") / 1000;
  }

  function drawLine(el, data) {
    if (!data || !data.x || data.x.length === 0 || !window.uPlot) {
      el.textContent = "No data for this period.";
      el.classList.add("empty");
      return;
    }
    var columns = [data.x.map(toSeconds)];
    var series = [{}];
    data.series.forEach(function (s, i) {
      columns.push(s.values);
      series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: false });
    });
    var width = Math.max(260, el.clientWidth - 16);
    var opts = {
      width: width,
      height: Math.round(Math.min(320, Math.max(180, width * 0.45))),
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { size: 48 }],
      legend: { live: false },
    };
    var plot = new window.uPlot(opts, columns, el);
    el.dataset.drawn = "true";
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        var w = Math.max(260, el.clientWidth - 16);
        plot.setSize({ width: w, height: Math.round(Math.min(320, Math.max(180, w * 0.45))) });
      }, 150);
    });
  }

  function fillBars() {
    var fills = document.querySelectorAll(".fill[data-ratio]");
    Array.prototype.forEach.call(fills, function (fill) {
      var ratio = parseFloat(fill.getAttribute("data-ratio"));
      if (!isNaN(ratio)) {
        fill.style.width = Math.max(0, Math.min(100, ratio * 100)).toFixed(1) + "%";
      }
    });
  }

  function drawCharts() {
    var charts = document.querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(charts, function (el) {
      var data = readData(el.getAttribute("data-source"));
      if (el.getAttribute("data-chart") === "line") { drawLine(el, data); }
    });
  }

  function start() {
    fillBars();
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
