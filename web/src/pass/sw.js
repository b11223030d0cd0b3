// The pass app's service worker: keeps every file of the app (page, script, styles, fonts,
// icons) so it opens and shows the pass QR with no connection. The API is never cached (the
// app keeps its last answers in IndexedDB itself).
/* global CACHE_NAME, CACHED_URLS */
self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE_NAME).then((cache) => cache.addAll(CACHED_URLS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("citypass-pass-") && n !== CACHE_NAME).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// Network first (a new build shows at once), the cache when the network is down.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/pass/")) return;
  const path = url.pathname === "/pass/index.html" ? "/pass/" : url.pathname;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && CACHED_URLS.includes(path)) {
          const copy = response.clone();
          caches.open(CACHE_NAME).then((cache) => cache.put(path, copy));
        }
        return response;
      })
      .catch(() => caches.match(path, { cacheName: CACHE_NAME }).then((hit) => hit || Response.error())),
  );
});
