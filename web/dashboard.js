/**
 * gridwatch street leader's dashboard 街道领导看板: one street's (or community's, or district's)
 * figures for a time window — headline figures, reports by category, the trend, the grids with most
 * reports, a map of its grids shaded by reports with the hot and cold spots outlined, and the rising
 * problems — with print, PNG, CSV and GeoJSON exports.
 *
 * What this module owns: reading the JSON API (config, clock, categories, regions, dashboard,
 * reports/trend, hotspots, emerging), drawing the charts as inline SVG, the map with MapLibre GL JS
 * (grid boundaries from GET /regions, the figures from GET /dashboard), the URL (`?region=`,
 * `preset=` or `from=`/`to=`, `category=`, `interval=` are kept there so a link shows the same view)
 * and the language switch.
 * What it must not do: reach any host but its own (MapLibre comes from /vendor/maplibre-gl/, the map
 * style has no glyphs URL unless the server's config names a basemap), use a chart library, or show
 * a string that is not in dashboard-i18n.js.
 *
 * Dates are China dates (YYYY-MM-DD); "today" is the server's clock (GET /clock), so a demo whose
 * data end earlier, or a clock moved for a test, give the presets the server's meaning.
 *
 * For browser tests, `window.gridwatchDashboard = { map, ready, refreshed, setLanguage }`: `ready`
 * settles once the first figures are drawn and the map is idle; `document.body.dataset.state` is then
 * 'ready', or 'error' (with the banner shown) when a start-up request failed. Every later refresh
 * sets `data-loading="true"` on the body and, when all its parts are drawn, `data-loading="false"`
 * and `data-refreshed` to its sequence number.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { t, has, HTML_LANG, initialLanguage, formatNumber } from './dashboard-i18n.js';
import { applyStaticText, rememberLanguage } from './i18n.js';
import { el, setChildren } from './dom.js';
import { ApiError, jsonApi, query } from './api.js';
import { labelPoint, polygonsOf } from './geometry.js';
import { basemapFont } from './basemap.js';
import { session } from './session.js';

// Relative to the page, so the dashboard keeps working if the binary ever serves it under a prefix.
const API = 'api/v1';
const LANG_STORAGE_KEY = 'gridwatch.lang'; // shared with the other pages
const TIME_ZONE = 'Asia/Shanghai';
const SVG_NS = 'http://www.w3.org/2000/svg';

const LEADER_LEVELS = ['district', 'street', 'community'];
const PRESETS = ['30d', '90d', 'year', '12m'];
const DEFAULT_PRESET = '12m';
const INTERVALS = ['week', 'month'];
const TOP_GRIDS = 10;
/*
 * 9999 permutations: with a street's 50–100 grids, false-discovery-rate control needs p-values below
 * α·k/n, which 999 permutations (p ≥ 0.001) can barely give; a street answers in well under a second.
 */
const HOTSPOT_PERMUTATIONS = 9999;
const HOTSPOT_ALPHA = 0.05;

const BACKGROUND = '#f3f1ec';
const ACCENT = '#c2410c';
const HOT_LINE = '#d7191c';
const COLD_LINE = '#0b63c4';
/** Reports per grid, five classes, and the zero class. */
const REPORT_COLOURS = ['#dadaeb', '#bcbddc', '#9e9ac8', '#756bb1', '#54278f'];
const ZERO_COLOUR = '#f7f6f2';
const NO_DATA_COLOUR = '#c9c6bf';
/** The map page's category colours, in the order GET /categories lists them. */
const CATEGORY_PALETTE = ['#1f77b4', '#d62728', '#8c564b', '#2ca02c', '#9467bd', '#17becf',
  '#e377c2', '#7f7f7f', '#bcbd22', '#393b79', '#ff7f0e', '#637939'];
const FONT_REGULAR = ['Noto Sans CJK SC Regular', 'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC',
  'Microsoft YaHei', 'sans-serif'];
const FONT_MEDIUM = ['Noto Sans CJK SC Medium', ...FONT_REGULAR.slice(1)];
const CANVAS_FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';

const state = {
  lang: initialLanguage(LANG_STORAGE_KEY),
  ready: false,
  config: { basemap_style_url: null },
  today: null,                // the server's China date
  categories: [],
  categoryIndex: new Map(),   // code -> { category, colour }
  regionIndex: new Map(),     // code -> Feature (every level)
  leaderRegions: [],          // districts, streets and communities, in the select's order
  // The view: what the URL keeps.
  region: null,
  preset: DEFAULT_PRESET,     // or null: custom dates
  from: '',
  to: '',
  category: '',
  interval: null,             // 'week' | 'month', or null: chosen by the span
  risingPeriod: null,         // likewise
  risingAt: null,             // a day whose period the rising list shows, or null: the window's end
  // Answers for the view, and the grid picked in the table, the rising list or on the map.
  dashboard: null,
  trend: null,
  hotspots: null,             // { data } or { unavailable: message }
  emerging: null,             // { data, fallback }
  parts: { dashboard: 'idle', trend: 'idle', hotspots: 'idle', emerging: 'idle' },
  selectedGrid: null,
  seq: 0,                     // of the last refresh
  partSeq: { dashboard: 0, trend: 0, hotspots: 0, emerging: 0 },
  aborts: {},
  map: null,
  mapLoaded: null,
  mapRegion: null,            // region whose boundaries the map has
  classes: null,              // { breaks, colours } of the shading drawn
  resizeTimer: 0,
  printing: false,
};

const $ = (id) => document.getElementById(id);
const tr = (key, params) => t(state.lang, key, params);

// ---------------------------------------------------------------------------------------------
// API

const api = jsonApi(API, tr);

/** The filter every figure of the view is asked for with. */
function filterParams() {
  return { from: state.from, to: state.to, category: state.category };
}

function dashboardPath(format) {
  return `dashboard${query({ region: state.region, ...filterParams(), format })}`;
}

// ---------------------------------------------------------------------------------------------
// Dates: 'YYYY-MM-DD' China dates, computed as UTC dates so nothing shifts a day.

const CHINA_DAY = new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' });
const isDay = (v) => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(parseDay(v).getTime());

function parseDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function dayString(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(day, n) {
  const date = parseDay(day);
  date.setUTCDate(date.getUTCDate() + n);
  return dayString(date);
}

function addMonths(day, n) {
  const [y, m, d] = day.split('-').map(Number);
  const date = new Date(Date.UTC(y, m - 1 + n, 1));
  const last = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
  date.setUTCDate(Math.min(d, last));
  return dayString(date);
}

/** The dates of a preset, ending today (the server's today). */
function presetRange(preset, today = state.today) {
  switch (preset) {
    case '30d': return { from: addDays(today, -29), to: today };
    case '90d': return { from: addDays(today, -89), to: today };
    case 'year': return { from: `${today.slice(0, 4)}-01-01`, to: today };
    default: return { from: addDays(addMonths(today, -12), 1), to: today };
  }
}

function spanDays() {
  if (!state.from || !state.to) return 0;
  return Math.round((parseDay(state.to) - parseDay(state.from)) / 86_400_000) + 1;
}

/** The trend's step: the one chosen, else weeks for up to about a quarter, months beyond. */
const trendInterval = () => state.interval ?? (spanDays() <= 100 ? 'week' : 'month');
const risingPeriod = () => state.risingPeriod ?? (spanDays() <= 45 ? 'week' : 'month');

/** The last day (inclusive) of the bucket starting on `start`. */
function bucketEnd(start, interval) {
  const date = parseDay(start);
  if (interval === 'week') date.setUTCDate(date.getUTCDate() + 6);
  else date.setUTCMonth(date.getUTCMonth() + 1, 0);
  return dayString(date);
}

function dayFormat(options) {
  return new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', { ...options, timeZone: 'UTC' });
}

/** "2026年3月2日至8日"; ICU's own Chinese range is the terse "2026/3/2 – 2026/3/8". */
function chineseRange(from, to) {
  const [fy, fm, fd] = from.split('-').map(Number);
  const [ty, tm, td] = to.split('-').map(Number);
  const end = fy !== ty ? `${ty}年${tm}月${td}日` : fm !== tm ? `${tm}月${td}日` : `${td}日`;
  return `${fy}年${fm}月${fd}日至${end}`;
}

function rangeLabel(from, to) {
  if (!from || !to) return '—';
  if (from === to) return dayFormat({ year: 'numeric', month: state.lang === 'en' ? 'short' : 'long', day: 'numeric' }).format(parseDay(from));
  if (state.lang !== 'en') return chineseRange(from, to);
  return dayFormat({ year: 'numeric', month: 'short', day: 'numeric' }).formatRange(parseDay(from), parseDay(to));
}

/** A bucket in words: "2026年3月" / "Mar 2026", or its week's dates. */
function bucketLabel(start, interval) {
  if (interval === 'month') return dayFormat({ year: 'numeric', month: state.lang === 'en' ? 'short' : 'long' }).format(parseDay(start));
  return rangeLabel(start, bucketEnd(start, 'week'));
}

function windowLabel(period, window) {
  return period === 'month' ? bucketLabel(window.from, 'month') : rangeLabel(window.from, window.to);
}

// ---------------------------------------------------------------------------------------------
// Formatting

function formatRate(rate) {
  if (rate === null || rate === undefined || !Number.isFinite(Number(rate))) return '—';
  return new Intl.NumberFormat(HTML_LANG[state.lang], { style: 'percent', maximumFractionDigits: 1 }).format(Number(rate));
}

function formatDecimal(x, digits = 1) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '—';
  return new Intl.NumberFormat(HTML_LANG[state.lang], { maximumFractionDigits: digits }).format(Number(x));
}

const n = (v) => formatNumber(state.lang, v);

function categoryName(code) {
  const entry = state.categoryIndex.get(code);
  if (!entry) return code ?? '—';
  return state.lang === 'en' ? entry.category.name_en : entry.category.name_zh;
}

const categoryColour = (code) => state.categoryIndex.get(code)?.colour ?? '#888888';

function regionName(code) {
  return state.regionIndex.get(code)?.properties.name ?? code;
}

function levelName(level) {
  return has(`level_${level}`) ? tr(`level_${level}`) : level;
}

// ---------------------------------------------------------------------------------------------
// Geometry (lon/lat)

function bboxOf(geometries) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  for (const g of geometries) {
    for (const poly of polygonsOf(g)) {
      for (const [x, y] of poly[0]) {
        if (x < b[0]) b[0] = x;
        if (y < b[1]) b[1] = y;
        if (x > b[2]) b[2] = x;
        if (y > b[3]) b[3] = y;
      }
    }
  }
  return Number.isFinite(b[0]) ? b : null;
}


// ---------------------------------------------------------------------------------------------
// URL

/** Reads the view from the URL; what is missing or wrong keeps its default. */
function readUrl() {
  const params = new URLSearchParams(window.location.search);
  const region = params.get('region');
  const preset = params.get('preset');
  const from = params.get('from');
  const to = params.get('to');
  if (isDay(from) && isDay(to) && from <= to && !PRESETS.includes(preset)) {
    Object.assign(state, { preset: null, from, to });
  } else {
    state.preset = PRESETS.includes(preset) ? preset : DEFAULT_PRESET;
  }
  const category = params.get('category');
  if (category) state.category = category;
  if (INTERVALS.includes(params.get('interval'))) state.interval = params.get('interval');
  if (INTERVALS.includes(params.get('period'))) state.risingPeriod = params.get('period');
  return region;
}

function writeUrl() {
  const url = new URL(window.location.href);
  const params = url.searchParams;
  for (const key of ['region', 'preset', 'from', 'to', 'category', 'interval', 'period']) params.delete(key);
  params.set('region', state.region);
  if (state.preset) params.set('preset', state.preset);
  else { params.set('from', state.from); params.set('to', state.to); }
  if (state.category) params.set('category', state.category);
  if (state.interval) params.set('interval', state.interval);
  if (state.risingPeriod) params.set('period', state.risingPeriod);
  if (url.href !== window.location.href) window.history.replaceState(null, '', url);
}

// ---------------------------------------------------------------------------------------------
// Static text, controls and language

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(LANG_STORAGE_KEY, lang);
  renderAll();
}

function renderAll() {
  applyStaticText(state.lang, tr, 'page_title');
  // Labels for assistive technology only: a tooltip over a whole form or row would be in the way.
  $('controls').setAttribute('aria-label', tr('controls_label'));
  $('kpis').setAttribute('aria-label', tr('kpis_label'));
  $('export-tools').setAttribute('aria-label', tr('exports_label'));
  renderControls();
  renderHeading();
  renderKpis();
  renderCategories();
  renderTrend();
  renderLegend();
  renderTopGrids();
  renderRising();
  renderExports();
  renderStatus();
  if (state.map) {
    $('dash-map').setAttribute('aria-label', tr('map_label', { name: regionName(state.region) }));
  }
}

function renderControls() {
  const select = $('region-select');
  const groups = new Map(); // district code -> optgroup
  const options = [];
  for (const feature of state.leaderRegions) {
    const { code, name, level } = feature.properties;
    const districtCode = code.slice(0, 6);
    if (!groups.has(districtCode)) {
      groups.set(districtCode, el('optgroup', { label: regionName(districtCode) }));
      options.push(groups.get(districtCode));
    }
    const label = level === 'district' ? tr('region_whole', { name })
      : level === 'community' ? `\u3000${name}` : name;
    groups.get(districtCode).append(el('option', { value: code, selected: code === state.region, dataset: { level } }, label));
  }
  setChildren(select, options);
  select.value = state.region ?? '';

  for (const button of document.querySelectorAll('#presets [data-preset]')) {
    button.setAttribute('aria-pressed', String(button.dataset.preset === state.preset));
  }
  $('date-from').value = state.from;
  $('date-to').value = state.to;
  $('date-from').max = state.today ?? '2100-12-31';
  $('date-to').max = state.today ?? '2100-12-31';

  const categories = $('category-select');
  setChildren(categories,
    el('option', { value: '', selected: !state.category }, tr('category_all')),
    state.categories.map((c) => el('option', { value: c.code, selected: c.code === state.category }, categoryName(c.code))));
  categories.value = state.category;

  for (const button of document.querySelectorAll('[data-interval]')) {
    button.setAttribute('aria-pressed', String(button.dataset.interval === trendInterval()));
  }
  for (const button of document.querySelectorAll('[data-period]')) {
    button.setAttribute('aria-pressed', String(button.dataset.period === risingPeriod()));
  }
}

function renderHeading() {
  const feature = state.regionIndex.get(state.region);
  const level = feature?.properties.level;
  setChildren($('region-title'),
    el('span', { class: 'region-name' }, regionName(state.region)),
    level ? el('span', { class: 'level-badge' }, levelName(level)) : null,
    el('span', { class: 'region-code mono' }, state.region ?? ''));
  setChildren($('period-title'),
    el('span', { 'data-field': 'period' }, tr('heading_period', { period: rangeLabel(state.from, state.to) })),
    state.category ? el('span', { class: 'heading-category', 'data-field': 'category' }, tr('heading_category', { name: categoryName(state.category) })) : null);
  const now = new Date();
  $('print-footer').textContent = `gridwatch · ${tr('app_title')} · ${regionName(state.region)} · ${rangeLabel(state.from, state.to)} · ` +
    tr('print_generated', { time: new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', { timeZone: TIME_ZONE, dateStyle: 'medium', timeStyle: 'short' }).format(now) });
}

function renderStatus() {
  const loading = Object.values(state.parts).some((p) => p === 'loading');
  $('dash-status').textContent = loading ? (state.ready ? tr('updating') : tr('loading')) : '';
  $('dash-status').dataset.loading = String(loading);
}

// ---------------------------------------------------------------------------------------------
// Errors

function showError(err) {
  const where = err?.path ? ` (${err.path})` : '';
  $('error-text').textContent = tr('error_prefix') + (err?.message ?? String(err)) + where;
  $('error-banner').hidden = false;
  if (!state.ready) document.body.dataset.state = 'error';
}

function showNotice(text) {
  $('error-text').textContent = text;
  $('error-banner').hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Loading the view

function setPart(name, status) {
  state.parts[name] = status;
  const card = { dashboard: ['kpis', 'cats-card', 'grids-card', 'map-card'], trend: ['trend-card'], hotspots: [], emerging: ['rising-card'] }[name];
  for (const id of card) {
    const node = $(id);
    node.classList.toggle('is-loading', status === 'loading');
    node.setAttribute('aria-busy', String(status === 'loading'));
  }
  const loading = Object.values(state.parts).some((p) => p === 'loading');
  document.body.dataset.loading = String(loading);
  $('dashboard').setAttribute('aria-busy', String(loading));
  renderStatus();
}

/** Starts a request of one part of the view; a newer request of the same part aborts it. */
function request(name, path) {
  state.aborts[name]?.abort();
  const abort = new AbortController();
  state.aborts[name] = abort;
  return api(path, { signal: abort.signal });
}

/** A new load of one part: its number, which `stale(name, seq)` checks an answer against. */
function nextSeq(name) {
  state.partSeq[name] += 1;
  return state.partSeq[name];
}
const stale = (name, seq) => seq !== state.partSeq[name];

async function loadDashboard() {
  const seq = nextSeq('dashboard');
  setPart('dashboard', 'loading');
  try {
    const data = await request('dashboard', dashboardPath());
    if (stale('dashboard', seq)) return;
    state.dashboard = data;
    if (state.selectedGrid && !data.grids.some((g) => g.code === state.selectedGrid)) state.selectedGrid = null;
    setPart('dashboard', 'done');
    renderKpis();
    renderCategories();
    renderTopGrids();
    await updateMapData();
    renderLegend();
  } catch (err) {
    if (err.name === 'AbortError' || stale('dashboard', seq)) return;
    // No figures rather than the last view's under this view's heading.
    state.dashboard = null;
    setPart('dashboard', 'failed');
    renderKpis();
    renderCategories();
    renderTopGrids();
    await updateMapData();
    renderLegend();
    throw err;
  }
}

async function loadTrend() {
  const seq = nextSeq('trend');
  setPart('trend', 'loading');
  try {
    const data = await request('trend', `reports/trend${query({ region: state.region, interval: trendInterval(), ...filterParams() })}`);
    if (stale('trend', seq)) return;
    state.trend = data;
    setPart('trend', 'done');
    renderTrend();
  } catch (err) {
    if (err.name === 'AbortError' || stale('trend', seq)) return;
    state.trend = null;
    setPart('trend', 'failed');
    renderTrend();
    throw err;
  }
}

async function loadHotspots(trendDone) {
  const seq = nextSeq('hotspots');
  setPart('hotspots', 'loading');
  renderLegend();
  try {
    // Nothing reported in the region: nothing to analyse (the server would refuse with a 422).
    await trendDone.catch(() => {});
    if (stale('hotspots', seq)) return;
    if (state.trend && !state.trend.buckets.some((b) => b.reports > 0)) {
      state.hotspots = { unavailable: tr('empty_period'), empty: true };
      setPart('hotspots', 'done');
      await updateMapData();
      renderLegend();
      return;
    }
    const data = await request('hotspots', `hotspots${query({
      parent: state.region, ...filterParams(), permutations: HOTSPOT_PERMUTATIONS, alpha: HOTSPOT_ALPHA,
    })}`);
    if (stale('hotspots', seq)) return;
    state.hotspots = { data };
  } catch (err) {
    if (err.name === 'AbortError' || stale('hotspots', seq)) return;
    // Gi* refuses a region it cannot analyse (every grid at 0, fewer than three grids): say so
    // beside the map; anything else is an error like any other.
    if (err.status !== 422) {
      setPart('hotspots', 'failed');
      state.hotspots = { unavailable: err.message };
      renderLegend();
      throw err;
    }
    state.hotspots = { unavailable: err.message };
  }
  setPart('hotspots', 'done');
  await updateMapData();
  renderLegend();
}

/**
 * The rising list for the period holding the window's last day; when nothing at all is reported in
 * that period yet (demo data that end earlier, a month just begun), the latest period with reports.
 */
async function loadEmerging(trendDone) {
  const seq = nextSeq('emerging');
  setPart('emerging', 'loading');
  try {
    const period = risingPeriod();
    const path = (at) => `emerging${query({ region: state.region, period, at, category: state.category })}`;
    let data = await request('emerging', path(state.risingAt ?? state.to));
    let fallback = false;
    if (stale('emerging', seq)) return;
    if ((data.rows ?? []).length === 0 && !state.risingAt) {
      await trendDone.catch(() => {});
      if (stale('emerging', seq)) return;
      const interval = state.trend?.interval;
      const last = [...(state.trend?.buckets ?? [])].reverse().find((b) => b.reports > 0);
      if (last) {
        const end = bucketEnd(last.start, interval);
        const at = end < state.to ? end : state.to;
        if (at < data.current.from) {
          data = await request('emerging', path(at));
          fallback = true;
        }
      }
    }
    if (stale('emerging', seq)) return;
    state.emerging = { data, fallback };
    state.risingAt = null;
    setPart('emerging', 'done');
    renderRising();
  } catch (err) {
    if (err.name === 'AbortError' || stale('emerging', seq)) return;
    state.emerging = null;
    setPart('emerging', 'failed');
    renderRising();
    throw err;
  }
}

let refreshedResolve = null;

/** Loads every part of the view; resolves once all are drawn (or one failed, shown in the banner). */
async function refresh({ parts = ['dashboard', 'trend', 'hotspots', 'emerging'] } = {}) {
  state.seq += 1;
  const seq = state.seq;
  writeUrl();
  renderControls();
  renderHeading();
  renderExports();
  window.gridwatchDashboard.refreshed = new Promise((resolve) => { refreshedResolve = resolve; });
  const trendDone = parts.includes('trend') ? loadTrend() : Promise.resolve();
  const jobs = [trendDone];
  if (parts.includes('dashboard')) jobs.push(loadDashboard());
  if (parts.includes('hotspots')) jobs.push(loadHotspots(trendDone));
  if (parts.includes('emerging')) jobs.push(loadEmerging(trendDone));
  const results = await Promise.allSettled(jobs);
  if (seq !== state.seq) return;
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) showError(failed.reason);
  else if ($('error-banner').dataset.kind !== 'notice') $('error-banner').hidden = true;
  $('error-banner').dataset.kind = '';
  document.body.dataset.refreshed = String(seq);
  renderStatus();
  refreshedResolve?.(seq);
  if (failed && !state.ready) throw failed.reason;
}

function setRegion(code) {
  if (!state.regionIndex.has(code) || code === state.region) return;
  state.region = code;
  state.selectedGrid = null;
  refresh().then(() => fitRegion({ animate: true })).catch(() => {});
}

function setPreset(preset) {
  state.preset = preset;
  Object.assign(state, presetRange(preset));
  refresh().catch(() => {});
}

function setDates() {
  const from = $('date-from').value;
  const to = $('date-to').value;
  const invalid = isDay(from) && isDay(to) && from > to;
  $('date-warning').hidden = !invalid;
  if (!isDay(from) || !isDay(to) || invalid) return;
  if (from === state.from && to === state.to) return;
  Object.assign(state, { preset: null, from, to });
  // A range that matches a preset is that preset, so the button lights up.
  const match = PRESETS.find((p) => { const r = presetRange(p); return r.from === from && r.to === to; });
  if (match) state.preset = match;
  refresh().catch(() => {});
}

function setCategory(code) {
  state.category = code;
  refresh().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Headline figures

function kpi(key, value, display, sub, { tone } = {}) {
  return el('div', { class: `kpi${tone ? ` kpi-${tone}` : ''}`, dataset: { kpi: key } },
    el('span', { class: 'kpi-label' }, tr(`kpi_${key}`)),
    el('span', { class: 'kpi-value', 'data-value': value === null || value === undefined ? '' : String(value) }, display),
    el('span', { class: 'kpi-sub' }, sub));
}

function renderKpis() {
  const d = state.dashboard;
  if (!d) {
    setChildren($('kpis'), ['reports', 'cases', 'closure', 'satisfaction', 'overdue', 'grids']
      .map((key) => kpi(key, null, '—', '\u00a0')));
    return;
  }
  const x = d.totals;
  const density = x.area_km2 > 0 ? x.reports / x.area_km2 : null;
  setChildren($('kpis'),
    kpi('reports', x.reports, n(x.reports), density === null ? '\u00a0' : tr('kpi_reports_sub', { n: formatDecimal(density) })),
    kpi('cases', x.cases, n(x.cases), tr('kpi_cases_sub', { n: n(x.closed) })),
    kpi('closure', x.closure_rate, formatRate(x.closure_rate), tr('kpi_closure_sub')),
    kpi('satisfaction', x.satisfaction_rate, formatRate(x.satisfaction_rate),
      tr('kpi_satisfaction_sub', { rated: n(x.rated), satisfied: n(x.satisfied) })),
    kpi('overdue', x.overdue, n(x.overdue), tr('kpi_overdue_sub'), { tone: x.overdue > 0 ? 'alert' : null }),
    kpi('grids', x.grids, n(x.grids), tr('kpi_grids_sub', { area: formatDecimal(x.area_km2, 2) })));
}

// ---------------------------------------------------------------------------------------------
// SVG charts

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Roughly how wide `text` is at `size` px: CJK characters are square, Latin ones about half. */
function textWidth(text, size) {
  let w = 0;
  for (const ch of text) w += /[\u2e80-\u9fff\uff00-\uffef]/.test(ch) ? size : size * 0.56;
  return w;
}

/** Tick values for 0..max: 1, 2 or 5 times a power of ten, about `count` of them. */
function niceTicks(max, count = 4) {
  if (max <= 0) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? power * 10;
  const ticks = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  if (ticks.at(-1) < max) ticks.push(ticks.at(-1) + step);
  return ticks.map((v) => (step >= 1 ? Math.round(v) : v));
}

/*
 * While printing the charts are drawn for the A4 layout (two to a row on 188 mm), so their text is
 * printed at its size rather than scaled down from a wide screen.
 */
const PRINT_CHART_WIDTH = 330;

function chartWidth(node, fallback = 520) {
  if (state.printing) return PRINT_CHART_WIDTH;
  const w = node.clientWidth;
  return Math.max(260, Math.floor(w > 0 ? w : fallback));
}

function emptyNote(text) {
  return el('p', { class: 'chart-empty', 'data-field': 'empty' }, text);
}

/** What a part shows without its answer: loading, or that it failed. */
function pendingNote(part) {
  return state.parts[part] === 'failed'
    ? el('p', { class: 'chart-failed', 'data-field': 'failed' }, tr('load_failed'))
    : el('p', { class: 'chart-loading' }, tr('loading'));
}

function renderCategories() {
  const node = $('cats-chart');
  const d = state.dashboard;
  if (!d) { setChildren(node, pendingNote('dashboard')); return; }
  const rows = d.categories.filter((c) => c.reports > 0);
  if (!rows.length) { setChildren(node, emptyNote(tr('empty_period'))); return; }
  const width = chartWidth(node, 420);
  const rowH = 26, top = 4, size = 12.5;
  const total = rows.reduce((s, c) => s + c.reports, 0);
  const names = rows.map((c) => (state.categoryIndex.has(c.code) ? categoryName(c.code) : c.name));
  const labelW = Math.min(width * 0.46, Math.max(...names.map((name) => textWidth(name, size))) + 12);
  const countW = Math.max(...rows.map((c) => textWidth(`${n(c.reports)} · ${formatRate(c.reports / total)}`, 11.5))) + 10;
  const barMax = Math.max(20, width - labelW - countW);
  const max = rows[0].reports;
  const height = top + rows.length * rowH + 2;
  const chart = svg('svg', {
    class: 'cats-svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': tr('cats_chart_label'), 'data-field': 'cats-chart',
  });
  rows.forEach((c, i) => {
    const y = top + i * rowH;
    const w = Math.max(2, (barMax * c.reports) / max);
    const selected = state.category === c.code;
    const title = tr('cats_bar', { name: names[i], n: n(c.reports), share: formatRate(c.reports / total) });
    const group = svg('g', {
      class: `cat-row${selected ? ' selected' : ''}`, tabindex: 0, role: 'button', 'aria-label': title,
      dataset: { code: c.code },
      onclick: () => setCategory(selected ? '' : c.code),
      onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); setCategory(selected ? '' : c.code); } },
    },
    svg('title', {}, title),
    svg('rect', { class: 'cat-hit', x: 0, y, width, height: rowH, fill: 'transparent' }),
    svg('text', { class: 'cat-label', x: labelW - 8, y: y + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'central' }, names[i]),
    svg('rect', {
      class: 'cat-bar', x: labelW, y: y + 5, width: w, height: rowH - 10, rx: 2,
      fill: categoryColour(c.code), dataset: { code: c.code, reports: c.reports },
    }),
    svg('text', { class: 'cat-count', x: labelW + w + 6, y: y + rowH / 2, 'dominant-baseline': 'central' },
      svg('tspan', { class: 'cat-n' }, n(c.reports)), svg('tspan', { class: 'cat-share', dx: 4 }, `· ${formatRate(c.reports / total)}`)));
    chart.append(group);
  });
  setChildren(node, chart,
    state.category ? el('button', { type: 'button', class: 'link-btn cats-clear no-print', onclick: () => setCategory('') }, tr('cats_clear')) : null);
}

function renderTrend() {
  const node = $('trend-chart');
  const data = state.trend;
  if (!data) { setChildren(node, pendingNote('trend')); return; }
  const buckets = data.buckets ?? [];
  const interval = data.interval;
  const total = buckets.reduce((s, b) => s + b.reports, 0);
  if (!buckets.length || total === 0) { setChildren(node, emptyNote(tr('empty_period'))); return; }
  const width = chartWidth(node, 520);
  const height = 200;
  const max = Math.max(...buckets.map((b) => b.reports));
  const ticks = niceTicks(max, 4);
  const yMax = ticks.at(-1);
  const left = Math.max(24, textWidth(n(yMax), 11) + 10), right = 8, top = 10, bottom = 36;
  const plotW = width - left - right, plotH = height - top - bottom;
  const slot = plotW / buckets.length;
  const barW = Math.max(1.5, Math.min(28, slot * 0.72));
  const y = (v) => top + plotH - (plotH * v) / yMax;
  const x = (i) => left + slot * i + slot / 2;
  const chart = svg('svg', {
    class: 'trend-svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': tr('trend_chart_label', { name: regionName(state.region) }), 'data-field': 'trend-chart',
    dataset: { interval, buckets: buckets.length },
  });
  for (const tick of ticks) {
    chart.append(svg('line', { class: 'grid-line', x1: left, x2: width - right, y1: y(tick), y2: y(tick) }),
      svg('text', { class: 'axis-label', x: left - 6, y: y(tick), 'text-anchor': 'end', 'dominant-baseline': 'central' }, n(tick)));
  }
  // Axis labels: every bucket when they fit, else every k-th; a month's label names the year at January.
  const labelEvery = Math.max(1, Math.ceil(buckets.length / Math.max(1, Math.floor(plotW / (interval === 'month' ? 40 : 52)))));
  const monthShort = dayFormat({ month: state.lang === 'en' ? 'short' : 'numeric' });
  const dayShort = dayFormat({ month: state.lang === 'en' ? 'short' : 'numeric', day: 'numeric' });
  buckets.forEach((b, i) => {
    const title = tr('trend_bar', { period: bucketLabel(b.start, interval), n: n(b.reports), closed: n(b.closed) });
    chart.append(svg('rect', {
      class: 'trend-bar', x: x(i) - barW / 2, y: y(b.reports), width: barW, height: Math.max(0, y(0) - y(b.reports)), rx: 1.5,
      dataset: { start: b.start, reports: b.reports, closed: b.closed },
    }, svg('title', {}, title)));
    if (i % labelEvery === 0) {
      const date = parseDay(b.start);
      const label = interval === 'month' ? monthShort.format(date) : dayShort.format(date);
      chart.append(svg('text', { class: 'axis-label', x: x(i), y: height - 21, 'text-anchor': 'middle' }, label));
    }
    // The year under the first label and under the first bucket of each new year.
    // The first bucket's year is left out when the next year's label would run into it.
    const year = b.start.slice(0, 4);
    const nextYear = buckets.findIndex((c) => c.start.slice(0, 4) !== year);
    const crowded = i === 0 && nextYear > 0 && nextYear * slot < 56;
    if (!crowded && (i === 0 || year !== buckets[i - 1].start.slice(0, 4))) {
      chart.append(svg('text', { class: 'axis-year', x: x(i), y: height - 5, 'text-anchor': i === 0 ? 'start' : 'middle', dx: i === 0 ? -Math.min(slot / 2, 10) : 0 },
        state.lang === 'en' ? year : `${year}年`));
    }
  });
  const points = buckets.map((b, i) => `${x(i).toFixed(1)},${y(b.closed).toFixed(1)}`).join(' ');
  chart.append(svg('polyline', { class: 'trend-closed', points }));
  if (buckets.length <= 40) {
    buckets.forEach((b, i) => chart.append(svg('circle', { class: 'trend-closed-dot', cx: x(i), cy: y(b.closed), r: 2.4 })));
  }
  chart.append(svg('line', { class: 'axis-line', x1: left, x2: width - right, y1: y(0), y2: y(0) }));
  const closed = buckets.reduce((s, b) => s + b.closed, 0);
  setChildren(node, chart, el('p', { class: 'chart-key' },
    el('span', { class: 'key key-reports' }, `${tr('trend_reports')} ${n(total)}`),
    el('span', { class: 'key key-closed' }, `${tr('trend_closed')} ${n(closed)}`)));
}

// ---------------------------------------------------------------------------------------------
// Top grids

function renderTopGrids() {
  const table = $('top-grids');
  const d = state.dashboard;
  const head = el('thead', {}, el('tr', {},
    el('th', { class: 'num rank' }, tr('col_rank')),
    el('th', {}, tr('col_grid')),
    el('th', { class: 'num' }, tr('col_reports')),
    el('th', { class: 'num opt' }, tr('col_density')),
    el('th', { class: 'num opt' }, tr('col_cases')),
    el('th', { class: 'num' }, tr('col_closure')),
    el('th', { class: 'num' }, tr('col_overdue')),
    el('th', { class: 'num' }, tr('col_satisfaction'))));
  if (!d) {
    const failed = state.parts.dashboard === 'failed';
    setChildren(table, head, el('tbody', {}, el('tr', { class: 'empty' }, el('td', { colspan: 8, 'data-field': failed ? 'failed' : 'loading' }, tr(failed ? 'load_failed' : 'loading')))));
    $('grids-more').textContent = '';
    return;
  }
  const rows = d.grids.filter((g) => g.reports > 0).slice(0, TOP_GRIDS);
  const body = rows.length
    ? rows.map((g, i) => el('tr', {
      class: `grid-row${g.code === state.selectedGrid ? ' selected' : ''}`,
      tabindex: 0,
      dataset: { code: g.code, reports: g.reports },
      onclick: () => selectGrid(g.code, { fit: true }),
      onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); selectGrid(g.code, { fit: true }); } },
    },
    el('td', { class: 'num rank' }, i + 1),
    el('td', { class: 'grid-name' },
      el('span', { class: 'name', 'data-field': 'name' }, g.name),
      g.community && state.dashboard.level !== 'community' ? el('span', { class: 'community' }, g.community.name) : null,
      hotspotClass(g.code) ? el('span', { class: `spot-tag spot-${hotspotClass(g.code)}` }, tr(`map_tip_${hotspotClass(g.code)}`)) : null),
    el('td', { class: 'num', 'data-field': 'reports' }, n(g.reports)),
    el('td', { class: 'num opt', 'data-field': 'density' }, formatDecimal(g.density_km2, 0)),
    el('td', { class: 'num opt', 'data-field': 'cases' }, n(g.cases)),
    el('td', { class: 'num', 'data-field': 'closure', 'data-value': g.closure_rate ?? '' }, formatRate(g.closure_rate)),
    el('td', { class: `num${g.overdue > 0 ? ' alert' : ''}`, 'data-field': 'overdue' }, n(g.overdue)),
    el('td', { class: 'num', 'data-field': 'satisfaction', 'data-value': g.satisfaction_rate ?? '' }, formatRate(g.satisfaction_rate))))
    : [el('tr', { class: 'empty' }, el('td', { colspan: 8, 'data-field': 'empty' }, tr('empty_period')))];
  setChildren(table, head, el('tbody', {}, body));
  $('grids-more').textContent = tr('grids_more', { n: n(d.grids.length) });
}

function hotspotClass(code) {
  const grid = state.hotspotByCode?.get(code);
  return grid === 'hot' || grid === 'cold' ? grid : null;
}

// ---------------------------------------------------------------------------------------------
// Rising problems

function renderRising() {
  const body = $('rising-body');
  const r = state.emerging;
  if (!r) { setChildren(body, pendingNote('emerging')); $('rising-window').textContent = ''; return; }
  const { data, fallback } = r;
  const period = data.period;
  $('rising-prev').disabled = false;
  $('rising-next').disabled = data.current.to >= state.to;
  $('rising-window').textContent = tr('rising_window', {
    current: windowLabel(period, data.current), previous: windowLabel(period, data.previous), last_year: windowLabel(period, data.last_year),
  });
  const rows = data.rows ?? [];
  const rising = rows.filter((row) => row.rising);
  const near = rows.filter((row) => !row.rising && row.current > row.previous && row.current > row.last_year).slice(0, 5);
  const item = (row) => {
    const title = tr('rising_row_title', {
      grid: row.grid.name, category: categoryName(row.category), current: n(row.current), previous: n(row.previous),
      last_year: n(row.last_year), p: row.p < 0.001 ? row.p.toExponential(1) : row.p.toFixed(3),
    });
    return el('li', {}, el('button', {
      type: 'button', class: `dr-row${row.rising ? ' is-rising' : ''}${row.grid.code === state.selectedGrid ? ' selected' : ''}`,
      title, dataset: { code: row.grid.code, category: row.category, rising: String(row.rising) },
      onclick: () => selectGrid(row.grid.code, { fit: true }),
    },
    el('span', { class: 'dr-line' },
      el('span', { class: 'dr-swatch', style: `background:${categoryColour(row.category)}`, 'aria-hidden': 'true' }),
      el('span', { class: 'dr-grid' }, row.grid.name),
      el('span', { class: 'dr-cat' }, categoryName(row.category)),
      row.rising ? el('span', { class: 'dr-badge' }, `↑ ${tr('rising_badge')}`) : null),
    el('span', { class: 'dr-counts' }, tr('rising_counts', { current: n(row.current), previous: n(row.previous), last_year: n(row.last_year) }))));
  };
  setChildren(body,
    fallback ? el('p', { class: 'dr-fallback' }, tr('rising_fallback')) : null,
    rising.length ? el('ol', { class: 'dr-list', 'data-field': 'rising' }, rising.map(item))
      : el('p', { class: 'dr-none', 'data-field': 'dr-none' }, tr('rising_none')),
    near.length ? [el('p', { class: 'dr-near-head' }, tr('rising_near')), el('ol', { class: 'dr-list near', 'data-field': 'near' }, near.map(item))] : null);
}

// ---------------------------------------------------------------------------------------------
// Exports

function exportName(ext) {
  return `gridwatch-${state.region}-${state.from}-${state.to}${state.category ? `-${state.category}` : ''}.${ext}`;
}

function renderExports() {
  if (!state.region) return;
  $('export-csv').href = `${API}/${dashboardPath('csv')}`;
  $('export-csv').setAttribute('download', exportName('csv'));
  $('export-geojson').href = `${API}/${dashboardPath('geojson')}`;
  $('export-geojson').setAttribute('download', exportName('geojson'));
}

/** The map as drawn, with a title strip and the legend, on a 2D canvas. */
function composeMapImage() {
  const source = state.map.getCanvas();
  const ratio = source.width / Math.max(1, source.clientWidth || source.width);
  const head = Math.round(44 * ratio), foot = Math.round(30 * ratio), pad = Math.round(12 * ratio);
  const canvas = document.createElement('canvas');
  canvas.width = source.width;
  canvas.height = source.height + head + foot;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(source, 0, head);
  ctx.fillStyle = '#1f2433';
  ctx.textBaseline = 'middle';
  ctx.font = `700 ${Math.round(16 * ratio)}px ${CANVAS_FONT}`;
  const title = regionName(state.region);
  ctx.fillText(title, pad, head / 2);
  const titleWidth = ctx.measureText(title).width;
  ctx.font = `${Math.round(12.5 * ratio)}px ${CANVAS_FONT}`;
  ctx.fillStyle = '#4b5565';
  const sub = `${rangeLabel(state.from, state.to)}${state.category ? ` · ${categoryName(state.category)}` : ''} · ${tr('legend_reports')}`;
  ctx.fillText(sub, pad + titleWidth + pad, head / 2);
  // The legend along the bottom.
  let x = pad;
  const y = head + source.height + foot / 2;
  const sw = Math.round(14 * ratio), sh = Math.round(10 * ratio);
  ctx.font = `${Math.round(11.5 * ratio)}px ${CANVAS_FONT}`;
  for (const item of legendItems()) {
    ctx.fillStyle = item.colour;
    ctx.fillRect(x, y - sh / 2, sw, sh);
    ctx.strokeStyle = item.line ?? 'rgba(0,0,0,0.15)';
    ctx.lineWidth = item.line ? 2 * ratio : 1;
    ctx.strokeRect(x, y - sh / 2, sw, sh);
    x += sw + 4 * ratio;
    ctx.fillStyle = '#4b5565';
    ctx.fillText(item.label, x, y);
    x += ctx.measureText(item.label).width + 12 * ratio;
  }
  ctx.fillStyle = '#6b7280';
  ctx.textAlign = 'right';
  ctx.fillText('gridwatch', canvas.width - pad, y);
  return canvas;
}

async function exportPng() {
  try {
    await mapIdle();
    const canvas = composeMapImage();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    if (!blob) throw new Error(tr('error_png'));
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: exportName('png'), class: 'visually-hidden' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    showError(err);
  }
}

/** Puts a still of the map where the print layout shows it (a WebGL canvas does not print reliably). */
function snapshotMap() {
  if (!state.map) return Promise.resolve();
  const img = $('map-snapshot');
  // A map hidden by the print layout may already be resized to nothing: keep the still there is.
  if (!state.map.getCanvas().width || !state.map.getCanvas().height) return Promise.resolve();
  try {
    img.src = state.map.getCanvas().toDataURL('image/png');
    img.alt = tr('map_label', { name: regionName(state.region) });
  } catch {
    return Promise.resolve();
  }
  return img.decode().catch(() => {});
}

async function printDashboard() {
  await mapIdle();
  await snapshotMap();
  state.printing = true;
  renderCategories();
  renderTrend();
  window.print();
}

// ---------------------------------------------------------------------------------------------
// Map

function plainStyle() {
  return {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }],
  };
}

const EMPTY = { type: 'FeatureCollection', features: [] };

function createMap() {
  const url = state.config.basemap_style_url;
  const map = new maplibregl.Map({
    container: 'dash-map',
    style: url || plainStyle(),
    center: [106.83, 39.6],
    zoom: 11,
    minZoom: 7,
    maxZoom: 18,
    attributionControl: { compact: true },
    // MapLibre 5+ takes the WebGL context's attributes here: keeps the drawn frame readable for the
    // PNG export and the print still.
    canvasContextAttributes: { preserveDrawingBuffer: true },
    dragRotate: false,
    pitchWithRotate: false,
    cooperativeGestures: false,
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  let fellBack = !url;
  map.on('error', (event) => {
    console.warn('map error:', event.error?.message ?? event);
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(plainStyle(), { diff: false });
    }
  });
  state.map = map;
  window.gridwatchDashboard.map = map;
  state.mapLoaded = new Promise((resolve) => map.once('load', resolve)).then(() => addLayers(map));
  return state.mapLoaded;
}

function addLayers(map) {
  const font = basemapFont(map);
  map.addSource('grids', { type: 'geojson', data: EMPTY, promoteId: 'code' });
  map.addSource('children', { type: 'geojson', data: EMPTY });
  map.addSource('child-labels', { type: 'geojson', data: EMPTY });
  map.addSource('region', { type: 'geojson', data: EMPTY });
  map.addLayer({ id: 'grid-fill', type: 'fill', source: 'grids', paint: { 'fill-color': NO_DATA_COLOUR, 'fill-opacity': 0.9 } });
  map.addLayer({ id: 'grid-line', type: 'line', source: 'grids', paint: { 'line-color': '#ffffff', 'line-width': 0.8 } });
  map.addLayer({ id: 'child-line', type: 'line', source: 'children', layout: { 'line-join': 'round' }, paint: { 'line-color': '#4f5d75', 'line-width': 1.3, 'line-dasharray': [3, 2] } });
  map.addLayer({ id: 'region-line', type: 'line', source: 'region', layout: { 'line-join': 'round' }, paint: { 'line-color': '#2b2d42', 'line-width': 2.6 } });
  map.addLayer({
    id: 'spot-cold', type: 'line', source: 'grids', filter: ['==', ['get', 'spot'], 'cold'], layout: { 'line-join': 'round' },
    paint: { 'line-color': COLD_LINE, 'line-width': 3, 'line-dasharray': [2, 1] },
  });
  map.addLayer({
    id: 'spot-hot', type: 'line', source: 'grids', filter: ['==', ['get', 'spot'], 'hot'], layout: { 'line-join': 'round' },
    paint: { 'line-color': HOT_LINE, 'line-width': 3.2 },
  });
  map.addLayer({
    id: 'grid-selected-halo', type: 'line', source: 'grids', filter: ['==', ['get', 'code'], ''], layout: { 'line-join': 'round' },
    paint: { 'line-color': '#ffffff', 'line-width': 7 },
  });
  map.addLayer({
    id: 'grid-selected', type: 'line', source: 'grids', filter: ['==', ['get', 'code'], ''], layout: { 'line-join': 'round' },
    paint: { 'line-color': ACCENT, 'line-width': 3.5 },
  });
  map.addLayer({
    id: 'child-label', type: 'symbol', source: 'child-labels',
    layout: { 'text-field': ['get', 'name'], 'text-font': font ?? FONT_MEDIUM, 'text-size': 12.5, 'text-max-width': 8, 'text-allow-overlap': false },
    paint: { 'text-color': '#1f2433', 'text-halo-color': 'rgba(255,255,255,0.95)', 'text-halo-width': 1.6 },
  });
  map.addLayer({
    id: 'grid-label', type: 'symbol', source: 'grids', filter: ['==', ['get', 'code'], ''],
    layout: { 'text-field': ['get', 'name'], 'text-font': font ?? FONT_MEDIUM, 'text-size': 13, 'text-offset': [0, 0], 'text-allow-overlap': true },
    paint: { 'text-color': '#7c2d12', 'text-halo-color': 'rgba(255,255,255,0.95)', 'text-halo-width': 2 },
  });

  const popup = new maplibregl.Popup({ closeButton: false, closeOnClick: false, offset: 10, className: 'dash-popup' });
  map.on('mousemove', 'grid-fill', (event) => {
    const f = event.features?.[0];
    if (!f) return;
    map.getCanvas().style.cursor = 'pointer';
    const p = f.properties;
    const spot = p.spot === 'hot' || p.spot === 'cold' ? ` · ${tr(`map_tip_${p.spot}`)}` : '';
    const reports = p.reports === null || p.reports === undefined || p.reports === '' ? '—' : n(Number(p.reports));
    popup.setLngLat(event.lngLat).setText(`${tr('map_tip', { name: p.name, n: reports })}${spot}`).addTo(map);
  });
  map.on('mouseleave', 'grid-fill', () => {
    map.getCanvas().style.cursor = '';
    popup.remove();
  });
  map.on('click', 'grid-fill', (event) => {
    const code = event.features?.[0]?.properties?.code;
    if (code) selectGrid(code, { fit: false });
  });
}

function mapIdle() {
  const map = state.map;
  if (!map) return Promise.resolve();
  return new Promise((resolve) => {
    requestAnimationFrame(() => {
      if (map.loaded() && !map.isMoving()) resolve();
      else map.once('idle', resolve);
    });
  });
}

/** The region's grids (from GET /regions), children and outline. */
function regionFeatures(code) {
  const region = state.regionIndex.get(code);
  const grids = [];
  const children = [];
  for (const feature of state.regionIndex.values()) {
    const p = feature.properties;
    if (p.level === 'grid' && p.code.startsWith(code)) grids.push(feature);
    else if (p.parent_code === code && p.level !== 'grid' && p.level !== 'micro_grid') children.push(feature);
  }
  return { region, grids, children };
}

/** Five classes of reports per grid, limits from the quantiles of the grids that have reports. */
function reportClasses(values) {
  const positive = values.filter((v) => v > 0).sort((a, b) => a - b);
  if (!positive.length) return { breaks: [], colours: [] };
  const q = (p) => positive[Math.min(positive.length - 1, Math.floor(p * positive.length))];
  const breaks = [];
  for (const p of [0.2, 0.4, 0.6, 0.8]) {
    const v = Math.max(2, Math.ceil(q(p)));
    if (v > (breaks.at(-1) ?? 1) && v <= positive.at(-1)) breaks.push(v);
  }
  // Class k holds [limit k-1, limit k): 1..breaks[0]-1, …, breaks.at(-1)..max.
  const colours = REPORT_COLOURS.slice(REPORT_COLOURS.length - breaks.length - 1);
  return { breaks, colours };
}

function classColour(value) {
  if (value === null || value === undefined) return NO_DATA_COLOUR;
  if (value === 0) return ZERO_COLOUR;
  const { breaks, colours } = state.classes;
  let k = 0;
  while (k < breaks.length && value >= breaks[k]) k++;
  return colours[k];
}

function legendItems() {
  const items = [];
  const c = state.classes;
  if (c && c.colours.length) {
    items.push({ colour: ZERO_COLOUR, label: '0' });
    const limits = [1, ...c.breaks];
    c.colours.forEach((colour, i) => {
      const lo = limits[i];
      const hi = i < c.breaks.length ? c.breaks[i] - 1 : null;
      items.push({ colour, label: hi === null ? `≥ ${n(lo)}` : lo === hi ? n(lo) : `${n(lo)}–${n(hi)}` });
    });
  }
  const h = state.hotspots?.data;
  if (h) {
    items.push({ colour: 'rgba(255,255,255,0)', line: HOT_LINE, label: tr('hot', { n: n(h.hot) }) });
    items.push({ colour: 'rgba(255,255,255,0)', line: COLD_LINE, label: tr('cold', { n: n(h.cold) }) });
  }
  return items;
}

async function updateMapData() {
  if (!state.map) return;
  await state.mapLoaded;
  const map = state.map;
  const { region, grids, children } = regionFeatures(state.region);
  const figures = new Map((state.dashboard?.grids ?? []).map((g) => [g.code, g]));
  state.hotspotByCode = new Map((state.hotspots?.data?.grids ?? []).map((g) => [g.code, g.class]));
  const values = [];
  const features = grids.map((f) => {
    const g = figures.get(f.properties.code);
    const reports = state.dashboard ? (g?.reports ?? null) : null;
    if (reports !== null) values.push(reports);
    return {
      type: 'Feature',
      id: f.properties.code,
      geometry: f.geometry,
      properties: {
        code: f.properties.code,
        name: f.properties.name,
        reports,
        spot: state.hotspotByCode.get(f.properties.code) ?? '',
      },
    };
  });
  state.classes = reportClasses(values);
  for (const feature of features) feature.properties.colour = classColour(feature.properties.reports);
  map.getSource('grids').setData({ type: 'FeatureCollection', features });
  map.setPaintProperty('grid-fill', 'fill-color', ['get', 'colour']);
  if (state.mapRegion !== state.region) {
    state.mapRegion = state.region;
    map.getSource('region').setData(region ? { type: 'FeatureCollection', features: [region] } : EMPTY);
    map.getSource('children').setData({ type: 'FeatureCollection', features: children });
    map.getSource('child-labels').setData({
      type: 'FeatureCollection',
      features: children.map((f) => ({ type: 'Feature', properties: { name: f.properties.name }, geometry: { type: 'Point', coordinates: labelPoint(f.geometry) } }))
        .filter((f) => f.geometry.coordinates),
    });
    $('dash-map').setAttribute('aria-label', tr('map_label', { name: regionName(state.region) }));
  }
  renderSelection();
  renderTopGrids();
}

function fitRegion({ animate = false } = {}) {
  const map = state.map;
  const feature = state.regionIndex.get(state.region);
  const bbox = feature && bboxOf([feature.geometry]);
  if (!map || !bbox) return;
  map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 24, animate, duration: animate ? 500 : 0, maxZoom: 16 });
}

/** Picks a grid: highlighted on the map (and zoomed to with `fit`), in the table and the rising list. */
function selectGrid(code, { fit = false } = {}) {
  state.selectedGrid = code;
  renderSelection();
  renderTopGrids();
  renderRising();
  const feature = state.regionIndex.get(code);
  if (fit && feature && state.map) {
    const bbox = bboxOf([feature.geometry]);
    if (bbox) state.map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 60, maxZoom: 16.5, duration: 600 });
    if (window.matchMedia('(max-width: 720px)').matches) $('map-card').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }
}

function renderSelection() {
  const map = state.map;
  if (!map || !map.getLayer('grid-selected')) return;
  const filter = ['==', ['get', 'code'], state.selectedGrid ?? ''];
  for (const id of ['grid-selected', 'grid-selected-halo', 'grid-label']) map.setFilter(id, filter);
}

function renderLegend() {
  const node = $('map-legend');
  const c = state.classes;
  const empty = state.dashboard && state.dashboard.totals.reports === 0;
  const classes = c && c.colours.length
    ? el('ul', { class: 'dl-classes', 'data-field': 'classes' }, legendItems().filter((i) => !i.line).map((item) => el('li', { class: 'dl-class' },
      el('span', { class: 'dl-swatch', style: `background:${item.colour}` }), el('span', {}, item.label))))
    : el('span', { class: 'muted' }, empty ? tr('empty_period') : state.parts.dashboard === 'failed' ? tr('load_failed') : tr('loading'));
  const h = state.hotspots;
  let spots;
  if (state.parts.hotspots === 'loading' || !h) spots = el('span', { class: 'muted' }, tr('hotspot_loading'));
  else if (h.unavailable) {
    spots = el('span', { class: 'muted', 'data-field': 'hotspot-unavailable' },
      h.empty ? tr('empty_period') : tr('hotspot_unavailable', { message: h.unavailable }));
  }
  else {
    const d = h.data;
    spots = [
      el('span', { class: 'dl-spot', 'data-field': 'hot', 'data-count': d.hot }, el('span', { class: 'dl-spot-swatch hot' }), tr('hot', { n: n(d.hot) })),
      el('span', { class: 'dl-spot', 'data-field': 'cold', 'data-count': d.cold }, el('span', { class: 'dl-spot-swatch cold' }), tr('cold', { n: n(d.cold) })),
      el('span', { class: 'dl-method' }, tr('hotspot_method', { alpha: d.alpha, perms: n(d.permutations) })),
      d.hot + d.cold === 0 ? el('span', { class: 'muted' }, tr('hotspot_none')) : null,
    ];
  }
  setChildren(node,
    el('div', { class: 'dl-row' }, el('span', { class: 'dl-label' }, tr('legend_reports')), classes),
    el('div', { class: 'dl-row', 'data-field': 'hotspots' }, el('span', { class: 'dl-label' }, tr('legend_hotspots')), spots));
}

// ---------------------------------------------------------------------------------------------
// Controls

function bindControls() {
  $('lang-toggle').addEventListener('click', () => setLanguage(state.lang === 'zh' ? 'en' : 'zh'));
  $('region-select').addEventListener('change', (event) => setRegion(event.target.value));
  for (const button of document.querySelectorAll('#presets [data-preset]')) {
    button.addEventListener('click', () => setPreset(button.dataset.preset));
  }
  $('date-from').addEventListener('change', setDates);
  $('date-to').addEventListener('change', setDates);
  $('category-select').addEventListener('change', (event) => setCategory(event.target.value));
  for (const button of document.querySelectorAll('[data-interval]')) {
    button.addEventListener('click', () => {
      const same = trendInterval() === button.dataset.interval;
      state.interval = button.dataset.interval;
      if (same) { writeUrl(); return; }
      refresh({ parts: ['trend'] }).catch(() => {});
    });
  }
  for (const button of document.querySelectorAll('[data-period]')) {
    button.addEventListener('click', () => {
      const same = risingPeriod() === button.dataset.period;
      state.risingPeriod = button.dataset.period;
      if (same) { writeUrl(); return; }
      refresh({ parts: ['emerging'] }).catch(() => {});
    });
  }
  const step = (forward) => {
    const current = state.emerging?.data?.current;
    if (!current) return;
    state.risingAt = forward ? addDays(current.to, 1) : addDays(current.from, -1);
    refresh({ parts: ['emerging'] }).catch(() => {});
  };
  $('rising-prev').addEventListener('click', () => step(false));
  $('rising-next').addEventListener('click', () => step(true));
  $('controls').addEventListener('submit', (event) => event.preventDefault());
  $('export-print').addEventListener('click', () => { printDashboard(); });
  $('export-png').addEventListener('click', () => { exportPng(); });
  $('map-reset').addEventListener('click', () => {
    state.selectedGrid = null;
    renderSelection();
    renderTopGrids();
    renderRising();
    fitRegion({ animate: true });
  });
  // Real printing fires beforeprint/afterprint; print emulation (and some browsers) only the media query.
  const setPrinting = (printing) => {
    if (state.printing === printing) return;
    state.printing = printing;
    renderCategories();
    renderTrend();
  };
  window.addEventListener('beforeprint', () => { snapshotMap(); setPrinting(true); });
  window.addEventListener('afterprint', () => setPrinting(false));
  window.matchMedia('print').addEventListener('change', (event) => {
    if (event.matches) snapshotMap();
    setPrinting(event.matches);
  });
  $('error-dismiss').addEventListener('click', () => { $('error-banner').hidden = true; });
  $('error-reload').addEventListener('click', () => window.location.reload());
  // The charts are drawn to their card's width.
  let lastWidth = window.innerWidth;
  window.addEventListener('resize', () => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    clearTimeout(state.resizeTimer);
    state.resizeTimer = setTimeout(() => { renderCategories(); renderTrend(); }, 120);
  });
}

// ---------------------------------------------------------------------------------------------
// Start-up

/** Districts, then each district's streets, each followed by its communities. */
function orderLeaderRegions(features) {
  const byParent = new Map();
  for (const f of features) {
    const parent = f.properties.parent_code ?? '';
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(f);
  }
  for (const list of byParent.values()) list.sort((a, b) => a.properties.code.localeCompare(b.properties.code));
  const out = [];
  const walk = (f) => {
    out.push(f);
    for (const child of byParent.get(f.properties.code) ?? []) walk(child);
  };
  for (const d of features.filter((f) => f.properties.level === 'district').sort((a, b) => a.properties.code.localeCompare(b.properties.code))) walk(d);
  return out;
}

async function start() {
  applyStaticText(state.lang, tr, 'page_title');
  bindControls();
  const wanted = readUrl();
  const [config, clock, categories, regions, user] = await Promise.all([
    api('config'), api('clock'), api('categories'), api('regions'), session,
  ]);
  state.config = config;
  state.today = CHINA_DAY.format(new Date(clock.now));
  state.categories = categories;
  categories.forEach((category, i) => {
    state.categoryIndex.set(category.code, { category, colour: CATEGORY_PALETTE[i % CATEGORY_PALETTE.length] });
  });
  if (state.category && !state.categoryIndex.has(state.category)) state.category = '';
  for (const feature of regions.features) state.regionIndex.set(feature.properties.code, feature);
  // A leader scoped to a street or community is offered the regions inside it only.
  const scope = user?.scope ?? '';
  state.leaderRegions = orderLeaderRegions(regions.features.filter((f) => LEADER_LEVELS.includes(f.properties.level)))
    .filter((f) => f.properties.code.startsWith(scope));
  const streets = state.leaderRegions.filter((f) => f.properties.level === 'street');
  const fallback = (streets[0] ?? state.leaderRegions[0])?.properties.code;
  if (!fallback) throw new ApiError(tr('error_no_regions'));
  const exists = wanted && LEADER_LEVELS.includes(state.regionIndex.get(wanted)?.properties.level);
  const known = exists && wanted.startsWith(scope);
  state.region = known ? wanted : fallback;
  if (state.preset) Object.assign(state, presetRange(state.preset));

  renderAll();
  const mapReady = createMap();
  await refresh();
  await mapReady;
  await updateMapData();
  fitRegion({ animate: false });
  await mapIdle();
  if (wanted && !known) {
    showNotice(exists
      ? tr('error_region_outside', { asked: regionName(wanted), name: regionName(state.region) })
      : tr('error_region_unknown', { code: wanted, name: regionName(state.region) }));
    $('error-banner').dataset.kind = 'notice';
  }
  state.ready = true;
  document.body.dataset.state = 'ready';
  renderStatus();
}

// Published before start() runs, so start() can fill in `map` as soon as it exists.
window.gridwatchDashboard = { map: null, ready: null, refreshed: null, setLanguage, state };
window.gridwatchDashboard.ready = start();
window.gridwatchDashboard.ready.catch((err) => {
  console.warn('dashboard failed to start:', err);
  showError(err);
});
