// The target page's charts, drawn with uPlot (served from static/vendor, installed by
// install.sh): a time axis in the site's timezone, values with their unit on the y axis
// and in the legend, the value under the cursor on hover, drag to zoom, double-click to
// zoom out. The data comes from the page's <script id="dw-charts" type="application/json">
// (no inline script: the CSP allows only our own files). Without uPlot this file does
// nothing and the server-drawn SVG lines stay.
(function () {
  "use strict";
  var source = document.getElementById("dw-charts");
  if (typeof window.uPlot === "undefined" || !source) return;
  var uPlot = window.uPlot;
  var cfg = JSON.parse(source.textContent);
  var F = window.DialwatchFormat;
  var COLORS = ["#1f4e8c", "#c4282d", "#1f8a4c", "#a86400"];
  var HEIGHT = 220;
  var tz = cfg.tz;

  function formatter(options) {
    return new Intl.DateTimeFormat("sv-SE", Object.assign({ timeZone: tz, hourCycle: "h23" }, options));
  }
  var hourMinute = formatter({ hour: "2-digit", minute: "2-digit" });
  var dayHourMinute = formatter({ month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  var full = formatter({
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });

  function timeTicks(u, splits) {
    var shown = (u.scales.x.max - u.scales.x.min) > 86400 ? dayHourMinute : hourMinute;
    return splits.map(function (s) { return s == null ? "" : shown.format(new Date(s * 1000)); });
  }

  function valueTicks(unit) {
    return function (u, splits) {
      return splits.map(function (v) { return v == null ? "" : F.withUnit(v, unit); });
    };
  }

  // wide enough for the longest tick label ("1.5 GiB/s"), never narrower than 50 px
  function axisSize(u, values) {
    var longest = (values || []).reduce(function (n, v) { return Math.max(n, String(v).length); }, 0);
    return Math.max(50, longest * 7 + 18);
  }

  function draw(chart) {
    var figure = document.getElementById(chart.id);
    var plot = figure && figure.querySelector(".chart-plot");
    if (!plot || !chart.x.length) return null;
    var series = [{
      label: cfg.labels.time,
      value: function (u, ts) { return ts == null ? "–" : full.format(new Date(ts * 1000)); }
    }];
    chart.series.forEach(function (s, i) {
      series.push({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: true,
        value: function (u, v) { return v == null ? "–" : F.withUnit(v, chart.unit); }
      });
    });
    var grid = { stroke: "#eceef2", width: 1 };
    var u = new uPlot({
      width: plot.clientWidth || 560,
      height: HEIGHT,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), tz); },
      scales: { x: { time: true } },
      series: series,
      axes: [
        { values: timeTicks, stroke: "#687082", grid: grid, ticks: grid },
        { values: valueTicks(chart.unit), size: axisSize, stroke: "#687082", grid: grid, ticks: grid }
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true }
    }, [chart.x].concat(chart.series.map(function (s) { return s.values; })), plot);
    figure.classList.add("js-drawn");
    return { u: u, plot: plot };
  }

  var drawn = cfg.charts.map(draw).filter(Boolean);
  // Kept for a look from the browser console (and the browser test): the uPlot instances.
  window.dialwatchCharts = drawn.map(function (d) { return d.u; });

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      drawn.forEach(function (d) { d.u.setSize({ width: d.plot.clientWidth || 560, height: HEIGHT }); });
    }, 150);
  });
})();
