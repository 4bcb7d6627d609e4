/**
 * gridwatch map page: a heatmap of citizens' reports over the grid hierarchy of Wuhai, and the
 * street leader's analytics: a time slider, a choropleth of the grids' figures, a grid's trend,
 * hot and cold spots (Getis–Ord Gi*) and the list of rising grids.
 *
 * What this module owns: fetching the JSON API (config, categories, regions, trend, region detail,
 * hotspots, emerging),
 * drawing it with MapLibre GL JS over the server's vector tiles (`/tiles/incidents`, `/tiles/grids`,
 * both under the same filter), the filters panel, the timeline, the legend with its choropleth
 * switch, the region panel with its trend chart (inline SVG) and the language switch.
 * A visitor who is not logged in gets the public map: the server's public tiles and trend (small
 * counts suppressed), the region panel from the loaded boundaries only, no hot spots or rising list.
 * What it must not do: reach any host but its own. There is no CDN, no remote font and no remote
 * tile unless the server's config names a basemap style. Labels are drawn by MapLibre from the
 * browser's local fonts, which is why the style below has no `glyphs` URL.
 *
 * Plain ES module, no build step: MapLibre is imported from the copy the server exposes under
 * /vendor/maplibre-gl/ (web/node_modules/maplibre-gl/dist). Every user-visible string is in i18n.js.
 *
 * For browser tests, `window.gridwatch = { map, ready }`: `ready` settles once categories, regions and
 * the city's trend are loaded and the map is idle (its first tiles drawn);
 * `document.body.dataset.state` is then 'ready', or 'error'
 * (with the banner shown) when an API call failed.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { basemapFont } from './basemap.js';
import { t, applyStaticText, rememberLanguage, initialLanguage, formatNumber, nextLevelWord } from './i18n.js';
import { session } from './session.js';
import { el, setChildren } from './dom.js';

// Relative to the page, so the UI keeps working if the binary ever serves it under a path prefix.
const API = 'api/v1';
// Tile URLs must be absolute (MapLibre fetches them from its worker): resolved against the page.
const TILES = new URL('tiles/', document.baseURI).href;
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

/*
 * Heat weight of one incidents feature. Below zoom 15 a feature is a cell carrying `count` reports;
 * the weight grows with it but ever more slowly past a handful, so a cell of fifty marks a hot spot
 * without drowning every other one. A raw point (count 1) weighs 1.
 */
const HEAT_WEIGHT = ['interpolate', ['linear'], ['to-number', ['get', 'count'], 1],
  0, 0, 1, 1, 6, 4.5, 25, 11, 100, 24, 400, 48, 2000, 110];

/** The time slider's steps, and how long it holds each while playing (after its tiles are drawn). */
const INTERVALS = ['week', 'month'];
const PLAY_HOLD_MS = 900;
const DRAG_SETTLE_MS = 160;

/*
 * The choropleth's measures, as the grids tiles name them. `breaks(ctx)` gives the four class
 * limits (five classes) for the current filter; counts scale with the reports shown, so a single
 * week is not one pale wash, and rates have fixed limits that mean the same in every period.
 * `integer` values are counts (legend classes "3–5"); `rate` values are 0–1, shown as percentages.
 */
const COUNT_COLOURS = ['#f1eef6', '#bdc9e1', '#74a9cf', '#2b8cbe', '#045a8d'];
const OVERDUE_COLOURS = ['#f4f1ea', '#fdd49e', '#fc8d59', '#d7301f', '#7f0000'];
const RATE_COLOURS = ['#d7191c', '#fdae61', '#fee08b', '#a6d96a', '#1a9641'];
const NO_DATA_COLOUR = '#c9c6bf';
const MEASURES = {
  reports: { integer: true, colours: COUNT_COLOURS, breaks: (ctx) => scaledBreaks(ctx.meanReports, true) },
  density_km2: { integer: false, colours: COUNT_COLOURS, breaks: (ctx) => scaledBreaks(ctx.meanDensity, false) },
  closure_rate: { rate: true, colours: RATE_COLOURS, breaks: () => [0.7, 0.85, 0.95, 0.99] },
  overdue: { integer: true, colours: OVERDUE_COLOURS, breaks: () => [1, 2, 3, 5] },
  satisfaction_rate: { rate: true, colours: RATE_COLOURS, breaks: () => [0.6, 0.75, 0.85, 0.95] },
};
const MEASURE_KEYS = Object.keys(MEASURES);

/*
 * Hot and cold spots (GET /api/v1/hotspots: Getis–Ord Gi* over the grids, Benjamini–Hochberg FDR).
 * 9999 permutations: with ~700 grids, FDR control needs p-values below α·k/n, which 999 (p ≥ 0.001)
 * cannot give; the server answers the city's 704 grids in well under a second at 9999.
 */
const HOTSPOT_PERMUTATIONS = 9999;
const HOTSPOT_ALPHA = 0.05;
const HOT_COLOUR = '#d7301f';
const HOT_LINE = '#a50f15';
const COLD_COLOUR = '#2b6cb0';
const COLD_LINE = '#08306b';
const spotState = ['to-string', ['coalesce', ['feature-state', 'spot'], '']];

/** The rising list's periods, as GET /api/v1/emerging takes them. */
const RISING_PERIODS = ['week', 'month'];

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
  gridCount: 0,               // grids (not micro-grids), for the choropleth's count classes
  gridAreaKm2: 0,             // and their area
  count: null,                // reports shown, or null while loading
  trendAbort: null,
  refreshTimer: 0,
  // The timeline: the city's buckets under the category and date filters, and the one shown
  // (-1: all of the filtered time).
  interval: 'month',
  buckets: [],
  bucketIndex: -1,
  playing: false,
  playToken: 0,
  playTimer: 0,
  dragTimer: 0,
  tileQuery: null,            // the query the tile sources were last given
  measure: 'off',             // choropleth measure, or 'off'
  heatOn: true,
  classes: null,              // { measure, breaks, colours } of the choropleth drawn
  regionTrend: null,          // { key, code, data?, error? } of the selected region
  regionTrendAbort: null,
  figuresTimer: 0,
  hovered: null,              // code of the hovered region
  selected: null,             // code of the region in the panel
  detail: null,               // its detail, once loaded
  detailAbort: null,
  // Hot spots: whether they are shown, and the answer for the filter shown.
  hotspotsOn: false,
  public: false,              // a visitor who is not logged in: the public map
  hotspots: null,             // { key, data?, error?, none? } (none: no category selected)
  hotspotAbort: null,
  hotspotByCode: new Map(),   // code -> grid of the answer drawn (hot or cold only)
  // The rising list: open or not, its period (null: the timeline's interval), a day the user
  // picked (null: follow the timeline, else today), and the answer shown.
  rising: { open: false, period: null, at: null, key: null, data: null, error: null, fallback: false, selected: null },
  risingAbort: null,
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

/** `category=…` when not all categories are selected (all means "no filter", which also keeps
 * reports of categories added later); commas left as they are, exactly as the API documents. */
function categoryParams() {
  if (state.selectedCategories.size >= state.categories.length) return [];
  return [`category=${[...state.selectedCategories].map(encodeURIComponent).join(',')}`];
}

function dateParams(from, to) {
  const params = [];
  if (from) params.push(`from=${encodeURIComponent(from)}`);
  if (to) params.push(`to=${encodeURIComponent(to)}`);
  return params;
}

/** The trend under the category and date filters (not the slider: its buckets are the steps). */
function trendPath({ region, interval = state.interval } = {}) {
  const params = [`interval=${interval}`];
  if (region) params.push(`region=${encodeURIComponent(region)}`);
  params.push(...categoryParams(), ...dateParams(state.dateFrom, state.dateTo));
  return `reports/trend?${params.join('&')}`;
}

/** The time shown on the map: the slider's bucket (within the date filter), or the date filter. */
function shownRange() {
  const bucket = state.buckets[state.bucketIndex];
  if (!bucket) return { from: state.dateFrom, to: state.dateTo };
  const end = bucketEnd(bucket.start);
  return {
    from: state.dateFrom && state.dateFrom > bucket.start ? state.dateFrom : bucket.start,
    to: state.dateTo && state.dateTo < end ? state.dateTo : end,
  };
}

/** The query of both tile layers: categories, and the time shown. */
function tileQuery() {
  const { from, to } = shownRange();
  return [...categoryParams(), ...dateParams(from, to)].join('&');
}

function tileUrl(layer, query) {
  return `${TILES}${layer}/{z}/{x}/{y}.mvt${query ? `?${query}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Dates of the timeline: 'YYYY-MM-DD' China dates, computed as UTC dates so nothing shifts a day.

function parseDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function dayString(date) {
  return date.toISOString().slice(0, 10);
}

/** The last day (inclusive, as `to` takes it) of the bucket starting on `start`. */
function bucketEnd(start, interval = state.interval) {
  const date = parseDay(start);
  if (interval === 'week') date.setUTCDate(date.getUTCDate() + 6);
  else date.setUTCMonth(date.getUTCMonth() + 1, 0);
  return dayString(date);
}

function dayFormat(options) {
  return new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', { ...options, timeZone: 'UTC' });
}

const MONTH_FORMAT = () => dayFormat({ year: 'numeric', month: state.lang === 'en' ? 'short' : 'long' });

/**
 * "2026年3月" / "Mar 2026" for a month, "2026年3月2日至8日" / "2–8 Mar 2026" for a week; `short`
 * (the chart's axis) gives a week's Monday alone, "3月2日" / "2 Mar".
 */
function bucketLabel(start, { short = false } = {}) {
  if (state.interval === 'month') return MONTH_FORMAT().format(parseDay(start));
  if (short) return dayFormat({ month: state.lang === 'en' ? 'short' : 'long', day: 'numeric' }).format(parseDay(start));
  return rangeLabel(start, bucketEnd(start));
}

/** The span the timeline covers (all of it is shown): "2025年11月至2026年12月" / "Nov 2025 – Dec 2026". */
function spanLabel() {
  const first = state.buckets[0];
  const last = state.buckets[state.buckets.length - 1];
  if (!first) return rangeLabel(state.dateFrom, state.dateTo);
  if (state.dateFrom || state.dateTo || state.interval === 'week') {
    const from = state.dateFrom && state.dateFrom > first.start ? state.dateFrom : first.start;
    const end = bucketEnd(last.start);
    return rangeLabel(from, state.dateTo && state.dateTo < end ? state.dateTo : end);
  }
  // Built by hand: ICU's Chinese month range is the terse "2025/11 – 2026/12".
  return first === last ? bucketLabel(first.start) : `${bucketLabel(first.start)} – ${bucketLabel(last.start)}`;
}

/** "2026年3月2日至8日", "2026年3月30日至4月5日"; ICU's own Chinese range is the terse "2026/3/2 – 2026/3/8". */
function chineseRange(from, to) {
  const [fy, fm, fd] = from.split('-').map(Number);
  const [ty, tm, td] = to.split('-').map(Number);
  const end = fy !== ty ? `${ty}年${tm}月${td}日` : fm !== tm ? `${tm}月${td}日` : `${td}日`;
  return `${fy}年${fm}月${fd}日至${end}`;
}

function rangeLabel(from, to) {
  const format = dayFormat({ year: 'numeric', month: state.lang === 'en' ? 'short' : 'long', day: 'numeric' });
  if (from && to && from !== to && state.lang !== 'en') return chineseRange(from, to);
  if (from && to) return from === to ? format.format(parseDay(from)) : format.formatRange(parseDay(from), parseDay(to));
  if (from) return t(state.lang, 'period_from', { date: format.format(parseDay(from)) });
  if (to) return t(state.lang, 'period_to', { date: format.format(parseDay(to)) });
  return t(state.lang, 'period_all');
}

/** What the map shows, in words: the slider's period, the date filter, or "all time". */
function periodLabel() {
  const bucket = state.buckets[state.bucketIndex];
  if (!bucket) return rangeLabel(state.dateFrom, state.dateTo);
  const { from, to } = shownRange();
  const clipped = from !== bucket.start || to !== bucketEnd(bucket.start);
  return clipped ? rangeLabel(from, to) : bucketLabel(bucket.start);
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

/** Area in km² of a lon/lat (Multi)Polygon, holes subtracted; a local cos(lat) scale. */
function areaKm2(geometry) {
  let sum = 0;
  for (const polygon of polygonsOf(geometry)) {
    const lat = polygon[0][0]?.[1] ?? 0;
    const k = 111.32 * 111.32 * Math.cos((lat * Math.PI) / 180);
    polygon.forEach((ring, i) => { sum += (i === 0 ? 1 : -1) * ringArea(ring) * k; });
  }
  return sum;
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

// Heat intensity per zoom for about 20,000 reports: reports per pixel grow about fourfold per zoom
// level out, less what HEAT_WEIGHT compresses of it, so the intensity falls to keep only real
// concentrations red. Scaled by the reports shown (below), so a single week is not a blank map.
const HEAT_INTENSITY_STOPS = [8, 0.022, 9, 0.028, 10, 0.032, 11, 0.04, 12, 0.075, 13, 0.1, 14, 0.12, 16, 0.3];
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
function addOverlay(map, regions) {
  const sharedFont = basemapFont(map);
  const query = tileQuery();
  state.tileQuery = query;
  const bounds = state.bounds ?? undefined;
  map.addSource('regions', { type: 'geojson', data: regions, promoteId: 'code' });
  map.addSource('region-labels', { type: 'geojson', data: labelCollection(regions) });
  // Cells below zoom 15, raw points from it (up to 16, overzoomed beyond); 512 px tiles, so a cell
  // (1/128 of a tile) is 4 px on screen.
  map.addSource('incidents', { type: 'vector', tiles: [tileUrl('incidents', query)], tileSize: 512, minzoom: 0, maxzoom: 16, bounds });
  // The grids with their figures; zoom 14 is precise to a metre, overzoomed beyond.
  map.addSource('grids', { type: 'vector', tiles: [tileUrl('grids', query)], tileSize: 512, minzoom: 0, maxzoom: 14, bounds, promoteId: 'code' });

  // The choropleth: always in the style (transparent when off), so the grids' figures are at hand
  // for the region panel whatever the switch says.
  map.addLayer({
    id: 'grid-choropleth',
    type: 'fill',
    source: 'grids',
    'source-layer': 'grids',
    filter: levelFilter('grid'),
    paint: { 'fill-color': NO_DATA_COLOUR, 'fill-opacity': 0, 'fill-antialias': false },
  });

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

  // Hot and cold spots: the grids tiles' grids, coloured by a feature-state `spot` ('hot' or
  // 'cold') that the hot spots answer sets; hidden while the switch is off.
  map.addLayer({
    id: 'grid-hotspot-fill',
    type: 'fill',
    source: 'grids',
    'source-layer': 'grids',
    filter: levelFilter('grid'),
    layout: { visibility: 'none' },
    paint: {
      'fill-color': ['match', spotState, 'hot', HOT_COLOUR, 'cold', COLD_COLOUR, '#000000'],
      // Zoom on the outside: MapLibre takes ['zoom'] only as the input of a top-level curve.
      'fill-opacity': interpolateZoom([10, [0.75, 0.65], 14, [0.55, 0.42]], ([hot, cold]) => ['match', spotState, 'hot', hot, 'cold', cold, 0]),
      'fill-antialias': false,
    },
  });

  map.addLayer({
    id: 'reports-heat',
    type: 'heatmap',
    source: 'incidents',
    'source-layer': 'incidents',
    maxzoom: HEAT_FADE_END + 0.5,
    layout: { visibility: 'visible' },
    paint: {
      'heatmap-weight': HEAT_WEIGHT,
      // Scaled to the number of reports shown, so hot spots stand out whatever the filter.
      'heatmap-intensity': heatIntensity(state.count ?? HEAT_REFERENCE_COUNT),
      'heatmap-radius': interpolateZoom([8, 7, 10, 11, 12, 15, 14, 22, 16, 32]),
      'heatmap-color': ['interpolate', ['linear'], ['heatmap-density'], ...HEAT_RAMP.flat()],
      'heatmap-opacity': interpolateZoom([HEAT_FADE_START, 0.8, HEAT_FADE_END, 0]),
    },
  });
  map.addLayer({
    id: 'reports-point',
    type: 'circle',
    source: 'incidents',
    'source-layer': 'incidents',
    minzoom: HEAT_FADE_START,
    // Raw points only: a tile too crowded for them comes as fine cells, which have no category.
    filter: ['has', 'category'],
    layout: { visibility: 'visible' },
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

  map.addLayer({
    id: 'grid-hotspot-line',
    type: 'line',
    source: 'grids',
    'source-layer': 'grids',
    filter: levelFilter('grid'),
    layout: { visibility: 'none', 'line-join': 'round' },
    paint: {
      'line-color': ['match', spotState, 'hot', HOT_LINE, 'cold', COLD_LINE, '#000000'],
      'line-opacity': ['match', spotState, 'hot', 0.9, 'cold', 0.8, 0],
      // Grids are a few pixels across at the city's zoom: a firm outline keeps them visible there.
      'line-width': interpolateZoom([8, 1.4, 12, 1.6, 15, 2.4, 17, 3.2]),
    },
  }, 'community-line');

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
  const spot = state.hotspotsOn ? state.hotspotByCode.get(code) : null;
  tip.textContent = `${regionTitle(name, code)} · ${levelName(level)}` +
    (spot ? ` · ${t(state.lang, `hotspot_tip_${spot.class}`)} (z = ${formatNumber(state.lang, Number(spot.z.toFixed(2)))})` : '');
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
    const left = leftPanelRight() - canvas.left;
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
  state.regionTrend = null;
  loadRegionTrend();
  state.detailAbort?.abort();
  if (state.public) {
    // A visitor reads the region from the boundaries already loaded: no staff, no report list.
    state.detail = publicDetail(code);
    renderPanel();
    return;
  }
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

/** What a visitor may see of a region: its name, level and chain, from the loaded boundaries. */
function publicDetail(code) {
  const chain = [];
  for (let c = code; c; c = state.regionByCode.get(c)?.properties.parent_code) {
    const p = state.regionByCode.get(c)?.properties;
    if (!p) break;
    chain.unshift({ code: p.code, name: p.name, level: p.level });
  }
  const p = state.regionByCode.get(code)?.properties ?? {};
  return { public: true, code, name: p.name, level: p.level, synthetic: p.synthetic, chain };
}

function closePanel() {
  setRegionState(state.selected, 'selected', false);
  state.selected = null;
  state.detail = null;
  state.detailAbort?.abort();
  state.regionTrendAbort?.abort();
  state.regionTrend = null;
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
  } else if (state.count === null) {
    node.textContent = t(state.lang, 'count_loading');
    badge.textContent = '…';
  } else {
    node.textContent = t(state.lang, 'count_shown', { n: formatNumber(state.lang, state.count) });
    badge.textContent = formatNumber(state.lang, state.count);
  }
  node.dataset.count = state.selectedCategories.size === 0 ? '0' : (state.count ?? '');
  badge.dataset.count = node.dataset.count;
  node.classList.toggle('loading', state.count === null && state.selectedCategories.size > 0);
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

  if (detail.public) {
    content.replaceChildren(header, hierarchy, figuresSection(code, level), trendSection(),
      el('p', { class: 'muted public-panel-note', 'data-field': 'public-note' }, t(state.lang, 'public_panel_note')));
    return;
  }

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

  content.replaceChildren(header, hierarchy, figuresSection(code, level), trendSection(),
    party, staffSection, reportSection(detail.report_counts), version);
}

// ---------------------------------------------------------------------------------------------
// The selected region's figures (from the grids tiles) and trend (from the API)

/** The grids tile feature of `code`, with the figures under the filter shown; null if not loaded. */
function gridFeature(code) {
  if (!state.map?.getSource('grids')) return null;
  const features = state.map.querySourceFeatures('grids', { sourceLayer: 'grids', filter: ['==', ['get', 'code'], code] });
  return features[0] ?? null;
}

const FIGURES = [
  ['reports', (v) => t(state.lang, 'unit_reports', { n: formatNumber(state.lang, v) })],
  ['density_km2', (v) => t(state.lang, 'unit_per_km2', { n: formatValue(v) })],
  ['area_km2', (v) => t(state.lang, 'unit_km2', { n: formatNumber(state.lang, Number(v.toFixed(v < 1 ? 3 : 2))) })],
  ['cases', (v) => t(state.lang, 'unit_cases', { n: formatNumber(state.lang, v) })],
  ['closure_rate', (v) => formatValue(v, { rate: true })],
  ['overdue', (v) => formatNumber(state.lang, v)],
  ['satisfaction_rate', (v) => formatValue(v, { rate: true })],
];

/** Grids and micro-grids only: the tiles carry no other level. */
function figuresSection(code, level) {
  if (level !== 'grid' && level !== 'micro_grid') return null;
  const feature = state.selectedCategories.size ? gridFeature(code) : null;
  const props = feature?.properties ?? null;
  const body = props
    ? el('dl', { class: 'facts figures', 'data-field': 'figures' }, FIGURES.map(([key, format]) => {
      const value = props[key];
      const has = value !== undefined && value !== null;
      return [
        el('dt', {}, t(state.lang, `fig_${key}`)),
        el('dd', { dataset: { measure: key, value: has ? String(value) : '' }, class: has ? null : 'muted' },
          has ? format(Number(value)) : t(state.lang, 'no_data')),
      ];
    }))
    : el('p', { class: 'muted', 'data-field': 'figures-pending' },
      state.selectedCategories.size ? t(state.lang, 'fig_loading') : t(state.lang, 'count_none_selected'));
  return el('section', { class: 'panel-section', id: 'figures-section' },
    el('h3', {}, t(state.lang, 'figures')),
    el('p', { class: 'figures-period muted' }, periodLabel()),
    body);
}

/** Re-draws the figures in place when new grid tiles arrive (the filter or the view changed). */
function scheduleFigures() {
  if (!state.selected) return;
  clearTimeout(state.figuresTimer);
  state.figuresTimer = setTimeout(() => {
    const node = document.getElementById('figures-section');
    if (!node || !state.selected) return;
    const level = state.detail?.level ?? state.regionByCode.get(state.selected)?.properties.level;
    const fresh = figuresSection(state.selected, level);
    if (fresh) node.replaceWith(fresh);
  }, 120);
}

/** The selected region's trend under the category and date filters, at the slider's interval. */
async function loadRegionTrend() {
  const code = state.selected;
  if (!code) return;
  if (state.selectedCategories.size === 0) {
    state.regionTrend = { key: null, code, data: { buckets: [] } };
    renderTrendSection();
    return;
  }
  const key = trendPath({ region: code });
  if (state.regionTrend?.key === key) return;
  state.regionTrendAbort?.abort();
  const abort = new AbortController();
  state.regionTrendAbort = abort;
  state.regionTrend = { key, code };
  renderTrendSection();
  try {
    const data = await getJson(key, { signal: abort.signal });
    if (abort.signal.aborted || state.selected !== code) return;
    state.regionTrend = { key, code, data };
  } catch (err) {
    if (err.name === 'AbortError') return;
    state.regionTrend = { key, code, error: err.message };
    showError(err);
  }
  renderTrendSection();
}

function renderTrendSection() {
  const node = document.getElementById('trend-section');
  if (node) node.replaceWith(trendSection());
}

/** Only the highlighted bar changes when the slider moves. */
function renderTrendHighlight() {
  const current = state.buckets[state.bucketIndex]?.start ?? null;
  for (const bar of document.querySelectorAll('#trend-section .trend-bar')) {
    bar.classList.toggle('current', bar.dataset.start === current);
  }
  const period = document.querySelector('#figures-section .figures-period');
  if (period) period.textContent = periodLabel();
}

function trendSection() {
  const trend = state.regionTrend?.code === state.selected ? state.regionTrend : null;
  const title = t(state.lang, state.interval === 'week' ? 'trend_week' : 'trend_month');
  let body;
  if (!trend || (!trend.data && !trend.error)) {
    body = el('p', { class: 'muted loading' }, t(state.lang, 'trend_loading'));
  } else if (trend.error) {
    body = el('p', { class: 'warning' }, trend.error);
  } else {
    const buckets = trend.data.buckets ?? [];
    const total = buckets.reduce((sum, b) => sum + b.reports, 0);
    const closed = buckets.reduce((sum, b) => sum + b.closed, 0);
    const name = state.detail?.name ?? state.regionByCode.get(state.selected)?.properties.name ?? state.selected;
    body = [
      el('p', { class: 'trend-total', 'data-field': 'trend-total', dataset: { total: String(total), closed: String(closed) } },
        t(state.lang, 'trend_total', { n: formatNumber(state.lang, total), closed: formatNumber(state.lang, closed) })),
      total ? trendChart(buckets, t(state.lang, 'trend_chart_label', { name })) : el('p', { class: 'muted' }, t(state.lang, 'trend_empty')),
      total ? el('p', { class: 'trend-key' },
        el('span', { class: 'key-swatch reports' }), t(state.lang, 'trend_reports'),
        el('span', { class: 'key-swatch closed' }), t(state.lang, 'trend_closed'),
        el('span', { class: 'muted trend-hint' }, t(state.lang, 'trend_hint'))) : null,
      trend.data.suppressed_below
        ? el('p', { class: 'muted', 'data-field': 'trend-suppressed' }, t(state.lang, 'trend_suppressed', { n: trend.data.suppressed_below }))
        : null,
    ];
  }
  return el('section', { class: 'panel-section', id: 'trend-section' }, el('h3', {}, title), body);
}

/** A nice round top for the chart's axis: 1, 2, 2.5 or 5 times a power of ten, at least `v`. */
function niceCeil(v) {
  if (v <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const s of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (s * power >= v) return s * power;
  return 10 * power;
}

/**
 * Bars of reports per bucket, each with its closed reports drawn over its lower part; the bucket on
 * the map is highlighted, and a click on a bar shows that bucket on the map.
 */
function trendChart(buckets, label) {
  const W = 300, H = 128, left = 30, right = 6, top = 8, bottom = 20;
  const plotW = W - left - right, plotH = H - top - bottom;
  const n = buckets.length;
  const top_ = niceCeil(Math.max(...buckets.map((b) => b.reports)));
  const y = (v) => top + plotH - (plotH * v) / top_;
  const slot = plotW / n;
  const gap = Math.min(1.5, slot * 0.18);
  const current = state.buckets[state.bucketIndex]?.start ?? null;
  const grid = [0, top_ / 2, top_].map((v) => svgEl('g', { class: 'trend-grid' },
    svgEl('line', { x1: left, x2: W - right, y1: y(v), y2: y(v) }),
    svgEl('text', { x: left - 4, y: y(v) + 3.5, 'text-anchor': 'end' }, formatNumber(state.lang, v))));
  const bars = buckets.map((bucket, i) => {
    const x = left + i * slot + gap;
    const w = Math.max(0.8, slot - 2 * gap);
    const text = t(state.lang, 'trend_bar', {
      period: bucketLabel(bucket.start),
      n: formatNumber(state.lang, bucket.reports),
      closed: formatNumber(state.lang, bucket.closed),
    });
    return svgEl('g', {
      class: bucket.start === current ? 'trend-bar current' : 'trend-bar',
      'data-start': bucket.start, 'data-reports': bucket.reports, 'data-closed': bucket.closed,
      onclick: () => showBucketOf(bucket.start),
    },
    svgEl('title', {}, text),
    svgEl('rect', { class: 'hit', x: left + i * slot, y: top, width: slot, height: plotH }),
    svgEl('rect', { class: 'reports', x, y: y(bucket.reports), width: w, height: (plotH * bucket.reports) / top_ }),
    svgEl('rect', { class: 'closed', x, y: y(bucket.closed), width: w, height: (plotH * bucket.closed) / top_ }));
  });
  const centre = (i) => left + (i + 0.5) * slot;
  const ticks = n > 1 ? [0, n - 1] : [0];
  if (n >= 7) ticks.splice(1, 0, Math.round((n - 1) / 2));
  const labels = ticks.map((i, k) => svgEl('text', {
    class: 'trend-x', x: centre(i), y: H - 6,
    'text-anchor': ticks.length > 1 && k === 0 ? 'start' : ticks.length > 1 && k === ticks.length - 1 ? 'end' : 'middle',
    dx: ticks.length > 1 && k === 0 ? -slot / 2 : ticks.length > 1 && k === ticks.length - 1 ? slot / 2 : 0,
  }, bucketLabel(buckets[i].start, { short: true })));
  return svgEl('svg', {
    class: 'trend-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, 'data-field': 'trend-chart',
    'data-buckets': n,
  }, svgEl('title', {}, label), grid, bars, labels);
}

/** A trend bar was clicked: show its bucket on the map, if the timeline has it. */
function showBucketOf(start) {
  const index = state.buckets.findIndex((b) => b.start === start);
  if (index < 0) return;
  pause();
  setBucket(index);
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
  renderMeasureOptions();
  renderChoroplethLegend();
  renderHotspotLegend();
  renderTimeline();
  renderCount();
  renderZoomHint();
  renderPanel();
  renderRising();
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
  scheduleRefresh();
}

function setAllCategories(selected) {
  state.selectedCategories = new Set(selected ? state.categories.map((c) => c.code) : []);
  for (const box of document.querySelectorAll('#category-list input[type=checkbox]')) box.checked = selected;
  scheduleRefresh();
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
  if (!invalid) scheduleRefresh();
}

/** Coalesce quick clicks into one request; the newest request always wins. */
function scheduleRefresh() {
  pause();
  clearTimeout(state.refreshTimer);
  state.count = null;
  renderCount();
  state.refreshTimer = setTimeout(() => {
    refreshTrend().catch((err) => { if (err.name !== 'AbortError') showError(err); });
  }, 200);
}

/**
 * The city's trend under the category and date filters: the timeline's steps, and the count of
 * reports shown (the sum of its buckets, or the bucket's). Then the tiles follow.
 */
async function refreshTrend({ interval = state.interval, keep = state.bucketIndex >= 0 ? shownRange().from : null } = {}) {
  state.trendAbort?.abort();
  if (state.selectedCategories.size === 0) {
    // The API has no way to say "no category"; an empty selection simply shows nothing.
    state.interval = interval;
    state.buckets = [];
    state.bucketIndex = -1;
    applyFilter();
    loadRegionTrend();
    return;
  }
  const abort = new AbortController();
  state.trendAbort = abort;
  const trend = await getJson(trendPath({ interval }), { signal: abort.signal });
  if (abort.signal.aborted) return;
  state.interval = interval;
  setBuckets(trend.buckets ?? [], keep);
  applyFilter();
  loadRegionTrend();
  clearError();
}

/** New timeline steps; the slider stays on the bucket holding `keepStart`, if there is one. */
function setBuckets(buckets, keepStart) {
  state.buckets = buckets;
  if (keepStart === null) {
    state.bucketIndex = -1;
    return;
  }
  let index = -1;
  buckets.forEach((bucket, i) => { if (bucket.start <= keepStart) index = i; });
  state.bucketIndex = index >= 0 && keepStart <= bucketEnd(buckets[index].start) ? index : -1;
}

function shownCount() {
  if (state.selectedCategories.size === 0) return 0;
  const bucket = state.buckets[state.bucketIndex];
  if (bucket) return bucket.reports;
  return state.buckets.reduce((sum, b) => sum + b.reports, 0);
}

/**
 * Points both tile sources at the filter shown, and redraws what depends on it.
 *
 * Style changes come first, the new tile URLs last. MapLibre (6.17) pauses a source while one of
 * its layers is being updated (a visibility change, a data-driven paint such as the choropleth's
 * colours) and drops a `setTiles` that lands in that pause: it then reloads the tiles it has
 * instead of fetching the new ones. Changed first, the style's update is queued before the
 * source's reload, which then finds the source running again.
 */
function applyFilter() {
  state.count = shownCount();
  const map = state.map;
  if (map?.getSource('incidents')) {
    map.setPaintProperty('reports-heat', 'heatmap-intensity', heatIntensity(state.count));
    updateLayerVisibility();
    updateChoropleth();
    const query = tileQuery();
    // No category at all cannot be asked for (an empty list means every category); the layers
    // are hidden then, and the tiles stay as they were.
    if (query !== state.tileQuery && state.selectedCategories.size > 0) {
      state.tileQuery = query;
      map.getSource('incidents').setTiles([tileUrl('incidents', query)]);
      map.getSource('grids').setTiles([tileUrl('grids', query)]);
    }
  }
  renderCount();
  renderTimeline();
  renderTrendHighlight();
  refreshHotspots();
  refreshRising();
}

function updateLayerVisibility() {
  const any = state.selectedCategories.size > 0;
  const set = (layer, on) => {
    const value = on ? 'visible' : 'none';
    // Only real changes: each one is a layer update, which pauses the layer's source (above).
    if (state.map.getLayoutProperty(layer, 'visibility') !== value) state.map.setLayoutProperty(layer, 'visibility', value);
  };
  set('reports-heat', any && state.heatOn);
  set('reports-point', any);
}

// ---------------------------------------------------------------------------------------------
// The timeline

/** Shows bucket `index` (-1: all time); `defer` while dragging, so tiles follow once it rests. */
function setBucket(index, { defer = false } = {}) {
  state.bucketIndex = index >= 0 && index < state.buckets.length ? index : -1;
  // The rising list follows the timeline again, whatever day was picked in it.
  state.rising.at = null;
  clearTimeout(state.dragTimer);
  if (defer) {
    state.count = shownCount();
    renderCount();
    renderTimeline();
    state.dragTimer = setTimeout(applyFilter, DRAG_SETTLE_MS);
  } else {
    applyFilter();
  }
}

function step(delta) {
  pause();
  const n = state.buckets.length;
  if (!n) return;
  if (state.bucketIndex < 0) setBucket(delta > 0 ? 0 : n - 1);
  else setBucket(Math.max(0, Math.min(n - 1, state.bucketIndex + delta)));
}

/** Weeks or months; the slider moves to the week holding the month's first day, or the month
 * holding the week's Monday. */
function chooseInterval(interval) {
  if (!INTERVALS.includes(interval) || interval === state.interval) return;
  pause();
  clearTimeout(state.refreshTimer);
  for (const button of document.querySelectorAll('#timeline [data-interval]')) {
    button.setAttribute('aria-pressed', String(button.dataset.interval === interval));
  }
  refreshTrend({ interval }).catch((err) => { if (err.name !== 'AbortError') showError(err); });
}

function togglePlay() {
  if (state.playing) pause();
  else play();
}

function play() {
  const n = state.buckets.length;
  if (!n) return;
  state.playing = true;
  if (state.bucketIndex < 0 || state.bucketIndex >= n - 1) setBucket(0);
  renderTimeline();
  holdThenAdvance();
}

function pause() {
  if (!state.playing) return;
  state.playing = false;
  state.playToken += 1;
  clearTimeout(state.playTimer);
  renderTimeline();
}

/** While playing: once the map has drawn this step's tiles, hold it a moment, then the next. */
function holdThenAdvance() {
  const token = ++state.playToken;
  mapSettled().then(() => {
    if (token !== state.playToken || !state.playing) return;
    state.playTimer = setTimeout(() => {
      if (token !== state.playToken || !state.playing) return;
      if (state.bucketIndex >= state.buckets.length - 1) {
        pause();
        return;
      }
      setBucket(state.bucketIndex + 1);
      holdThenAdvance();
    }, PLAY_HOLD_MS);
  });
}

/** Resolves when the map has loaded what it asked for (at most a few seconds from now). */
function mapSettled() {
  const map = state.map;
  return new Promise((resolve) => {
    requestAnimationFrame(() => {
      if (map.loaded()) { resolve(); return; }
      const timer = setTimeout(resolve, 5000);
      map.once('idle', () => { clearTimeout(timer); resolve(); });
    });
  });
}

function renderTimeline() {
  const root = $('timeline');
  const n = state.buckets.length;
  const all = state.bucketIndex < 0;
  root.dataset.mode = all ? 'all' : 'bucket';
  root.dataset.interval = state.interval;
  root.classList.toggle('playing', state.playing);
  for (const button of root.querySelectorAll('[data-interval]')) {
    button.setAttribute('aria-pressed', String(button.dataset.interval === state.interval));
  }
  const range = $('tl-range');
  range.max = String(Math.max(0, n - 1));
  if (!all) range.value = String(state.bucketIndex);
  range.disabled = n === 0;
  const label = periodLabel();
  range.setAttribute('aria-valuetext', label);
  const status = all ? spanLabel() : label;
  $('tl-all').setAttribute('aria-pressed', String(all));
  $('tl-prev').disabled = n === 0 || state.bucketIndex === 0;
  $('tl-next').disabled = n === 0 || state.bucketIndex === n - 1;
  $('tl-play').disabled = n === 0;
  const play = $('tl-play');
  play.setAttribute('aria-pressed', String(state.playing));
  const playLabel = t(state.lang, state.playing ? 'tl_pause' : 'tl_play');
  play.setAttribute('aria-label', playLabel);
  play.title = playLabel;
  const output = $('tl-label');
  output.textContent = state.count === null && n === 0
    ? t(state.lang, 'tl_loading')
    : t(state.lang, 'tl_status', { period: status, n: formatNumber(state.lang, state.count ?? shownCount()) });
  output.dataset.from = shownRange().from ?? '';
  output.dataset.to = shownRange().to ?? '';
  renderSpark();
}

/** The city's reports per bucket, drawn behind the slider's track. */
function renderSpark() {
  const svg = $('tl-spark');
  const n = state.buckets.length;
  const max = Math.max(1, ...state.buckets.map((b) => b.reports));
  svg.setAttribute('viewBox', `0 0 ${Math.max(n, 1)} 100`);
  const bars = state.buckets.map((bucket, i) => {
    const h = bucket.reports ? Math.max(4, (100 * bucket.reports) / max) : 0;
    return svgEl('rect', {
      x: i + 0.12, y: 100 - h, width: 0.76, height: h,
      class: i === state.bucketIndex ? 'spark-bar current' : 'spark-bar',
    });
  });
  svg.replaceChildren(...bars);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// The choropleth

/** A "nice" number near `v`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten. */
function niceNumber(v) {
  if (!(v > 0)) return 0;
  const power = 10 ** Math.floor(Math.log10(v));
  const steps = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
  let best = steps[0];
  for (const s of steps) if (Math.abs(s * power - v) < Math.abs(best * power - v)) best = s;
  return best * power;
}

/** Four limits around the mean per grid (half, once, 1.5 and 2.5 times it), rounded nicely. */
function scaledBreaks(mean, integer) {
  const m = mean > 0 ? mean : 1;
  const breaks = [];
  for (const k of [0.5, 1, 1.5, 2.5]) {
    let b = niceNumber(m * k);
    if (integer) b = Math.max(1, Math.ceil(b));
    const previous = breaks[breaks.length - 1];
    if (previous !== undefined && b <= previous) b = integer ? previous + 1 : niceNumber(previous * 1.5);
    breaks.push(b);
  }
  return breaks;
}

function choroplethClasses(measure) {
  const spec = MEASURES[measure];
  const count = state.count ?? 0;
  const breaks = spec.breaks({
    meanReports: state.gridCount ? count / state.gridCount : 0,
    meanDensity: state.gridAreaKm2 ? count / state.gridAreaKm2 : 0,
  });
  return { measure, breaks, colours: spec.colours, integer: !!spec.integer, rate: !!spec.rate };
}

function choroplethColour(classes) {
  const value = ['to-number', ['get', classes.measure]];
  const stepped = ['step', value, classes.colours[0]];
  classes.breaks.forEach((b, i) => stepped.push(b, classes.colours[i + 1]));
  // Absent (a rate with nothing to rate): "no data", never the lowest class.
  return ['case', ['has', classes.measure], stepped, NO_DATA_COLOUR];
}

function updateChoropleth() {
  const map = state.map;
  if (!map?.getLayer('grid-choropleth')) return;
  const on = state.measure !== 'off' && state.selectedCategories.size > 0;
  if (on) {
    const classes = choroplethClasses(state.measure);
    const changed = JSON.stringify(classes) !== JSON.stringify(state.classes);
    state.classes = classes;
    if (changed) map.setPaintProperty('grid-choropleth', 'fill-color', choroplethColour(classes));
    map.setPaintProperty('grid-choropleth', 'fill-opacity', interpolateZoom([10, 0.85, 14, 0.72, 17, 0.55]));
  } else {
    state.classes = null;
    map.setPaintProperty('grid-choropleth', 'fill-opacity', 0);
  }
  renderChoroplethLegend();
}

function setMeasure(measure) {
  const previous = state.measure;
  state.measure = MEASURE_KEYS.includes(measure) ? measure : 'off';
  // The heat over a choropleth muddles both; turning the choropleth on sets the heat aside (its
  // switch brings it back), and turning it off brings the heat back.
  if (previous === 'off' && state.measure !== 'off') state.heatOn = false;
  if (state.measure === 'off' && !state.hotspotsOn) state.heatOn = true;
  $('heat-toggle').checked = state.heatOn;
  $('choropleth-measure').value = state.measure;
  updateLayerVisibility();
  updateChoropleth();
}

function formatValue(value, { rate = false, integer = false } = {}) {
  if (rate) return `${formatNumber(state.lang, Math.round(value * 1000) / 10)}%`;
  if (integer) return formatNumber(state.lang, value);
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return formatNumber(state.lang, Number(value.toFixed(digits)));
}

/** The legend's class labels: "0", "1–2", "≥ 6" for counts, "< 60%", "60–80%" for rates. */
function classLabels(classes) {
  const f = (v) => formatValue(v, classes);
  const { breaks } = classes;
  return classes.colours.map((_, i) => {
    const lo = i === 0 ? null : breaks[i - 1];
    const hi = i < breaks.length ? breaks[i] : null;
    if (lo === null) {
      if (classes.integer) return hi - 1 <= 0 ? f(0) : `0–${f(hi - 1)}`;
      return `< ${f(hi)}`;
    }
    if (hi === null) return `≥ ${f(lo)}`;
    if (classes.integer) return hi - 1 === lo ? f(lo) : `${f(lo)}–${f(hi - 1)}`;
    return `${f(lo)}–${f(hi)}`;
  });
}

function renderMeasureOptions() {
  const select = $('choropleth-measure');
  select.replaceChildren(...['off', ...MEASURE_KEYS].map((key) => el('option', { value: key, selected: key === state.measure },
    t(state.lang, `measure_${key}`))));
  select.setAttribute('aria-label', t(state.lang, 'choropleth_label'));
  select.title = t(state.lang, 'choropleth_label');
  $('heat-toggle').setAttribute('aria-label', t(state.lang, 'heat_toggle_label'));
  $('heat-toggle').title = t(state.lang, 'heat_toggle_label');
}

function renderChoroplethLegend() {
  const box = $('choropleth-legend');
  const classes = state.classes;
  box.hidden = !classes;
  $('legend').dataset.measure = classes?.measure ?? 'off';
  if (!classes) { box.replaceChildren(); return; }
  const labels = classLabels(classes);
  const items = classes.colours.map((colour, i) => el('li', {
    class: 'class-item',
    dataset: {
      colour,
      min: i === 0 ? '' : String(classes.breaks[i - 1]),
      max: i < classes.breaks.length ? String(classes.breaks[i]) : '',
    },
  }, el('span', { class: 'class-swatch', style: `background:${colour}` }), el('span', { class: 'class-label' }, labels[i])));
  items.push(el('li', { class: 'class-item no-data', dataset: { colour: NO_DATA_COLOUR, noData: 'true' } },
    el('span', { class: 'class-swatch', style: `background:${NO_DATA_COLOUR}` }),
    el('span', { class: 'class-label' }, t(state.lang, 'no_data'))));
  box.replaceChildren(
    el('p', { class: 'class-note' }, t(state.lang, `note_${classes.measure}`), el('span', { class: 'muted' }, ` · ${periodLabel()}`)),
    el('ul', { class: 'class-list', 'data-measure': classes.measure }, items));
}

// ---------------------------------------------------------------------------------------------
// Hot and cold spots (GET /api/v1/hotspots), drawn as a feature-state of the grids tiles

/** The hot spots query: the tiles' filter (categories and the time shown) and the method. */
function hotspotPath() {
  const { from, to } = shownRange();
  const params = [...categoryParams(), ...dateParams(from, to),
    `permutations=${HOTSPOT_PERMUTATIONS}`, `alpha=${HOTSPOT_ALPHA}`];
  return `hotspots?${params.join('&')}`;
}

/** Marks the answer's hot and cold grids on the grids source; every other grid is left plain. */
function setHotspotStates(grids) {
  const map = state.map;
  if (!map?.getSource('grids')) return;
  map.removeFeatureState({ source: 'grids', sourceLayer: 'grids' });
  state.hotspotByCode = new Map();
  for (const grid of grids) {
    if (grid.class !== 'hot' && grid.class !== 'cold') continue;
    state.hotspotByCode.set(grid.code, grid);
    map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: grid.code }, { spot: grid.class });
  }
}

/** Asks for the spots of the filter shown, unless they are already drawn; the newest ask wins. */
async function refreshHotspots() {
  if (!state.hotspotsOn || !state.map?.getLayer('grid-hotspot-fill')) return;
  if (state.selectedCategories.size === 0) {
    state.hotspotAbort?.abort();
    setHotspotStates([]);
    state.hotspots = { key: null, none: true };
    renderHotspotLegend();
    return;
  }
  const key = hotspotPath();
  if (state.hotspots?.key === key && !state.hotspots.error) return;
  state.hotspotAbort?.abort();
  const abort = new AbortController();
  state.hotspotAbort = abort;
  // The spots drawn stay until the new answer replaces them; the legend says it is computing.
  state.hotspots = { key };
  renderHotspotLegend();
  const started = performance.now();
  try {
    const data = await getJson(key, { signal: abort.signal });
    if (abort.signal.aborted || !state.hotspotsOn) return;
    state.hotspots = { key, data, ms: Math.round(performance.now() - started) };
    setHotspotStates(data.grids ?? []);
  } catch (err) {
    if (err.name === 'AbortError') return;
    state.hotspots = { key, error: err.message };
    setHotspotStates([]);
    showError(err);
  }
  renderHotspotLegend();
}

function setHotspots(on) {
  state.hotspotsOn = on;
  $('hotspot-toggle').checked = on;
  // Switched before the map is up: start() draws them once their layers exist.
  if (!state.map?.getLayer('grid-hotspot-fill')) return;
  // As with the choropleth, the heat over the spots muddles both: it steps aside (its switch
  // brings it back), and comes back when neither is on.
  if (on) state.heatOn = false;
  else if (state.measure === 'off') state.heatOn = true;
  $('heat-toggle').checked = state.heatOn;
  for (const id of ['grid-hotspot-fill', 'grid-hotspot-line']) {
    state.map.setLayoutProperty(id, 'visibility', on ? 'visible' : 'none');
  }
  updateLayerVisibility();
  if (on) {
    refreshHotspots();
  } else {
    state.hotspotAbort?.abort();
    state.hotspots = null;
    setHotspotStates([]);
    renderHotspotLegend();
  }
}

function renderHotspotLegend() {
  const box = $('hotspot-legend');
  const hs = state.hotspots;
  box.hidden = !state.hotspotsOn;
  $('legend').dataset.hotspots = !state.hotspotsOn ? 'off'
    : hs?.data ? 'ready' : hs?.error ? 'error' : hs?.none ? 'none' : 'loading';
  $('hotspot-toggle').checked = state.hotspotsOn;
  if (!state.hotspotsOn) { setChildren(box); return; }
  if (hs?.none) {
    setChildren(box, el('p', { class: 'hotspot-note muted' }, t(state.lang, 'count_none_selected')));
    return;
  }
  if (hs?.error) {
    setChildren(box, el('p', { class: 'warning' }, hs.error));
    return;
  }
  if (!hs?.data) {
    setChildren(box, el('p', { class: 'hotspot-note muted loading' }, t(state.lang, 'hotspot_loading')));
    return;
  }
  const { hot, cold, alpha, permutations } = hs.data;
  const method = permutations > 0
    ? t(state.lang, 'hotspot_method', { alpha, perms: permutations })
    : t(state.lang, 'hotspot_method_norm', { alpha });
  setChildren(box,
    el('p', { class: 'hotspot-counts', 'data-field': 'hotspot-counts', dataset: { hot: String(hot), cold: String(cold) } },
      el('span', { class: 'spot-key' }, el('span', { class: 'spot-swatch hot', 'aria-hidden': 'true' }),
        t(state.lang, 'hotspot_hot', { n: formatNumber(state.lang, hot) })),
      el('span', { class: 'spot-sep' }, ' / '),
      el('span', { class: 'spot-key' }, el('span', { class: 'spot-swatch cold', 'aria-hidden': 'true' }),
        t(state.lang, 'hotspot_cold', { n: formatNumber(state.lang, cold) })),
      el('span', { class: 'spot-method' }, method)),
    hot + cold === 0 ? el('p', { class: 'hotspot-none', 'data-field': 'hotspot-none' }, t(state.lang, 'hotspot_none')) : null,
    el('p', { class: 'hotspot-period muted' }, periodLabel()));
}

// ---------------------------------------------------------------------------------------------
// The rising list (GET /api/v1/emerging)

/** Today as the city counts it ('YYYY-MM-DD', China time; Sweden's locale writes ISO dates). */
function todayChina() {
  return new Intl.DateTimeFormat('sv-SE', { timeZone: 'Asia/Shanghai' }).format(new Date());
}

function addDays(day, n) {
  const date = parseDay(day);
  date.setUTCDate(date.getUTCDate() + n);
  return dayString(date);
}

function risingPeriod() {
  return state.rising.period ?? state.interval;
}

/**
 * The day whose week or month the list shows, and where it comes from: a day the user picked, the
 * end of the timeline's period, the end of the date filter, or (null) today as the server sees it.
 */
function risingAt() {
  const today = todayChina();
  const notAfterToday = (day) => (day > today ? today : day);
  if (state.rising.at) return { at: state.rising.at, source: 'picked' };
  if (state.buckets[state.bucketIndex]) return { at: notAfterToday(shownRange().to), source: 'timeline' };
  if (state.dateTo) return { at: notAfterToday(state.dateTo), source: 'filter' };
  return { at: null, source: 'today' };
}

function risingPath(at) {
  const params = [`period=${risingPeriod()}`];
  if (at) params.push(`at=${encodeURIComponent(at)}`);
  params.push(...categoryParams());
  return `emerging?${params.join('&')}`;
}

/** The last day of the latest timeline bucket with reports (not after today), or null. */
function latestReportDay() {
  const last = [...state.buckets].reverse().find((bucket) => bucket.reports > 0);
  if (!last) return null;
  const end = bucketEnd(last.start);
  const today = todayChina();
  return end > today ? today : end;
}

async function refreshRising() {
  const r = state.rising;
  if (!r.open || !state.categories.length) return; // opened before start-up: start() asks
  if (state.selectedCategories.size === 0) {
    state.risingAbort?.abort();
    Object.assign(r, { key: null, data: null, error: null, loading: false, none: true });
    renderRising();
    return;
  }
  const { at, source } = risingAt();
  const key = risingPath(at);
  if (r.key === key && (r.data || r.loading) && !r.error) return;
  state.risingAbort?.abort();
  const abort = new AbortController();
  state.risingAbort = abort;
  Object.assign(r, { key, source, loading: true, error: null, none: false });
  renderRising();
  try {
    let path = key;
    let data = await getJson(path, { signal: abort.signal });
    let fallback = false;
    // Nothing at all reported yet in today's period (a new week just begun, or demo data that
    // ends earlier): show the latest period with reports instead, and say so.
    if (source === 'today' && (data.rows ?? []).length === 0) {
      const before = addDays(data.current.from, -1);
      const latest = latestReportDay();
      path = risingPath(latest && latest < before ? latest : before);
      data = await getJson(path, { signal: abort.signal });
      fallback = true;
    }
    Object.assign(r, { data, path, fallback, loading: false });
  } catch (err) {
    if (err.name === 'AbortError') return;
    Object.assign(r, { data: null, path: null, loading: false, error: err.message });
    showError(err);
  }
  renderRising();
}

function setRisingOpen(open) {
  state.rising.open = open;
  if (!open) {
    state.risingAbort?.abort();
    state.rising.loading = false;
  }
  renderRising();
  if (open) {
    refreshRising();
    $('rising-title').focus({ preventScroll: true });
  }
}

/** "2026年10月" / "Oct 2026" for a month window, "2026年10月26日至11月1日" / "26 Oct – 1 Nov 2026" for a week. */
function windowLabel(period, window) {
  return period === 'month' ? MONTH_FORMAT().format(parseDay(window.from)) : rangeLabel(window.from, window.to);
}

function showRisingRow(row) {
  state.rising.selected = `${row.grid.code}|${row.category}`;
  renderRising();
  // On a phone the list and the region sheet cannot share the screen: the sheet wins.
  if (isNarrow()) setRisingOpen(false);
  selectRegion(row.grid.code, { fit: true });
}

function risingRow(row) {
  const colour = state.categoryIndex.get(row.category)?.colour ?? '#888888';
  const key = `${row.grid.code}|${row.category}`;
  const selected = state.rising.selected === key;
  const n = (v) => formatNumber(state.lang, v);
  const title = t(state.lang, 'rising_row_title', {
    grid: regionTitle(row.grid.name, row.grid.code),
    category: categoryName(row.category),
    current: n(row.current),
    previous: n(row.previous),
    last_year: n(row.last_year),
    p: row.p < 0.001 ? row.p.toExponential(1) : row.p.toFixed(3),
  });
  return el('li', {}, el('button', {
    type: 'button',
    class: selected ? 'rising-row selected' : 'rising-row',
    title,
    'aria-label': title,
    'aria-current': selected ? 'true' : null,
    dataset: {
      code: row.grid.code, category: row.category,
      current: String(row.current), previous: String(row.previous), lastYear: String(row.last_year),
    },
    onclick: () => showRisingRow(row),
  },
  el('span', { class: 'rise-main' },
    el('span', { class: 'rise-grid' }, row.grid.name),
    el('span', { class: 'rise-cat' },
      el('span', { class: 'swatch', style: `background:${colour}`, 'aria-hidden': 'true' }),
      el('span', {}, categoryName(row.category)),
      state.lang === 'en' ? el('code', { class: 'rise-code' }, row.grid.code) : null)),
  el('span', { class: 'rise-figures' },
    el('span', { class: 'rise-current' }, el('span', { class: 'rise-now' }, t(state.lang, 'rising_now')), n(row.current)),
    el('span', { class: 'rise-base' },
      `${t(state.lang, 'rising_before', { n: n(row.previous) })} · ${t(state.lang, 'rising_last_year', { n: n(row.last_year) })}`))));
}

function renderRising() {
  const r = state.rising;
  const panel = $('rising-panel');
  panel.hidden = !r.open;
  document.body.classList.toggle('rising-open', r.open);
  $('rising-toggle').setAttribute('aria-pressed', String(r.open));
  if (!r.open) return;
  const period = risingPeriod();
  for (const button of panel.querySelectorAll('[data-period]')) {
    button.setAttribute('aria-pressed', String(button.dataset.period === period));
  }
  const data = r.data;
  const body = $('rising-body');
  const win = $('rising-window');
  const summary = $('rising-summary');
  body.setAttribute('aria-busy', String(!!r.loading));
  body.classList.toggle('loading', !!r.loading);
  body.dataset.request = data && r.path ? `${API}/${r.path}` : '';
  $('rising-prev').disabled = !data || r.loading;
  $('rising-next').disabled = !data || r.loading || data.current.to >= todayChina();
  const at = $('rising-at');
  at.value = r.at ?? (data ? (risingAt().at ?? (data.current.to < todayChina() ? data.current.to : todayChina())) : '');

  if (r.none) {
    win.textContent = '';
    setChildren(summary);
    setChildren(body, el('p', { class: 'muted' }, t(state.lang, 'count_none_selected')));
    return;
  }
  if (r.error) {
    win.textContent = '';
    setChildren(summary);
    setChildren(body, el('p', { class: 'warning' }, r.error));
    return;
  }
  if (!data) {
    win.textContent = t(state.lang, 'rising_loading');
    setChildren(summary);
    setChildren(body);
    return;
  }
  win.textContent = windowLabel(data.period, data.current);
  win.dataset.from = data.current.from;
  win.dataset.to = data.current.to;
  const compared = t(state.lang, 'rising_compared', {
    previous: windowLabel(data.period, data.previous),
    last_year: windowLabel(data.period, data.last_year),
  });
  win.title = compared;

  const source = r.fallback ? null
    : r.source === 'timeline' ? el('span', { class: 'rising-source' }, t(state.lang, 'rising_follows'))
      : r.source === 'picked' ? el('button', {
        type: 'button', class: 'link-btn rising-source',
        onclick: () => { state.rising.at = null; refreshRising(); },
      }, t(state.lang, state.buckets[state.bucketIndex] ? 'rising_back' : 'rising_back_today'))
        : null;
  setChildren(summary,
    el('strong', { 'data-field': 'rising-count', class: data.rising ? null : 'none', dataset: { rising: String(data.rising) } },
      t(state.lang, 'rising_summary', { n: formatNumber(state.lang, data.rising) })),
    source ? [' · ', source] : null);

  const rows = (data.rows ?? []).filter((row) => row.rising);
  setChildren(body,
    r.fallback ? el('p', { class: 'rising-fallback' }, t(state.lang, 'rising_fallback')) : null,
    el('p', { class: 'rising-compared muted' }, compared),
    rows.length
      ? el('ol', { class: 'rising-list', 'aria-label': t(state.lang, 'rising_list_label') }, rows.map(risingRow))
      : el('p', { class: 'muted rising-none', 'data-field': 'rising-none' }, t(state.lang, 'rising_none')));
}

// ---------------------------------------------------------------------------------------------
// Layout

function isNarrow() {
  return window.matchMedia('(max-width: 720px)').matches;
}

function reducedMotion() {
  return window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

/** The right edge of the panel on the left: the rising list while it is open, else the filters. */
function leftPanelRight() {
  return $(state.rising.open ? 'rising-panel' : 'filters').getBoundingClientRect().right;
}

/** Keep what we fit to out from under the floating panels (and the timeline along the bottom). */
function mapPadding() {
  const timeline = Math.max(24, Math.round($('map').getBoundingClientRect().bottom - $('timeline').getBoundingClientRect().top) + 12);
  if (isNarrow()) return { top: 56, bottom: state.selected ? window.innerHeight * 0.45 : timeline, left: 24, right: 24 };
  return {
    top: 32,
    bottom: timeline,
    left: Math.round(leftPanelRight()) + 16,
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
  for (const button of document.querySelectorAll('#timeline [data-interval]')) {
    button.addEventListener('click', () => chooseInterval(button.dataset.interval));
  }
  $('tl-play').addEventListener('click', togglePlay);
  $('tl-prev').addEventListener('click', () => step(-1));
  $('tl-next').addEventListener('click', () => step(1));
  $('tl-all').addEventListener('click', () => { pause(); setBucket(-1); });
  $('tl-range').addEventListener('input', (event) => { pause(); setBucket(Number(event.target.value), { defer: true }); });
  $('tl-range').addEventListener('change', (event) => setBucket(Number(event.target.value)));
  // In "all time" the thumb rests where it was: a click on it, or a key that cannot move it
  // further (End at the end), still means "this period".
  const pickResting = (event) => {
    if (state.bucketIndex < 0 && state.buckets.length) setBucket(Number(event.target.value));
  };
  $('tl-range').addEventListener('click', pickResting);
  $('tl-range').addEventListener('keyup', (event) => {
    if (['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'].includes(event.key)) pickResting(event);
  });
  $('choropleth-measure').addEventListener('change', (event) => setMeasure(event.target.value));
  $('heat-toggle').addEventListener('change', (event) => {
    state.heatOn = event.target.checked;
    updateLayerVisibility();
  });
  $('hotspot-toggle').addEventListener('change', (event) => setHotspots(event.target.checked));
  $('rising-toggle').addEventListener('click', () => setRisingOpen(!state.rising.open));
  $('rising-close').addEventListener('click', () => setRisingOpen(false));
  for (const button of document.querySelectorAll('#rising-panel [data-period]')) {
    button.addEventListener('click', () => {
      if (!RISING_PERIODS.includes(button.dataset.period)) return;
      state.rising.period = button.dataset.period;
      refreshRising();
    });
  }
  $('rising-at').addEventListener('change', (event) => {
    state.rising.at = event.target.value || null;
    refreshRising();
  });
  $('rising-prev').addEventListener('click', () => {
    const data = state.rising.data;
    if (!data) return;
    state.rising.at = addDays(data.current.from, -1);
    refreshRising();
  });
  $('rising-next').addEventListener('click', () => {
    const data = state.rising.data;
    if (!data) return;
    state.rising.at = addDays(data.current.to, 1);
    refreshRising();
  });
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

  const [config, user] = await Promise.all([getJson('config'), session]);
  // Not logged in: the public map (tiles and trend in their suppressed form, no region details).
  state.public = !user;
  if (state.public) state.hotspotsOn = false;
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
    // A tile the server refused (a filter it does not take, say) is worth saying out loud.
    if (event.sourceId === 'incidents' || event.sourceId === 'grids') {
      showError(new ApiError(t(state.lang, 'error_tiles', { status: event.error?.status ?? '?' })));
    }
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(plainStyle(), { diff: false });
    }
  });

  const [categories, regions, trend] = await Promise.all([
    getJson('categories'),
    getJson('regions'),
    getJson(trendPath()),
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
    if (feature.properties.level === 'grid') {
      state.gridCount += 1;
      state.gridAreaKm2 += areaKm2(feature.geometry);
    }
  }
  if (Number.isFinite(bbox[0])) state.bounds = bbox;
  state.buckets = trend.buckets ?? [];
  state.count = shownCount();

  await loaded;
  addOverlay(map, regions);
  updateChoropleth();
  if (state.hotspotsOn) setHotspots(true);
  refreshRising();
  fitAll({ animate: false });
  renderAll();

  map.on('mousemove', onPointerMove);
  map.on('mouseout', onPointerLeave);
  map.on('click', (event) => {
    const feature = regionAt(event.point);
    if (feature) selectRegion(feature.properties.code);
  });
  map.on('zoom', renderZoomHint);
  map.on('sourcedata', (event) => {
    if (event.sourceId === 'grids' && event.isSourceLoaded) scheduleFigures();
  });

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
