// The till's service worker: keeps every file of the till (page, script, styles, font, QR
// decoder) so the till reloads while the network is down. API and RPC calls are never cached.
/* global CACHE_NAME, CACHED_URLS */
self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE_NAME).then((cache) => cache.addAll(CACHED_URLS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("citypass-till-") && n !== CACHE_NAME).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// Network first (a new build shows at once), the cache when the network is down.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/api/") || url.pathname === "/rpc") return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && CACHED_URLS.includes(url.pathname)) {
          const copy = response.clone();
          caches.open(CACHE_NAME).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname, { cacheName: CACHE_NAME }).then((hit) => hit || Response.error())),
  );
});
