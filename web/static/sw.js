/* Dialwatch service worker (served at /sw.js so its scope is the whole console).
   It only shows pages pushed by the appliance's webpush channel and opens their link:
   no caching, no fetch handler. The push is {title, body, url, delivery_id}. */
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function sameOrigin(url) {
  // Open only pages of this console: a link elsewhere in a push is not followed.
  try {
    var u = new URL(url || "/", self.location.origin);
    return u.origin === self.location.origin ? u.href : self.location.origin + "/";
  } catch (e) {
    return self.location.origin + "/";
  }
}

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {body: event.data ? event.data.text() : ""}; }
  var title = data.title || "Dialwatch";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    // One notification per delivery: a resent page replaces its first copy.
    tag: data.delivery_id || undefined,
    renotify: Boolean(data.delivery_id),
    requireInteraction: true,
    icon: "/static/favicon.svg",
    data: {url: sameOrigin(data.url)}
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || self.location.origin + "/";
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true}).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].url === url && "focus" in list[i]) { return list[i].focus(); }
    }
    return self.clients.openWindow(url);
  }));
});
