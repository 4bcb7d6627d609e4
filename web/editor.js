/**
 * gridwatch sketch editor: georeference a photographed hand-drawn grid map, vectorise it, review
 * the coverage cleaning, edit the result and publish it as a new version of the grids.
 *
 * Step 1 upload (or pick) a sketch; step 2 pair pixel points on the sketch (left) with positions on
 * the map (right) — the fit runs by itself once two complete pairs exist and its residuals fill the
 * table; step 3 vectorise into candidate polygons, drawn on the map coloured by confidence; step 4
 * review the server's cleaning fixes and accept or reject them; step 5 edit the children of the
 * sketch's community with terra-draw (vertices, splitting a grid into micro-grids, merging), with a
 * server check after every edit, and publish.
 *
 * Plain ES module, no build step, no host but our own. Strings are in i18n.js (keys `ed_*`).
 * Test hooks: `window.editor = { map, ready, addGcp(px, py, lon, lat), state, ... }`; `ready` settles
 * once the map and regions are loaded; body data-state is then 'ready' (or 'error' with the banner).
 * Editing hooks: `state.edit`, `cutAlong(coords)`, `selectForMerge(codes)`, `checked()`, `published()`.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
// "terra-draw" is mapped by the import map in editor.html (the adapter imports it by that name).
import { TerraDraw, TerraDrawLineStringMode, TerraDrawRenderMode, TerraDrawSelectMode } from 'terra-draw';
import { TerraDrawMapLibreGLAdapter } from './vendor/terra-draw-maplibre-gl-adapter/terra-draw-maplibre-gl-adapter.module.js';
import { t, HTML_LANG, applyStaticText, rememberLanguage, initialLanguage, formatNumber } from './i18n.js';
import { el } from './dom.js';

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
  stage: 'georef',         // 'georef' (steps 1–3) | 'review' (4) | 'edit' (5)
  review: null,            // review response
  reviewing: false,
  regions: null,           // FeatureCollection of the current regions (the map's 'regions' source)
  edit: null,              // the editing session, see newEdit()
};

const $ = (id) => document.getElementById(id);
const tr = (key, params) => t(state.lang, key, params);

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  /** `details` is the server's `error` object (code, field, problems) when it sent one. */
  constructor(message, status, details = null) { super(message); this.status = status; this.details = details; }
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
    throw new ApiError(data?.error?.message ?? tr('error_http', { status: response.status }), response.status, data?.error ?? null);
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
  // Review: the pieces the cleaning moved, coloured by kind.
  map.addSource('fixes', { type: 'geojson', data: featureCollection([]), promoteId: 'i' });
  const hover = ['boolean', ['feature-state', 'hover'], false];
  map.addLayer({ id: 'fixes-fill', type: 'fill', source: 'fixes',
    paint: { 'fill-color': FIX_COLOUR_EXPR, 'fill-opacity': ['case', hover, 0.85, 0.5] } });
  map.addLayer({ id: 'fixes-line', type: 'line', source: 'fixes',
    paint: { 'line-color': ['case', hover, '#111827', FIX_COLOUR_EXPR], 'line-width': ['case', hover, 2.5, 1] } });
}

const featureCollection = (features) => ({ type: 'FeatureCollection', features });

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
  // Control point pins only while georeferencing: later they would sit on the features being edited.
  if (!state.map || state.stage !== 'georef') return;
  state.gcps.forEach((g, i) => {
    if (g.lon == null) return;
    const marker = new maplibregl.Marker({ element: pin(i, g, null), anchor: 'center' }).setLngLat([g.lon, g.lat]).addTo(state.map);
    mapMarkers.push(marker);
  });
}

function bindMap(map) {
  map.on('click', (event) => {
    if (state.stage === 'edit') { mergeClick(event.lngLat); return; }
    if (!state.sketch || state.stage !== 'georef') return;
    setLonLat(Number(event.lngLat.lng.toFixed(7)), Number(event.lngLat.lat.toFixed(7)));
  });
  let hoveredFix = null;
  map.on('mousemove', 'fixes-fill', (event) => {
    const i = event.features[0]?.id;
    if (hoveredFix != null && hoveredFix !== i) hoverFix(hoveredFix, false);
    hoveredFix = i;
    if (i != null) hoverFix(i, true);
  });
  map.on('mouseleave', 'fixes-fill', () => {
    if (hoveredFix != null) hoverFix(hoveredFix, false);
    hoveredFix = null;
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
  if (state.stage !== 'georef') setStage('georef');
  state.review = null;
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
    state.review = null;
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
// Stages: georeference (steps 1–3) → review the cleaning (4) → edit and publish (5)

function setStage(stage) {
  state.stage = stage;
  document.body.dataset.stage = stage;
  const map = state.map;
  map.getSource('fixes').setData(featureCollection(stage === 'review' ? fixFeatures() : []));
  for (const id of ['candidates-fill', 'candidates-line']) map.setLayoutProperty(id, 'visibility', stage === 'edit' ? 'none' : 'visible');
  if (stage !== 'edit') leaveEditing();
  map.getCanvas().style.cursor = stage === 'georef' ? 'crosshair' : '';
  renderAll();
  // The panes change size with the stage: measure now, so that a fitBounds right after is right.
  map.resize();
  if (state.sketch) fitImage();
}

function fitTo(bounds) {
  if (bounds) state.map.fitBounds(bounds, { padding: 40, duration: 0, maxZoom: 18 });
}

function zoomTo(location) {
  if (location) state.map.easeTo({ center: location, zoom: Math.max(state.map.getZoom(), 17), duration: 300 });
}

/** A kind as words (`ed_fix_kind_gap_filled`), or the kind itself when there is no translation. */
function kindLabel(prefix, kind) {
  const key = `${prefix}${kind}`;
  const text = tr(key);
  return text === key ? kind : text;
}

/** "face-007" → "面 7", the name the candidate list uses. */
function faceLabel(name) {
  const m = /^face-(\d+)$/.exec(name ?? '');
  return m ? tr('ed_face', { n: Number(m[1]) }) : name;
}

const listJoin = (items) => items.join(state.lang === 'zh' ? '、' : ', ');

// ---------------------------------------------------------------------------------------------
// Review (step 4): the server cleans the candidates into a coverage of the parent; every fix is
// listed and drawn, and the planner takes the cleaned candidates or the raw ones.

const FIX_COLOURS = {
  overlap_resolved: '#db2777', gap_filled: '#0891b2', snapped: '#7c3aed', clipped_to_parent: '#ea580c', ring_repaired: '#65a30d',
};
const FIX_COLOUR_EXPR = ['match', ['get', 'kind'], ...Object.entries(FIX_COLOURS).flat(), '#db2777'];

function fixFeatures() {
  return (state.review?.fixes ?? []).map((f, i) => ({ type: 'Feature', properties: { i, kind: f.kind }, geometry: f.geometry }));
}

async function review() {
  if (!state.sketch || !state.candidates) return;
  state.reviewing = true;
  renderToolbar();
  try {
    state.review = await api(`sketches/${state.sketch.id}/review`, { method: 'POST', json: {} });
    clearError();
    setStage('review');
    fitTo(state.regionBounds.get(state.review.parent.code));
  } catch (err) {
    showError(err);
  } finally {
    state.reviewing = false;
    renderToolbar();
  }
}

function hoverFix(i, on) {
  state.map.setFeatureState({ source: 'fixes', id: i }, { hover: on });
  document.querySelector(`#fix-list [data-fix="${i}"]`)?.classList.toggle('hover', on);
}

function fixWho(f) {
  const from = listJoin(f.from.map(faceLabel));
  if (f.to) return `${from} → ${faceLabel(f.to)}`;
  if (f.kind === 'clipped_to_parent') return `${from} → ${tr('ed_fix_cut')}`;
  return from;
}

/** "缝隙 23 · 超出上级 12" */
function countByKind(items, prefix) {
  const counts = new Map();
  for (const item of items) counts.set(item.kind, (counts.get(item.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${kindLabel(prefix, kind)} ${n}`).join(' · ');
}

function renderReview() {
  const list = $('fix-list');
  const summary = $('review-summary');
  list.replaceChildren();
  summary.replaceChildren();
  const r = state.review;
  $('fix-count').textContent = r ? String(r.fixes.length) : '';
  if (!r) return;
  const ol = el('ol');
  r.fixes.forEach((f, i) => {
    ol.append(el('li', { dataset: { fix: String(i), kind: f.kind },
      onmouseenter: () => hoverFix(i, true), onmouseleave: () => hoverFix(i, false), onclick: () => zoomTo(f.location) },
      el('span', { class: 'swatch', style: `background:${FIX_COLOURS[f.kind] ?? '#db2777'}` }),
      el('span', { class: 'fix-kind' }, kindLabel('ed_fix_kind_', f.kind)),
      el('span', { class: 'fix-area mono' }, formatArea(f.area_m2)),
      el('span', { class: 'fix-who' }, fixWho(f)),
      f.rule ? el('span', { class: 'fix-rule' }, f.rule) : null));
  });
  list.append(ol);
  const changed = r.candidates.features.filter((f) => f.properties.changed).length;
  summary.append(el('dl', {},
    el('dt', {}, tr('ed_review_parent')), el('dd', {}, `${r.parent.name} `, el('span', { class: 'mono' }, r.parent.code)),
    el('dt', {}, tr('ed_review_issues')), el('dd', {}, `${r.issues.length}`, r.issues.length ? el('div', { class: 'issue-meta' }, countByKind(r.issues, 'ed_issue_kind_')) : null),
    el('dt', {}, tr('ed_review_fixes')), el('dd', {}, `${r.fixes.length}`, r.fixes.length ? el('div', { class: 'issue-meta' }, countByKind(r.fixes, 'ed_fix_kind_')) : null),
    el('dt', {}, tr('ed_review_changed')), el('dd', {}, tr('ed_review_changed_n', { n: changed, total: r.candidates.features.length }))));
  if (r.remaining.length) {
    summary.append(el('h3', {}, tr('ed_remaining', { n: r.remaining.length })), issueList(r.remaining.map((i) => ({ ...i, blocking: true }))));
  } else {
    summary.append(el('p', { class: 'ok-line', id: 'review-clean' }, tr('ed_no_remaining')));
  }
  summary.append(el('p', { class: 'muted' }, tr('ed_review_next')));
}

/** Accepting edits the cleaned candidates, rejecting the raw vectorised ones; codes are matched by the check. */
function decideReview(accept) {
  const r = state.review;
  if (!r) return;
  const source = accept ? r.candidates.features : (state.candidates?.features ?? []);
  const items = source.map((f) => ({ code: null, name: null, geometry: f.geometry }));
  startEditing({ code: r.parent.code, name: r.parent.name, level: 'community' }, items, state.sketch?.id ?? null);
}

// ---------------------------------------------------------------------------------------------
// Edit (step 5): the children of one parent region in terra-draw. The store holds the editable
// polygons (mode GRID_MODE, feature id = the key sent to the check); `shadow` keeps each one's ring
// as it was after the last edit, which is how an edit's moved, inserted or deleted vertex is found
// and repeated on the neighbours that share it.

const GRID_MODE = 'grid';
// terra-draw refuses coordinates with more decimals than this, counted as the smallest p with
// round(v·10^p)/10^p === v (which is 16 for many doubles near lat 39). The server's coordinates are
// kept bit for bit: a vertex snapped onto the parent's boundary must stay exactly on it.
const COORD_PRECISION = 20;
const SNAP_PX = 10;
const CHECK_DELAY_MS = 400;
const STATUS_COLOURS = { unchanged: '#64748b', changed: '#d97706', new: '#2563eb', retired: '#dc2626' };
const PENDING_COLOUR = '#7c3aed';
const SELECTED_COLOUR = '#1d4ed8';
const MERGE_COLOUR = '#db2777';
const CUT_COLOUR = '#be123c';

let draw = null;          // the TerraDraw instance, made on first use
let nextKey = 1;
let quiet = 0;            // > 0 while the page itself changes the store
const shadow = new Map(); // key -> exterior ring after the last edit
let checkTimer = 0;
let checkSeq = 0;
let busy = 0;             // > 0 while a split, merge or scope change waits for the server

/** A position computed here (not copied from a neighbour), to a micrometre. */
const roundComputed = (v) => Math.round(v * 1e11) / 1e11;
const same = (a, b) => a[0] === b[0] && a[1] === b[1];
const childLevelOf = (level) => (level === 'community' ? 'grid' : 'micro_grid');

function newEdit(scope, sketchId, stack = []) {
  return {
    scope: { ...scope, childLevel: childLevelOf(scope.level) }, sketchId, stack,
    tool: 'select', selected: null, mergeSet: [], locked: [],
    check: null, statusByKey: new Map(), levelByKey: new Map(), checking: false, checkSeq: 0, dirty: true, checkFailed: false,
    publishing: false, publishPromise: null, publication: null, rejected: null,
  };
}

function gridStyles() {
  const inMerge = (id) => Boolean(state.edit?.mergeSet.includes(id));
  const colour = (id) => STATUS_COLOURS[state.edit?.statusByKey.get(id)] ?? PENDING_COLOUR;
  // A feature the check matched one level down (a micro-grid drawn in the community's sketch):
  // thinner, lighter; its grid's outline is drawn around the group (layer edit-compound-line).
  const lower = (id) => isLowerLevel(state.edit?.levelByKey.get(id));
  return {
    polygonFillColor: (f) => (inMerge(f.id) ? MERGE_COLOUR : colour(f.id)),
    polygonFillOpacity: (f) => (inMerge(f.id) ? 0.45 : lower(f.id) ? 0.1 : 0.16),
    polygonOutlineColor: (f) => (inMerge(f.id) ? MERGE_COLOUR : colour(f.id)),
    polygonOutlineWidth: (f) => (inMerge(f.id) ? 3.5 : lower(f.id) ? 1.25 : 2),
    zIndex: 10,
  };
}

/** True for a child level below the scope's own (micro-grids matched while editing grids). */
function isLowerLevel(level) {
  return Boolean(level && state.edit && level !== state.edit.scope.childLevel);
}

function ensureDraw() {
  if (draw) return draw;
  const map = state.map;
  let n = 0;
  draw = new TerraDraw({
    adapter: new TerraDrawMapLibreGLAdapter({ map, coordinatePrecision: COORD_PRECISION }),
    idStrategy: { isValidId: (id) => typeof id === 'string' && id.length > 0, getId: () => `td-${++n}` },
    modes: [
      new TerraDrawSelectMode({
        flags: {
          [GRID_MODE]: { feature: { draggable: false, rotateable: false, scaleable: false, selfIntersectable: false,
            coordinates: { draggable: true, midpoints: true, deletable: true, snappable: { toCustom: snapToNeighbours } } } },
        },
        // Esc deselects; a whole grid is never deleted by a key press.
        keyEvents: { deselect: 'Escape', delete: null, rotate: null, scale: null },
        styles: {
          selectedPolygonColor: SELECTED_COLOUR, selectedPolygonFillOpacity: 0.28, selectedPolygonOutlineColor: SELECTED_COLOUR,
          selectedPolygonOutlineWidth: 3, selectionPointColor: '#ffffff', selectionPointOutlineColor: SELECTED_COLOUR,
          selectionPointWidth: 5, selectionPointOutlineWidth: 2, midPointColor: SELECTED_COLOUR, midPointOutlineColor: '#ffffff',
          midPointWidth: 3.5, midPointOutlineWidth: 1.5,
        },
      }),
      new TerraDrawRenderMode({ modeName: GRID_MODE, styles: gridStyles() }),
      new TerraDrawLineStringMode({
        styles: { lineStringColor: CUT_COLOUR, lineStringWidth: 3, closingPointColor: '#ffffff', closingPointOutlineColor: CUT_COLOUR,
          closingPointWidth: 6, closingPointOutlineWidth: 2 },
      }),
    ],
  });
  draw.start();
  draw.on('finish', onDrawFinish);
  draw.on('select', (id) => {
    if (!state.edit || !shadow.has(id)) return;
    state.edit.selected = id;
    renderEdit();
  });
  draw.on('deselect', () => {
    if (!state.edit) return;
    state.edit.selected = null;
    renderEdit();
  });
  // Features terra-draw cannot edit (several parts, holes) and the check's issues, above the drawing.
  map.addSource('edit-locked', { type: 'geojson', data: featureCollection([]) });
  map.addLayer({ id: 'edit-locked-fill', type: 'fill', source: 'edit-locked',
    paint: { 'fill-color': ['coalesce', ['get', 'colour'], PENDING_COLOUR], 'fill-opacity': 0.16 } });
  map.addLayer({ id: 'edit-locked-line', type: 'line', source: 'edit-locked',
    paint: { 'line-color': ['coalesce', ['get', 'colour'], PENDING_COLOUR], 'line-width': 2, 'line-dasharray': [3, 2] } });
  // A grid the check made from its drawn micro-grids (matched_by micro_grids, no feature of its
  // own): its new boundary, the union of theirs, outlined around them.
  map.addSource('edit-compound', { type: 'geojson', data: featureCollection([]) });
  map.addLayer({ id: 'edit-compound-line', type: 'line', source: 'edit-compound', layout: { 'line-join': 'round' },
    paint: { 'line-color': ['coalesce', ['get', 'colour'], PENDING_COLOUR], 'line-width': 3.5, 'line-opacity': 0.9 } });
  map.addSource('edit-issues', { type: 'geojson', data: featureCollection([]) });
  map.addLayer({ id: 'edit-issues', type: 'circle', source: 'edit-issues',
    paint: { 'circle-radius': 6, 'circle-color': ['case', ['get', 'blocking'], '#dc2626', '#f59e0b'],
      'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } });
  return draw;
}

function restyle() {
  if (draw) draw.updateModeOptions(GRID_MODE, { styles: gridStyles() });
  const locked = state.edit?.locked ?? [];
  state.map.getSource('edit-locked')?.setData(featureCollection(locked.map((f) => ({ type: 'Feature',
    properties: { key: f.key, colour: STATUS_COLOURS[state.edit.statusByKey.get(f.key)] ?? PENDING_COLOUR }, geometry: f.geometry }))));
  const compound = state.stage === 'edit' && state.edit?.check ? compoundFeatures(state.edit.check) : [];
  state.map.getSource('edit-compound')?.setData(featureCollection(compound));
  const issues = state.stage === 'edit' ? (state.edit?.check?.issues ?? []) : [];
  state.map.getSource('edit-issues')?.setData(featureCollection(issues.filter((i) => i.location).map((i) => ({ type: 'Feature',
    properties: { blocking: Boolean(i.blocking) }, geometry: { type: 'Point', coordinates: i.location } }))));
}

/** The proposed boundaries of the check's children that have no feature of their own, coloured by status. */
function compoundFeatures(check) {
  const byCode = new Map(check.children.filter((c) => c.matched_by === 'micro_grids').map((c) => [c.code, c]));
  return (check.features?.features ?? [])
    .filter((f) => f.geometry && byCode.has(f.properties?.code) && f.properties.key == null)
    .map((f) => ({ type: 'Feature', properties: { code: f.properties.code, colour: STATUS_COLOURS[byCode.get(f.properties.code).status] ?? PENDING_COLOUR },
      geometry: f.geometry }));
}

/** terra-draw's count of decimals (see COORD_PRECISION), giving up past it. */
function decimalsOf(v) {
  let scale = 1;
  for (let p = 0; p <= COORD_PRECISION; p++, scale *= 10) {
    if (Math.round(v * scale) / scale === v) return p;
  }
  return Infinity;
}

/** A single-ring polygon terra-draw can edit, or null. */
function asEditablePolygon(geometry) {
  let rings = null;
  if (geometry?.type === 'Polygon') rings = geometry.coordinates;
  else if (geometry?.type === 'MultiPolygon' && geometry.coordinates.length === 1) [rings] = geometry.coordinates;
  if (!rings || rings.length !== 1) return null;
  if (rings[0].some(([x, y]) => decimalsOf(x) > COORD_PRECISION || decimalsOf(y) > COORD_PRECISION)) return null;
  const ring = rings[0].map(([x, y]) => [x, y]).filter((c, i, all) => i === 0 || !same(c, all[i - 1]));
  if (ring.length < 4 || !same(ring[0], ring[ring.length - 1])) return null;
  return { type: 'Polygon', coordinates: [ring] };
}

function syncShadow() {
  shadow.clear();
  for (const f of draw.getSnapshot()) {
    if (f.properties.mode === GRID_MODE && f.geometry.type === 'Polygon') shadow.set(f.id, f.geometry.coordinates[0].map((c) => [c[0], c[1]]));
  }
}

/** Adds `items` ({ key?, code, name, geometry }) to the store, or to the read-only list when terra-draw refuses them. */
function addItems(items) {
  const edit = state.edit;
  const editable = [];
  for (const item of items) {
    const key = item.key ?? `k${nextKey++}`;
    const polygon = asEditablePolygon(item.geometry);
    if (!polygon) {
      edit.locked.push({ key, code: item.code ?? null, name: item.name ?? null, geometry: item.geometry });
      continue;
    }
    const properties = { mode: GRID_MODE };
    if (item.code) properties.code = item.code;
    if (item.name) properties.name = item.name;
    editable.push({ item: { ...item, key }, feature: { type: 'Feature', id: key, properties, geometry: polygon } });
  }
  const results = editable.length ? draw.addFeatures(editable.map((e) => e.feature)) : [];
  results.forEach((r, i) => {
    if (r.valid) return;
    const { item } = editable[i];
    edit.locked.push({ key: item.key, code: item.code ?? null, name: item.name ?? null, geometry: item.geometry });
  });
}

/** Replaces everything in the store by `items`. */
function loadItems(items) {
  state.edit.selected = null;
  state.edit.mergeSet = [];
  quiet += 1;
  try {
    draw.setMode('select');
    draw.clear();
    state.edit.locked = [];
    addItems(items);
    syncShadow();
  } finally {
    quiet -= 1;
  }
  restyle();
}

/** Removes the features `keys` and adds `items` in their place. */
function replaceItems(keys, items) {
  const edit = state.edit;
  quiet += 1;
  try {
    const stored = keys.filter((k) => draw.hasFeature(k));
    if (stored.length) draw.removeFeatures(stored);
    edit.locked = edit.locked.filter((f) => !keys.includes(f.key));
    addItems(items);
    syncShadow();
  } finally {
    quiet -= 1;
  }
  restyle();
}

/** Every child as sent to the check and to publish: properties code, name and key. */
function collectFeatures() {
  const out = [];
  for (const f of draw?.getSnapshot() ?? []) {
    if (f.properties.mode !== GRID_MODE) continue;
    out.push(childFeature(f.id, f.properties.code, f.properties.name, f.geometry));
  }
  for (const f of state.edit?.locked ?? []) out.push(childFeature(f.key, f.code, f.name, f.geometry));
  return out;
}

function childFeature(key, code, name, geometry) {
  const properties = { key };
  if (code) properties.code = code;
  if (name) properties.name = name;
  return { type: 'Feature', properties, geometry };
}

/** The features as items, to come back to a scope later. */
function collectItems() {
  return collectFeatures().map((f) => ({ key: f.properties.key, code: f.properties.code ?? null, name: f.properties.name ?? null, geometry: f.geometry }));
}

/**
 * The code a feature has or would keep: its own, else the one the last check matched it to — at
 * the scope's own level only (a micro-grid drawn among the grids is no grid to split or merge into).
 */
function codeOf(key) {
  const own = draw?.hasFeature(key) ? draw.getSnapshotFeature(key).properties.code : state.edit?.locked.find((f) => f.key === key)?.code;
  if (own) return own;
  const child = state.edit?.check?.children.find((c) => c.key === key);
  return child && child.status !== 'new' && !isLowerLevel(child.level) ? child.code : null;
}

function nameOf(key) {
  const own = draw?.hasFeature(key) ? draw.getSnapshotFeature(key).properties.name : null;
  return own ?? state.edit?.check?.children.find((c) => c.key === key)?.name ?? null;
}

function scopeBounds() {
  const rings = [...shadow.values()];
  for (const f of state.edit?.locked ?? []) rings.push(...f.geometry.coordinates.flat(f.geometry.type === 'MultiPolygon' ? 1 : 0));
  if (!rings.length) return state.regionBounds.get(state.edit?.scope.code) ?? null;
  return bboxOf({ type: 'MultiLineString', coordinates: rings });
}

function startEditing(scope, items, sketchId) {
  state.edit = newEdit(scope, sketchId);
  setStage('edit');
  ensureDraw();
  loadItems(items);
  fitTo(scopeBounds());
  setTool('select');
  scheduleCheck(0);
}

function leaveEditing() {
  clearTimeout(checkTimer);
  checkTimer = 0;
  state.edit = null;
  if (!draw) return;
  quiet += 1;
  try {
    draw.setMode('select');
    draw.clear();
    shadow.clear();
  } finally {
    quiet -= 1;
  }
  restyle();
}

/** The current children of region `code` as editable items. */
async function fetchChildren(code) {
  const children = await api(`regions?parent=${encodeURIComponent(code)}`);
  return children.features.map((f) => ({ code: f.properties.code, name: f.properties.name, geometry: f.geometry }));
}

/** Opens the children of `scope` (a grid: its micro-grids), keeping the current scope to come back to. */
async function enterScope(scope, tool) {
  const outer = state.edit;
  const saved = { edit: outer, items: collectItems() };
  let items;
  busy += 1;
  try {
    items = await fetchChildren(scope.code);
  } catch (err) {
    showError(err);
    return;
  } finally {
    busy -= 1;
  }
  if (!items.length) {
    // No micro-grids yet: start from the grid itself, one feature without a code.
    const own = state.regions.features.find((f) => f.properties.code === scope.code);
    if (own) items = [{ code: null, name: null, geometry: own.geometry }];
  }
  state.edit = newEdit(scope, null, [...outer.stack, saved]);
  loadItems(items);
  fitTo(scopeBounds());
  setTool(tool);
  scheduleCheck(0);
}

/** Back to the enclosing scope, or out of editing at the top. */
function leaveScope() {
  const saved = state.edit?.stack.at(-1);
  if (!saved) {
    setStage(state.review ? 'review' : 'georef');
    return;
  }
  state.edit = saved.edit;
  state.edit.selected = null;
  loadItems(saved.items);
  fitTo(scopeBounds());
  setTool('select');
  scheduleCheck(0);
}

async function reloadScope() {
  const { scope } = state.edit;
  loadItems(await fetchChildren(scope.code));
}

// Tools -------------------------------------------------------------------------------------

function setTool(tool) {
  const edit = state.edit;
  if (!edit || !draw) return;
  if (tool === 'cut' && edit.scope.childLevel === 'grid') {
    splitSelectedGrid();
    return;
  }
  edit.tool = tool;
  edit.mergeSet = [];
  edit.selected = null;
  draw.setMode(tool === 'cut' ? 'linestring' : tool === 'merge' ? GRID_MODE : 'select');
  state.map.getCanvas().style.cursor = tool === 'merge' ? 'pointer' : '';
  restyle();
  renderEdit();
}

/** "拆分为微网格": the selected grid becomes the parent, its micro-grids (or itself) the features. */
async function splitSelectedGrid() {
  const key = state.edit?.selected;
  const code = key && codeOf(key);
  if (!code) return;
  const name = nameOf(key) ?? state.regions.features.find((f) => f.properties.code === code)?.properties.name ?? code;
  await enterScope({ code, name, level: 'grid' }, 'cut');
}

function onDrawFinish(id, context) {
  if (quiet || !state.edit) return;
  if (context.mode === 'linestring') {
    const line = draw.getSnapshotFeature(id)?.geometry.coordinates ?? [];
    // Not inside terra-draw's own finish handling.
    setTimeout(() => {
      quiet += 1;
      try { if (draw.hasFeature(id)) draw.removeFeatures([id]); } finally { quiet -= 1; }
      cutAlong(line);
    }, 0);
    return;
  }
  if (shadow.has(id)) afterVertexEdit(id);
}

/** Cuts every feature the line crosses into pieces (new micro-grids: no code). Also the test hook. */
async function cutAlong(line) {
  const edit = state.edit;
  if (!edit || line.length < 2) return;
  const targets = [...shadow].filter(([, ring]) => crossings(line, ring) >= 2).map(([key]) => key);
  if (!targets.length) {
    showError(new Error(tr('ed_cut_missed')));
    setTool('select');
    return;
  }
  let failed = false;
  busy += 1;
  try {
    for (const key of targets) {
      const feature = draw.getSnapshotFeature(key);
      try {
        const { pieces } = await api('geometry/split', { method: 'POST',
          json: { geometry: feature.geometry, line: { type: 'LineString', coordinates: line } } });
        if (state.edit !== edit) return;
        markEdited();
        replaceItems([key], pieces.map((geometry) => ({ code: null, name: null, geometry })));
      } catch (err) {
        failed = true;
        showError(err);
      }
    }
  } finally {
    busy -= 1;
  }
  if (!failed) clearError();
  setTool('select');
  await scheduleCheck();
}

/** How often the polyline `line` crosses the closed ring. */
function crossings(line, ring) {
  let n = 0;
  for (let i = 0; i + 1 < line.length; i++) {
    for (let j = 0; j + 1 < ring.length; j++) {
      if (segmentsCross(line[i], line[i + 1], ring[j], ring[j + 1])) n += 1;
    }
  }
  return n;
}

function segmentsCross(a, b, c, d) {
  const orient = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  return orient(a, b, c) !== orient(a, b, d) && orient(c, d, a) !== orient(c, d, b);
}

function pointInRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function mergeClick(lngLat) {
  const edit = state.edit;
  if (!edit || edit.tool !== 'merge') return;
  const hit = [...shadow].find(([, ring]) => pointInRing([lngLat.lng, lngLat.lat], ring));
  if (hit) toggleMerge(hit[0]);
}

function toggleMerge(key) {
  const set = state.edit.mergeSet;
  const i = set.indexOf(key);
  if (i >= 0) set.splice(i, 1); else set.push(key);
  restyle();
  renderEdit();
}

/** Test hook: picks the features with these codes (own, matched, or the one a new feature would get) for the merge tool. */
function selectForMerge(codes) {
  if (!state.edit) return [];
  if (state.edit.tool !== 'merge') setTool('merge');
  for (const code of codes) {
    const key = [...shadow.keys()].find((k) => codeOf(k) === code)
      ?? state.edit.check?.children.find((c) => c.code === code && shadow.has(c.key))?.key;
    if (key && !state.edit.mergeSet.includes(key)) state.edit.mergeSet.push(key);
  }
  restyle();
  renderEdit();
  return [...state.edit.mergeSet];
}

/** "合并网格": one feature in place of the picked ones, keeping the first one's code. */
async function mergeSelected() {
  const edit = state.edit;
  const keys = [...(edit?.mergeSet ?? [])];
  if (keys.length < 2) {
    showError(new Error(tr('ed_merge_need')));
    return;
  }
  const geometries = keys.map((k) => draw.getSnapshotFeature(k).geometry);
  const code = codeOf(keys[0]) ?? keys.map(codeOf).find(Boolean) ?? null;
  const name = code ? (nameOf(keys.find((k) => codeOf(k) === code)) ?? null) : null;
  busy += 1;
  try {
    const { geometry } = await api('geometry/merge', { method: 'POST', json: { geometries } });
    if (state.edit !== edit) return;
    markEdited();
    replaceItems(keys, [{ code, name, geometry }]);
    clearError();
  } catch (err) {
    showError(err);
    return;
  } finally {
    busy -= 1;
  }
  setTool('select');
  await scheduleCheck();
}

/** An edit by the planner: the last publication's report (or refusal) is about something else now. */
function markEdited() {
  state.edit.publication = null;
  state.edit.rejected = null;
}

/** "删除所选": the selected feature goes; the check then shows its code as retired. */
function deleteSelected() {
  const key = state.edit?.selected;
  if (!key) return;
  markEdited();
  replaceItems([key], []);
  state.edit.selected = null;
  renderEdit();
  return scheduleCheck();
}

// Topological editing -----------------------------------------------------------------------

/** After terra-draw finished an edit of feature `key`: repeat it on the neighbours sharing the vertex. */
function afterVertexEdit(key) {
  const before = shadow.get(key);
  const after = draw.getSnapshotFeature(key)?.geometry.coordinates[0];
  if (!before || !after) return;
  const seen = (ring) => new Set(ring.slice(0, -1).map(String));
  const beforeSet = seen(before);
  const afterSet = seen(after);
  const removed = before.slice(0, -1).filter((c) => !afterSet.has(String(c)));
  const added = after.slice(0, -1).filter((c) => !beforeSet.has(String(c)));
  quiet += 1;
  try {
    if (removed.length === 1 && added.length === 1) moveSharedVertex(key, removed[0], added[0]);
    else if (added.length === 1 && !removed.length) insertSharedVertex(key, after, added[0]);
    else if (removed.length === 1 && !added.length) deleteSharedVertex(key, before, removed[0]);
  } finally {
    quiet -= 1;
  }
  syncShadow();
  markEdited();
  scheduleCheck();
}

/** The vertices before and after `v` in a closed ring. */
function ringNeighbours(ring, v) {
  const n = ring.length - 1;
  const i = ring.findIndex((c) => same(c, v));
  return [ring[(i - 1 + n) % n], ring[(i + 1) % n]];
}

/** Closed ring without repeated consecutive vertices. */
function tidyRing(ring) {
  const open = ring.slice(0, -1).filter((c, i, all) => !same(c, all[(i - 1 + all.length) % all.length]));
  return [...open, open[0]];
}

function setRing(key, ring) {
  const tidy = tidyRing(ring);
  if (tidy.length < 4) return;
  try {
    draw.updateFeatureGeometry(key, { type: 'Polygon', coordinates: [tidy] });
  } catch {
    // terra-draw refused it (e.g. the neighbour would cross itself); the check reports the mismatch.
  }
}

function moveSharedVertex(key, from, to) {
  for (const [other, ring] of shadow) {
    if (other === key || !ring.some((c) => same(c, from))) continue;
    setRing(other, ring.map((c) => (same(c, from) ? [to[0], to[1]] : c)));
  }
}

function insertSharedVertex(key, after, v) {
  const [prev, next] = ringNeighbours(after, v);
  for (const [other, ring] of shadow) {
    if (other === key) continue;
    for (let j = 0; j + 1 < ring.length; j++) {
      const [a, b] = [ring[j], ring[j + 1]];
      if ((same(a, prev) && same(b, next)) || (same(a, next) && same(b, prev))) {
        setRing(other, [...ring.slice(0, j + 1), [v[0], v[1]], ...ring.slice(j + 1)]);
        break;
      }
    }
  }
}

function deleteSharedVertex(key, before, v) {
  const [prev, next] = ringNeighbours(before, v);
  for (const [other, ring] of shadow) {
    if (other === key || ring.length <= 4 || !ring.some((c) => same(c, v))) continue;
    const [p, q] = ringNeighbours(ring, v);
    if ((same(p, prev) && same(q, next)) || (same(p, next) && same(q, prev))) {
      setRing(other, ring.filter((c) => !same(c, v)));
    }
  }
}

/**
 * terra-draw's custom snapping while a vertex is dragged: onto a neighbour's vertex, else onto a
 * neighbour's edge, within SNAP_PX. The vertex's own old position (which its neighbours still
 * carry until the drop moves them along) and the edges ending there are left out.
 */
function snapToNeighbours(event, context) {
  const map = state.map;
  const own = shadow.get(context.currentId);
  const origin = own && context.currentCoordinate != null ? own[context.currentCoordinate] : null;
  const p = { x: event.containerX, y: event.containerY };
  let best = null;
  let bestD = SNAP_PX;
  for (const [other, ring] of shadow) {
    if (other === context.currentId) continue;
    for (let i = 0; i + 1 < ring.length; i++) {
      if (origin && same(ring[i], origin)) continue;
      const q = map.project(ring[i]);
      const d = Math.hypot(q.x - p.x, q.y - p.y);
      if (d < bestD) { bestD = d; best = ring[i]; }
    }
  }
  if (best) return [best[0], best[1]];
  for (const [other, ring] of shadow) {
    if (other === context.currentId) continue;
    for (let i = 0; i + 1 < ring.length; i++) {
      const [a, b] = [ring[i], ring[i + 1]];
      if (origin && (same(a, origin) || same(b, origin))) continue;
      const pa = map.project(a);
      const pb = map.project(b);
      const dx = pb.x - pa.x;
      const dy = pb.y - pa.y;
      const len2 = dx * dx + dy * dy;
      if (!len2) continue;
      const k = Math.min(Math.max(((p.x - pa.x) * dx + (p.y - pa.y) * dy) / len2, 0), 1);
      const x = pa.x + k * dx;
      const y = pa.y + k * dy;
      const d = Math.hypot(x - p.x, y - p.y);
      if (d < bestD) {
        bestD = d;
        const ll = map.unproject([x, y]);
        best = [roundComputed(ll.lng), roundComputed(ll.lat)];
      }
    }
  }
  return best ?? undefined;
}

// Check and publish -------------------------------------------------------------------------

function requestBody() {
  const body = { features: collectFeatures() };
  if (state.edit.sketchId != null && state.edit.stack.length === 0) body.sketch_id = state.edit.sketchId;
  return body;
}

/** Runs the server check CHECK_DELAY_MS after the last edit; resolves once it has answered. */
function scheduleCheck(delay = CHECK_DELAY_MS) {
  const edit = state.edit;
  if (!edit) return Promise.resolve();
  edit.dirty = true;
  clearTimeout(checkTimer);
  renderEditStatus();
  return new Promise((resolve) => {
    checkTimer = setTimeout(() => {
      checkTimer = 0;
      runCheck().finally(resolve);
    }, delay);
  });
}

async function runCheck() {
  const edit = state.edit;
  if (!edit) return;
  const seq = ++checkSeq;
  edit.checkSeq = seq;
  edit.checking = true;
  renderEditStatus();
  try {
    const result = await api(`regions/${encodeURIComponent(edit.scope.code)}/redraw/check`, { method: 'POST', json: requestBody() });
    if (seq !== edit.checkSeq || edit !== state.edit) return;
    edit.check = result;
    edit.statusByKey = new Map(result.children.filter((c) => c.key != null).map((c) => [c.key, c.status]));
    edit.levelByKey = new Map(result.children.filter((c) => c.key != null && c.level).map((c) => [c.key, c.level]));
    edit.dirty = false;
    edit.checkFailed = false;
    clearError();
  } catch (err) {
    if (seq !== edit.checkSeq || edit !== state.edit) return;
    edit.check = null;
    edit.statusByKey = new Map();
    edit.levelByKey = new Map();
    edit.checkFailed = true;
    showError(err);
  } finally {
    if (seq === edit.checkSeq) edit.checking = false;
  }
  if (edit !== state.edit) return;
  restyle();
  renderEdit();
  renderToolbar();
}

const hasChanges = (check) => check.children.some((c) => c.status !== 'unchanged');

function canPublish() {
  const edit = state.edit;
  return Boolean(state.stage === 'edit' && edit?.check && !edit.dirty && !edit.checking && !edit.publishing
    && edit.check.publishable && hasChanges(edit.check) && edit.tool === 'select');
}

function publish() {
  const edit = state.edit;
  if (!canPublish()) return Promise.resolve();
  edit.publishPromise = runPublish(edit);
  return edit.publishPromise;
}

async function runPublish(edit) {
  edit.publishing = true;
  edit.rejected = null;
  renderToolbar();
  renderEdit();
  try {
    const result = await api(`regions/${encodeURIComponent(edit.scope.code)}/redraw`, { method: 'POST', json: requestBody() });
    edit.publication = result;
    clearError();
    await reloadRegions();
    if (state.edit === edit) {
      await reloadScope();
      await scheduleCheck(0);
    }
  } catch (err) {
    if (err.details?.problems) edit.rejected = err.details.problems;
    showError(err);
  } finally {
    edit.publishing = false;
    renderToolbar();
    renderEdit();
  }
  await new Promise((resolve) => (state.map.loaded() ? resolve() : state.map.once('idle', resolve)));
}

/** The map's regions source and bounds, from the server again (after a publication). */
async function reloadRegions() {
  const regions = await api('regions');
  setRegions(regions);
  state.map.getSource('regions').setData(regions);
}

function setRegions(regions) {
  state.regions = regions;
  const all = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of regions.features) {
    const b = bboxOf(f.geometry);
    state.regionBounds.set(f.properties.code, b);
    all[0] = Math.min(all[0], b[0]); all[1] = Math.min(all[1], b[1]); all[2] = Math.max(all[2], b[2]); all[3] = Math.max(all[3], b[3]);
  }
  state.regionBounds.set('*', all);
}

// Edit rendering ----------------------------------------------------------------------------

function renderEdit() {
  const edit = state.edit;
  $('scope-bar').hidden = !edit;
  if (!edit) return;
  const { scope } = edit;
  const outer = edit.stack.at(-1)?.edit.scope;
  $('scope-back').textContent = outer ? tr('ed_scope_back', { name: outer.name }) : tr('ed_scope_exit');
  $('scope-title').textContent = tr(scope.childLevel === 'grid' ? 'ed_scope_grids' : 'ed_scope_micro', { name: scope.name });
  const micro = scope.childLevel === 'micro_grid';
  for (const node of document.querySelectorAll('#scope-bar .tool')) node.classList.toggle('active', node.dataset.tool === edit.tool);
  $('tool-select').textContent = tr('ed_tool_select');
  const split = $('tool-split');
  split.textContent = tr(micro ? 'ed_tool_cut' : 'ed_tool_split');
  split.disabled = !micro && !(edit.selected && codeOf(edit.selected));
  split.title = split.disabled ? tr('ed_tool_split_title') : '';
  $('tool-merge').textContent = tr(micro ? 'ed_tool_merge_micro' : 'ed_tool_merge');
  const remove = $('tool-delete');
  remove.textContent = tr('ed_tool_delete');
  remove.disabled = !(edit.tool === 'select' && edit.selected);
  const apply = $('merge-apply');
  apply.hidden = edit.tool !== 'merge';
  apply.disabled = edit.mergeSet.length < 2;
  apply.textContent = tr('ed_merge_apply', { n: edit.mergeSet.length });
  renderChildren();
  renderEditReport();
  renderEditStatus();
}

function renderEditStatus() {
  const edit = state.edit;
  const status = $('check-status');
  if (!edit) { status.textContent = ''; return; }
  let cls = 'pending';
  let text = tr('ed_checking');
  if (edit.checkFailed && !edit.checking) {
    cls = 'bad';
    text = tr('ed_check_failed');
  } else if (!edit.dirty && !edit.checking && edit.check) {
    if (!hasChanges(edit.check)) { cls = 'pending'; text = tr('ed_no_changes'); }
    else if (!edit.check.publishable) { cls = 'bad'; text = tr('ed_not_publishable'); }
    else { cls = 'ok'; text = tr('ed_publishable'); }
  } else if (!edit.dirty && !edit.checking) {
    text = '';
  }
  status.className = `check-status ${cls}`;
  status.textContent = text;
  status.dataset.publishable = String(Boolean(edit.check?.publishable && !edit.dirty));
  renderToolbar();
}

function symDiffText(c) {
  if (c.sym_diff_m2 == null) return '–';
  return `${fmt(c.sym_diff_pct, 1)}% · ${formatArea(c.sym_diff_m2)}`;
}

/**
 * The check's children in table order: by code, a child one level down (a micro-grid the
 * community's sketch draws) right under its grid.
 */
function childrenInOrder(children) {
  const sortKey = (c) => (isLowerLevel(c.level) && c.parent_code ? `${c.parent_code}/${c.code ?? ''}` : `${c.code ?? ''}/`);
  return [...children].sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
}

function renderChildren() {
  const edit = state.edit;
  $('children-title').textContent = tr(`ed_children_${edit.scope.childLevel}`);
  const body = $('children-table').tBodies[0];
  body.replaceChildren();
  const children = childrenInOrder(edit.check?.children ?? []);
  const live = children.filter((c) => c.status !== 'retired');
  const lowerCount = live.filter((c) => isLowerLevel(c.level)).length;
  const count = $('children-count');
  count.textContent = edit.check ? String(live.length - lowerCount) + (lowerCount ? ` + ${lowerCount}` : '') : '';
  count.title = lowerCount ? tr('ed_children_count_title', { n: live.length - lowerCount, m: lowerCount }) : '';
  const lockedKeys = new Set(edit.locked.map((f) => f.key));
  for (const c of children) {
    const selected = c.key != null && (c.key === edit.selected || edit.mergeSet.includes(c.key));
    const lower = isLowerLevel(c.level);
    const level = c.level ?? edit.scope.childLevel;
    const tags = [
      lower ? el('span', { class: 'tag tag-level', dataset: { level } }, kindLabel('ed_level_', level)) : null,
      c.matched_by === 'micro_grids' ? el('span', { class: 'tag tag-union', title: tr('ed_union_title') }, tr('ed_union')) : null,
      lockedKeys.has(c.key) ? el('span', { class: 'tag tag-bad', title: tr('ed_read_only_title') }, tr('ed_read_only')) : null,
    ];
    body.append(el('tr', { class: [c.status, selected ? 'selected' : '', lower ? 'lower-level' : ''].join(' '),
      dataset: { code: c.code ?? '', status: c.status, level, ...(c.matched_by ? { matchedBy: c.matched_by } : {}), ...(c.key != null ? { key: c.key } : {}) },
      onclick: () => focusChild(c) },
      el('td', { class: 'mono code-cell' }, c.code ?? '–'),
      el('td', { class: 'name-cell' }, c.name || tr('ed_unnamed'), ...tags),
      el('td', { class: 'status-cell' }, el('span', { class: `status status-${c.status}` }, kindLabel('ed_status_', c.status))),
      el('td', { class: 'num mono' }, symDiffText(c)),
      el('td', { class: 'num mono' }, c.area_m2 != null ? formatArea(c.area_m2) : '–')));
  }
  if (!children.length) {
    body.append(el('tr', { class: 'empty' }, el('td', { colspan: '5' }, tr(edit.checkFailed ? 'ed_check_failed' : 'ed_checking'))));
  }
}

function focusChild(c) {
  if (c.key != null && shadow.has(c.key)) {
    fitTo(bboxOf({ type: 'LineString', coordinates: shadow.get(c.key) }));
    if (state.edit.tool === 'select') draw.selectFeature(c.key);
    else if (state.edit.tool === 'merge') toggleMerge(c.key);
  } else {
    // No feature of its own (a grid made of its drawn micro-grids, a retired one): its proposed or current boundary.
    const proposed = state.edit.check?.features?.features.find((f) => f.properties?.code === c.code && f.properties.key == null && f.geometry);
    fitTo(proposed ? bboxOf(proposed.geometry) : state.regionBounds.get(c.code));
  }
}

function issueList(issues) {
  const list = el('ul', { class: 'issue-list' });
  const sorted = [...issues].sort((a, b) => Number(Boolean(b.blocking)) - Number(Boolean(a.blocking)));
  for (const issue of sorted) {
    const meta = [issue.codes?.length ? listJoin(issue.codes.map(faceLabel)) : null, issue.area_m2 != null ? formatArea(issue.area_m2) : null,
      issue.blocking ? tr('ed_blocking') : null].filter(Boolean).join(' · ');
    list.append(el('li', { class: issue.blocking ? 'blocking' : '', dataset: { kind: issue.kind ?? '' }, onclick: () => zoomTo(issue.location) },
      el('span', { class: 'issue-kind' }, kindLabel('ed_issue_kind_', issue.kind)),
      el('span', {}, issue.message ?? ''),
      meta ? el('div', { class: 'issue-meta' }, meta) : null));
  }
  return list;
}

function renderEditReport() {
  const edit = state.edit;
  const box = $('edit-report');
  box.replaceChildren();
  const pub = edit.publication;
  if (pub) {
    const s = pub.summary ?? {};
    box.append(el('div', { class: 'publish-result', id: 'publish-result' },
      el('h3', {}, tr('ed_published_title')),
      el('dl', {},
        el('dt', {}, tr('ed_pub_new_versions')), el('dd', {}, String(s.new_versions ?? 0)),
        el('dt', {}, tr('ed_pub_created')), el('dd', {}, String(s.created ?? 0)),
        el('dt', {}, tr('ed_pub_unchanged')), el('dd', {}, String(s.unchanged_boundaries ?? 0)),
        el('dt', {}, tr('ed_pub_retired')), el('dd', {}, String(s.retired ?? 0)),
        el('dt', {}, tr('ed_pub_at')), el('dd', {}, formatTime(pub.publication?.published_at)))));
  }
  if (edit.rejected) {
    box.append(el('div', { class: 'publish-result rejected', id: 'publish-rejected' },
      el('h3', {}, tr('ed_rejected_title')),
      el('ul', {}, ...edit.rejected.map((p) => el('li', {}, `${kindLabel('ed_issue_kind_', p.kind)}：${p.message ?? ''}`)))));
  }
  const issues = edit.check?.issues ?? [];
  $('issue-count').textContent = edit.check ? String(issues.length) : '';
  if (!edit.check) return;
  box.append(issues.length ? issueList(issues) : el('p', { class: 'ok-line' }, tr('ed_no_issues')));
}

function formatTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(HTML_LANG[state.lang], { hour12: false });
}

function renderToolbar() {
  const reviewButton = $('review-button');
  // Once editing, reviewing again would drop the edits: leave editing first.
  reviewButton.disabled = !state.candidates || state.reviewing || state.stage === 'edit';
  reviewButton.textContent = tr(state.reviewing ? 'ed_reviewing' : 'ed_review');
  const publishButton = $('publish-button');
  publishButton.disabled = !canPublish();
  publishButton.textContent = tr(state.edit?.publishing ? 'ed_publishing' : 'ed_publish');
  const hint = $('map-hint');
  const key = state.stage === 'review' ? 'ed_hint_review'
    : state.stage === 'edit' ? `ed_hint_${state.edit?.tool ?? 'select'}` : 'ed_map_hint';
  hint.dataset.i18n = key;
  hint.textContent = tr(key);
}

function renderStage() {
  $('dock-georef').hidden = state.stage !== 'georef';
  $('dock-review').hidden = state.stage !== 'review';
  $('dock-edit').hidden = state.stage !== 'edit';
  renderReview();
  renderEdit();
  renderToolbar();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function renderStaticText() {
  applyStaticText(state.lang, tr, 'ed_page_title');
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
  renderStage();
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(LANG_STORAGE_KEY, lang);
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
  $('review-button').addEventListener('click', review);
  $('accept-button').addEventListener('click', () => decideReview(true));
  $('reject-button').addEventListener('click', () => decideReview(false));
  $('review-back').addEventListener('click', () => setStage('georef'));
  $('publish-button').addEventListener('click', publish);
  $('scope-back').addEventListener('click', leaveScope);
  for (const node of document.querySelectorAll('#scope-bar .tool')) node.addEventListener('click', () => setTool(node.dataset.tool));
  $('merge-apply').addEventListener('click', mergeSelected);
  $('tool-delete').addEventListener('click', deleteSelected);
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
  setRegions(regions);
  await loaded;
  addBaseLayers(map, regions);
  bindMap(map);
  renderAll();
  await new Promise((resolve) => map.once('idle', resolve));
  state.ready = true;
  document.body.dataset.state = 'ready';
}

window.editor = {
  map: null, ready: null, state, addGcp, deleteGcp, setLanguage, openSketch, cutAlong, selectForMerge,
  /** The terra-draw instance (null before the edit step). */
  get draw() { return draw; },
  /** Resolves once no edit waits for the server and no check is scheduled or running. */
  checked: () => new Promise((resolve) => {
    const poll = () => (busy === 0 && checkTimer === 0 && !state.edit?.checking ? resolve() : setTimeout(poll, 50));
    poll();
  }),
  /** Resolves once the last publication (and the reload of the map's regions after it) is done. */
  published: () => state.edit?.publishPromise ?? Promise.resolve(),
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
