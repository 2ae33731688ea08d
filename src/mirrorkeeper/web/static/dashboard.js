// Mirrorkeeper dashboard: live progress over server-sent events, history graphs with uPlot.
// The pages work without this script; it only adds what changes while you watch.
(function () {
  "use strict";

  function fmtBytes(n) {
    if (n === null || n === undefined) return "";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function applyLive(row, m) {
    var bar = row.querySelector(".bar"), fill = row.querySelector(".fill");
    var text = row.querySelector(".progress-text"), state = row.querySelector(".state-text");
    var running = m.state === "running";
    row.className = row.className.replace(/\bstate-\S+/, "state-" + m.state.replace(/ /g, "-"));
    if (state) state.textContent = m.state + (m.queued && !running ? " (queued)" : "");
    if (bar) bar.hidden = !running;
    if (running && fill) {
      var pct = m.percent || 0;
      fill.style.width = pct.toFixed(1) + "%";
      fill.setAttribute("data-percent", pct.toFixed(1));
      if (text) text.textContent = (m.stage || "") + " " + pct.toFixed(1) + "% · " +
        fmtBytes(m.bytes_done) + (m.eta_seconds ? " · ETA " + Math.round(m.eta_seconds) + "s" : "");
    } else if (text) {
      text.textContent = "";
    }
  }

  function live() {
    var rows = document.querySelectorAll("[data-mirror]");
    if (!rows.length || !window.EventSource) return;
    var source = new EventSource("/api/events");
    source.onmessage = function (ev) {
      var snap = JSON.parse(ev.data);
      rows.forEach(function (row) {
        var m = snap.mirrors[row.getAttribute("data-mirror")];
        if (m && row.id !== "graphs") applyLive(row, m);
      });
      document.body.setAttribute("data-live", String(snap.time));
    };
  }

  // Short axis labels: 1.5G, 250M, 12k (base 1024 for bytes, 1000 for the rest).
  function short(base) {
    return function (u, values) {
      return values.map(function (v) {
        if (v === null || v === undefined) return "";
        var units = ["", "k", "M", "G", "T", "P"], i = 0, n = Math.abs(v);
        while (n >= base && i < units.length - 1) { n /= base; i++; }
        var text = (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + units[i];
        return (v < 0 ? "-" : "") + text;
      });
    };
  }

  var SERIES = [
    ["duration_seconds", "Duration (s)", 1000],
    ["bytes_transferred", "Bytes transferred", 1024],
    ["bitrate_bps", "Bit rate (bit/s)", 1000],
    ["files_transferred", "Files transferred", 1000],
    ["files_failed", "Files failed", 1000]
  ];

  function graphs(range) {
    var box = document.getElementById("graphs");
    if (!box || !window.uPlot) return;
    var name = box.getAttribute("data-mirror");
    fetch("/api/mirrors/" + encodeURIComponent(name) + "/series?range=" + range)
      .then(function (r) { return r.json(); })
      .then(function (data) {
        box.innerHTML = "";
        box.setAttribute("data-runs", String(data.runs));
        if (!data.time.length) { box.textContent = "No finished runs in this range."; return; }
        var width = Math.min(box.clientWidth || 800, 900);
        SERIES.forEach(function (s) {
          var div = document.createElement("div");
          div.className = "graph";
          div.setAttribute("data-series", s[0]);
          box.appendChild(div);
          new uPlot({
            title: s[1], width: width, height: 160,
            series: [{}, {label: s[1], stroke: "#2a6ebb", width: 1.5, points: {show: data.time.length < 60}}],
            axes: [{}, {size: 60, values: short(s[2])}]
          }, [data.time, data[s[0]]], div);
        });
        box.setAttribute("data-drawn", String(SERIES.length));
      });
  }

  // The server renders each bar's share as data-percent: the Content-Security-Policy allows no
  // inline style attributes, and setting a style from here is allowed.
  function initialBars() {
    document.querySelectorAll(".fill[data-percent]").forEach(function (fill) {
      fill.style.width = fill.getAttribute("data-percent") + "%";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initialBars();
    live();
    if (document.getElementById("graphs")) {
      graphs("week");
      document.querySelectorAll("[data-range]").forEach(function (a) {
        a.addEventListener("click", function (ev) { ev.preventDefault(); graphs(a.getAttribute("data-range")); });
      });
    }
  });
})();
