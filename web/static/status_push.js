/* The subscribe page's "Notify this browser" button (progressive enhancement: without
   JavaScript or push support the page is the e-mail form alone). Registers
   /status/sw.js, and only when the visitor presses the button asks the browser's push
   service for a subscription and posts it, with the components ticked in the form.
   Routes, key, CSRF token and sentences come in #dw-status-push-config. */
(function () {
  "use strict";
  var holder = document.getElementById("dw-status-push-config");
  var box = document.getElementById("dw-status-push");
  if (!holder || !box) { return; }
  var cfg = JSON.parse(holder.textContent);
  var button = document.getElementById("dw-status-push-button");
  var stop = document.getElementById("dw-status-push-stop");
  var state = document.getElementById("dw-status-push-state");
  box.hidden = false;

  function say(text) { state.textContent = text; }
  function failed(err) { say(cfg.text.failed.replace("{reason}", String(err && err.message || err))); }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    button.hidden = true;
    stop.hidden = true;
    say(cfg.text.unsupported);
    return;
  }

  function b64ToBytes(text) {
    var pad = "=".repeat((4 - text.length % 4) % 4);
    var raw = atob((text + pad).replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  function boxes() { return document.querySelectorAll("input[name=component]"); }
  function ticked() {
    return Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).map(function (b) { return b.value; });
  }
  function tick(ids) {
    Array.prototype.forEach.call(boxes(), function (b) { b.checked = ids.indexOf(b.value) >= 0; });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": cfg.csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {error: "HTTP " + r.status}; }).then(function (j) {
        if (!r.ok) { throw new Error(j.error || ("HTTP " + r.status)); }
        return j;
      });
    });
  }

  function show(subscribed) {
    button.disabled = false;
    stop.disabled = false;
    button.textContent = subscribed ? cfg.text.update : cfg.text.subscribe;
    stop.hidden = !subscribed;
    say(subscribed ? cfg.text.subscribed : cfg.text.not_subscribed);
  }

  var ready = navigator.serviceWorker.register(cfg.worker, {scope: cfg.scope}).then(function (reg) {
    return reg.update().catch(function () {}).then(function () { return reg; });
  });
  ready.then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
    if (!sub) { show(false); return; }
    return post(cfg.lookup, {endpoint: sub.endpoint}).then(function (found) {
      if (found.subscribed) { tick(found.components); }
      show(found.subscribed);
    });
  }).catch(failed);

  function subscribe(reg) {
    var chosen = ticked();
    if (!chosen.length) { return Promise.reject(new Error(cfg.text.choose)); }
    return Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { throw new Error(cfg.text.denied); }
      return reg.pushManager.getSubscription();
    }).then(function (sub) {
      return sub || reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: b64ToBytes(cfg.key)});
    }).then(function (sub) {
      return post(cfg.subscribe, {subscription: sub.toJSON(), components: chosen}).then(function () { return true; }, function (err) {
        sub.unsubscribe();  // the appliance refused it: leave no orphan behind
        throw err;
      });
    });
  }

  function unsubscribe(reg) {
    return reg.pushManager.getSubscription().then(function (sub) {
      if (!sub) { return false; }
      return post(cfg.unsubscribe, {endpoint: sub.endpoint}).catch(function () { /* gone already */ }).then(function () {
        return sub.unsubscribe();
      }).then(function () { return false; });
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    ready.then(subscribe).then(show, function (err) { button.disabled = false; failed(err); });
  });
  stop.addEventListener("click", function () {
    stop.disabled = true;
    ready.then(unsubscribe).then(show, function (err) { stop.disabled = false; failed(err); });
  });
})();
