// Live refresh of the dashboard: poll the JSON API with the page's own filter
// and redraw the rows, totals and open incidents in place. Data is written with
// textContent only, never innerHTML, so target names and details cannot inject markup.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dw-config").textContent);
  var L = cfg.labels;
  var lang = document.documentElement.lang || "en";
  var live = document.getElementById("live");
  var timer = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, k) { return values[k] !== undefined ? String(values[k]) : ""; });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  var tz = document.body.dataset.tz || undefined;
  var absFmt = new Intl.DateTimeFormat("sv-SE", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var rel = new Intl.RelativeTimeFormat(lang, { numeric: "always" });
  function absTime(iso) { return iso ? absFmt.format(new Date(iso)) : ""; }
  function relTime(iso) {
    if (!iso) return "";
    var s = (new Date(iso).getTime() - Date.now()) / 1000;
    var a = Math.abs(s);
    if (a < 60) return rel.format(Math.round(s), "second");
    if (a < 3600) return rel.format(Math.round(s / 60), "minute");
    if (a < 86400) return rel.format(Math.round(s / 3600), "hour");
    return rel.format(Math.round(s / 86400), "day");
  }
  function latency(sec) {
    if (sec === null || sec === undefined) return "–";
    if (sec < 1) { var ms = sec * 1000; return (ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + " ms"; }
    return sec.toFixed(2) + " s";
  }
  var F = window.DialwatchFormat;

  function row(t) {
    var tr = el("tr", "row-" + t.health);
    tr.dataset.id = t.id;
    tr.dataset.health = t.health;
    var c1 = el("td", "c-health");
    c1.appendChild(el("span", "badge h-" + t.health, L.health[t.health] || t.health));
    if (t.flapping) { c1.appendChild(document.createTextNode(" ")); c1.appendChild(el("span", "flag flap", L.flapping)); }
    var c2 = el("td");
    var a = el("a", null, t.name);
    a.href = cfg.detailUrl.replace("__ID__", encodeURIComponent(t.id));
    c2.appendChild(a);
    if (t.name !== t.id) { c2.appendChild(document.createTextNode(" ")); c2.appendChild(el("span", "muted id", t.id)); }
    if (t.affected_by) {
      c2.appendChild(document.createTextNode(" "));
      c2.appendChild(el("span", "flag affected", fill(L.affected_by, { target: t.affected_by })));
    }
    var obs = t.last_observation || {};
    var c5 = el("td", "metrics");
    // the kind's key metrics, as web/format.py key_metrics picks them
    F.chooseKeyMetrics(obs.metrics, cfg.keyMetrics[t.kind], 3).forEach(function (pick) {
      var key = pick[0];
      var dot = key.indexOf(".");
      var m = el("span", "metric", (dot >= 0 ? key.slice(dot + 1) : key) + " ");
      m.title = key;
      m.appendChild(el("b", null, F.withUnit(obs.metrics[key], pick[1])));
      c5.appendChild(m);
    });
    var c6 = el("td", "c-since");
    var r = el("span", null, relTime(t.since));
    r.title = absTime(t.since);
    c6.appendChild(r); c6.appendChild(el("br")); c6.appendChild(el("span", "muted abs", absTime(t.since)));
    var detail = obs.detail_shown || obs.detail || "";  // detail_shown: in the page's language
    var c7 = el("td", "detail st-" + (obs.status || "none"), detail);
    c7.title = detail;
    [c1, c2, el("td", "c-kind", t.kind), el("td", "c-num", latency(obs.latency)), c5, c6, c7].forEach(function (c) { tr.appendChild(c); });
    return tr;
  }

  function renderTargets(data) {
    var body = document.getElementById("target-rows");
    var frag = document.createDocumentFragment();
    if (!data.items.length) {
      var tr = el("tr", "empty"); var td = el("td", null, L.no_targets); td.colSpan = 7; tr.appendChild(td); frag.appendChild(tr);
    }
    data.items.forEach(function (t) { frag.appendChild(row(t)); });
    body.replaceChildren(frag);
    var all = 0;
    Object.keys(data.totals).forEach(function (h) {
      all += data.totals[h];
      var e = document.getElementById("total-" + h);
      if (e) e.textContent = data.totals[h];
    });
    document.getElementById("total-all").textContent = all;
    var first = (data.page - 1) * data.per_page + 1;
    document.getElementById("showing").textContent = data.total
      ? fill(L.showing, { first: first, last: first + data.items.length - 1, total: data.total }) : "";
  }

  function renderIncidents(data) {
    document.getElementById("incident-count").textContent = data.total;
    var list = document.getElementById("incident-list");
    var frag = document.createDocumentFragment();
    if (!data.items.length) frag.appendChild(el("li", "muted empty", L.no_incidents));
    data.items.forEach(function (i) {
      var li = el("li", "sev-" + i.severity);
      var href = cfg.incidentsPage + "/" + i.id;
      var id = el("a", "inc-id", "#" + i.id);
      id.href = href;
      li.appendChild(id);
      var title = el("a", "inc-title", fill(L.incident_title, { target: i.root_target, health: L.health[i.severity] || i.severity }));
      title.href = href;
      li.appendChild(title);
      li.appendChild(el("span", "muted", fill(L.opened, { when: relTime(i.opened_at) })));
      // A user's acknowledgement names the user; a token's shows as the token (token:7).
      if (i.acknowledged_by) li.appendChild(el("span", "acked", fill(L.acked, { who: i.acknowledged_by.replace(/^user:/, "") })));
      else li.appendChild(el("span", "not-acked", L.not_acked));
      if (i.eta) li.appendChild(el("span", "eta", fill(L.eta, { time: absTime(i.eta) })));
      li.appendChild(el("span", "inc-targets", i.targets.join(", ")));
      frag.appendChild(li);
    });
    list.replaceChildren(frag);
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  function refresh() {
    Promise.all([getJSON(cfg.targetsUrl), getJSON(cfg.incidentsUrl)]).then(function (res) {
      renderTargets(res[0]);
      renderIncidents(res[1]);
      live.dataset.state = "live";
      live.textContent = fill(L.updated, { time: absFmt.format(new Date()) });
    }).catch(function () {
      live.dataset.state = "stale";
      live.textContent = L.stale;
    }).finally(function () {
      timer = setTimeout(refresh, document.hidden ? cfg.refreshMs * 4 : cfg.refreshMs);
    });
  }
  timer = setTimeout(refresh, cfg.refreshMs);
})();
