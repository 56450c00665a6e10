/* The account page's Subscribe / Unsubscribe button for web push.
   Registers /sw.js, and only when the person presses Subscribe asks the browser's
   push service for a subscription (PushManager.subscribe) and posts it to the
   appliance. Sentences come translated in #dw-push-config. */
(function () {
  "use strict";
  var holder = document.getElementById("dw-push-config");
  var box = document.getElementById("dw-push");
  if (!holder || !box) { return; }
  var cfg = JSON.parse(holder.textContent);
  var button = document.getElementById("dw-push-button");
  var state = document.getElementById("dw-push-state");
  box.hidden = false;

  function say(text) { state.textContent = text; }
  function failed(err) { say(cfg.text.failed.replace("{reason}", String(err && err.message || err))); }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    button.hidden = true;
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

  function call(method, body) {
    return fetch(cfg.subscriptions, {
      method: method,
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": cfg.csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      if (r.ok) { return r.json(); }
      return r.json().then(function (j) { throw new Error(j.error || r.status); });
    });
  }

  function show(subscription) {
    button.disabled = false;
    button.dataset.subscribed = subscription ? "1" : "0";
    button.textContent = subscription ? cfg.text.unsubscribe : cfg.text.subscribe;
    say(subscription ? cfg.text.subscribed : cfg.text.not_subscribed);
  }

  var ready = navigator.serviceWorker.register(cfg.worker, {scope: "/"}).then(function () {
    return navigator.serviceWorker.ready;
  });
  ready.then(function (reg) { return reg.pushManager.getSubscription(); }).then(show, failed);

  function subscribe(reg) {
    return Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { throw new Error(cfg.text.denied); }
      return fetch(cfg.key, {credentials: "same-origin"}).then(function (r) { return r.json(); });
    }).then(function (key) {
      return reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: b64ToBytes(key.public_key)});
    }).then(function (sub) {
      return call("POST", sub.toJSON()).then(function () { return sub; }, function (err) {
        sub.unsubscribe();  // the appliance refused it: leave no orphan behind
        throw err;
      });
    });
  }

  function unsubscribe(sub) {
    return call("DELETE", {endpoint: sub.endpoint}).catch(function () { /* gone already */ }).then(function () {
      return sub.unsubscribe();
    }).then(function () { return null; });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    ready.then(function (reg) {
      return reg.pushManager.getSubscription().then(function (sub) {
        return sub ? unsubscribe(sub) : subscribe(reg);
      });
    }).then(show, function (err) { button.disabled = false; failed(err); });
  });
})();
