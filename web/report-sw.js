// Service worker of the snap-and-report page 随手拍 (report.html): keeps the page shell on the phone so
// the page opens with no connection.
//
// report.js registers it with the scope "./report", so it controls report.html only; the map, the
// editor and the console never see it.
// - The shell (the page's own files, the shared i18n.js, dom.js, geometry.js, basemap.js and style.css, and MapLibre from
//   /vendor/maplibre-gl/) is cached at install and served stale-while-revalidate: at once from the
//   cache, and refreshed in the background for the next visit.
// - GET /api/v1/config, /categories, /regions?level=grid and ?level=district (what the page needs to
//   start): network first, with a timeout, falling back to the last good answer.
// - Everything else goes to the network untouched: every POST (a report or a photo is never cached,
//   and the page's own outbox in IndexedDB owns the retries), /locate, photos, other hosts.
const VERSION = 'gridwatch-report-v3';
const SHELL_CACHE = `${VERSION}-shell`;
const API_CACHE = `${VERSION}-api`;

const SHELL = [
  'report.html',
  'report.js',
  'report.css',
  'report-i18n.js',
  'i18n.js',
  'dom.js',
  'geometry.js',
  'basemap.js',
  'style.css',
  'vendor/maplibre-gl/maplibre-gl.mjs',
  'vendor/maplibre-gl/maplibre-gl-worker.mjs',
  'vendor/maplibre-gl/maplibre-gl.css',
];
const API_CACHED = ['api/v1/config', 'api/v1/categories', 'api/v1/regions?level=grid', 'api/v1/regions?level=district'];
const NETWORK_TIMEOUT_MS = 6_000;

const absolute = (path) => new URL(path, self.location).href;
const SHELL_URLS = new Set(SHELL.map(absolute));
const API_URLS = new Set(API_CACHED.map(absolute));

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const shell = await caches.open(SHELL_CACHE);
    // Past the HTTP cache, so a new version of the page never installs with yesterday's files.
    await shell.addAll(SHELL.map((path) => new Request(absolute(path), { cache: 'reload' })));
    // The start-up data too, if it can be had now; the first visit fetched it before this worker ran.
    const api = await caches.open(API_CACHE);
    await Promise.allSettled(API_CACHED.map(async (path) => {
      const response = await fetch(absolute(path), { headers: { Accept: 'application/json' } });
      if (response.ok) await api.put(absolute(path), response);
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('gridwatch-report-') && !key.startsWith(`${VERSION}-`)) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return; // POSTs go straight to the network, never cached
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // The shell is keyed without its query: report.html?lang=en is report.html, and MapLibre asks for
  // its worker with a ?v= version.
  const bare = `${url.origin}${url.pathname}`;
  if (SHELL_URLS.has(bare)) {
    event.respondWith(staleWhileRevalidate(event, request, bare));
  } else if (API_URLS.has(`${url.origin}${url.pathname}${url.search}`)) {
    event.respondWith(networkFirst(request, url.href));
  }
});

async function staleWhileRevalidate(event, request, key) {
  const cache = await caches.open(SHELL_CACHE);
  const cached = await cache.match(key, { ignoreVary: true });
  const refresh = fetch(request).then(async (response) => {
    if (response.ok && response.type === 'basic') await cache.put(key, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(refresh.catch(() => {})); // offline: the cached copy is all there is
    return cached;
  }
  return refresh;
}

async function networkFirst(request, key) {
  const cache = await caches.open(API_CACHE);
  const network = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(key, response.clone());
    return response;
  });
  network.catch(() => {}); // when the cache answered first, a late failure is nobody's business
  // On a poor connection, an answer from the last visit now beats a fresh one in a minute.
  const timeout = new Promise((resolve) => { setTimeout(resolve, NETWORK_TIMEOUT_MS, null); });
  try {
    const first = await Promise.race([network, timeout]);
    if (first && first.ok) return first;
    const cached = await cache.match(key, { ignoreVary: true });
    if (cached) return cached;
    return first ?? await network;
  } catch (err) {
    const cached = await cache.match(key, { ignoreVary: true });
    if (cached) return cached;
    throw err; // the page sees a network error, as it would without this worker
  }
}
