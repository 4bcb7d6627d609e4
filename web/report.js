/**
 * gridwatch snap-and-report page 随手拍: the phone page on which residents, delivery riders ("移动探头")
 * and grid workers file a report with photos and a position, often on a slow connection or none.
 *
 * What this module owns: the photos (previewed at once, uploaded as soon as they are chosen), the
 * location (the phone's position, a photo's EXIF position, or a tap on a small map; always shown
 * with its source) and where it goes (GET /locate), the category tiles, the optional details, and
 * the outbox. Every submission is first written to IndexedDB with its Idempotency-Key and the photos
 * not yet uploaded, then sent; whatever cannot be sent now is retried on 'online', on page load and
 * with backoff while online, photos first, always with the same key, so the server files it once.
 * What it must not do: reach any host but its own (MapLibre comes from /vendor/maplibre-gl/, the map
 * style has no glyphs URL unless the server's config names a basemap), cache an API POST (report-sw.js
 * passes them through), or show a string that is not in report-i18n.js.
 *
 * For browser tests, `window.gridwatchReport = { ready, queueLength() }`: `ready` settles once the
 * categories and the grid outlines are loaded; `document.body.dataset.state` is then 'ready', or
 * 'error' (with the banner shown) when the categories could not be loaded. `queueLength()` resolves to
 * the number of submissions waiting to be sent.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { basemapFont } from './basemap.js';
import { applyStaticText, rememberLanguage, initialLanguage } from './i18n.js';
import { t, HTML_LANG } from './report-i18n.js';
import { el, setChildren } from './dom.js';
import { labelPoint, polygonsOf } from './geometry.js';

// Relative to the page, so it keeps working if the binary ever serves it under a path prefix.
const API = 'api/v1';
const LANG_STORAGE_KEY = 'gridwatch.lang'; // shared with the other pages
const MAX_PHOTOS = 4;
const PHOTO_MAX_BYTES = 12 * 1024 * 1024;  // the server's limit
const DESCRIPTION_MAX = 4000;
const REQUEST_TIMEOUT_MS = 20_000;
/** A photo upload gets 20 s plus a second per 32 KiB: about two minutes for a 3 MB photo on a poor link. */
const UPLOAD_BYTES_PER_SECOND = 32 * 1024;
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/**
 * The server answers 409 "the Idempotency-Key is in use; retry" when a retry overtakes the first
 * attempt still being filed (after a timeout, say). That 4xx is worth a few more tries.
 */
const MAX_CONFLICT_RETRIES = 5;
const LOCATE_DEBOUNCE_MS = 250;
/** Close enough to see the grid and its neighbours. */
const LOCATION_ZOOM = 15;
/** Watch the position this long at most (battery), or until it is this good. */
const GEO_WATCH_MS = 120_000;
const GEO_GOOD_ENOUGH_M = 10;
const SOURCES = ['resident', 'rider', 'grid_worker'];
const TIME_ZONE = 'Asia/Shanghai';

const DB_NAME = 'gridwatch-report';
const DB_STORE = 'outbox';
const LOCK_NAME = 'gridwatch-report-outbox';

const BACKGROUND = '#f3f1ec';
const BRAND = '#b4232c';
const ACCENT = '#c2410c';
const FONT_REGULAR = ['Noto Sans CJK SC Regular', 'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC',
  'Microsoft YaHei', 'sans-serif'];

// ---------------------------------------------------------------------------------------------
// Icons: simple line drawings on a 32 × 32 grid, in the tile's colour (currentColor).

const STROKE = 'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"';
const FILLED = 'fill="currentColor" stroke="none"';

/** One icon per category code; codes the server adds later get `generic`. */
const CATEGORY_ICONS = {
  // a flame over a lane blocked by a striped barrier
  fire_lane_blocked: `<path ${FILLED} d="M16 2.5c1.9 2.4 4.2 4.4 4.2 7.2a4.2 4.2 0 0 1-8.4 0c0-1.6.6-2.7 1.6-3.7.3 1.3 1 2 1.8 2.2-.2-2.1.2-4 .8-5.7z"/>
    <path d="M11.5 16 7 30M20.5 16 25 30"/><rect x="8" y="20.5" width="16" height="5.5" rx="1"/>
    <path d="M12.5 20.5 9.6 26M17.2 20.5 14.3 26M21.9 20.5 19 26"/>`,
  // a cable hung from an upper window down to the street, with a spark
  flying_lead_charging: `<rect x="3" y="3" width="11" height="10" rx="1"/><path d="M8.5 3v10M3 8h11"/>
    <path d="M11 13c0 7 8 3.5 8 10"/><path d="M16.5 23h5v3.5h-5zM17.8 26.5v2.5M20.2 26.5v2.5"/>
    <path ${FILLED} d="M26.5 9.5 22 17.5h3.3l-1.6 6.5 5.3-8.6h-3.2l1.7-5.9z"/>`,
  // a wok giving off smoke
  oil_smoke: `<path d="M4 19h17c0 3.6-3.8 6.3-8.5 6.3S4 22.6 4 19z"/><path d="M21 19h7"/>
    <path d="M8.5 15.5c-2-2 2-3.5 0-5.5s2-3.5 0-5.5M12.5 15.5c-2-2 2-3.5 0-5.5s2-3.5 0-5.5M16.5 15.5c-2-2 2-3.5 0-5.5s2-3.5 0-5.5"/>`,
  // a manhole cover with water welling up
  sewer_blockage: `<ellipse cx="16" cy="21" rx="12.5" ry="7"/><path d="M7 18.5h18M4.5 21h23M7 23.5h18"/>
    <path ${FILLED} d="M16 3c-2.2 3.2-3.3 4.8-3.3 6.3a3.3 3.3 0 0 0 6.6 0c0-1.5-1.1-3.1-3.3-6.3z"/>`,
  // a brick wall and a drop
  wall_leak: `<path d="M3 5h17v22H3z"/><path d="M3 10.5h17M3 16h17M3 21.5h17M9 5v5.5M14.5 10.5V16M9 16v5.5M14.5 21.5V27"/>
    <path ${FILLED} d="M25.5 13c-2.3 3.3-3.4 5-3.4 6.5a3.4 3.4 0 0 0 6.8 0c0-1.5-1.1-3.2-3.4-6.5z"/>`,
  // a tap with a single drop
  water_supply: `<path d="M3 8v8"/><path d="M3 10h13a6 6 0 0 1 6 6v1M3 14h12a3 3 0 0 1 3 3M18 17h4"/><path d="M10 10V6M7 6h6"/>
    <path ${FILLED} d="M20 21c-1.4 2-2.2 3.1-2.2 4.2a2.2 2.2 0 0 0 4.4 0c0-1.1-.8-2.2-2.2-4.2z"/>`,
  // boxes piled up anyhow
  random_piling: `<path d="M3 28h26"/><rect x="5" y="18" width="10" height="10" rx="1"/><rect x="15" y="20.5" width="11" height="7.5" rx="1"/>
    <path d="m7.4 9.6 9.4-1.6 1.5 8.9-9.4 1.6z"/><path d="M10 18v3M20.5 20.5v3"/>`,
  // a warning triangle
  road_hazard: `<path d="M16 4 29.5 27.5h-27z"/><path d="M16 12v7.5"/><circle ${FILLED} cx="16" cy="23.5" r="1.4"/>`,
  // a steaming bowl with chopsticks
  food_safety: `<path d="M4 16h24c0 6-5.4 10-12 10S4 22 4 16z"/><path d="M12 28.5h8"/><path d="M18 13 27 4M21.5 13.5 29 6"/>
    <path d="M9 12.5c-1.2-1.2 1.2-2.2 0-3.8M13 12.5c-1.2-1.2 1.2-2.2 0-3.8"/>`,
  // a figure under a prohibition sign
  uncivil_behaviour: `<circle cx="16" cy="16" r="12.5"/><path d="m7.2 7.2 17.6 17.6"/><circle ${FILLED} cx="15" cy="9.5" r="2.1"/>
    <path d="M15 12.8v6.5l-3 5M15 19.3l3 5M11.5 15.5h7"/>`,
  // two speech bubbles, each with an exclamation
  neighbour_dispute: `<path d="M3 5h14v10H9.5L5 18.5V15H3z"/><path d="M15 13h14v10h-2v3.5L23 23h-8z"/>
    <path d="M10 7.7v3.3M10 13v.1M22 15.7V19M22 21v.1"/>`,
  // a charging post with its cable
  charging_wanted: `<rect x="4.5" y="4" width="12" height="24" rx="2"/><path d="M2.5 28h16"/><path d="m11.5 8-3 5.5h4L9.5 19"/>
    <path d="M16.5 12h3a2 2 0 0 1 2 2v8a2 2 0 0 0 4 0v-8.5"/><path d="M23.5 8.5h4v5h-4zM24.5 6v2.5M26.5 6v2.5"/>`,
  // a map pin with an exclamation
  generic: `<path d="M16 29.5s-9.5-8.7-9.5-15.5a9.5 9.5 0 0 1 19 0c0 6.8-9.5 15.5-9.5 15.5z"/><path d="M16 8.5v6"/>
    <circle ${FILLED} cx="16" cy="18.5" r="1.4"/>`,
};

const UI_ICONS = {
  camera: `<path d="M4 10.5A2.5 2.5 0 0 1 6.5 8h3.2l2-3h8.6l2 3h3.2a2.5 2.5 0 0 1 2.5 2.5v13a2.5 2.5 0 0 1-2.5 2.5h-19A2.5 2.5 0 0 1 4 23.5z"/>
    <circle cx="16" cy="16.5" r="5.5"/>`,
  gallery: `<rect x="4" y="6" width="24" height="20" rx="2.5"/><circle cx="11" cy="12.5" r="2.2"/><path d="m4.5 23 7-7 5 5 3.5-3.5 7.5 7.5"/>`,
  crosshair: `<circle cx="16" cy="16" r="8.5"/><circle ${FILLED} cx="16" cy="16" r="2.5"/><path d="M16 3v5M16 24v5M3 16h5M24 16h5"/>`,
  'photo-pin': `<rect x="3" y="7" width="18" height="15" rx="2"/><circle cx="12" cy="14.5" r="3.5"/>
    <path d="M25 29s-5-4.6-5-8.4a5 5 0 0 1 10 0c0 3.8-5 8.4-5 8.4z"/><circle ${FILLED} cx="25" cy="20.5" r="1.6"/>`,
  lock: `<rect x="6" y="14" width="20" height="14" rx="2.5"/><path d="M10.5 14V10a5.5 5.5 0 0 1 11 0v4"/><path d="M16 19.5v3.5"/>`,
  check: `<circle cx="16" cy="16" r="13"/><path d="m9.5 16.5 4.5 4.5 8.5-9"/>`,
  outbox: `<path d="M4 18h6l2 4h8l2-4h6v8.5a1.5 1.5 0 0 1-1.5 1.5h-21A1.5 1.5 0 0 1 4 26.5z"/><path d="M16 4v12M11 9l5-5 5 5"/>`,
  clock: `<circle cx="16" cy="16" r="13"/><path d="M16 8.5V16l5 3"/>`,
  alert: `<circle cx="16" cy="16" r="13"/><path d="M16 9v8.5"/><circle ${FILLED} cx="16" cy="22" r="1.5"/>`,
};

function svg(markup, className = 'icon') {
  const template = document.createElement('template');
  template.innerHTML = `<svg class="${className}" viewBox="0 0 32 32" aria-hidden="true" focusable="false" ${STROKE}>${markup}</svg>`;
  return template.content.firstElementChild;
}

const categoryIcon = (code) => svg(CATEGORY_ICONS[code] ?? CATEGORY_ICONS.generic, 'cat-icon');
const uiIcon = (name, className = 'icon') => svg(UI_ICONS[name] ?? '', className);

// ---------------------------------------------------------------------------------------------
// State

const state = {
  lang: initialLanguage(LANG_STORAGE_KEY),
  ready: false,
  config: { basemap_style_url: null },
  categories: [],
  categoryIndex: new Map(),   // code -> category
  grids: null,                // FeatureCollection of the grid outlines
  districts: null,            // and of the districts, for orientation
  bounds: null,
  map: null,
  mapLoaded: false,
  overlayAdded: false,
  marker: null,
  markerOnMap: false,
  highlighted: null,          // grid code drawn as the destination
  photos: [],                 // { local, file, name, type, url, status, id, exif_gps, thumbnail_url, error, progress, xhr, promise }
  photoSeq: 0,
  photoNote: null,            // a short note under the photos (too many, duplicate)
  location: null,             // { lon, lat, source: 'geolocation'|'photo'|'map'|'saved', accuracy?, chosen, seq }
  locationSeq: 0,
  geo: { status: 'idle', watchId: null, stopTimer: 0, last: null, error: null },
  assignment: null,           // null | { status: 'loading'|'ok'|'offline'|'error', data?, message?, seq }
  locateTimer: 0,
  locateAbort: null,
  category: null,
  formError: null,            // { message, field }
  fieldErrors: new Set(),     // ids of the elements marked invalid
  submitting: null,           // null | 'photos' | 'sending'
  view: 'form',               // 'form' | 'queued' | 'success'
  viewKey: null,              // the outbox key of the submission the result card shows
  result: null,               // { filed, item, replayed } for the success card
  sent: [],                   // submissions delivered in the background: { key, filed, item }
};

const outbox = {
  items: [],                  // as last read from the store, oldest first
  running: false,
  again: false,
  timer: 0,
  nextAt: 0,
  failures: 0,
  sendingKey: null,
  waiters: new Map(),         // key -> resolve(outcome), for the submission the user is watching
  tick: 0,
};

const $ = (id) => document.getElementById(id);
const tr = (key, params) => t(state.lang, key, params);

function categoryName(code) {
  const category = state.categoryIndex.get(code);
  if (!category) return code;
  return state.lang === 'en' ? category.name_en : category.name_zh;
}

function reducedMotion() {
  return window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Outside a secure context (plain http on a LAN) randomUUID is missing; getRandomValues is not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function formatTime(ms) {
  const locale = state.lang === 'en' ? 'en-GB' : 'zh-CN';
  return new Intl.DateTimeFormat(locale, { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: TIME_ZONE })
    .format(new Date(ms));
}

/** Metres between two lon/lat points (equirectangular: fine at street scale). */
function distanceM(a, b) {
  const k = Math.PI / 180;
  const x = (b.lon - a.lon) * k * Math.cos(((a.lat + b.lat) / 2) * k);
  const y = (b.lat - a.lat) * k;
  return Math.hypot(x, y) * 6_371_000;
}

// ---------------------------------------------------------------------------------------------
// Requests: every one with a timeout, so a slow connection never leaves the page hanging.

class RequestError extends Error {
  /**
   * `network`: no answer at all (offline, refused, timed out). `retryable`: worth trying again
   * later with the same idempotency key (network errors, 408, 429, 5xx).
   */
  constructor(message, { status = 0, field = null, code = null, network = false, retryAfterMs = null } = {}) {
    super(message);
    this.status = status;
    this.field = field;
    this.code = code;
    this.network = network;
    this.retryable = network || status === 408 || status === 429 || status >= 500;
    this.retryAfterMs = retryAfterMs;
  }
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function retryAfterMs(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** The error for an HTTP answer that is not a success: the server's own message when it has one. */
function httpError(status, body, retryAfter) {
  const message = body?.error?.message ?? tr('err_http', { status });
  return new RequestError(message, { status, field: body?.error?.field ?? null, code: body?.error?.code ?? null, retryAfterMs: retryAfterMs(retryAfter) });
}

function networkError(timedOut) {
  return new RequestError(tr(timedOut ? 'err_timeout' : (navigator.onLine ? 'err_network' : 'err_offline')), { network: true });
}

/** A JSON request; resolves to `{ status, body, headers }` on 2xx, rejects with a RequestError. */
async function request(path, { method = 'GET', headers = {}, body, signal, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; abort.abort(); }, timeoutMs);
  const forward = () => abort.abort();
  signal?.addEventListener('abort', forward, { once: true });
  let response;
  let text;
  try {
    response = await fetch(`${API}/${path}`, { method, body, signal: abort.signal, headers: { Accept: 'application/json', ...headers } });
    text = await response.text();
  } catch (err) {
    if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
    throw networkError(timedOut);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', forward);
  }
  const json = parseJson(text);
  if (!response.ok) throw httpError(response.status, json, response.headers.get('Retry-After'));
  return { status: response.status, body: json, headers: response.headers };
}

/** The Content-Type to send a photo with: what the browser says, or what the file name says. */
function photoType(file) {
  const type = (file.type || '').toLowerCase();
  if (type === 'image/jpg' || type === 'image/pjpeg') return 'image/jpeg';
  if (type) return type;
  const name = (file.name || '').toLowerCase();
  if (/\.jpe?g$/.test(name)) return 'image/jpeg';
  if (name.endsWith('.png')) return 'image/png';
  return 'application/octet-stream';
}

/**
 * POST /photos with the raw bytes. XMLHttpRequest rather than fetch for the upload progress, which
 * on a slow link is the difference between "working" and "stuck". `onStart(xhr)` lets the caller abort.
 */
function uploadPhoto(blob, type, { onProgress, onStart } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${API}/photos`);
    xhr.setRequestHeader('Content-Type', type);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.timeout = REQUEST_TIMEOUT_MS + Math.round((blob.size / UPLOAD_BYTES_PER_SECOND) * 1000);
    if (onProgress) xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      const body = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && typeof body?.id === 'string') resolve(body);
      else if (xhr.status >= 200 && xhr.status < 300) reject(new RequestError(tr('err_bad_answer'), { status: 502 }));
      else reject(httpError(xhr.status, body, xhr.getResponseHeader('Retry-After')));
    };
    xhr.onerror = () => reject(networkError(false));
    xhr.ontimeout = () => reject(networkError(true));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    onStart?.(xhr);
    xhr.send(blob);
  });
}

// ---------------------------------------------------------------------------------------------
// The outbox store: IndexedDB, or memory when the browser has none (then it lasts while the page does).

let dbPromise = null;
const memoryOutbox = new Map();

function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve) => {
    let open;
    try {
      open = window.indexedDB?.open(DB_NAME, 1);
    } catch (err) {
      console.warn('IndexedDB unavailable; unsent reports last only while the page is open:', err);
    }
    if (!open) { resolve(null); return; }
    open.onupgradeneeded = () => open.result.createObjectStore(DB_STORE, { keyPath: 'key' });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => {
      console.warn('IndexedDB unavailable; unsent reports last only while the page is open:', open.error);
      resolve(null);
    };
  });
  return dbPromise;
}

/** Runs `fn(store)` in one transaction; `{ result }` once committed, or null without a database. */
async function withStore(mode, fn) {
  const db = await openDb();
  if (!db) return null;
  return new Promise((resolve, reject) => {
    const tx = db.transaction(DB_STORE, mode);
    const req = fn(tx.objectStore(DB_STORE));
    let result;
    if (req) req.onsuccess = () => { result = req.result; };
    tx.oncomplete = () => resolve({ result });
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

async function outboxAll() {
  let stored = [];
  try {
    stored = (await withStore('readonly', (s) => s.getAll()))?.result ?? [];
  } catch (err) {
    console.warn('reading the outbox failed:', err);
  }
  const byKey = new Map(stored.map((item) => [item.key, item]));
  for (const [key, item] of memoryOutbox) byKey.set(key, item);
  return [...byKey.values()].sort((a, b) => a.created_at - b.created_at);
}

async function outboxPut(item) {
  try {
    if (await withStore('readwrite', (s) => s.put(item))) {
      memoryOutbox.delete(item.key);
      return;
    }
  } catch (err) {
    // A full disk or a private mode that refuses blobs: keep it in memory rather than lose it.
    console.warn('saving to the outbox failed; kept in memory:', err);
  }
  memoryOutbox.set(item.key, item);
}

async function outboxDelete(key) {
  memoryOutbox.delete(key);
  try {
    await withStore('readwrite', (s) => s.delete(key));
  } catch (err) {
    console.warn('deleting from the outbox failed:', err);
  }
}

async function queueLength() {
  return (await outboxAll()).filter((item) => item.status === 'queued').length;
}

// ---------------------------------------------------------------------------------------------
// The outbox: sending, retries with backoff, and what the user sees of it.

/**
 * Sends one queued submission: its photos not yet uploaded, then the report with its key.
 * Outcomes: `sent` (removed from the store), `failed` (a 4xx other than 408/429: kept with its
 * error, not retried), `retry` (no answer, 408, 429, 5xx, or a 409 of a key still in use: kept for
 * the next round).
 */
async function sendItem(item) {
  outbox.sendingKey = item.key;
  renderOutbox();
  try {
    for (let i = 0; i < item.photos.length; i++) {
      const photo = item.photos[i];
      if (photo.id) continue;
      try {
        const uploaded = await uploadPhoto(photo.blob, photo.type);
        item.photos[i] = { id: uploaded.id, thumbnail_url: uploaded.thumbnail_url ?? null, name: photo.name, type: photo.type, blob: null };
      } catch (err) {
        if (err.retryable || err.name === 'AbortError') throw err;
        // The server refuses this photo for good (too large, not an image): the report is still
        // worth sending, without it, and the success card says which photo was left out.
        item.warnings = [...(item.warnings ?? []), { name: photo.name, message: err.message }];
        item.photos.splice(i, 1);
        i -= 1;
      }
      await outboxPut(item);
    }
    const body = { ...item.body };
    const ids = [...new Set(item.photos.map((p) => p.id))];
    if (ids.length) body.photos = ids;
    const answer = await request('reports', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': item.key },
      body: JSON.stringify(body),
    });
    await outboxDelete(item.key);
    return { kind: 'sent', filed: answer.body, replayed: answer.headers.get('Idempotent-Replayed') === 'true', item };
  } catch (err) {
    const error = { message: err.message ?? String(err), field: err.field ?? null, status: err.status ?? 0 };
    item.attempts = (item.attempts ?? 0) + 1;
    item.last_error = error;
    const conflict = err.status === 409 && (item.conflicts = (item.conflicts ?? 0) + 1) <= MAX_CONFLICT_RETRIES;
    if (err.retryable || conflict || err.name === 'AbortError') {
      await outboxPut(item);
      return { kind: 'retry', error, network: Boolean(err.network), status: err.status ?? 0, retryAfterMs: err.retryAfterMs ?? null, item };
    }
    item.status = 'failed';
    await outboxPut(item);
    return { kind: 'failed', error, item };
  } finally {
    outbox.sendingKey = null;
  }
}

/** Sends whatever is queued, oldest first; one round at a time, and one tab at a time. */
async function drainOutbox() {
  if (outbox.running) {
    outbox.again = true;
    return;
  }
  outbox.running = true;
  clearRetry();
  try {
    if (navigator.locks?.request) {
      await navigator.locks.request(LOCK_NAME, { ifAvailable: true }, async (lock) => {
        if (lock) await drainRounds();
        else scheduleRetry(null, false); // another tab of this page is sending; look again later
      });
    } else {
      await drainRounds();
    }
  } catch (err) {
    console.warn('sending the outbox failed:', err);
    scheduleRetry(null);
  } finally {
    outbox.running = false;
  }
  if (outbox.again) {
    // Something was queued during the round (a new submission): give it its turn now.
    outbox.again = false;
    drainOutbox();
    return;
  }
  // A submission the user is watching that this round did not reach stays queued.
  for (const [key, resolve] of outbox.waiters) {
    outbox.waiters.delete(key);
    resolve({ kind: 'queued' });
  }
  await refreshOutbox();
}

async function drainRounds() {
  do {
    outbox.again = false;
    const queued = (await outboxAll()).filter((item) => item.status === 'queued');
    let retry = null;
    for (const item of queued) {
      if (!navigator.onLine) break;
      const outcome = await sendItem(item);
      settle(outcome);
      if (outcome.kind === 'retry') {
        retry = Math.max(retry ?? 0, outcome.retryAfterMs ?? 0);
        // No answer at all, or "slow down": the next one would fare no better. A 5xx may be this
        // submission's own trouble, so the others still get their turn.
        if (outcome.network || outcome.status === 429) break;
      }
    }
    if (retry !== null) {
      scheduleRetry(retry || null);
      return;
    }
    outbox.failures = 0;
  } while (outbox.again);
}

/** Hands an outcome to whoever waits for it: the submit in progress, the queued card, or the outbox list. */
function settle(outcome) {
  const { key } = outcome.item;
  const waiter = outbox.waiters.get(key);
  if (waiter) {
    outbox.waiters.delete(key);
    waiter(outcome);
    return;
  }
  if (outcome.kind === 'sent') {
    if (state.view === 'queued' && state.viewKey === key) {
      showSuccess(outcome);
    } else {
      state.sent = [{ key, filed: outcome.filed, item: outcome.item }, ...state.sent].slice(0, 5);
    }
  } else if (outcome.kind === 'failed' && state.view === 'queued' && state.viewKey === key) {
    // The card the user is looking at cannot be sent as it is: back to the form, with the reason.
    restoreItem(outcome.item, outcome.error);
  }
  renderOutbox();
  renderResult();
}

function clearRetry() {
  clearTimeout(outbox.timer);
  outbox.timer = 0;
  outbox.nextAt = 0;
}

/** Backoff: 2 s, 4 s, 8 s … at most 60 s, or what the server's Retry-After asks (capped alike). */
function scheduleRetry(afterMs, countFailure = true) {
  clearRetry();
  if (countFailure) outbox.failures += 1;
  if (!navigator.onLine) return; // the 'online' event starts the next round
  const backoff = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, outbox.failures - 1));
  const delay = Math.min(RETRY_MAX_MS, Math.max(backoff, afterMs ?? 0));
  outbox.nextAt = Date.now() + delay;
  outbox.timer = setTimeout(() => {
    outbox.timer = 0;
    outbox.nextAt = 0;
    drainOutbox();
  }, delay);
  renderOutbox();
}

async function refreshOutbox() {
  outbox.items = await outboxAll();
  renderOutbox();
  renderResult();
}

// ---------------------------------------------------------------------------------------------
// Photos

function photoOfLocal(local) {
  return state.photos.find((p) => p.local === local);
}

function addFiles(fileList) {
  const files = [...(fileList ?? [])];
  state.photoNote = null;
  for (const file of files) {
    if (state.photos.length >= MAX_PHOTOS) {
      state.photoNote = tr('photo_too_many', { n: MAX_PHOTOS });
      break;
    }
    const entry = {
      local: `p${++state.photoSeq}`,
      file,
      name: file.name || tr('photo_default_name'),
      type: photoType(file),
      url: URL.createObjectURL(file),
      status: 'pending',
      id: null,
      exif_gps: null,
      thumbnail_url: null,
      error: null,
      progress: 0,
      xhr: null,
      promise: null,
    };
    state.photos.push(entry);
    if (file.size > PHOTO_MAX_BYTES) {
      // Refused here, not after minutes of uploading on a slow link.
      entry.status = 'error';
      entry.error = tr('photo_too_large', { mb: Math.round(PHOTO_MAX_BYTES / 1024 / 1024) });
    } else {
      startUpload(entry);
    }
  }
  renderPhotos();
}

/** Starts a photo's upload unless one is on its way; `entry.promise` settles when it is done. */
function startUpload(entry) {
  if (entry.promise) return;
  entry.promise = uploadEntry(entry).finally(() => { entry.promise = null; });
}

/** Uploads one chosen photo now, if there is a connection; otherwise it goes with the submission. */
async function uploadEntry(entry) {
  if (!navigator.onLine || !entry.file) {
    entry.status = 'pending';
    renderPhotos();
    return;
  }
  entry.status = 'uploading';
  entry.progress = 0;
  entry.error = null;
  renderPhotos();
  try {
    const photo = await uploadPhoto(entry.file, entry.type, {
      onStart: (xhr) => { entry.xhr = xhr; },
      onProgress: (fraction) => {
        entry.progress = fraction;
        const bar = document.querySelector(`#photo-list [data-local="${entry.local}"] .photo-progress span`);
        if (bar) bar.style.width = `${Math.round(fraction * 100)}%`;
      },
    });
    if (!state.photos.includes(entry)) return;
    const twin = state.photos.find((p) => p !== entry && p.id === photo.id);
    if (twin) {
      // The same bytes again (the server gave the same id): one copy is enough.
      removePhoto(entry.local);
      state.photoNote = tr('photo_duplicate');
      renderPhotos();
      return;
    }
    Object.assign(entry, {
      status: 'uploaded',
      id: photo.id,
      exif_gps: validGps(photo.exif_gps),
      thumbnail_url: photo.thumbnail_url ?? null,
      error: null,
    });
    usePhotoGpsIfBest();
  } catch (err) {
    if (!state.photos.includes(entry)) return;
    if (err.name === 'AbortError' || err.retryable) {
      entry.status = 'pending'; // sent with the report, from the outbox
    } else {
      entry.status = 'error';
      entry.error = err.message;
    }
  } finally {
    entry.xhr = null;
    renderPhotos();
    renderLocation();
  }
}

function validGps(gps) {
  if (!gps || !Number.isFinite(gps.lon) || !Number.isFinite(gps.lat)) return null;
  if (Math.abs(gps.lat) > 90 || Math.abs(gps.lon) > 180 || (gps.lat === 0 && gps.lon === 0)) return null;
  return { lon: gps.lon, lat: gps.lat };
}

function removePhoto(local) {
  const entry = photoOfLocal(local);
  if (!entry) return;
  entry.xhr?.abort();
  if (entry.url?.startsWith('blob:')) URL.revokeObjectURL(entry.url);
  state.photos = state.photos.filter((p) => p !== entry);
  state.photoNote = null;
  // A position taken from this photo without the user asking falls back to the next best one.
  const loc = state.location;
  if (loc?.source === 'photo' && loc.photo === local && !loc.chosen) {
    const gps = photoGps();
    if (state.geo.last) setLocation({ ...state.geo.last, source: 'geolocation', chosen: false });
    else if (gps) setLocation({ lon: gps.lon, lat: gps.lat, source: 'photo', photo: gps.local, chosen: false });
  }
  renderPhotos();
  renderLocation();
}

function uploadPendingPhotos() {
  for (const entry of state.photos) {
    if (entry.status === 'pending' && entry.file) startUpload(entry);
  }
}

/** The position in the first photo that has one. */
function photoGps() {
  for (const p of state.photos) if (p.status === 'uploaded' && p.exif_gps) return { ...p.exif_gps, local: p.local };
  return null;
}

/** A photo's position is used by itself only while there is no phone position (and no choice). */
function usePhotoGpsIfBest() {
  const gps = photoGps();
  const loc = state.location;
  if (!gps || loc?.chosen || loc?.source === 'geolocation' || loc?.source === 'photo') return;
  setLocation({ lon: gps.lon, lat: gps.lat, source: 'photo', photo: gps.local, chosen: false }, { fly: true });
}

// ---------------------------------------------------------------------------------------------
// Location

function geolocationSupported() {
  return 'geolocation' in navigator && window.isSecureContext;
}

function startGeolocation() {
  stopGeolocation();
  if (!('geolocation' in navigator)) { state.geo.status = 'unsupported'; renderLocation(); return; }
  if (!window.isSecureContext) { state.geo.status = 'insecure'; renderLocation(); return; }
  state.geo.status = 'waiting';
  state.geo.error = null;
  state.geo.watchId = navigator.geolocation.watchPosition(onPosition, onPositionError,
    { enableHighAccuracy: true, timeout: 30_000, maximumAge: 10_000 });
  state.geo.stopTimer = setTimeout(() => stopGeolocation(), GEO_WATCH_MS);
  renderLocation();
}

function stopGeolocation() {
  if (state.geo.watchId !== null) navigator.geolocation.clearWatch(state.geo.watchId);
  state.geo.watchId = null;
  clearTimeout(state.geo.stopTimer);
  if (state.geo.status === 'waiting') state.geo.status = state.geo.last ? 'ok' : 'idle';
}

function onPosition(position) {
  const { longitude: lon, latitude: lat, accuracy } = position.coords;
  const fix = { lon, lat, accuracy: Number.isFinite(accuracy) ? accuracy : null };
  state.geo.status = 'ok';
  state.geo.error = null;
  state.geo.last = fix;
  const loc = state.location;
  if (loc?.chosen) { renderLocation(); return; } // the user picked a place: keep it
  if (loc?.source === 'geolocation') {
    // Jitter of a few metres is not worth another locate request.
    const moved = distanceM(loc, fix) > Math.max(5, (fix.accuracy ?? 0) / 2);
    setLocation({ ...fix, source: 'geolocation', chosen: false }, { locate: moved, fly: false });
  } else {
    // The phone's position outranks a photo's position that was only used for want of it.
    setLocation({ ...fix, source: 'geolocation', chosen: false }, { fly: true });
  }
  if (fix.accuracy !== null && fix.accuracy <= GEO_GOOD_ENOUGH_M) stopGeolocation();
}

function onPositionError(err) {
  const status = { 1: 'denied', 2: 'unavailable', 3: 'timeout' }[err.code] ?? 'unavailable';
  state.geo.error = err.message;
  if (status === 'denied') stopGeolocation();
  // A timeout while a fix is already known just means no better one came.
  if (!(status === 'timeout' && state.geo.last)) state.geo.status = status;
  if (!state.location) usePhotoGpsIfBest();
  renderLocation();
}

/**
 * Sets the report's position. `chosen`: the user picked it (photo button, map tap, marker drag), so
 * later phone positions no longer move it. `locate`: whether to ask where it goes.
 */
function setLocation(loc, { fly = false, locate = true } = {}) {
  const first = !state.location;
  state.location = { ...loc, seq: locate || !state.location ? ++state.locationSeq : state.location.seq };
  if (loc.chosen && loc.source !== 'geolocation') stopGeolocation();
  clearFieldError('step-location');
  updateMapLocation({ fly: fly || first });
  renderLocation();
  if (locate) scheduleLocate();
}

function scheduleLocate() {
  clearTimeout(state.locateTimer);
  state.locateAbort?.abort();
  const loc = state.location;
  if (!loc) {
    state.assignment = null;
  } else if (!navigator.onLine) {
    state.assignment = { status: 'offline', seq: loc.seq };
  } else {
    state.assignment = { status: 'loading', seq: loc.seq, data: state.assignment?.data ?? null };
    state.locateTimer = setTimeout(() => runLocate(loc), LOCATE_DEBOUNCE_MS);
  }
  renderAssignment();
}

async function runLocate(loc) {
  const abort = new AbortController();
  state.locateAbort = abort;
  let next;
  try {
    const { body } = await request(`locate?lon=${loc.lon.toFixed(7)}&lat=${loc.lat.toFixed(7)}&crs=wgs84`, { signal: abort.signal });
    next = { status: 'ok', seq: loc.seq, data: body };
  } catch (err) {
    if (err.name === 'AbortError') return;
    next = err.network ? { status: 'offline', seq: loc.seq } : { status: 'error', seq: loc.seq, message: err.message };
  }
  if (state.location?.seq !== loc.seq) return;
  state.assignment = next;
  highlightGrid(next.data?.grid?.code ?? null);
  renderAssignment();
}

// ---------------------------------------------------------------------------------------------
// The small map

function plainStyle() {
  return {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }],
  };
}

function mapLocale() {
  const keys = ['CooperativeGesturesHandler.WindowsHelpText', 'CooperativeGesturesHandler.MacHelpText',
    'CooperativeGesturesHandler.MobileHelpText', 'NavigationControl.ZoomIn', 'NavigationControl.ZoomOut',
    'Marker.Title', 'Map.Title'];
  const names = ['map_help_windows', 'map_help_mac', 'map_help_mobile', 'map_zoom_in', 'map_zoom_out', 'map_marker', 'map_label'];
  return Object.fromEntries(keys.map((key, i) => [key, tr(names[i])]));
}


function bboxOf(collection) {
  const bbox = [Infinity, Infinity, -Infinity, -Infinity];
  for (const feature of collection.features) {
    for (const polygon of polygonsOf(feature.geometry)) {
      for (const [x, y] of polygon[0]) {
        bbox[0] = Math.min(bbox[0], x); bbox[1] = Math.min(bbox[1], y);
        bbox[2] = Math.max(bbox[2], x); bbox[3] = Math.max(bbox[3], y);
      }
    }
  }
  return Number.isFinite(bbox[0]) ? bbox : null;
}

/** A circle of `radius` metres around a point, as a polygon: the phone's accuracy. */
function circle(lon, lat, radius) {
  const ring = [];
  const dLat = radius / 111_320;
  const dLon = dLat / Math.cos((lat * Math.PI) / 180);
  for (let i = 0; i <= 48; i++) {
    const a = (i / 48) * 2 * Math.PI;
    ring.push([lon + dLon * Math.cos(a), lat + dLat * Math.sin(a)]);
  }
  return { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [ring] } };
}

/**
 * MapLibre starts its web worker from /vendor/maplibre-gl/maplibre-gl-worker.mjs. A worker's script
 * does not reliably come through the service worker (headless Chromium fetches it past it, and
 * offline that fails), so on a page the service worker serves, the page fetches the script itself,
 * which the service worker answers from its cache, and gives MapLibre a blob: URL of it.
 */
async function prepareMapWorker() {
  if (!navigator.serviceWorker?.controller) return;
  try {
    const response = await fetch('vendor/maplibre-gl/maplibre-gl-worker.mjs');
    if (!response.ok) return;
    const blob = new Blob([await response.text()], { type: 'text/javascript' });
    // Not revoked: MapLibre may start more workers later.
    maplibregl.setWorkerUrl(URL.createObjectURL(blob));
  } catch (err) {
    console.warn('MapLibre\'s worker not prepared; the map may not draw offline:', err.message);
  }
}

function createMap() {
  let map;
  try {
    map = new maplibregl.Map({
      container: 'report-map',
      style: state.config.basemap_style_url || plainStyle(),
      center: [106.82, 39.67], // about Wuhai, until the grids or a position arrive
      zoom: 10,
      minZoom: 5,
      maxZoom: 19,
      attributionControl: { compact: true },
      // In a page that scrolls, one finger scrolls the page; two move the map.
      cooperativeGestures: true,
      dragRotate: false,
      pitchWithRotate: false,
      locale: mapLocale(),
      canvasContextAttributes: { preserveDrawingBuffer: true },
    });
  } catch (err) {
    console.warn('the map cannot be shown:', err);
    $('report-map').dataset.failed = 'true';
    return;
  }
  state.map = map;
  window.gridwatchReport.map = map;
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  let fellBack = !state.config.basemap_style_url;
  map.on('error', (event) => {
    console.warn('map error:', event.error?.message ?? event);
    // An unreachable basemap (offline, say) must not leave the map blank: carry on without it.
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(plainStyle(), { diff: false });
      map.once('style.load', () => { state.overlayAdded = false; addOverlay(); });
    }
  });
  map.on('load', () => {
    state.mapLoaded = true;
    addOverlay();
  });
  map.on('click', (event) => {
    setLocation({ lon: event.lngLat.lng, lat: event.lngLat.lat, source: 'map', chosen: true });
  });
}

function gridLabels(grids) {
  return {
    type: 'FeatureCollection',
    features: grids.features.map((f) => ({ point: labelPoint(f.geometry), name: f.properties.name }))
      .filter((x) => x.point).map((x) => ({ type: 'Feature', properties: { name: x.name }, geometry: { type: 'Point', coordinates: x.point } })),
  };
}

const EMPTY = { type: 'FeatureCollection', features: [] };

/** The grid outlines arrived after the map: hand them to its sources. */
function setGridData() {
  const map = state.map;
  map.getSource('grids')?.setData(state.grids);
  map.getSource('grid-labels')?.setData(gridLabels(state.grids));
  if (state.highlighted) map.setFeatureState({ source: 'grids', id: state.highlighted }, { assigned: true });
  if (!state.location && state.bounds) map.fitBounds(state.bounds, { padding: 16, duration: 0 });
}

function addOverlay() {
  const map = state.map;
  if (!map || !state.mapLoaded || state.overlayAdded || !map.isStyleLoaded()) return;
  state.overlayAdded = true;
  const grids = state.grids ?? EMPTY;
  const assigned = ['boolean', ['feature-state', 'assigned'], false];
  map.addSource('grids', { type: 'geojson', data: grids, promoteId: 'code' });
  map.addSource('grid-labels', { type: 'geojson', data: gridLabels(grids) });
  map.addSource('accuracy', { type: 'geojson', data: EMPTY });
  map.addSource('districts', { type: 'geojson', data: state.districts ?? EMPTY });
  map.addLayer({
    id: 'district-line', type: 'line', source: 'districts', layout: { 'line-join': 'round' },
    paint: { 'line-color': '#2b2d42', 'line-opacity': 0.55, 'line-width': ['interpolate', ['linear'], ['zoom'], 8, 1.2, 14, 2.5] },
  });
  map.addLayer({
    id: 'district-label', type: 'symbol', source: 'districts', maxzoom: 12,
    layout: { 'text-field': ['get', 'name'], 'text-font': basemapFont(map) ?? FONT_REGULAR, 'text-size': 13 },
    paint: { 'text-color': '#1f2133', 'text-halo-color': 'rgba(255,255,255,0.9)', 'text-halo-width': 1.5 },
  });
  map.addLayer({ id: 'grid-fill', type: 'fill', source: 'grids', paint: { 'fill-color': ACCENT, 'fill-opacity': ['case', assigned, 0.08, 0] } });
  map.addLayer({
    id: 'grid-line', type: 'line', source: 'grids', layout: { 'line-join': 'round' },
    paint: {
      'line-color': ['case', assigned, ACCENT, '#7a8a9c'],
      'line-width': ['interpolate', ['linear'], ['zoom'], 11, ['case', assigned, 1.5, 0.4], 16, ['case', assigned, 2.5, 1]],
    },
  });
  map.addLayer({ id: 'accuracy-fill', type: 'fill', source: 'accuracy', paint: { 'fill-color': '#1d4ed8', 'fill-opacity': 0.1 } });
  map.addLayer({ id: 'accuracy-line', type: 'line', source: 'accuracy', paint: { 'line-color': '#1d4ed8', 'line-opacity': 0.5, 'line-width': 1 } });
  map.addLayer({
    id: 'grid-label', type: 'symbol', source: 'grid-labels', minzoom: 14.5,
    // Below the label point, so the marker (whose tip is often there) does not cover it.
    layout: {
      'text-field': ['get', 'name'], 'text-font': basemapFont(map) ?? FONT_REGULAR, 'text-size': 11,
      'text-max-width': 8, 'text-padding': 4, 'text-anchor': 'top', 'text-offset': [0, 0.5],
    },
    paint: { 'text-color': '#3e4c59', 'text-halo-color': 'rgba(255,255,255,0.92)', 'text-halo-width': 1.5 },
  });
  if (state.highlighted) map.setFeatureState({ source: 'grids', id: state.highlighted }, { assigned: true });
  if (!state.location && state.bounds) map.fitBounds(state.bounds, { padding: 16, duration: 0 });
  updateMapLocation({ fly: true });
}

function highlightGrid(code) {
  const map = state.map;
  if (state.highlighted === code) return;
  if (map && state.overlayAdded && state.highlighted) map.setFeatureState({ source: 'grids', id: state.highlighted }, { assigned: false });
  state.highlighted = code;
  if (map && state.overlayAdded && code) map.setFeatureState({ source: 'grids', id: code }, { assigned: true });
}

function updateMapLocation({ fly = false } = {}) {
  const map = state.map;
  const loc = state.location;
  if (!map) return;
  if (!loc) {
    state.marker?.remove();
    state.marker = null;
    state.markerOnMap = false;
    map.getSource('accuracy')?.setData({ type: 'FeatureCollection', features: [] });
    return;
  }
  if (!state.marker) {
    state.marker = new maplibregl.Marker({ draggable: true, color: BRAND });
    state.marker.on('dragend', () => {
      const { lng, lat } = state.marker.getLngLat();
      setLocation({ lon: lng, lat, source: 'map', chosen: true });
    });
  }
  state.marker.setLngLat([loc.lon, loc.lat]);
  if (!state.markerOnMap) {
    state.marker.addTo(map);
    state.markerOnMap = true;
  }
  state.marker.getElement().setAttribute('aria-label', tr('map_marker'));
  const accuracy = loc.source === 'geolocation' && loc.accuracy > 3 ? [circle(loc.lon, loc.lat, loc.accuracy)] : [];
  map.getSource('accuracy')?.setData({ type: 'FeatureCollection', features: accuracy });
  if (fly) {
    map.jumpTo({ center: [loc.lon, loc.lat], zoom: Math.max(map.getZoom(), LOCATION_ZOOM) });
  } else if (!map.getBounds().contains([loc.lon, loc.lat])) {
    map.easeTo({ center: [loc.lon, loc.lat], duration: reducedMotion() ? 0 : 300 });
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function renderStaticText() {
  applyStaticText(state.lang, (key) => tr(key), 'page_title');
  for (const node of document.querySelectorAll('[data-icon]')) {
    if (!node.firstElementChild) node.append(uiIcon(node.dataset.icon));
  }
}

function renderCategories() {
  const grid = $('category-grid');
  if (!state.categories.length) return;
  const tiles = state.categories.map((category) => el('label', {
    class: `cat-tile class-${category.event_class?.code ?? 'other'}`,
    'data-category': category.code,
    title: state.lang === 'en' ? category.event_class?.name_en : category.event_class?.name_zh,
  },
  el('input', {
    type: 'radio', name: 'category', value: category.code, class: 'tile-input', checked: state.category === category.code,
    onchange: () => selectCategory(category.code),
  }),
  el('span', { class: 'cat-icon-wrap' }, categoryIcon(category.code)),
  el('span', { class: 'cat-name' }, categoryName(category.code))));
  setChildren(grid, el('legend', { class: 'visually-hidden' }, tr('category_title')), tiles);
}

function selectCategory(code) {
  state.category = code;
  clearFieldError('step-category');
  for (const tile of document.querySelectorAll('#category-grid .cat-tile')) {
    tile.classList.toggle('selected', tile.dataset.category === code);
  }
}

function photoStatusText(entry) {
  switch (entry.status) {
    case 'uploading': return tr('photo_uploading');
    case 'uploaded': return tr('photo_uploaded');
    case 'error': return tr('photo_failed');
    default: return tr('photo_waiting');
  }
}

function renderPhotos() {
  const list = $('photo-list');
  const items = state.photos.map((entry, i) => el('li', {
    class: 'photo', 'data-local': entry.local, 'data-status': entry.status, 'data-photo-id': entry.id ?? undefined,
  },
  entry.url
    ? el('img', { src: entry.url, alt: tr('photo_alt', { n: i + 1 }), decoding: 'async', onerror: (e) => { e.target.hidden = true; } })
    : el('span', { class: 'photo-placeholder' }, uiIcon('gallery')),
  el('span', { class: `photo-state state-${entry.status}`, title: photoStatusText(entry) },
    entry.status === 'uploaded' ? uiIcon('check', 'icon icon-small') : null,
    entry.status === 'error' ? uiIcon('alert', 'icon icon-small') : null,
    entry.status === 'pending' ? uiIcon('clock', 'icon icon-small') : null,
    el('span', { class: 'visually-hidden' }, photoStatusText(entry))),
  entry.status === 'uploading'
    ? el('span', { class: 'photo-progress', 'aria-hidden': 'true' }, el('span', { style: `width:${Math.round(entry.progress * 100)}%` }))
    : null,
  entry.exif_gps ? el('span', { class: 'photo-gps', title: tr('photo_has_gps') }, uiIcon('photo-pin', 'icon icon-small')) : null,
  el('button', {
    type: 'button', class: 'photo-remove', 'aria-label': tr('photo_remove', { n: i + 1 }), title: tr('photo_remove', { n: i + 1 }),
    onclick: () => removePhoto(entry.local),
  }, '×')));
  setChildren(list, items);
  list.hidden = items.length === 0;

  const messages = [];
  state.photos.forEach((entry, i) => {
    if (entry.status === 'error') {
      messages.push(el('p', { 'data-field': 'photo-error', 'data-local': entry.local },
        tr('photo_error_line', { n: i + 1, message: entry.error })));
    }
  });
  if (state.photos.some((p) => p.status === 'pending') && !navigator.onLine) messages.push(el('p', { class: 'note' }, tr('photo_offline_note')));
  if (state.photoNote) messages.push(el('p', { class: 'note' }, state.photoNote));
  const box = $('photo-message');
  setChildren(box, messages);
  box.hidden = messages.length === 0;
  box.dataset.kind = state.photos.some((p) => p.status === 'error') ? 'error' : 'note';

  const full = state.photos.length >= MAX_PHOTOS;
  $('photo-actions').dataset.full = String(full);
  for (const id of ['photo-camera', 'photo-pick']) $(id).disabled = full;
  renderSubmit();
}

const SOURCE_KEYS = { geolocation: 'loc_source_geolocation', photo: 'loc_source_photo', map: 'loc_source_map', saved: 'loc_source_saved' };

function renderLocation() {
  const box = $('location-status');
  const loc = state.location;
  const geo = state.geo;
  box.dataset.source = loc?.source ?? 'none';
  if (!loc) {
    const waiting = geo.status === 'waiting';
    setChildren(box,
      el('span', { class: `loc-badge ${waiting ? 'loc-waiting' : 'loc-none'}` }, uiIcon(waiting ? 'crosshair' : 'alert', 'icon icon-small'),
        tr(waiting ? 'loc_waiting' : 'loc_none')));
  } else {
    const coords = `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}`;
    setChildren(box,
      el('span', { class: `loc-badge loc-${loc.source}`, 'data-field': 'location-source' },
        uiIcon({ geolocation: 'crosshair', photo: 'photo-pin' }[loc.source] ?? 'check', 'icon icon-small'),
        tr(SOURCE_KEYS[loc.source] ?? 'loc_source_map')),
      loc.source === 'geolocation' && loc.accuracy !== null && loc.accuracy !== undefined
        ? el('span', { class: 'loc-accuracy', 'data-field': 'accuracy' }, tr('loc_accuracy', { m: Math.max(1, Math.round(loc.accuracy)) }))
        : null,
      el('span', { class: 'loc-coords', 'data-field': 'coords' }, coords));
  }

  const note = $('geo-note');
  const problem = { denied: 'geo_denied', unavailable: 'geo_unavailable', timeout: 'geo_timeout', insecure: 'geo_insecure', unsupported: 'geo_unsupported' }[geo.status];
  note.hidden = !problem || loc?.source === 'geolocation';
  note.textContent = problem ? tr(problem) : '';

  const gps = photoGps();
  const offer = $('use-photo-location');
  offer.hidden = !gps || (loc?.source === 'photo' && distanceM(loc, gps) < 1);
  const useGeo = $('use-geolocation');
  useGeo.hidden = !geolocationSupported() || geo.status === 'denied'
    || (loc?.source === 'geolocation' && geo.watchId !== null) || (!loc && geo.status === 'waiting');
  useGeo.querySelector('[data-i18n]').textContent = tr(loc?.source === 'geolocation' ? 'refresh_geolocation' : 'use_geolocation');
}

function placeChain(located) {
  return [located?.micro_grid, located?.grid, located?.community, located?.street].filter(Boolean);
}

function renderAssignment() {
  const box = $('assignment');
  const a = state.assignment;
  box.hidden = !a;
  if (!a) { setChildren(box); return; }
  box.dataset.status = a.status === 'ok' ? a.data.status : a.status;
  box.dataset.gridCode = a.data?.grid?.code ?? '';
  if (a.status === 'offline') {
    setChildren(box, el('p', { class: 'assign-note' }, tr('assign_offline')));
    return;
  }
  if (a.status === 'error') {
    setChildren(box, el('p', { class: 'assign-note warn' }, tr('assign_error', { message: a.message })));
    return;
  }
  if (a.status === 'loading' && !a.data) {
    setChildren(box, el('p', { class: 'assign-note muted' }, tr('assign_loading')));
    return;
  }
  setChildren(box, assignmentView(a.data, { loading: a.status === 'loading' }));
}

/**
 * Where a located point goes: "grid … · community · street" (with a note when it was only near a
 * grid), or a clear word that it lies outside the city's grids. `label` prefixes "This goes to:".
 */
function placeView(located, { label = true } = {}) {
  if (located.status === 'outside') {
    return [
      el('p', { class: 'assign-outside', 'data-field': 'outside' }, uiIcon('alert', 'icon icon-small'), el('span', {}, tr('assign_outside'))),
      located.district ? el('p', { class: 'assign-line' }, el('span', { class: 'assign-label' }, tr('assign_district')), ' ',
        el('strong', { 'data-field': 'district-name' }, located.district.name)) : null,
    ];
  }
  return [
    el('p', { class: 'assign-line goes-to' },
      label ? [el('span', { class: 'assign-label' }, tr('assign_goes_to')), ' '] : null,
      located.micro_grid ? [el('span', { class: 'level-tag' }, tr('level_micro_grid')), el('strong', { 'data-field': 'micro-grid-name' }, located.micro_grid.name), ' · '] : null,
      located.grid ? [el('span', { class: 'level-tag' }, tr('level_grid')), el('strong', { 'data-field': 'grid-name' }, located.grid.name)] : null,
      located.community ? [' · ', el('span', { 'data-field': 'community-name' }, located.community.name)] : null,
      located.street ? [' · ', el('span', { 'data-field': 'street-name' }, located.street.name)] : null),
    located.status === 'near' && Number.isFinite(located.distance_m)
      ? el('p', { class: 'assign-note' }, tr('assign_near', { m: Math.round(located.distance_m) })) : null,
  ];
}

/** The party branch responsible for a located point (the grid's, or the nearest ancestor's). */
function branchView(located) {
  const branch = located.party_branch;
  return branch
    ? [el('strong', { 'data-field': 'party-branch-name' }, branch.name),
      branch.secretary ? el('span', { class: 'muted' }, ` · ${tr('secretary')} ${branch.secretary}`) : null]
    : el('span', { class: 'muted', 'data-field': 'party-branch-none' }, tr('assign_no_party_branch'));
}

/** "This goes to: …" and "Party branch: …", for the form. */
function assignmentView(located, { loading = false } = {}) {
  return el('div', { class: `assign-body${loading ? ' is-loading' : ''}` },
    placeView(located),
    el('p', { class: 'assign-line' }, el('span', { class: 'assign-label' }, tr('assign_party_branch')), ' ', branchView(located)));
}

/** The place and party branch as rows of a result card. */
function placeRows(located) {
  if (!located) return null;
  return [
    el('dt', {}, tr('success_place')), el('dd', { class: 'assign-body' }, placeView(located, { label: false })),
    el('dt', {}, tr('success_party_branch')), el('dd', {}, branchView(located)),
  ];
}

function renderCounter() {
  const n = [...$('description').value].length;
  const counter = $('description-count');
  counter.textContent = tr('description_count', { n, max: DESCRIPTION_MAX });
  counter.classList.toggle('near-limit', n > DESCRIPTION_MAX * 0.9);
}

function renderSubmit() {
  const button = $('submit');
  const uploading = state.photos.some((p) => p.status === 'uploading');
  button.disabled = Boolean(state.submitting);
  button.textContent = state.submitting === 'photos' ? tr('submit_waiting_photos')
    : state.submitting === 'sending' ? tr('submit_sending')
      : navigator.onLine ? tr('submit') : tr('submit_offline');
  button.dataset.uploading = String(uploading);
}

function renderFormMessage() {
  const box = $('form-message');
  const error = state.formError;
  box.hidden = !error;
  if (!error) { setChildren(box); return; }
  setChildren(box, el('p', { 'data-field': 'form-error' }, error.message),
    error.field ? el('p', { class: 'field-name' }, tr('error_field', { field: error.field })) : null);
}

/** Which part of the form a server `field` names. */
function fieldElement(field) {
  if (!field) return null;
  if (field === 'category') return 'step-category';
  if (['lon', 'lat', 'crs'].includes(field)) return 'step-location';
  if (field === 'description') return 'description';
  if (field === 'source') return 'source-choice';
  if (field.startsWith('reporter')) return field.endsWith('phone') ? 'reporter-phone' : 'reporter-name';
  if (field.startsWith('photos')) return 'step-photos';
  return null;
}

function markFieldError(id) {
  const node = id && $(id);
  if (!node) return;
  state.fieldErrors.add(id);
  node.classList.add('field-error');
  node.setAttribute('aria-invalid', 'true');
}

function clearFieldError(id) {
  const node = $(id);
  if (!node || !state.fieldErrors.has(id)) return;
  state.fieldErrors.delete(id);
  node.classList.remove('field-error');
  node.removeAttribute('aria-invalid');
  if (state.fieldErrors.size === 0 && state.formError) {
    state.formError = null;
    renderFormMessage();
  }
}

function clearAllFieldErrors() {
  for (const id of [...state.fieldErrors]) {
    $(id)?.classList.remove('field-error');
    $(id)?.removeAttribute('aria-invalid');
  }
  state.fieldErrors.clear();
}

function queueStateText() {
  if (!navigator.onLine) return tr('queue_offline');
  if (outbox.sendingKey || outbox.running) return tr('queue_sending');
  if (outbox.nextAt) return tr('queue_retry_in', { s: Math.max(1, Math.ceil((outbox.nextAt - Date.now()) / 1000)) });
  return tr('queue_waiting');
}

function renderOutbox() {
  const queued = outbox.items.filter((item) => item.status === 'queued');
  const failed = outbox.items.filter((item) => item.status === 'failed');
  const banner = $('queue-banner');
  banner.hidden = queued.length === 0;
  banner.dataset.count = String(queued.length);
  banner.dataset.sending = String(Boolean(outbox.sendingKey));
  $('queue-count').textContent = tr('queue_count', { n: queued.length });
  $('queue-detail').textContent = queueStateText();
  $('queue-retry').hidden = !navigator.onLine || Boolean(outbox.sendingKey);
  const icon = banner.querySelector('.queue-icon');
  if (!icon.firstElementChild) icon.append(uiIcon('outbox'));

  setChildren($('failed-list'), failed.map((item) => el('li', { class: 'outbox-item failed', 'data-key': item.key },
    uiIcon('alert', 'icon icon-small'),
    el('div', { class: 'outbox-text' },
      el('strong', {}, tr('failed_title', { category: categoryName(item.body.category), time: formatTime(item.created_at) })),
      el('span', { 'data-field': 'failed-error' }, item.last_error?.message ?? ''),
      item.last_error?.field ? el('span', { class: 'field-name' }, tr('error_field', { field: item.last_error.field })) : null),
    el('span', { class: 'outbox-actions' },
      el('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit', onclick: () => editFailed(item.key) }, tr('failed_edit')),
      el('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-action': 'discard', onclick: () => discardFailed(item.key) }, tr('failed_discard'))))));

  setChildren($('sent-list'), state.sent.map((entry) => el('li', { class: 'outbox-item sent', 'data-key': entry.key, 'data-report-id': entry.filed?.id },
    uiIcon('check', 'icon icon-small'),
    el('div', { class: 'outbox-text' },
      el('strong', {}, tr('sent_title', { id: entry.filed?.id ?? '?' })),
      el('span', {}, [categoryName(entry.filed?.category ?? entry.item.body.category),
        ...placeChain(entry.filed?.assignment).slice(0, 2).map((r) => r.name)].join(' · '))),
    el('button', {
      type: 'button', class: 'btn-icon', 'aria-label': tr('dismiss'), title: tr('dismiss'),
      onclick: () => { state.sent = state.sent.filter((s) => s !== entry); renderOutbox(); },
    }, '×'))));

  $('outbox').hidden = queued.length === 0 && failed.length === 0 && state.sent.length === 0;
  $('net-status').hidden = navigator.onLine;

  // The countdown ticks while a retry is scheduled.
  if (outbox.nextAt && !outbox.tick) {
    outbox.tick = setInterval(() => {
      if (!outbox.nextAt) { clearInterval(outbox.tick); outbox.tick = 0; }
      $('queue-detail').textContent = queueStateText();
      const cardState = document.querySelector('#result [data-field=queue-state]');
      if (cardState) cardState.textContent = queueStateText();
    }, 1000);
  }
}

function renderResult() {
  const box = $('result');
  document.body.dataset.view = state.view;
  $('report-form').hidden = state.view !== 'form';
  box.hidden = state.view === 'form';
  if (state.view === 'success') {
    setChildren(box, successView(state.result));
    box.dataset.kind = 'success';
    box.dataset.reportId = String(state.result.filed.id);
  } else if (state.view === 'queued') {
    const item = outbox.items.find((i) => i.key === state.viewKey) ?? state.result?.item;
    setChildren(box, queuedView(item));
    box.dataset.kind = 'queued';
    delete box.dataset.reportId;
  } else {
    setChildren(box);
    delete box.dataset.kind;
    delete box.dataset.reportId;
  }
}

function successView({ filed, item, replayed }) {
  const located = filed.assignment ?? {};
  const routing = filed.routing ?? {};
  const lead = routing.lead;
  const why = state.lang === 'zh' ? (routing.why_zh ?? routing.why) : (routing.why ?? routing.why_zh);
  const co = routing.co_departments ?? [];
  const warnings = item?.warnings ?? [];
  return [
    el('div', { class: 'result-head ok' }, uiIcon('check', 'icon result-icon'),
      el('div', {}, el('h2', {}, tr('success_title')), el('p', { class: 'muted' }, tr(replayed ? 'success_replayed' : 'success_note')))),
    el('dl', { class: 'facts result-facts' },
      el('dt', {}, tr('success_report_id')), el('dd', {}, el('strong', { class: 'report-no', 'data-field': 'report-id' }, `#${filed.id}`)),
      el('dt', {}, tr('success_case_id')), el('dd', { 'data-field': 'case-id' }, `#${filed.case_id}`),
      el('dt', {}, tr('success_category')), el('dd', { 'data-field': 'category' }, categoryName(filed.category)),
      placeRows(located),
      lead ? [el('dt', {}, tr('success_lead')), el('dd', { 'data-field': 'lead' },
        lead.kind === 'territory' ? tr('lead_territory', { name: lead.name }) : lead.name)] : null,
      co.length ? [el('dt', {}, tr('success_co')), el('dd', { 'data-field': 'co-departments' }, co.map((d) => d.name).join('、'))] : null),
    why ? el('p', { class: 'why', 'data-field': 'why' }, why) : null,
    warnings.length ? el('div', { class: 'form-message', 'data-kind': 'error' },
      warnings.map((w) => el('p', {}, tr('photo_left_out', { name: w.name, message: w.message })))) : null,
    el('button', { type: 'button', id: 'file-another', class: 'btn btn-primary btn-submit', onclick: fileAnother }, tr('file_another')),
  ];
}

function queuedView(item) {
  const place = item?.meta?.assignment;
  const photos = item?.photos?.length ?? 0;
  return [
    el('div', { class: 'result-head queued' }, uiIcon('outbox', 'icon result-icon'),
      el('div', {}, el('h2', {}, tr('queued_title')), el('p', { class: 'muted' }, tr('queued_note')))),
    item ? el('dl', { class: 'facts result-facts' },
      el('dt', {}, tr('success_category')), el('dd', {}, categoryName(item.body.category)),
      place ? placeRows(place) : [el('dt', {}, tr('success_place')),
        el('dd', {}, el('span', { class: 'loc-coords' }, `${item.body.lat.toFixed(5)}, ${item.body.lon.toFixed(5)}`), ' ',
          el('span', { class: 'muted' }, tr('queued_place_later')))],
      el('dt', {}, tr('queued_photos')), el('dd', {}, String(photos)),
      el('dt', {}, tr('queued_state')), el('dd', { 'data-field': 'queue-state' }, queueStateText())) : null,
    item?.last_error ? el('p', { class: 'muted small' }, tr('queued_last_error', { message: item.last_error.message })) : null,
    el('div', { class: 'result-actions' },
      navigator.onLine ? el('button', { type: 'button', class: 'btn', onclick: () => { outbox.failures = 0; drainOutbox(); } }, tr('queue_retry')) : null,
      el('button', { type: 'button', id: 'file-another', class: 'btn btn-primary btn-submit', onclick: fileAnother }, tr('file_another'))),
  ];
}

function renderAll() {
  renderStaticText();
  renderCategories();
  selectCategory(state.category);
  renderPhotos();
  renderLocation();
  renderAssignment();
  renderCounter();
  renderSubmit();
  renderFormMessage();
  renderOutbox();
  renderResult();
}

// ---------------------------------------------------------------------------------------------
// Submitting

function formSource() {
  return document.querySelector('input[name=source]:checked')?.value ?? 'resident';
}

function validate() {
  clearAllFieldErrors();
  if (!state.location) return { message: tr('need_location'), id: 'step-location' };
  if (!state.category) return { message: tr('need_category'), id: 'step-category' };
  if ([...$('description').value].length > DESCRIPTION_MAX) return { message: tr('description_too_long', { max: DESCRIPTION_MAX }), id: 'description' };
  return null;
}

function showFormError(message, field, id = fieldElement(field)) {
  state.formError = { message, field };
  if (id) markFieldError(id);
  renderFormMessage();
  const target = (id && $(id)) || $('form-message');
  target.scrollIntoView({ block: 'center', behavior: reducedMotion() ? 'auto' : 'smooth' });
}

/** The submission as the outbox keeps it; `reportedAt` is when the user pressed send. */
function buildItem(reportedAt) {
  const loc = state.location;
  const name = $('reporter-name').value.trim();
  const phone = $('reporter-phone').value.trim();
  const body = {
    category: state.category,
    lon: Number(loc.lon.toFixed(7)),
    lat: Number(loc.lat.toFixed(7)),
    crs: 'wgs84',
    description: $('description').value.trim(),
    source: formSource(),
    reported_at: reportedAt,
  };
  if (name || phone) {
    body.reporter = {};
    if (name) body.reporter.name = name;
    if (phone) body.reporter.phone = phone;
  }
  const photos = state.photos.filter((p) => p.status !== 'error' && (p.id || p.file)).map((p) => (p.id
    ? { id: p.id, thumbnail_url: p.thumbnail_url, name: p.name, type: p.type, blob: null }
    : { id: null, blob: p.file, name: p.name, type: p.type }));
  return {
    key: uuid(), // the Idempotency-Key: made once, sent with every attempt
    created_at: Date.now(),
    status: 'queued',
    attempts: 0,
    last_error: null,
    warnings: [],
    body,
    photos,
    meta: {
      location_source: loc.source,
      accuracy: loc.accuracy ?? null,
      assignment: state.assignment?.status === 'ok' && state.assignment.seq === loc.seq ? state.assignment.data : null,
    },
  };
}

async function onSubmit(event) {
  event.preventDefault();
  if (state.submitting) return;
  const reportedAt = new Date().toISOString();
  const problem = validate();
  if (problem) {
    showFormError(problem.message, null, problem.id);
    return;
  }
  state.formError = null;
  renderFormMessage();
  // Photos on their way up are waited for, rather than uploaded a second time from the outbox.
  const inFlight = state.photos.filter((p) => p.promise).map((p) => p.promise);
  if (inFlight.length) {
    state.submitting = 'photos';
    renderSubmit();
    await Promise.allSettled(inFlight);
  }
  state.submitting = 'sending';
  renderSubmit();
  const item = buildItem(reportedAt);
  await outboxPut(item);
  outbox.items = await outboxAll();
  const outcome = await new Promise((resolve) => {
    outbox.waiters.set(item.key, resolve);
    outbox.failures = 0;
    drainOutbox();
  });
  state.submitting = null;
  if (outcome.kind === 'sent') {
    showSuccess(outcome);
  } else if (outcome.kind === 'failed') {
    // The server refused it as it is (422 and the like): keep the form, show why, and forget the copy.
    await outboxDelete(item.key);
    await refreshOutbox();
    renderSubmit();
    showFormError(outcome.error.message, outcome.error.field);
  } else {
    showQueued(item);
  }
}

function showSuccess(outcome) {
  // After a submit the form still holds the report; a queued card's form was emptied already.
  if (state.view === 'form') resetForm();
  state.view = 'success';
  state.viewKey = outcome.item.key;
  state.result = outcome;
  renderResult();
  focusResult();
}

function showQueued(item) {
  state.view = 'queued';
  state.viewKey = item.key;
  state.result = { item };
  resetForm();
  refreshOutbox();
  renderResult();
  focusResult();
}

function focusResult() {
  window.scrollTo({ top: 0, behavior: 'auto' });
  $('result').focus({ preventScroll: true });
}

function fileAnother() {
  state.view = 'form';
  state.viewKey = null;
  state.result = null;
  renderResult();
  window.scrollTo({ top: 0, behavior: 'auto' });
}

/** Empties the form for the next report. Who you are, your name and phone stay: people file several. */
function resetForm() {
  for (const p of state.photos) {
    p.xhr?.abort();
    if (p.url?.startsWith('blob:')) URL.revokeObjectURL(p.url);
  }
  state.photos = [];
  state.photoNote = null;
  state.category = null;
  state.formError = null;
  clearAllFieldErrors();
  $('description').value = '';
  for (const id of ['photo-camera', 'photo-pick']) $(id).value = '';
  state.location = null;
  state.assignment = null;
  highlightGrid(null);
  state.submitting = null;
  updateMapLocation();
  startGeolocation();
  renderCategories();
  renderPhotos();
  renderLocation();
  renderAssignment();
  renderCounter();
  renderSubmit();
  renderFormMessage();
}

/** Puts a submission back into the form (its key is dropped: an edited report is a new one). */
function restoreItem(item, error) {
  resetForm();
  stopGeolocation();
  const { body } = item;
  state.category = state.categoryIndex.has(body.category) ? body.category : null;
  $('description').value = body.description ?? '';
  const source = SOURCES.includes(body.source) ? body.source : 'resident';
  document.querySelector(`input[name=source][value="${source}"]`).checked = true;
  $('reporter-name').value = body.reporter?.name ?? '';
  $('reporter-phone').value = body.reporter?.phone ?? '';
  state.photos = item.photos.map((p) => ({
    local: `p${++state.photoSeq}`,
    file: p.blob ?? null,
    name: p.name,
    type: p.type,
    url: p.blob ? URL.createObjectURL(p.blob) : p.thumbnail_url,
    status: p.id ? 'uploaded' : 'pending',
    id: p.id ?? null,
    exif_gps: null,
    thumbnail_url: p.thumbnail_url ?? null,
    error: null,
    progress: 0,
    xhr: null,
    promise: null,
  }));
  outboxDelete(item.key).then(refreshOutbox);
  state.view = 'form';
  state.viewKey = null;
  state.result = null;
  renderAll();
  setLocation({ lon: body.lon, lat: body.lat, source: 'saved', accuracy: item.meta?.accuracy ?? null, chosen: true }, { fly: true });
  uploadPendingPhotos();
  if (error) showFormError(error.message, error.field);
}

async function editFailed(key) {
  const item = (await outboxAll()).find((i) => i.key === key);
  if (item) restoreItem(item, item.last_error);
}

async function discardFailed(key) {
  await outboxDelete(key);
  await refreshOutbox();
}

// ---------------------------------------------------------------------------------------------
// Start-up

function showError(err) {
  $('error-text').textContent = tr('error_prefix') + (err?.message ?? String(err));
  $('error-banner').hidden = false;
  document.body.dataset.state = 'error';
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(LANG_STORAGE_KEY, lang);
  renderAll();
}

function onOnline() {
  outbox.failures = 0;
  renderAll();
  if (state.assignment?.status === 'offline' || (state.location && !state.assignment)) scheduleLocate();
  uploadPendingPhotos();
  drainOutbox();
}

function onOffline() {
  clearRetry();
  renderAll();
}

function bindControls() {
  $('lang-toggle').addEventListener('click', () => setLanguage(state.lang === 'zh' ? 'en' : 'zh'));
  $('error-dismiss').addEventListener('click', () => { $('error-banner').hidden = true; });
  $('error-reload').addEventListener('click', () => window.location.reload());
  for (const id of ['photo-camera', 'photo-pick']) {
    $(id).addEventListener('change', (event) => {
      addFiles(event.target.files);
      event.target.value = ''; // choosing the same file again still fires 'change'
    });
  }
  $('use-photo-location').addEventListener('click', () => {
    const gps = photoGps();
    if (gps) setLocation({ lon: gps.lon, lat: gps.lat, source: 'photo', photo: gps.local, chosen: true }, { fly: true });
  });
  $('use-geolocation').addEventListener('click', () => {
    if (state.geo.last) setLocation({ ...state.geo.last, source: 'geolocation', chosen: false }, { fly: true });
    else if (state.location) { state.location = null; state.assignment = null; updateMapLocation(); renderAssignment(); }
    startGeolocation();
  });
  $('description').addEventListener('input', () => { renderCounter(); clearFieldError('description'); });
  $('reporter-name').addEventListener('input', () => clearFieldError('reporter-name'));
  $('reporter-phone').addEventListener('input', () => clearFieldError('reporter-phone'));
  $('source-choice').addEventListener('change', () => clearFieldError('source-choice'));
  $('report-form').addEventListener('submit', onSubmit);
  $('queue-retry').addEventListener('click', () => { outbox.failures = 0; drainOutbox(); });
  window.addEventListener('online', onOnline);
  window.addEventListener('offline', onOffline);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && navigator.onLine && !outbox.running && outbox.items.some((i) => i.status === 'queued')) {
      outbox.failures = 0;
      drainOutbox();
    }
  });
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  // Scoped to report*, so the service worker never touches the other pages.
  navigator.serviceWorker.register('report-sw.js', { scope: './report' }).catch((err) => {
    console.warn('service worker not registered (the page will not open offline):', err?.message ?? err);
  });
}

async function start() {
  document.documentElement.lang = HTML_LANG[state.lang];
  renderStaticText();
  bindControls();
  renderAll();
  registerServiceWorker();
  startGeolocation();
  refreshOutbox().then(() => { if (navigator.onLine) drainOutbox(); });

  try {
    state.config = (await request('config')).body ?? state.config;
  } catch (err) {
    console.warn('no config; the map has no basemap:', err.message);
  }
  await prepareMapWorker();
  createMap();

  const [categories, grids] = await Promise.allSettled([request('categories'), request('regions?level=grid')]);
  if (grids.status === 'fulfilled') {
    state.grids = grids.value.body;
    state.bounds = bboxOf(state.grids);
    if (state.overlayAdded) setGridData();
    else addOverlay();
  } else {
    console.warn('grid outlines not loaded:', grids.reason?.message);
  }
  // The districts only help the eye: fetched after what the page needs, and not waited for.
  request('regions?level=district').then(({ body }) => {
    state.districts = body;
    state.map?.getSource('districts')?.setData(body);
  }).catch((err) => console.warn('district outlines not loaded:', err.message));
  if (categories.status === 'rejected') throw categories.reason;
  state.categories = categories.value.body ?? [];
  state.categoryIndex = new Map(state.categories.map((c) => [c.code, c]));
  renderAll();
  state.ready = true;
  document.body.dataset.state = 'ready';
}

// Published before start() runs, so start() can fill in `map` as soon as it exists.
window.gridwatchReport = { ready: null, map: null, queueLength, state, outbox, setLanguage, drainOutbox };
window.gridwatchReport.ready = start();
window.gridwatchReport.ready.catch((err) => {
  console.warn('snap-and-report failed to start:', err);
  showError(err);
});
