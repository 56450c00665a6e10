/* The status page's service worker (served at /status/sw.js: its scope is /status/,
   apart from the console's /sw.js). It only shows the notices the appliance pushes to
   customers who subscribed this browser, and opens the status page on a click:
   no caching, no fetch handler. The push is {title, body, url, delivery_id}. */
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function statusPage(url) {
  // Open only pages of the status page: a link elsewhere in a push is not followed.
  var home = self.location.origin + "/status";
  try {
    var u = new URL(url || "/status", self.location.origin);
    var ours = u.origin === self.location.origin && (u.pathname === "/status" || u.pathname.indexOf("/status/") === 0);
    return ours ? u.href : home;
  } catch (e) {
    return home;
  }
}

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {body: event.data ? event.data.text() : ""}; }
  event.waitUntil(self.registration.showNotification(data.title || "Status", {
    body: data.body || "",
    tag: data.delivery_id || undefined,  // a resent notice replaces its first copy
    icon: "/static/favicon.svg",
    data: {url: statusPage(data.url)}
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || self.location.origin + "/status";
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true}).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].url === url && "focus" in list[i]) { return list[i].focus(); }
    }
    return self.clients.openWindow(url);
  }));
});
