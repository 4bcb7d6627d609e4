/**
 * gridwatch sketch editor: georeference a photographed hand-drawn grid map and vectorise it.
 *
 * Step 1 upload (or pick) a sketch; step 2 pair pixel points on the sketch (left) with positions on
 * the map (right) — the fit runs by itself once two complete pairs exist and its residuals fill the
 * table; step 3 vectorise into candidate polygons, drawn on the map coloured by confidence.
 *
 * Plain ES module, no build step, no host but our own. Strings are in i18n.js (keys `ed_*`).
 * Test hooks: `window.editor = { map, ready, addGcp(px, py, lon, lat), state, ... }`; `ready` settles
 * once the map and regions are loaded; body data-state is then 'ready' (or 'error' with the banner).
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { t, HTML_LANG, initialLanguage, formatNumber } from './i18n.js';

const API = 'api/v1';
const LANG_STORAGE_KEY = 'gridwatch.lang';
const BACKGROUND = '#f3f1ec';
const OVERLAY_SOURCE = 'sketch-overlay';

const state = {
  lang: initialLanguage(LANG_STORAGE_KEY),
  map: null,
  ready: false,
  sketches: [],
  sketch: null,            // the current sketch row
  gcps: [],                // [{ px, py, lon, lat }], null where not yet set
  selected: -1,            // row being completed
  transform: 'auto',
  fit: null,               // last successful PUT response
  fitError: null,          // message of a refused fit
  fitting: false,
  candidates: null,        // vectorise response
  regionBounds: new Map(), // code -> [w, s, e, n]
  view: { scale: 1, x: 0, y: 0 },
  fitSeq: 0,
};

const $ = (id) => document.getElementById(id);
const tr = (key, params) => t(state.lang, key, params);

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, { method = 'GET', body, json } = {}) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(`${API}/${path}`, init);
  } catch {
    throw new ApiError(tr('error_network'), 0);
  }
  let data = null;
  try { data = await response.json(); } catch { /* reported by status below */ }
  if (!response.ok || data === null) {
    throw new ApiError(data?.error?.message ?? tr('error_http', { status: response.status }), response.status);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Errors

function showError(err) {
  $('error-text').textContent = tr('error_prefix') + (err?.message ?? String(err));
  $('error-banner').hidden = false;
  document.body.dataset.state = 'error';
}

function clearError() {
  $('error-banner').hidden = true;
  if (state.ready) document.body.dataset.state = 'ready';
}

// ---------------------------------------------------------------------------------------------
// Formatting

const fmt = (n, digits) => (n == null || !Number.isFinite(n) ? '–' : n.toFixed(digits));

function formatArea(m2) {
  if (m2 >= 10000) return `${formatNumber(state.lang, Math.round(m2 / 100) / 100)} ${state.lang === 'zh' ? '公顷' : 'ha'}`;
  return `${formatNumber(state.lang, Math.round(m2))} m²`;
}

function confidenceColour(c) {
  // red (doubtful) → amber → green (confident); matches the map's fill expression.
  if (c < 0.5) return '#dc2626';
  if (c < 0.8) return '#d97706';
  return '#16a34a';
}

const CONFIDENCE_EXPR = ['interpolate', ['linear'], ['coalesce', ['get', 'confidence'], 0],
  0, '#dc2626', 0.5, '#f59e0b', 0.8, '#84cc16', 1, '#16a34a'];

// ---------------------------------------------------------------------------------------------
// Sketch viewer (left): the image under a CSS transform; markers are drawn unscaled on top.

function imageSize() {
  return state.sketch ? { w: state.sketch.width, h: state.sketch.height } : { w: 1, h: 1 };
}

function applyView() {
  const { scale, x, y } = state.view;
  $('viewer-inner').style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
  renderImageMarkers();
}

function fitImage() {
  const box = $('viewer').getBoundingClientRect();
  const { w, h } = imageSize();
  const scale = Math.min((box.width - 24) / w, (box.height - 24) / h);
  state.view = { scale, x: (box.width - w * scale) / 2, y: (box.height - h * scale) / 2 };
  applyView();
}

/** Image pixel → position in the viewer (CSS px relative to its top-left). */
function pxToViewer(px, py) {
  const { scale, x, y } = state.view;
  return { x: x + px * scale, y: y + py * scale };
}

function viewerToPx(vx, vy) {
  const { scale, x, y } = state.view;
  return { px: (vx - x) / scale, py: (vy - y) / scale };
}

function bindViewer() {
  const viewer = $('viewer');
  let drag = null;
  viewer.addEventListener('pointerdown', (event) => {
    if (!state.sketch || event.button !== 0) return;
    if (event.target.closest('.gcp-pin')) return;
    drag = { id: event.pointerId, sx: event.clientX, sy: event.clientY, x: state.view.x, y: state.view.y, moved: false };
    viewer.setPointerCapture(event.pointerId);
  });
  viewer.addEventListener('pointermove', (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    const dx = event.clientX - drag.sx;
    const dy = event.clientY - drag.sy;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    viewer.classList.add('panning');
    state.view.x = drag.x + dx;
    state.view.y = drag.y + dy;
    applyView();
  });
  viewer.addEventListener('pointerup', (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    const wasClick = !drag.moved;
    drag = null;
    viewer.classList.remove('panning');
    if (!wasClick) return;
    const box = viewer.getBoundingClientRect();
    const { px, py } = viewerToPx(event.clientX - box.left, event.clientY - box.top);
    const { w, h } = imageSize();
    if (px < 0 || py < 0 || px > w || py > h) return;
    setPixel(px, py);
  });
  viewer.addEventListener('wheel', (event) => {
    if (!state.sketch) return;
    event.preventDefault();
    const box = viewer.getBoundingClientRect();
    const cx = event.clientX - box.left;
    const cy = event.clientY - box.top;
    const factor = Math.exp(-event.deltaY * 0.0015);
    const scale = Math.min(Math.max(state.view.scale * factor, 0.05), 20);
    const k = scale / state.view.scale;
    state.view = { scale, x: cx - (cx - state.view.x) * k, y: cy - (cy - state.view.y) * k };
    applyView();
  }, { passive: false });
  viewer.addEventListener('dblclick', () => fitImage());
  new ResizeObserver(() => { if (state.sketch) applyView(); }).observe(viewer);
}

function renderImageMarkers() {
  const layer = $('viewer-markers');
  layer.replaceChildren();
  state.gcps.forEach((g, i) => {
    if (g.px == null) return;
    const pos = pxToViewer(g.px, g.py);
    layer.append(pin(i, g, pos));
  });
}

function pin(i, g, pos) {
  const el = document.createElement('div');
  el.className = 'gcp-pin';
  el.textContent = String(i + 1);
  if (i === state.selected) el.classList.add('selected');
  if (residualOf(i)?.outlier) el.classList.add('outlier');
  if (g.px == null || g.lon == null) el.classList.add('pending');
  if (pos) { el.style.left = `${pos.x}px`; el.style.top = `${pos.y}px`; }
  el.addEventListener('click', (event) => { event.stopPropagation(); select(i); });
  return el;
}

// ---------------------------------------------------------------------------------------------
// Control points

function residualOf(i) {
  return state.fit?.fit?.residuals?.find((r) => r.index === completeIndex(i)) ?? null;
}

/** Index of GCP i among the complete ones (the ones sent to the server), or -1. */
function completeIndex(i) {
  if (!isComplete(state.gcps[i])) return -1;
  let n = 0;
  for (let j = 0; j < i; j++) if (isComplete(state.gcps[j])) n += 1;
  return n;
}

const isComplete = (g) => g && g.px != null && g.lon != null;
const completeGcps = () => state.gcps.filter(isComplete).map(({ px, py, lon, lat }) => ({ px, py, lon, lat }));

function select(i) {
  state.selected = i;
  renderGcps();
}

function setPixel(px, py) {
  let i = state.gcps.findIndex((g) => g.px == null);
  if (i < 0) { state.gcps.push({ px: null, py: null, lon: null, lat: null }); i = state.gcps.length - 1; }
  Object.assign(state.gcps[i], { px, py });
  afterGcpEdit(i);
}

function setLonLat(lon, lat) {
  let i = state.gcps.findIndex((g) => g.lon == null);
  if (i < 0) { state.gcps.push({ px: null, py: null, lon: null, lat: null }); i = state.gcps.length - 1; }
  Object.assign(state.gcps[i], { lon, lat });
  afterGcpEdit(i);
}

function afterGcpEdit(i) {
  state.selected = isComplete(state.gcps[i]) ? -1 : i;
  renderGcps();
  if (isComplete(state.gcps[i])) scheduleFit();
}

function deleteGcp(i) {
  state.gcps.splice(i, 1);
  state.selected = -1;
  renderGcps();
  scheduleFit();
}

/** A whole pair at once, for tests and for anyone typing coordinates in the console. */
function addGcp(px, py, lon, lat) {
  state.gcps.push({ px, py, lon, lat });
  state.selected = -1;
  renderGcps();
  return scheduleFit();
}

let fitTimer = 0;
let fitWaiters = [];
function scheduleFit() {
  clearTimeout(fitTimer);
  const done = new Promise((resolve) => fitWaiters.push(resolve));
  fitTimer = setTimeout(() => {
    const waiters = fitWaiters;
    fitWaiters = [];
    runFit().finally(() => waiters.forEach((resolve) => resolve()));
  }, 150);
  return done;
}

async function runFit() {
  if (!state.sketch) return;
  const seq = ++state.fitSeq;
  const gcps = completeGcps();
  state.candidates = null;
  if (gcps.length < 2) {
    // Nothing to fit yet; the server keeps the last stored fit, the page shows what is missing.
    state.fit = null;
    state.fitError = null;
    removeOverlay();
    renderAll();
    return;
  }
  state.fitting = true;
  renderFit();
  try {
    const result = await api(`sketches/${state.sketch.id}/gcps`, {
      method: 'PUT', json: { gcps, transform: state.transform, crs: 'wgs84' },
    });
    if (seq !== state.fitSeq) return;
    state.fit = result;
    state.fitError = null;
    showOverlay();
    clearError();
  } catch (err) {
    if (seq !== state.fitSeq) return;
    if (err.status === 422 || err.status === 400) {
      // Too few or degenerate points: keep them, say why.
      state.fit = null;
      state.fitError = err.message;
      removeOverlay();
    } else {
      showError(err);
    }
  } finally {
    if (seq === state.fitSeq) state.fitting = false;
  }
  renderAll();
}

// ---------------------------------------------------------------------------------------------
// Map (right)

function plainStyle() {
  return { version: 8, sources: {}, layers: [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }] };
}

function bboxOf(geometry) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
    } else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return b;
}

function addBaseLayers(map, regions) {
  map.addSource('regions', { type: 'geojson', data: regions });
  map.addLayer({ id: 'regions-fill', type: 'fill', source: 'regions', filter: ['==', ['get', 'level'], 'grid'],
    paint: { 'fill-color': '#64748b', 'fill-opacity': 0.04 } });
  const lines = [
    ['micro_grid', '#94a3b8', 0.6, [2, 2]], ['grid', '#64748b', 1], ['community', '#7c3aed', 1.8],
    ['street', '#b45309', 2.2], ['district', '#b4232c', 2.8],
  ];
  for (const [level, color, width, dash] of lines) {
    map.addLayer({ id: `regions-${level}`, type: 'line', source: 'regions', filter: ['==', ['get', 'level'], level],
      layout: { 'line-join': 'round' }, paint: { 'line-color': color, 'line-width': width, ...(dash ? { 'line-dasharray': dash } : {}) } });
  }
  map.addSource('candidates', { type: 'geojson', data: { type: 'FeatureCollection', features: [] }, promoteId: 'face' });
  map.addLayer({ id: 'candidates-fill', type: 'fill', source: 'candidates',
    paint: { 'fill-color': CONFIDENCE_EXPR, 'fill-opacity': ['case', ['boolean', ['feature-state', 'hover'], false], 0.55, 0.32] } });
  map.addLayer({ id: 'candidates-line', type: 'line', source: 'candidates',
    paint: { 'line-color': CONFIDENCE_EXPR, 'line-width': ['case', ['boolean', ['feature-state', 'hover'], false], 3.5, 1.8],
      // Low confidence stays visible but reads as doubtful: dashed.
      'line-dasharray': ['case', ['<', ['coalesce', ['get', 'confidence'], 0], 0.5], ['literal', [2, 1.5]], ['literal', [1, 0]]] } });
}

function overlayCoordinates([w, s, e, n]) {
  return [[w, n], [e, n], [e, s], [w, s]];
}

function showOverlay() {
  const map = state.map;
  if (!map || !state.fit?.footprint) return;
  // Bust the cache: the overlay changes with every fit under the same URL.
  const url = `${state.fit.overlay}?v=${Date.now()}`;
  const coordinates = overlayCoordinates(state.fit.footprint);
  const source = map.getSource(OVERLAY_SOURCE);
  if (source) {
    source.updateImage({ url, coordinates });
  } else {
    map.addSource(OVERLAY_SOURCE, { type: 'image', url, coordinates });
    map.addLayer({ id: 'sketch-overlay', type: 'raster', source: OVERLAY_SOURCE,
      paint: { 'raster-opacity': Number($('overlay-opacity').value) / 100, 'raster-fade-duration': 0 } }, 'candidates-fill');
  }
  map.setLayoutProperty('sketch-overlay', 'visibility', $('overlay-toggle').checked ? 'visible' : 'none');
}

function removeOverlay() {
  const map = state.map;
  if (!map) return;
  if (map.getLayer('sketch-overlay')) map.removeLayer('sketch-overlay');
  if (map.getSource(OVERLAY_SOURCE)) map.removeSource(OVERLAY_SOURCE);
}

const mapMarkers = [];
function renderMapMarkers() {
  while (mapMarkers.length) mapMarkers.pop().remove();
  if (!state.map) return;
  state.gcps.forEach((g, i) => {
    if (g.lon == null) return;
    const marker = new maplibregl.Marker({ element: pin(i, g, null), anchor: 'center' }).setLngLat([g.lon, g.lat]).addTo(state.map);
    mapMarkers.push(marker);
  });
}

function bindMap(map) {
  map.on('click', (event) => {
    if (!state.sketch) return;
    setLonLat(Number(event.lngLat.lng.toFixed(7)), Number(event.lngLat.lat.toFixed(7)));
  });
  let hovered = null;
  map.on('mousemove', 'candidates-fill', (event) => {
    const face = event.features[0]?.id;
    if (hovered != null && hovered !== face) map.setFeatureState({ source: 'candidates', id: hovered }, { hover: false });
    hovered = face;
    if (face != null) map.setFeatureState({ source: 'candidates', id: face }, { hover: true });
    highlightCandidate(face);
  });
  map.on('mouseleave', 'candidates-fill', () => {
    if (hovered != null) map.setFeatureState({ source: 'candidates', id: hovered }, { hover: false });
    hovered = null;
    highlightCandidate(null);
  });
}

function highlightCandidate(face) {
  for (const row of document.querySelectorAll('#candidates [data-face]')) {
    row.classList.toggle('hover', face != null && row.dataset.face === String(face));
  }
}

function focusMap() {
  const code = state.sketch?.region_code;
  const bounds = (state.fit?.footprint) ?? (code && state.regionBounds.get(code)) ?? state.regionBounds.get('*');
  if (bounds) state.map.fitBounds(bounds, { padding: 40, duration: 0, maxZoom: 17 });
}

// ---------------------------------------------------------------------------------------------
// Sketches: upload, choose, vectorise

async function loadSketchList(selectId) {
  state.sketches = await api('sketches');
  renderSketchSelect(selectId ?? state.sketch?.id);
}

async function openSketch(row) {
  state.sketch = row;
  state.gcps = (row.gcps ?? []).map(({ px, py, lon, lat }) => ({ px, py, lon, lat }));
  state.transform = row.transform ?? 'auto';
  $('transform-select').value = state.transform;
  state.fit = null;
  state.fitError = null;
  state.candidates = null;
  state.selected = -1;
  state.map.getSource('candidates').setData({ type: 'FeatureCollection', features: [] });
  removeOverlay();
  const img = $('sketch-img');
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new ApiError(tr('error_http', { status: 'image' })));
    img.src = `${API}/sketches/${row.id}/image`;
  });
  img.style.width = `${row.width}px`;
  img.style.height = `${row.height}px`;
  $('viewer').classList.add('has-sketch');
  fitImage();
  renderSketchSelect(row.id);
  renderAll();
  if (completeGcps().length >= 2) await runFit();
  focusMap();
}

async function upload(event) {
  event.preventDefault();
  const file = $('upload-file').files[0];
  if (!file) { showError(new Error(tr('ed_upload_need_file'))); return; }
  const form = new FormData();
  form.append('image', file);
  const title = $('upload-title').value.trim();
  const region = $('upload-region').value.trim();
  if (title) form.append('title', title);
  if (region) form.append('region_code', region);
  const button = $('upload-button');
  button.disabled = true;
  button.textContent = tr('ed_uploading');
  try {
    const row = await api('sketches', { method: 'POST', body: form });
    clearError();
    await loadSketchList(row.id);
    await openSketch(row);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
    button.textContent = tr('ed_upload');
  }
}

async function vectorise() {
  if (!state.sketch) return;
  const button = $('vectorise-button');
  button.disabled = true;
  button.textContent = tr('ed_vectorising');
  try {
    const result = await api(`sketches/${state.sketch.id}/vectorise`, { method: 'POST' });
    state.candidates = result;
    state.map.getSource('candidates').setData({ type: 'FeatureCollection', features: result.features });
    clearError();
  } catch (err) {
    showError(err);
  } finally {
    button.textContent = tr('ed_vectorise');
    renderAll();
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

function renderStaticText() {
  document.documentElement.lang = HTML_LANG[state.lang];
  document.title = tr('ed_page_title');
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = tr(node.dataset.i18n);
  for (const node of document.querySelectorAll('[data-i18n-label]')) {
    const label = tr(node.dataset.i18nLabel);
    node.setAttribute('aria-label', label);
    node.title = label;
  }
  for (const node of document.querySelectorAll('[data-i18n-placeholder]')) node.placeholder = tr(node.dataset.i18nPlaceholder);
  for (const node of document.querySelectorAll('#lang-toggle [data-lang]')) node.classList.toggle('active', node.dataset.lang === state.lang);
  const file = $('upload-file').files[0];
  $('upload-file-name').textContent = file ? file.name : tr('ed_no_file');
}

function renderSketchSelect(selectedId) {
  const select = $('sketch-select');
  select.replaceChildren(el('option', { value: '' }, tr('ed_pick_sketch')));
  for (const s of [...state.sketches].sort((a, b) => b.id - a.id)) {
    const option = el('option', { value: String(s.id) }, `#${s.id} ${s.title || tr('ed_untitled')}${s.region_code ? ` · ${s.region_code}` : ''}`);
    if (s.id === selectedId) option.selected = true;
    select.append(option);
  }
}

function renderGcps() {
  const body = $('gcp-table').tBodies[0];
  body.replaceChildren();
  state.gcps.forEach((g, i) => {
    const r = residualOf(i);
    const pending = g.px == null ? tr('ed_pending_image') : g.lon == null ? tr('ed_pending_map') : null;
    const row = el('tr', { class: [i === state.selected ? 'selected' : '', r?.outlier ? 'outlier' : ''].join(' '), dataset: { index: String(i) }, onclick: () => select(i) },
      el('td', { class: 'num' }, el('span', { class: 'row-pin' }, String(i + 1))),
      el('td', { class: g.px == null ? 'mono pending' : 'mono' }, g.px == null ? tr('ed_pending_image') : `${fmt(g.px, 1)}, ${fmt(g.py, 1)}`),
      el('td', { class: g.lon == null ? 'mono pending' : 'mono' }, g.lon == null ? tr('ed_pending_map') : `${fmt(g.lon, 6)}, ${fmt(g.lat, 6)}`),
      el('td', { class: 'mono', dataset: { field: 'residual' } }, r ? `${fmt(r.metres, 2)} / ${fmt(r.pixels, 2)}` : pending ? '' : '–',
        r?.outlier ? el('span', { class: 'tag tag-bad', title: tr('ed_outlier_title') }, tr('ed_outlier')) : null),
      el('td', { class: 'mono' }, r?.leave_one_out_m != null ? fmt(r.leave_one_out_m, 1) : ''),
      el('td', {}, el('button', { type: 'button', class: 'btn-icon btn-del', 'aria-label': tr('ed_delete'), title: tr('ed_delete'),
        onclick: (event) => { event.stopPropagation(); deleteGcp(i); } }, '×')),
    );
    body.append(row);
  });
  if (!state.gcps.length) {
    body.append(el('tr', { class: 'empty' }, el('td', { colspan: '6' }, tr('ed_no_gcps'))));
  }
  $('gcp-count').textContent = String(completeGcps().length);
  renderImageMarkers();
  renderMapMarkers();
}

function renderFit() {
  const box = $('fit-report');
  box.replaceChildren();
  const need = 2 - completeGcps().length;
  if (!state.sketch) return;
  if (state.fitting && !state.fit) { box.append(el('p', { class: 'muted' }, tr('ed_fitting'))); return; }
  if (state.fitError) { box.append(el('p', { class: 'fit-error', role: 'alert' }, state.fitError)); return; }
  if (!state.fit) { box.append(el('p', { class: 'muted' }, tr('ed_fit_need', { n: Math.max(need, 1) }))); return; }
  const f = state.fit.fit;
  const good = f.rmse_m < 2 ? 'good' : f.rmse_m < 10 ? 'fair' : 'bad';
  box.append(
    el('div', { class: 'fit-headline' },
      el('span', { class: 'fit-kind', dataset: { kind: f.kind } }, tr(`ed_kind_${f.kind}`)),
      el('span', { class: `fit-rmse ${good}`, dataset: { rmse: String(f.rmse_m) } }, `${tr('ed_rmse')} ${fmt(f.rmse_m, 2)} m`)),
    el('dl', { class: 'fit-grid' },
      el('dt', {}, tr('ed_fit_points')), el('dd', {}, String(f.points)),
      el('dt', {}, tr('ed_rmse')), el('dd', {}, `${fmt(f.rmse_m, 2)} m / ${fmt(f.rmse_px, 2)} px`),
      el('dt', {}, tr('ed_rmse_dof')), el('dd', {}, f.rmse_per_dof_m != null ? `${fmt(f.rmse_per_dof_m, 2)} m` : '–'),
      f.metres_per_pixel != null ? el('dt', {}, tr('ed_metres_per_pixel')) : null,
      f.metres_per_pixel != null ? el('dd', {}, `${fmt(f.metres_per_pixel, 2)} m`) : null),
  );
  const warnings = [...(f.warnings ?? []), ...(state.fit.image_warnings ?? [])];
  if (warnings.length) {
    box.append(el('h3', {}, tr('ed_warnings')), el('ul', { class: 'warn-list' }, ...warnings.map((w) => el('li', {}, typeof w === 'string' ? w : w.message ?? JSON.stringify(w)))));
  }
}

function renderCandidates() {
  const box = $('candidates');
  box.replaceChildren();
  const c = state.candidates;
  $('candidate-count').textContent = c ? String(c.features.length) : '';
  if (!c) { box.append(el('p', { class: 'muted' }, tr('ed_no_candidates'))); return; }
  const list = el('ol', { class: 'cand-list' });
  for (const f of c.features) {
    const p = f.properties;
    const low = p.confidence < 0.5;
    list.append(el('li', { dataset: { face: String(p.face) }, class: low ? 'low' : '',
      onmouseenter: () => state.map.setFeatureState({ source: 'candidates', id: p.face }, { hover: true }),
      onmouseleave: () => state.map.setFeatureState({ source: 'candidates', id: p.face }, { hover: false }),
      onclick: () => state.map.fitBounds(bboxOf(f.geometry), { padding: 80, maxZoom: 18 }) },
      el('span', { class: 'swatch', style: `background:${confidenceColour(p.confidence)}` }),
      el('span', { class: 'cand-name' }, tr('ed_face', { n: p.face })),
      el('span', { class: 'cand-area mono' }, formatArea(p.area_m2)),
      el('span', { class: 'cand-conf mono', title: tr('ed_confidence') }, `${Math.round(p.confidence * 100)}%`),
      p.problems?.length ? el('span', { class: 'cand-problems' }, p.problems.join('；')) : null));
  }
  box.append(list);
  const problems = c.problems ?? [];
  const fitWarnings = c.fit_warnings ?? [];
  if (problems.length || fitWarnings.length) {
    box.append(el('h3', {}, tr('ed_sketch_problems', { n: problems.length + fitWarnings.length })),
      el('ul', { class: 'warn-list problems' },
        ...problems.map((p) => el('li', { dataset: { kind: p.kind } }, p.message)),
        ...fitWarnings.map((w) => el('li', {}, typeof w === 'string' ? w : w.message ?? JSON.stringify(w)))));
  }
}

function renderAll() {
  renderStaticText();
  renderSketchSelect(state.sketch?.id);
  renderGcps();
  renderFit();
  renderCandidates();
  $('vectorise-button').disabled = !state.fit;
  $('viewer-empty').hidden = Boolean(state.sketch);
}

function setLanguage(lang) {
  state.lang = lang;
  try { window.localStorage.setItem(LANG_STORAGE_KEY, lang); } catch { /* harmless */ }
  const url = new URL(window.location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.delete('lang');
    window.history.replaceState(null, '', url);
  }
  renderAll();
  $('vectorise-button').textContent = tr('ed_vectorise');
}

// ---------------------------------------------------------------------------------------------
// Start-up

function bindControls() {
  $('lang-toggle').addEventListener('click', () => setLanguage(state.lang === 'zh' ? 'en' : 'zh'));
  $('error-dismiss').addEventListener('click', () => { $('error-banner').hidden = true; });
  $('upload-form').addEventListener('submit', upload);
  $('upload-file').addEventListener('change', renderStaticText);
  $('sketch-select').addEventListener('change', async (event) => {
    const row = state.sketches.find((s) => String(s.id) === event.target.value);
    if (!row) return;
    try {
      await openSketch(await api(`sketches/${row.id}`));
      clearError();
    } catch (err) { showError(err); }
  });
  $('transform-select').addEventListener('change', (event) => { state.transform = event.target.value; scheduleFit(); });
  $('overlay-toggle').addEventListener('change', (event) => {
    if (state.map.getLayer('sketch-overlay')) state.map.setLayoutProperty('sketch-overlay', 'visibility', event.target.checked ? 'visible' : 'none');
  });
  $('overlay-opacity').addEventListener('input', (event) => {
    if (state.map.getLayer('sketch-overlay')) state.map.setPaintProperty('sketch-overlay', 'raster-opacity', Number(event.target.value) / 100);
  });
  $('vectorise-button').addEventListener('click', vectorise);
  bindViewer();
}

async function start() {
  renderAll();
  bindControls();
  const map = new maplibregl.Map({
    container: 'map', style: plainStyle(), center: [106.848, 39.669], zoom: 14, minZoom: 5, maxZoom: 20,
    attributionControl: false, dragRotate: false, pitchWithRotate: false,
    canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  state.map = map;
  window.editor.map = map;
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'bottom-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  map.getCanvas().style.cursor = 'crosshair';
  const loaded = new Promise((resolve) => map.once('load', resolve));
  const [regions, sketches] = await Promise.all([api('regions'), api('sketches')]);
  state.sketches = sketches;
  const all = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of regions.features) {
    const b = bboxOf(f.geometry);
    state.regionBounds.set(f.properties.code, b);
    all[0] = Math.min(all[0], b[0]); all[1] = Math.min(all[1], b[1]); all[2] = Math.max(all[2], b[2]); all[3] = Math.max(all[3], b[3]);
  }
  state.regionBounds.set('*', all);
  await loaded;
  addBaseLayers(map, regions);
  bindMap(map);
  renderAll();
  await new Promise((resolve) => map.once('idle', resolve));
  state.ready = true;
  document.body.dataset.state = 'ready';
}

window.editor = {
  map: null, ready: null, state, addGcp, deleteGcp, setLanguage, openSketch,
  /** Where image pixel (px, py) is on screen now, for tests that click. */
  pixelToClient(px, py) {
    const box = $('viewer').getBoundingClientRect();
    const p = pxToViewer(px, py);
    return { x: box.left + p.x, y: box.top + p.y };
  },
  /** Resolves once any scheduled fit has finished. */
  settled: () => (fitWaiters.length ? new Promise((resolve) => fitWaiters.push(resolve)) : Promise.resolve()),
};
window.editor.ready = start();
window.editor.ready.catch((err) => {
  console.warn('editor failed to start:', err);
  showError(err);
});
