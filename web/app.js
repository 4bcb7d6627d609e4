/**
 * gridwatch map page: a heatmap of citizens' reports over the grid hierarchy of Wuhai.
 *
 * What this module owns: fetching the JSON API (config, categories, regions, heat, region detail),
 * drawing it with MapLibre GL JS, the filters panel, the region panel and the language switch.
 * What it must not do: reach any host but its own. There is no CDN, no remote font and no remote
 * tile unless the server's config names a basemap style. Labels are drawn by MapLibre from the
 * browser's local fonts, which is why the style below has no `glyphs` URL.
 *
 * Plain ES module, no build step: MapLibre is imported from the copy the server exposes under
 * /vendor/maplibre-gl/ (web/node_modules/maplibre-gl/dist). Every user-visible string is in i18n.js.
 *
 * For browser tests, `window.gridwatch = { map, ready }`: `ready` settles once categories, regions and
 * heat data are loaded and the map is idle; `document.body.dataset.state` is then 'ready', or 'error'
 * (with the banner shown) when an API call failed.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { basemapFont } from './basemap.js';
import { t, applyStaticText, rememberLanguage, initialLanguage, formatNumber, nextLevelWord } from './i18n.js';
import { el } from './dom.js';

// Relative to the page, so the UI keeps working if the binary ever serves it under a path prefix.
const API = 'api/v1';
const LANG_STORAGE_KEY = 'gridwatch.lang';

/** The hierarchy, coarse to fine, with the zoom at which each level's outline appears. */
const LEVELS = ['district', 'street', 'community', 'grid', 'micro_grid'];
const OUTLINE_MINZOOM = { district: 0, street: 11, community: 12.5, grid: 13, micro_grid: 16 };

/** Zoom band in which heat blends into single report points. */
const HEAT_FADE_START = 15;
const HEAT_FADE_END = 16.5;

const ACCENT = '#c2410c';          // selected / hovered region
const BACKGROUND = '#f3f1ec';      // plain light background when there is no basemap

/*
 * Font stacks for locally drawn labels. MapLibre passes the stack to the canvas as a CSS font-family
 * list and reads the weight from the first name, so the first entry names the weight (it need not
 * exist) and the real families follow; Noto Sans CJK is Debian's fonts-noto-cjk.
 */
const FONT_REGULAR = ['Noto Sans CJK SC Regular', 'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC',
  'Microsoft YaHei', 'sans-serif'];
const FONT_MEDIUM = ['Noto Sans CJK SC Medium', ...FONT_REGULAR.slice(1)];
const FONT_BOLD = ['Noto Sans CJK SC Bold', ...FONT_REGULAR.slice(1)];

/*
 * One colour per category, in the order the API lists them; distinct on a light background and from
 * the yellow-to-red heat ramp. Categories beyond the palette reuse it, which is tolerable for a legend
 * that also names them.
 */
const CATEGORY_PALETTE = ['#1f77b4', '#d62728', '#8c564b', '#2ca02c', '#9467bd', '#17becf',
  '#e377c2', '#7f7f7f', '#bcbd22', '#393b79', '#ff7f0e', '#637939'];

/** Heat colour ramp of the heatmap layer; style.css repeats these stops in --heat-ramp for the legend. */
const HEAT_RAMP = [
  [0, 'rgba(255,255,204,0)'],
  [0.12, 'rgba(255,237,160,0.75)'],
  [0.3, '#fed976'],
  [0.5, '#feb24c'],
  [0.7, '#fd8d3c'],
  [0.85, '#f03b20'],
  [1, '#bd0026'],
];

const state = {
  lang: initialLanguage(LANG_STORAGE_KEY),
  map: null,
  ready: false,
  categories: [],             // as the API returned them
  categoryIndex: new Map(),   // code -> { category, colour }
  selectedCategories: new Set(),
  dateFrom: '',
  dateTo: '',
  regionByCode: new Map(),    // code -> Feature
  bounds: null,               // [west, south, east, north] of all regions
  heatCount: null,            // reports shown, or null while loading
  heatAbort: null,
  heatTimer: 0,
  hovered: null,              // code of the hovered region
  selected: null,             // code of the region in the panel
  detail: null,               // its detail, once loaded
  detailAbort: null,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {}

/**
 * GET a JSON resource. Failures become an ApiError whose message is the server's own
 * `{"error": {"message"}}` when there is one, so the banner says what went wrong, not just a status.
 */
async function getJson(path, { signal } = {}) {
  let response;
  try {
    response = await fetch(`${API}/${path}`, { signal, headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(t(state.lang, 'error_network'));
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A body that is not JSON (a proxy's HTML error page, say) is reported by status below.
  }
  if (!response.ok || body === null) {
    const message = body?.error?.message ?? t(state.lang, 'error_http', { status: response.status });
    throw new ApiError(`${message} (${path.split('?')[0]})`);
  }
  return body;
}

function heatQuery() {
  const params = [];
  // All categories selected means "no filter", which also keeps reports of categories added later.
  if (state.selectedCategories.size < state.categories.length) {
    // Commas left as they are (not %2C), exactly as the API documents the list.
    params.push(`category=${[...state.selectedCategories].map(encodeURIComponent).join(',')}`);
  }
  if (state.dateFrom) params.push(`from=${encodeURIComponent(state.dateFrom)}`);
  if (state.dateTo) params.push(`to=${encodeURIComponent(state.dateTo)}`);
  return params.length ? `reports/heat?${params.join('&')}` : 'reports/heat';
}

// ---------------------------------------------------------------------------------------------
// Geometry helpers (lon/lat; small areas, so a local cos(lat) scale is accurate enough)

function polygonsOf(geometry) {
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

function ringArea(ring) {
  let sum = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    sum += (ring[j][0] - ring[i][0]) * (ring[j][1] + ring[i][1]);
  }
  return Math.abs(sum / 2);
}

function extendBbox(bbox, geometry) {
  for (const polygon of polygonsOf(geometry)) {
    for (const [x, y] of polygon[0]) {
      if (x < bbox[0]) bbox[0] = x;
      if (y < bbox[1]) bbox[1] = y;
      if (x > bbox[2]) bbox[2] = x;
      if (y > bbox[3]) bbox[3] = y;
    }
  }
  return bbox;
}

function emptyBbox() {
  return [Infinity, Infinity, -Infinity, -Infinity];
}

/** Distance from (x, y) to the polygon's edges, negative outside; x is pre-scaled by `k`. */
function signedEdgeDistance(x, y, polygon, k) {
  let inside = false;
  let best = Infinity;
  for (const ring of polygon) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const ax = ring[i][0] * k, ay = ring[i][1];
      const bx = ring[j][0] * k, by = ring[j][1];
      if ((ay > y) !== (by > y) && x < ((bx - ax) * (y - ay)) / (by - ay) + ax) inside = !inside;
      const dx = bx - ax, dy = by - ay;
      const len2 = dx * dx + dy * dy;
      const s = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len2));
      const ex = ax + s * dx - x, ey = ay + s * dy - y;
      best = Math.min(best, ex * ex + ey * ey);
    }
  }
  return (inside ? 1 : -1) * Math.sqrt(best);
}

/**
 * A point well inside the region's largest polygon, for its label. A tile-clipped polygon would get
 * one label per tile and a concave one a label outside itself, so labels get their own point source.
 * A coarse-to-fine grid search for the point farthest from the edges (a poor man's polylabel).
 */
function labelPoint(geometry) {
  let polygon = null;
  let largest = -1;
  for (const candidate of polygonsOf(geometry)) {
    const area = ringArea(candidate[0]);
    if (area > largest) { largest = area; polygon = candidate; }
  }
  if (!polygon) return null;
  const [minX, minY, maxX, maxY] = extendBbox(emptyBbox(), { type: 'Polygon', coordinates: polygon });
  const k = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  let cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  let halfW = (maxX - minX) / 2, halfH = (maxY - minY) / 2;
  let best = signedEdgeDistance(cx * k, cy, polygon, k);
  for (let round = 0; round < 4; round++) {
    const steps = round === 0 ? 16 : 6;
    const [ox, oy] = [cx, cy];
    for (let i = 0; i <= steps; i++) {
      for (let j = 0; j <= steps; j++) {
        const x = ox - halfW + (2 * halfW * i) / steps;
        const y = oy - halfH + (2 * halfH * j) / steps;
        const d = signedEdgeDistance(x * k, y, polygon, k);
        if (d > best) { best = d; cx = x; cy = y; }
      }
    }
    halfW /= steps / 2;
    halfH /= steps / 2;
  }
  return [cx, cy];
}

function labelCollection(regions) {
  const features = [];
  for (const feature of regions.features) {
    const point = labelPoint(feature.geometry);
    if (!point) continue;
    const { code, name, level } = feature.properties;
    features.push({ type: 'Feature', geometry: { type: 'Point', coordinates: point }, properties: { code, name, level } });
  }
  return { type: 'FeatureCollection', features };
}

// ---------------------------------------------------------------------------------------------
// Map style

/** Base style when no basemap is configured: a plain light background, nothing fetched. */
function plainStyle() {
  return {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }],
  };
}

function labelField(lang) {
  // Region names are Chinese in the data; English readers get the stable code to quote instead.
  return lang === 'en'
    ? ['format', ['get', 'name'], {}, '\n', {}, ['get', 'code'], { 'font-scale': 0.8 }]
    : ['get', 'name'];
}

const isSelected = ['boolean', ['feature-state', 'selected'], false];
const isHovered = ['boolean', ['feature-state', 'hover'], false];

function levelFilter(level) {
  return ['==', ['get', 'level'], level];
}

/** Clickable fills, one per level; the finest one under the pointer wins (see `regionAt`). */
const FILL_LAYERS = {
  district: { id: 'district-fill', maxzoom: 11, base: 0 },
  street: { id: 'street-fill', base: 0 },
  community: { id: 'community-fill', base: 0 },
  grid: { id: 'grid-fill', base: 0.05 },
  micro_grid: { id: 'micro-grid-fill', base: 0.04 },
};

const LINE_STYLE = {
  micro_grid: { id: 'micro-grid-line', color: '#8795a1', width: [16, 0.7, 19, 1.4], dash: [2, 1.5] },
  grid: { id: 'grid-line', color: '#7a8a9c', width: [13, 0.6, 17, 1.6] },
  community: { id: 'community-line', color: '#4f5d75', width: [12.5, 1.2, 17, 2.4] },
  street: { id: 'street-line', color: '#5b4b8a', width: [11, 1.6, 17, 3.2] },
  district: { id: 'district-line', color: '#2b2d42', width: [7, 1.6, 12, 3, 17, 4.5] },
};

const LABEL_STYLE = {
  micro_grid: { id: 'micro-grid-label', minzoom: 16.5, size: [16.5, 11, 19, 14], font: FONT_REGULAR, color: '#52606d' },
  grid: { id: 'grid-label', minzoom: 15, size: [15, 11, 18, 14], font: FONT_REGULAR, color: '#3e4c59' },
  community: { id: 'community-label', minzoom: 12.5, maxzoom: 15, size: [12.5, 12, 15, 14], font: FONT_MEDIUM, color: '#334155' },
  street: { id: 'street-label', minzoom: 11, maxzoom: 13.5, size: [11, 13, 13.5, 15], font: FONT_MEDIUM, color: '#3b2f6b' },
  district: { id: 'district-label', maxzoom: 11.5, size: [7, 13, 11, 18], font: FONT_BOLD, color: '#1f2133' },
};

function interpolateZoom(stops, valueAt = (v) => v) {
  const expr = ['interpolate', ['linear'], ['zoom']];
  for (let i = 0; i < stops.length; i += 2) expr.push(stops[i], valueAt(stops[i + 1]));
  return expr;
}

// Heat intensity per zoom for about 20,000 reports: points per pixel grow about fourfold per two
// zoom levels out, so the intensity falls by as much to keep only real concentrations red.
const HEAT_INTENSITY_STOPS = [8, 0.006, 10, 0.016, 12, 0.045, 14, 0.1, 16, 0.3];
const HEAT_REFERENCE_COUNT = 20000;

function heatIntensity(count) {
  const k = Math.min(10, HEAT_REFERENCE_COUNT / Math.max(count, 200));
  return interpolateZoom(HEAT_INTENSITY_STOPS, (v) => v * k);
}

function categoryColourExpression() {
  const expr = ['match', ['get', 'category']];
  for (const [code, { colour }] of state.categoryIndex) expr.push(code, colour);
  expr.push('#555555');
  return expr;
}

/** Our sources and layers, added on top of whichever base style is in use. */
function addOverlay(map, regions, heat) {
  const sharedFont = basemapFont(map);
  map.addSource('regions', { type: 'geojson', data: regions, promoteId: 'code' });
  map.addSource('region-labels', { type: 'geojson', data: labelCollection(regions) });
  map.addSource('reports', { type: 'geojson', data: heat });

  // Fills first (below the heat), so the heat stays readable over them.
  for (const level of LEVELS) {
    const spec = FILL_LAYERS[level];
    map.addLayer({
      id: spec.id,
      type: 'fill',
      source: 'regions',
      minzoom: OUTLINE_MINZOOM[level],
      ...(spec.maxzoom ? { maxzoom: spec.maxzoom } : {}),
      filter: levelFilter(level),
      paint: {
        'fill-color': ['case', isSelected, ACCENT, isHovered, ACCENT, '#64748b'],
        'fill-opacity': ['case', isSelected, 0.16, isHovered, 0.12, spec.base],
      },
    });
  }

  map.addLayer({
    id: 'reports-heat',
    type: 'heatmap',
    source: 'reports',
    maxzoom: HEAT_FADE_END + 0.5,
    paint: {
      'heatmap-weight': 1,
      // Scaled to the number of reports shown, so hot spots stand out whatever the filter.
      'heatmap-intensity': heatIntensity(heat.count ?? heat.features.length),
      'heatmap-radius': interpolateZoom([8, 5, 10, 9, 12, 15, 14, 22, 16, 32]),
      'heatmap-color': ['interpolate', ['linear'], ['heatmap-density'], ...HEAT_RAMP.flat()],
      'heatmap-opacity': interpolateZoom([HEAT_FADE_START, 0.8, HEAT_FADE_END, 0]),
    },
  });
  map.addLayer({
    id: 'reports-point',
    type: 'circle',
    source: 'reports',
    minzoom: HEAT_FADE_START,
    paint: {
      'circle-color': categoryColourExpression(),
      'circle-radius': interpolateZoom([15, 2.5, 17, 5, 19, 8]),
      'circle-stroke-color': '#ffffff',
      'circle-stroke-width': interpolateZoom([15, 0.5, 17, 1.2]),
      'circle-opacity': interpolateZoom([HEAT_FADE_START, 0, HEAT_FADE_END, 0.9]),
      'circle-stroke-opacity': interpolateZoom([HEAT_FADE_START, 0, HEAT_FADE_END, 1]),
    },
  });

  // A soft halo under district borders keeps them visible on top of dense heat.
  map.addLayer({
    id: 'district-casing',
    type: 'line',
    source: 'regions',
    filter: levelFilter('district'),
    layout: { 'line-join': 'round' },
    paint: { 'line-color': '#ffffff', 'line-opacity': 0.7, 'line-width': interpolateZoom([7, 4, 12, 6, 17, 8]) },
  });
  // Finest outlines first, so coarser borders are drawn over them where they coincide.
  for (const level of ['micro_grid', 'grid', 'community', 'street', 'district']) {
    const spec = LINE_STYLE[level];
    map.addLayer({
      id: spec.id,
      type: 'line',
      source: 'regions',
      minzoom: OUTLINE_MINZOOM[level],
      filter: levelFilter(level),
      layout: { 'line-join': 'round' },
      paint: {
        'line-color': ['case', isSelected, ACCENT, isHovered, ACCENT, spec.color],
        'line-width': interpolateZoom(spec.width, (w) => ['case', isSelected, w + 2, isHovered, w + 1, w]),
        ...(spec.dash ? { 'line-dasharray': spec.dash } : {}),
      },
    });
  }

  for (const level of ['micro_grid', 'grid', 'community', 'street', 'district']) {
    const spec = LABEL_STYLE[level];
    map.addLayer({
      id: spec.id,
      type: 'symbol',
      source: 'region-labels',
      ...(spec.minzoom ? { minzoom: spec.minzoom } : {}),
      ...(spec.maxzoom ? { maxzoom: spec.maxzoom } : {}),
      filter: levelFilter(level),
      layout: {
        'text-field': labelField(state.lang),
        'text-font': sharedFont ?? spec.font,
        'text-size': interpolateZoom(spec.size),
        'text-max-width': 10,
        'text-padding': 4,
        'text-line-height': 1.25,
      },
      paint: {
        'text-color': spec.color,
        'text-halo-color': 'rgba(255,255,255,0.92)',
        'text-halo-width': 1.6,
        'text-halo-blur': 0.4,
      },
    });
  }
}

function updateMapLanguage() {
  if (!state.map?.getLayer('grid-label')) return;
  for (const level of LEVELS) state.map.setLayoutProperty(LABEL_STYLE[level].id, 'text-field', labelField(state.lang));
}

// ---------------------------------------------------------------------------------------------
// Interaction with regions

const CLICKABLE_LAYERS = LEVELS.map((level) => FILL_LAYERS[level].id);

/** The finest region drawn at a screen point, or null. */
function regionAt(point) {
  const features = state.map.queryRenderedFeatures(point, { layers: CLICKABLE_LAYERS });
  let best = null;
  for (const feature of features) {
    if (!best || LEVELS.indexOf(feature.properties.level) > LEVELS.indexOf(best.properties.level)) best = feature;
  }
  return best;
}

function setRegionState(code, key, value) {
  if (code) state.map.setFeatureState({ source: 'regions', id: code }, { [key]: value });
}

function setHovered(code) {
  if (state.hovered === code) return;
  setRegionState(state.hovered, 'hover', false);
  state.hovered = code;
  setRegionState(code, 'hover', true);
}

function levelName(level) {
  return t(state.lang, `level_${level}`);
}

function regionTitle(name, code) {
  return state.lang === 'en' ? `${name} (${code})` : name;
}

function onPointerMove(event) {
  const feature = regionAt(event.point);
  const tip = $('hover-tip');
  setHovered(feature?.properties.code ?? null);
  state.map.getCanvas().style.cursor = feature ? 'pointer' : '';
  // A tap also produces mouse events; a tooltip that stays behind after it only gets in the way.
  const fromTouch = event.originalEvent?.sourceCapabilities?.firesTouchEvents || !window.matchMedia('(hover: hover)').matches;
  if (!feature || fromTouch) {
    tip.hidden = true;
    return;
  }
  const { name, code, level } = feature.properties;
  tip.textContent = `${regionTitle(name, code)} · ${levelName(level)}`;
  // Beside the pointer, flipped to its left near the right edge so it never runs off the map.
  const { x, y } = event.point;
  const flip = x > state.map.getCanvas().clientWidth - 280;
  tip.style.transform = flip
    ? `translate(calc(${Math.round(x - 14)}px - 100%), ${Math.round(y + 14)}px)`
    : `translate(${Math.round(x + 14)}px, ${Math.round(y + 14)}px)`;
  tip.hidden = false;
}

function onPointerLeave() {
  setHovered(null);
  $('hover-tip').hidden = true;
}

function fitToRegion(code) {
  const feature = state.regionByCode.get(code);
  if (!feature) return;
  const bbox = extendBbox(emptyBbox(), feature.geometry);
  state.map.fitBounds(bbox, { padding: mapPadding(), maxZoom: 16.5, duration: reducedMotion() ? 0 : 600 });
}

/**
 * If the panel now covers the region that was clicked, pan it to the middle of the map area that is
 * still free: left of the side panel on wide screens, above the bottom sheet on phones.
 */
function keepInView(code) {
  const feature = state.regionByCode.get(code);
  if (!feature) return;
  const [west, south, east, north] = extendBbox(emptyBbox(), feature.geometry);
  const point = state.map.project([(west + east) / 2, (south + north) / 2]);
  const canvas = state.map.getCanvas().getBoundingClientRect();
  const panel = $('region-panel').getBoundingClientRect();
  const x = point.x + canvas.left, y = point.y + canvas.top;
  if (x < panel.left || x > panel.right || y < panel.top || y > panel.bottom) return;
  let target;
  if (isNarrow()) {
    target = [point.x, (panel.top - canvas.top) / 2];
  } else {
    const left = $('filters').getBoundingClientRect().right - canvas.left;
    target = [(left + panel.left - canvas.left) / 2, point.y];
  }
  state.map.panBy([point.x - target[0], point.y - target[1]], { duration: reducedMotion() ? 0 : 400 });
}

async function selectRegion(code, { fit = false } = {}) {
  setRegionState(state.selected, 'selected', false);
  state.selected = code;
  state.detail = null;
  setRegionState(code, 'selected', true);
  showPanel();
  renderPanel();
  if (fit) fitToRegion(code);
  else keepInView(code);
  state.detailAbort?.abort();
  const abort = new AbortController();
  state.detailAbort = abort;
  try {
    const detail = await getJson(`regions/${encodeURIComponent(code)}`, { signal: abort.signal });
    if (state.selected !== code) return;
    state.detail = detail;
    renderPanel();
  } catch (err) {
    if (err.name === 'AbortError') return;
    state.detail = { error: err.message };
    renderPanel();
    showError(err);
  }
}

function closePanel() {
  setRegionState(state.selected, 'selected', false);
  state.selected = null;
  state.detail = null;
  state.detailAbort?.abort();
  $('region-panel').hidden = true;
  document.body.classList.remove('panel-open');
}

function showPanel() {
  $('region-panel').hidden = false;
  document.body.classList.add('panel-open');
}

// ---------------------------------------------------------------------------------------------
// DOM rendering

function categoryName(code) {
  const entry = state.categoryIndex.get(code);
  if (!entry) return code;
  return state.lang === 'en' ? entry.category.name_en : entry.category.name_zh;
}

function renderStaticText() {
  applyStaticText(state.lang, (key) => t(state.lang, key), 'page_title');
}

function renderCategories() {
  const list = $('category-list');
  list.replaceChildren();
  // Grouped by the national event class, in the order the API lists the categories.
  const groups = new Map();
  for (const category of state.categories) {
    const key = category.event_class?.code ?? '';
    if (!groups.has(key)) groups.set(key, { eventClass: category.event_class, items: [] });
    groups.get(key).items.push(category);
  }
  for (const { eventClass, items } of groups.values()) {
    const group = el('fieldset', { class: 'category-group' });
    if (eventClass) {
      group.append(el('legend', {}, state.lang === 'en' ? eventClass.name_en : eventClass.name_zh));
    }
    for (const category of items) {
      const { colour } = state.categoryIndex.get(category.code);
      group.append(el('label', { class: 'category-item' },
        el('input', {
          type: 'checkbox',
          value: category.code,
          checked: state.selectedCategories.has(category.code),
          onchange: onCategoryChange,
        }),
        el('span', { class: 'swatch', style: `background:${colour}`, 'aria-hidden': 'true' }),
        el('span', { class: 'category-name' }, categoryName(category.code))));
    }
    list.append(group);
  }
}

function renderCount() {
  const node = $('report-count');
  const badge = $('filters-toggle-count');
  if (state.selectedCategories.size === 0) {
    node.textContent = t(state.lang, 'count_none_selected');
    badge.textContent = '0';
  } else if (state.heatCount === null) {
    node.textContent = t(state.lang, 'count_loading');
    badge.textContent = '…';
  } else {
    node.textContent = t(state.lang, 'count_shown', { n: formatNumber(state.lang, state.heatCount) });
    badge.textContent = formatNumber(state.lang, state.heatCount);
  }
  node.dataset.count = state.heatCount ?? '';
  node.classList.toggle('loading', state.heatCount === null && state.selectedCategories.size > 0);
}

function renderZoomHint() {
  const hint = $('zoom-hint');
  if (!state.map) return;
  const zoom = state.map.getZoom();
  const next = LEVELS.slice(1, 4).find((level) => zoom < OUTLINE_MINZOOM[level]);
  hint.textContent = next
    ? t(state.lang, 'zoom_hint', { next: nextLevelWord(state.lang, next), z: zoom.toFixed(1) })
    : t(state.lang, 'zoom_hint_click');
}

function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  // The valid-from date as the city sees it (China has one time zone, UTC+8).
  // English gets "1 Jan 2026": a numeric date would be ambiguous between US and British readers.
  const options = state.lang === 'en'
    ? { locale: 'en-GB', year: 'numeric', month: 'short', day: 'numeric' }
    : { locale: 'zh-CN', year: 'numeric', month: 'long', day: 'numeric' };
  const { locale, ...format } = options;
  return new Intl.DateTimeFormat(locale, { ...format, timeZone: 'Asia/Shanghai' }).format(date);
}

function section(titleKey, ...content) {
  return el('section', { class: 'panel-section' }, el('h3', {}, t(state.lang, titleKey)), ...content);
}

function renderPanel() {
  const content = $('region-content');
  const code = state.selected;
  if (!code) { content.replaceChildren(); return; }
  const feature = state.regionByCode.get(code);
  const detail = state.detail;
  const name = detail?.name ?? feature?.properties.name ?? code;
  const level = detail?.level ?? feature?.properties.level;
  const synthetic = detail?.synthetic ?? feature?.properties.synthetic;

  const header = el('header', { class: 'panel-header' },
    el('div', { class: 'panel-kicker' },
      el('span', { class: `level-badge level-${level}` }, levelName(level)),
      synthetic ? el('span', { class: 'synthetic-badge', title: t(state.lang, 'synthetic_title') }, t(state.lang, 'synthetic')) : null),
    el('h2', { id: 'region-name', tabindex: '-1' }, name),
    el('p', { class: 'region-code' }, el('span', { class: 'muted' }, `${t(state.lang, 'code')} `),
      el('code', { 'data-field': 'code' }, code)));

  if (!detail) {
    content.replaceChildren(header, el('p', { class: 'muted loading' }, t(state.lang, 'panel_loading')));
    return;
  }
  if (detail.error) {
    content.replaceChildren(header, el('p', { class: 'warning' }, detail.error));
    return;
  }

  const chain = (detail.chain ?? []).filter((link) => link.code !== code);
  const hierarchy = chain.length
    ? section('hierarchy', el('ol', { class: 'chain' }, chain.map((link) => el('li', {},
      el('button', {
        type: 'button', class: 'link-btn', onclick: () => selectRegion(link.code, { fit: true }),
        title: `${levelName(link.level)} ${link.code}`,
      }, regionTitle(link.name, link.code)),
      el('span', { class: 'muted' }, ` ${levelName(link.level)}`)))))
    : null;

  const branch = detail.party_branch;
  const party = section('party_branch', branch
    ? el('dl', { class: 'facts', 'data-field': 'party-branch' },
      el('dt', {}, t(state.lang, 'party_branch_name')), el('dd', { 'data-field': 'party-branch-name' }, branch.name),
      el('dt', {}, t(state.lang, 'secretary')), el('dd', {}, branch.secretary ?? '—'),
      el('dt', {}, t(state.lang, 'contact')), el('dd', {}, phoneLink(branch.contact)))
    : el('p', { class: 'muted', 'data-field': 'party-branch-none' }, t(state.lang, 'no_party_branch')));

  const roles = ['grid_leader', 'police_officer', 'full_time_worker', 'part_time_worker'];
  const staff = detail.staff ?? [];
  const staffRows = roles.map((role) => {
    const people = staff.filter((person) => person.role === role);
    if (!people.length) return null;
    return el('div', { class: 'staff-row', 'data-role': role },
      el('dt', {}, t(state.lang, `role_${role}`)),
      el('dd', {}, el('ul', {}, people.map((person) => el('li', {}, el('span', { class: 'person' }, person.name), ' ', phoneLink(person.phone))))));
  }).filter(Boolean);
  const staffSection = section('staff', staffRows.length
    ? el('dl', { class: 'staff' }, staffRows)
    : el('p', { class: 'muted' }, t(state.lang, 'no_staff')));

  const version = detail.version
    ? section('boundary_version', el('p', { 'data-field': 'version' },
      t(state.lang, 'version_line', { v: detail.version.version, date: formatDate(detail.version.valid_from) })))
    : null;

  content.replaceChildren(header, hierarchy, party, staffSection, reportSection(detail.report_counts), version);
}

function phoneLink(phone) {
  if (!phone) return el('span', { class: 'muted' }, '—');
  return el('a', { href: `tel:${phone.replace(/[^\d+]/g, '')}`, class: 'phone' }, phone);
}

function reportSection(counts) {
  const total = counts?.total ?? 0;
  const rows = [...(counts?.by_category ?? [])].sort((a, b) => b.count - a.count);
  const max = Math.max(1, ...rows.map((row) => row.count));
  return section('reports',
    el('p', { class: 'report-total' }, `${t(state.lang, 'reports_total')} `,
      el('strong', { 'data-field': 'report-total' }, formatNumber(state.lang, total))),
    rows.length
      ? el('ul', { class: 'bars' }, rows.map((row) => el('li', {},
        el('span', { class: 'bar-label' }, categoryName(row.category)),
        el('span', { class: 'bar-track' }, el('span', {
          class: 'bar',
          style: `width:${(100 * row.count) / max}%;background:${state.categoryIndex.get(row.category)?.colour ?? '#888'}`,
        })),
        el('span', { class: 'bar-value' }, formatNumber(state.lang, row.count)))))
      : el('p', { class: 'muted' }, t(state.lang, 'no_reports')));
}

function renderAll() {
  renderStaticText();
  renderCategories();
  renderCount();
  renderZoomHint();
  renderPanel();
  updateMapLanguage();
}

// ---------------------------------------------------------------------------------------------
// Errors

function showError(err) {
  $('error-text').textContent = t(state.lang, 'error_prefix') + (err?.message ?? String(err));
  $('error-banner').hidden = false;
  document.body.dataset.state = 'error';
}

function clearError() {
  $('error-banner').hidden = true;
  if (state.ready) document.body.dataset.state = 'ready';
}

// ---------------------------------------------------------------------------------------------
// Filters

function onCategoryChange(event) {
  if (event.target.checked) state.selectedCategories.add(event.target.value);
  else state.selectedCategories.delete(event.target.value);
  scheduleHeatRefresh();
}

function setAllCategories(selected) {
  state.selectedCategories = new Set(selected ? state.categories.map((c) => c.code) : []);
  for (const box of document.querySelectorAll('#category-list input[type=checkbox]')) box.checked = selected;
  scheduleHeatRefresh();
}

function onDateChange() {
  state.dateFrom = $('date-from').value;
  state.dateTo = $('date-to').value;
  // ISO dates compare correctly as strings.
  const invalid = state.dateFrom && state.dateTo && state.dateFrom > state.dateTo;
  $('date-warning').hidden = !invalid;
  $('date-warning').textContent = invalid ? t(state.lang, 'date_invalid') : '';
  $('date-to').min = state.dateFrom || '2000-01-01';
  $('date-from').max = state.dateTo || '2100-12-31';
  if (!invalid) scheduleHeatRefresh();
}

/** Coalesce quick clicks into one request; the newest request always wins. */
function scheduleHeatRefresh() {
  clearTimeout(state.heatTimer);
  state.heatCount = null;
  renderCount();
  state.heatTimer = setTimeout(() => {
    refreshHeat().catch((err) => { if (err.name !== 'AbortError') showError(err); });
  }, 200);
}

async function refreshHeat() {
  state.heatAbort?.abort();
  const source = state.map.getSource('reports');
  if (state.selectedCategories.size === 0) {
    // The API has no way to say "no category"; an empty selection simply shows nothing.
    source.setData({ type: 'FeatureCollection', features: [] });
    state.heatCount = 0;
    renderCount();
    return;
  }
  const abort = new AbortController();
  state.heatAbort = abort;
  const heat = await getJson(heatQuery(), { signal: abort.signal });
  if (abort.signal.aborted) return;
  source.setData(heat);
  state.heatCount = heat.count ?? heat.features?.length ?? 0;
  state.map.setPaintProperty('reports-heat', 'heatmap-intensity', heatIntensity(state.heatCount));
  renderCount();
  clearError();
}

// ---------------------------------------------------------------------------------------------
// Layout

function isNarrow() {
  return window.matchMedia('(max-width: 720px)').matches;
}

function reducedMotion() {
  return window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

/** Keep what we fit to out from under the floating panels. */
function mapPadding() {
  if (isNarrow()) return { top: 56, bottom: state.selected ? window.innerHeight * 0.45 : 24, left: 24, right: 24 };
  const filters = $('filters').getBoundingClientRect();
  return {
    top: 32,
    bottom: 32,
    left: Math.round(filters.right) + 16,
    right: state.selected ? Math.round($('region-panel').getBoundingClientRect().width) + 32 : 48,
  };
}

function fitAll({ animate = true } = {}) {
  if (!state.bounds) return;
  state.map.fitBounds(state.bounds, { padding: mapPadding(), duration: animate && !reducedMotion() ? 600 : 0 });
}

function setFiltersCollapsed(collapsed) {
  $('filters').dataset.collapsed = String(collapsed);
  $('filters-toggle').setAttribute('aria-expanded', String(!collapsed));
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(LANG_STORAGE_KEY, lang);
  renderAll();
}

function bindControls() {
  $('lang-toggle').addEventListener('click', () => setLanguage(state.lang === 'zh' ? 'en' : 'zh'));
  $('reset-view').addEventListener('click', () => fitAll());
  $('filters-toggle').addEventListener('click', () => setFiltersCollapsed($('filters').dataset.collapsed !== 'true'));
  $('categories-all').addEventListener('click', () => setAllCategories(true));
  $('categories-none').addEventListener('click', () => setAllCategories(false));
  $('date-from').addEventListener('change', onDateChange);
  $('date-to').addEventListener('change', onDateChange);
  $('dates-clear').addEventListener('click', () => {
    $('date-from').value = '';
    $('date-to').value = '';
    onDateChange();
  });
  $('region-close').addEventListener('click', closePanel);
  $('error-dismiss').addEventListener('click', () => { $('error-banner').hidden = true; });
  $('error-reload').addEventListener('click', () => window.location.reload());
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.selected) closePanel();
  });
}

// ---------------------------------------------------------------------------------------------
// Start-up

function createMap(style) {
  return new maplibregl.Map({
    container: 'map',
    style,
    // Roughly Wuhai, until the regions arrive and we fit to them.
    center: [106.83, 39.5],
    zoom: 8.5,
    minZoom: 5,
    maxZoom: 19,
    attributionControl: { compact: true },
    // Lets tests (and a user's "save image") read the canvas after it is drawn.
    canvasContextAttributes: { preserveDrawingBuffer: true },
    dragRotate: false,
    pitchWithRotate: false,
  });
}

function waitFor(map, event) {
  return new Promise((resolve) => map.once(event, resolve));
}

async function start() {
  renderStaticText();
  setFiltersCollapsed(isNarrow());
  bindControls();

  const config = await getJson('config');
  const map = createMap(config.basemap_style_url || plainStyle());
  state.map = map;
  window.gridwatch.map = map;
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'bottom-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  const loaded = waitFor(map, 'load');
  // The basemap is optional: if its style cannot be loaded, carry on over the plain background
  // rather than leave the page waiting for a 'load' that never comes.
  let fellBack = !config.basemap_style_url;
  map.on('error', (event) => {
    console.warn('map error:', event.error?.message ?? event);
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(plainStyle(), { diff: false });
    }
  });

  const [categories, regions, heat] = await Promise.all([
    getJson('categories'),
    getJson('regions'),
    getJson('reports/heat'),
  ]);

  state.categories = categories;
  categories.forEach((category, i) => {
    state.categoryIndex.set(category.code, { category, colour: CATEGORY_PALETTE[i % CATEGORY_PALETTE.length] });
  });
  state.selectedCategories = new Set(categories.map((c) => c.code));
  const bbox = emptyBbox();
  for (const feature of regions.features) {
    state.regionByCode.set(feature.properties.code, feature);
    extendBbox(bbox, feature.geometry);
  }
  if (Number.isFinite(bbox[0])) state.bounds = bbox;
  state.heatCount = heat.count ?? heat.features.length;

  await loaded;
  addOverlay(map, regions, heat);
  fitAll({ animate: false });
  renderAll();

  map.on('mousemove', onPointerMove);
  map.on('mouseout', onPointerLeave);
  map.on('click', (event) => {
    const feature = regionAt(event.point);
    if (feature) selectRegion(feature.properties.code);
  });
  map.on('zoom', renderZoomHint);

  await waitFor(map, 'idle');
  state.ready = true;
  document.body.dataset.state = 'ready';
}

// Published before start() runs, so start() can fill in `map` as soon as it exists.
window.gridwatch = { map: null, ready: null, selectRegion, setLanguage };
window.gridwatch.ready = start();
window.gridwatch.ready.catch((err) => {
  console.warn('gridwatch failed to start:', err);
  showError(err);
});
