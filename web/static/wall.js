// The wall screen (大屏): draw the snapshot the page carries, then poll /wall/data and
// redraw in place. When an incident id appears that the screen has not seen before, the
// screen flashes and (once someone turned the sound on) beeps: two short tones made with
// WebAudio, no audio file. Data is written with textContent only, never innerHTML.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dw-config").textContent);
  var L = cfg.labels;
  var body = document.body;
  var live = document.getElementById("live");
  var flash = document.getElementById("wall-flash");
  var soundButton = document.getElementById("wall-sound");
  var lang = document.documentElement.lang || "en";
  var tz = body.dataset.tz || undefined;
  var seen = null; // incident ids already on screen; null until the first paint
  var audio = null;
  var flashTimer = null;
  var NEWS_MS = 6000; // how long a new incident stays highlighted
  var newUntil = {}; // incident id -> time its highlight ends

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, k) { return values[k] !== undefined ? String(values[k]) : ""; });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function count(name) { return Number(body.dataset[name] || 0); }

  var clockFmt = new Intl.DateTimeFormat("sv-SE", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  var timeFmt = new Intl.DateTimeFormat("sv-SE", { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var rel = new Intl.RelativeTimeFormat(lang, { numeric: "always" });
  function relTime(iso) {
    var s = (new Date(iso).getTime() - Date.now()) / 1000;
    var a = Math.abs(s);
    if (a < 60) return rel.format(Math.round(s), "second");
    if (a < 3600) return rel.format(Math.round(s / 60), "minute");
    if (a < 86400) return rel.format(Math.round(s / 3600), "hour");
    return rel.format(Math.round(s / 86400), "day");
  }
  function tick() { document.getElementById("wall-clock").textContent = clockFmt.format(new Date()); }

  function tile(t) {
    var div = el("div", "wall-tile s-" + t.state);
    div.dataset.id = t.id;
    div.dataset.state = t.state;
    div.appendChild(el("div", "tile-name", t.name));
    div.appendChild(el("div", "tile-state", t.state_label));
    var counts = el("div", "tile-counts");
    Object.keys(t.counts).forEach(function (h) {
      if (!t.counts[h]) return;
      var c = el("span", "tile-count h-" + h);
      c.appendChild(el("b", null, String(t.counts[h])));
      c.appendChild(el("span", null, L.health[h] || h));
      counts.appendChild(c);
    });
    div.appendChild(counts);
    return div;
  }

  function incident(i, isNew) {
    var li = el("li", "sev-" + i.severity + (isNew ? " new" : ""));
    li.dataset.id = i.id;
    var head = el("div", "inc-head");
    head.appendChild(el("span", "inc-id", "#" + i.id));
    head.appendChild(el("span", "inc-title", i.title));
    li.appendChild(head);
    var facts = el("div", "inc-facts");
    facts.appendChild(el("span", null, fill(L.opened, { when: relTime(i.opened_at) })));
    if (i.eta) facts.appendChild(el("span", "eta", fill(L.eta, { time: timeFmt.format(new Date(i.eta)) })));
    if (i.acknowledged_by) facts.appendChild(el("span", "acked", fill(L.acked, { who: i.acknowledged_by })));
    li.appendChild(facts);
    li.appendChild(el("div", "inc-targets", i.targets.join(", ")));
    return li;
  }

  function render(data) {
    Object.keys(data.totals).forEach(function (h) {
      var e = document.getElementById("total-" + h);
      if (e) e.textContent = data.totals[h];
    });
    var tiles = document.getElementById("wall-tiles");
    var frag = document.createDocumentFragment();
    if (!data.tiles.length) frag.appendChild(el("p", "muted", L.no_tiles));
    data.tiles.forEach(function (t) { frag.appendChild(tile(t)); });
    tiles.replaceChildren(frag);
    tiles.dataset.kind = data.tile_kind;

    document.getElementById("incident-count").textContent = data.incidents.total;
    var list = document.getElementById("wall-incidents");
    var items = document.createDocumentFragment();
    if (!data.incidents.items.length) items.appendChild(el("li", "muted empty", L.no_incidents));
    var now = Date.now();
    data.incidents.items.forEach(function (i) { items.appendChild(incident(i, (newUntil[i.id] || 0) > now)); });
    list.replaceChildren(items);
    body.classList.toggle("has-incidents", data.incidents.total > 0);
  }

  function beep() {
    if (!audio || body.dataset.sound !== "on") return;
    if (audio.state === "suspended") audio.resume();
    if (audio.state !== "running") return;
    var now = audio.currentTime;
    [0, 0.25].forEach(function (offset) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.3, now + offset + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.2);
    });
    body.dataset.beeps = count("beeps") + 1;
  }

  function alarm(ids) {
    body.dataset.alerts = count("alerts") + 1;
    body.dataset.lastAlert = ids[ids.length - 1];
    flash.textContent = ids.map(function (id) { return fill(L.new_incident, { id: id }); }).join(" · ");
    // restart the animation even when a flash is still running
    body.classList.remove("flashing");
    void flash.offsetWidth;
    body.classList.add("flashing");
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { body.classList.remove("flashing"); }, NEWS_MS);
    beep();
  }

  function paint(data) {
    var ids = data.incidents.items.map(function (i) { return i.id; });
    var fresh = seen === null ? [] : ids.filter(function (id) { return !seen[id]; });
    if (seen === null) seen = {};
    ids.forEach(function (id) { seen[id] = true; });
    fresh.forEach(function (id) { newUntil[id] = Date.now() + NEWS_MS; });
    render(data);
    if (fresh.length) alarm(fresh.sort(function (a, b) { return a - b; }));
  }

  function refresh() {
    fetch(cfg.dataUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        paint(data);
        body.dataset.polls = count("polls") + 1;
        live.dataset.state = "live";
        live.textContent = fill(L.updated, { time: timeFmt.format(new Date()) });
      })
      .catch(function () {
        live.dataset.state = "stale";
        live.textContent = L.stale;
      })
      .finally(function () { setTimeout(refresh, cfg.refreshMs); });
  }

  function setSound(on) {
    soundButton.setAttribute("aria-pressed", on ? "true" : "false");
    soundButton.textContent = on ? L.sound_on : L.sound_off;
    body.dataset.sound = on ? "on" : "off";
  }
  soundButton.addEventListener("click", function () {
    // Browsers start audio only from a user's click (or a kiosk started with
    // --autoplay-policy=no-user-gesture-required): create the context here.
    var on = soundButton.getAttribute("aria-pressed") !== "true";
    if (on) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!audio && Ctx) audio = new Ctx();
      if (audio) audio.resume();
    } else if (audio) {
      audio.suspend();
    }
    setSound(on);
  });
  setSound(false);

  var full = document.getElementById("wall-fullscreen");
  if (!document.documentElement.requestFullscreen) full.hidden = true;
  full.addEventListener("click", function () {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen();
  });
  document.addEventListener("fullscreenchange", function () {
    body.classList.toggle("fullscreen", !!document.fullscreenElement);
  });

  tick();
  setInterval(tick, 1000);
  paint(JSON.parse(document.getElementById("wall-data").textContent));
  setTimeout(refresh, cfg.refreshMs);
})();
