// The operator dashboard: listens to /dashboard/stream (Server-Sent Events) and draws the
// figures the node sends once a second. No framework; charts are uPlot (vendor/uplot).
"use strict";

(function () {
  const HISTORY = 120; // points kept on the charts (the node sends the same number)
  const CHANNELS = ["api", "batch", "mqtt", "lorawan", "nbiot"];
  const COLOURS = ["#12355b", "#1f8a4c", "#c2571a", "#7a3fb0", "#0a7f99"];
  const $ = (id) => document.getElementById(id);
  // Texts in the page's language: the node renders them into <body data-*>.
  const said = document.body.dataset;
  const SAY = {
    live: said.live, disconnected: said.disconnected, reconnecting: said.reconnecting,
    noTraffic: said.noTraffic, none: said.none, up: said.up, down: said.down,
  };

  const series = { t: [], resolutions: [], registrations: CHANNELS.map(() => []) };
  let charts = null;

  function number(value, digits = 0) {
    if (value === null || value === undefined) return "–";
    return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function rate(value) {
    return number(value, value !== null && value < 10 ? 1 : 0);
  }

  function millis(value) {
    if (value === null || value === undefined) return "–";
    return value < 1 ? number(value, 3) + " ms" : number(value, 1) + " ms";
  }

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return number(value, unit ? 1 : 0) + " " + units[unit];
  }

  function text(id, value) {
    const element = $(id);
    if (element.textContent !== value) element.textContent = value;
  }

  function chartSize(element) {
    const width = Math.max(element.clientWidth, 200);
    return { width: width, height: width < 500 ? 160 : 200 };
  }

  function makeChart(element, lines) {
    const options = {
      ...chartSize(element),
      legend: { show: lines.length > 1 },
      // at least a minute wide, so the first points do not stretch over the whole axis
      scales: { x: { time: true, range: (u, min, max) => [Math.min(min, max - 60), max] }, y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
      series: [{}].concat(lines.map((label, i) => ({
        label: label, stroke: COLOURS[i % COLOURS.length], width: 2, value: (u, v) => rate(v),
      }))),
      axes: [{}, { size: 50 }],
    };
    return new uPlot(options, [[]].concat(lines.map(() => [])), element);
  }

  function ensureCharts() {
    if (charts || typeof uPlot === "undefined") return;
    charts = {
      resolutions: makeChart($("chart-resolutions"), ["resolutions/s"]),
      registrations: makeChart($("chart-registrations"), CHANNELS),
    };
    const resize = () => {
      charts.resolutions.setSize(chartSize($("chart-resolutions")));
      charts.registrations.setSize(chartSize($("chart-registrations")));
    };
    new ResizeObserver(resize).observe(document.querySelector("main"));
  }

  function addPoint(point) {
    series.t.push(point.t);
    series.resolutions.push(point.resolutions_per_s);
    CHANNELS.forEach((channel, i) => {
      series.registrations[i].push((point.registrations_by_channel || {})[channel] || 0);
    });
    if (series.t.length > HISTORY) {
      series.t.shift();
      series.resolutions.shift();
      series.registrations.forEach((line) => line.shift());
    }
  }

  function redraw() {
    ensureCharts();
    if (!charts) return;
    charts.resolutions.setData([series.t, series.resolutions]);
    charts.registrations.setData([series.t].concat(series.registrations));
  }

  function showTop(rows) {
    const body = $("top-enterprises");
    body.replaceChildren();
    if (!rows.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 3; cell.className = "muted"; cell.textContent = SAY.noTraffic;
      return;
    }
    for (const entry of rows) {
      const row = body.insertRow();
      row.insertCell().textContent = entry.prefix;
      row.insertCell().textContent = number(entry.resolutions);
      row.insertCell().textContent = rate(entry.per_s);
    }
  }

  function showErrors(entries) {
    const list = $("recent-errors");
    list.replaceChildren();
    if (!entries.length) {
      const item = document.createElement("li");
      item.className = "muted"; item.textContent = SAY.none;
      list.append(item);
      return;
    }
    for (const entry of entries) {
      const item = document.createElement("li");
      const level = document.createElement("span");
      level.className = "level-" + entry.level;
      level.textContent = entry.level;
      const when = new Date(entry.t * 1000).toLocaleTimeString();
      item.append(when + " ", level, " " + entry.logger + ": " + entry.message);
      list.append(item);
    }
  }

  function showSnapshot(s) {
    text("resolutions-rate", rate(s.resolutions_per_s));
    text("resolutions-total", number(s.resolutions_total));
    text("registrations-rate", rate(s.registrations_per_s));
    text("registrations-total", number(s.registrations_total));
    text("hit-ratio", s.cache_hit_ratio === null ? "–" : number(s.cache_hit_ratio * 100, 1) + " %");
    text("cache-entries", number(s.cache_entries));
    text("cache-bytes", bytes(s.cache_bytes));
    text("latency-p50", millis(s.latency_p50_ms));
    text("latency-p99", millis(s.latency_p99_ms));
    text("devices-online", number(s.devices_online));
    text("devices-offline", number(s.devices_offline));
    text("enterprises", number(s.enterprises));
    text("identifiers", number(s.identifiers));
    const status = $("upstream-status");
    if (status.dataset.configured === "yes") {
      const up = s.upstream.up;
      status.textContent = up === null ? "–" : up ? SAY.up : SAY.down;
      status.className = "big " + (up === null ? "" : up ? "up" : "down");
    }
    text("upstream-errors", number(s.upstream.errors_total));
    text("report-errors", number(s.upstream.report_delivery_errors_total));
    text("db-pool", number(s.db_pool_in_use) + " / " + number(s.db_pool_size));
    showTop(s.top_enterprises);
    showErrors(s.recent_errors);
    text("updated", new Date(s.t * 1000).toLocaleTimeString());
  }

  function setStatus(label, kind) {
    const status = $("stream-status");
    status.textContent = label;
    status.className = "status " + kind;
  }

  let quiet = null; // timer: the stream has been away too long to be a routine reconnection

  function connect() {
    const source = new EventSource("/dashboard/stream");
    source.addEventListener("open", () => {
      clearTimeout(quiet);
      quiet = null;
      setStatus(SAY.live, "live");
    });
    source.addEventListener("history", (event) => {
      // After a reconnection the node sends only the points this page missed.
      const history = JSON.parse(event.data);
      if (history.full) {
        series.t.length = 0; series.resolutions.length = 0;
        series.registrations.forEach((line) => { line.length = 0; });
      }
      history.points.forEach((point) => {
        if (!series.t.length || point.t > series.t[series.t.length - 1]) addPoint(point);
      });
      redraw();
    });
    source.addEventListener("snapshot", (event) => {
      const snapshot = JSON.parse(event.data);
      if (!series.t.length || snapshot.t > series.t[series.t.length - 1]) {
        addPoint(snapshot);
        redraw();
      }
      showSnapshot(snapshot);
    });
    source.addEventListener("error", () => {
      // The node ends each stream after a while and EventSource reconnects by itself; a
      // refused one (401: the session expired) closes it, and the login form is shown.
      if (source.readyState === EventSource.CLOSED) {
        setStatus(SAY.disconnected, "down");
        fetch("/dashboard/stream").then((response) => {
          if (response.body) response.body.cancel();
          if (response.status === 401) window.location.assign("/dashboard");
          else setTimeout(connect, 2000);
        }, () => setTimeout(connect, 2000));
      } else if (quiet === null) {
        quiet = setTimeout(() => setStatus(SAY.reconnecting, ""), 2000);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => { ensureCharts(); connect(); });
})();
