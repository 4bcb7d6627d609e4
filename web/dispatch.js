/**
 * gridwatch dispatcher console 调度台: the whistle loop 吹哨答卷 as the 综治中心 runs it.
 *
 * What this module owns: the incoming case queue (filters, counts per state, live updates over
 * Server-Sent Events with a 15 s poll behind them), the selected case (territory, party branch,
 * grid staff, the routing proposal and its reason, triage 三审, the actions the server allows,
 * whistles with their escalation timers and cards 亮牌, the event history, notices sent, a small
 * map), and the side pages: figures 统计, packages 打包, routing rules 路由规则 with a preview, and
 * the escalation policy 亮牌规则.
 * What it must not do: reach any host but its own (MapLibre comes from /vendor/maplibre-gl/, the
 * map style has no glyphs URL unless the server's config names a basemap), or show a string that
 * is not in dispatch-i18n.js.
 *
 * Time: every timer is computed against the server's clock, not the browser's. GET /clock gives the
 * server's `now`; the difference to Date.now() is kept and refreshed after each event and poll, so a
 * controllable clock that was advanced (tests, demos) shows the right elapsed time and countdown.
 *
 * For browser tests, `window.gridwatchDispatch = { ready, ... }`: `ready` settles once the reference
 * data and the first page of the queue are loaded and the event stream is open (or has failed, in
 * which case polling carries on); `document.body.dataset.state` is then 'ready', or 'error' (with the
 * banner shown) when a start-up request failed.
 */
import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { t, has, HTML_LANG, initialLanguage, formatNumber } from './dispatch-i18n.js';
import { applyStaticText, rememberLanguage } from './i18n.js';
import { el, setChildren } from './dom.js';
import { ApiError, jsonApi, query } from './api.js';
import { basemapFont } from './basemap.js';
import { session, inScope } from './session.js';

// Relative to the page, so the console keeps working if the binary ever serves it under a prefix.
const API = 'api/v1';
const LANG_STORAGE_KEY = 'gridwatch.lang'; // shared with the map page and the editor
const POLL_MS = 15_000;
const QUEUE_PAGE = 50;
const STREAM_WAIT_MS = 5_000;   // how long start-up waits for the event stream before carrying on
const REFRESH_DEBOUNCE_MS = 250;
const MAX_DUPLICATE_POINTS = 12;
const CHINA_OFFSET = '+08:00';  // China has one time zone; deadlines are typed in China time
const TIME_ZONE = 'Asia/Shanghai';

const STATES = ['reported', 'accepted', 'whistled', 'acknowledged', 'resolved', 'closed', 'evaluated', 'rejected', 'merged'];
/** The dispatcher's working set: what still needs someone to act. */
const OPEN_STATES = ['reported', 'accepted', 'whistled', 'acknowledged', 'resolved'];
const FINAL_STATES = ['evaluated', 'rejected', 'merged'];
const DIFFICULTIES = ['simple', 'complex', 'long', 'very_complex'];
const STAFF_ROLES = ['grid_leader', 'police_officer', 'full_time_worker', 'part_time_worker'];
const REJECT_REASONS = ['not_our_responsibility', 'invalid'];
const NOTIFY_TARGETS = ['centre_head', 'deputy_district_head'];
const PHOTO_TYPES = ['image/png', 'image/jpeg'];
const PHOTO_MAX_BYTES = 8 * 1024 * 1024;

const BACKGROUND = '#f3f1ec';
const ACCENT = '#c2410c';
const BRAND = '#b4232c';
const FONT_REGULAR = ['Noto Sans CJK SC Regular', 'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC',
  'Microsoft YaHei', 'sans-serif'];
const FONT_MEDIUM = ['Noto Sans CJK SC Medium', ...FONT_REGULAR.slice(1)];

const state = {
  lang: initialLanguage(LANG_STORAGE_KEY),
  ready: false,
  scoped: false,              // the user sees one region only (a street or community leader)
  config: { basemap_style_url: null },
  categories: [],
  categoryIndex: new Map(),   // code -> category
  departments: [],
  deptIndex: new Map(),       // code -> department
  streets: null,              // FeatureCollection
  districts: null,            // FeatureCollection
  regionNames: new Map(),     // code -> name (districts and streets)
  filters: { street: '', category: '', state: 'open', overdue: false },
  cases: [],
  nextCursor: null,
  counts: null,
  listSeq: 0,
  selectedId: null,
  detail: null,
  detailSig: '',
  detailSeq: 0,
  notices: null,
  noticesSig: '',
  drafts: new Map(),          // case id -> what the dispatcher has typed but not sent
  busy: false,
  message: null,              // { kind: 'ok'|'error', text, caseId }
  clock: null,                // last GET /clock answer
  clockOffsetMs: 0,           // server now − Date.now()
  sse: null,
  live: 'connecting',
  sseEvents: 0,
  lastEvent: null,
  refreshTimer: 0,
  refreshWanted: { list: false, detail: false, clock: false },
  tab: 'cases',
  caseMap: null,
  caseMapLoaded: null,
  caseMapCaseId: null,
  caseMapFit: null,           // a fit still to do once the map's pane has a size
  gridCache: new Map(),       // community code -> Promise<FeatureCollection>
  stats: null,
  statsSort: { key: 'cases', dir: -1 },
  statsSeq: 0,
  proposals: null,
  packages: null,
  rules: null,
  editingRule: null,          // null: form closed; 'new' or a rule id
  previewMap: null,
  previewLoaded: null,
  preview: null,
  policy: null,
  policyDraft: null,          // steps being edited, or null
};

const $ = (id) => document.getElementById(id);
const tr = (key, params) => t(state.lang, key, params);
/** The server's reason for a routing, in the page's language. */
const whyText = (routing) => (state.lang === 'zh' ? routing?.why_zh : routing?.why) ?? routing?.why ?? '—';
/** A translation when the table has one, else the fallback (codes the server may add later). */
const trOr = (key, fallback, params) => (has(key) ? tr(key, params) : fallback);

// ---------------------------------------------------------------------------------------------
// API

const api = jsonApi(API, tr);

// ---------------------------------------------------------------------------------------------
// Server clock

function serverNow() {
  return Date.now() + state.clockOffsetMs;
}

async function refreshClock() {
  const before = Date.now();
  const clock = await api('clock');
  const after = Date.now();
  const now = Date.parse(clock.now);
  if (Number.isFinite(now)) state.clockOffsetMs = now - (before + after) / 2;
  state.clock = clock;
  renderClock();
  tick();
}

function renderClock() {
  const node = $('server-clock');
  const clock = state.clock;
  if (!clock) { setChildren(node); return; }
  const offset = Number(clock.offset_minutes) || 0;
  node.dataset.offsetMinutes = String(offset);
  node.dataset.controllable = String(Boolean(clock.controllable));
  setChildren(node, 
    el('span', { class: 'clock-label' }, tr('clock_server')),
    el('span', { class: 'clock-time', 'data-field': 'server-now' }, formatDateTime(new Date(serverNow()).toISOString(), { seconds: true })),
    clock.controllable && offset !== 0
      ? el('span', { class: 'clock-sim', title: tr('clock_sim_title') }, tr('clock_sim', { offset: formatOffset(offset) }))
      : null);
}

function formatOffset(minutes) {
  const sign = minutes < 0 ? '−' : '+';
  const abs = Math.round(Math.abs(minutes));
  if (abs < 60) return `${sign}${tr('dur_minutes', { m: abs })}`;
  const h = Math.floor(abs / 60), m = abs % 60;
  return `${sign}${m ? tr('dur_hours_minutes', { h, m }) : tr('dur_hours', { h })}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const formatters = new Map();
function formatter(options) {
  const key = `${state.lang}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', { timeZone: TIME_ZONE, ...options }));
  }
  return formatters.get(key);
}

/** A time as the city sees it (China time); the year only when it is not the server's current year. */
function formatDateTime(iso, { seconds = false, date = true } = {}) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const yearOf = (x) => formatter({ year: 'numeric' }).format(x);
  const options = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (seconds) options.second = '2-digit';
  if (date) {
    options.month = state.lang === 'en' ? 'short' : '2-digit';
    options.day = '2-digit';
    if (yearOf(d) !== yearOf(new Date(serverNow()))) options.year = 'numeric';
  }
  return formatter(options).format(d);
}

function formatDay(iso) {
  if (!iso) return '—';
  return formatter({ year: 'numeric', month: state.lang === 'en' ? 'short' : '2-digit', day: '2-digit' }).format(new Date(iso));
}

const pad2 = (n) => String(n).padStart(2, '0');

/** A running timer: 0:59:12, or 2天 3:04:05 past a day. */
function formatTimer(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const clock = `${h}:${pad2(m)}:${pad2(s)}`;
  return days ? `${tr('dur_days_prefix', { d: days })} ${clock}` : clock;
}

/** A duration in words, for figures: 42 分钟, 3.5 小时. */
function formatMinutes(minutes) {
  if (minutes === null || minutes === undefined || !Number.isFinite(Number(minutes))) return '—';
  const m = Number(minutes);
  if (m < 90) return tr('dur_minutes', { m: formatNumber(state.lang, Math.round(m)) });
  return tr('dur_hours_decimal', { h: formatDecimal(m / 60) });
}

function formatHours(hours) {
  if (hours === null || hours === undefined || !Number.isFinite(Number(hours))) return '—';
  const h = Number(hours);
  if (h < 1.5) return tr('dur_minutes', { m: formatNumber(state.lang, Math.round(h * 60)) });
  if (h >= 72) return tr('dur_days_decimal', { d: formatDecimal(h / 24) });
  return tr('dur_hours_decimal', { h: formatDecimal(h) });
}

function formatDecimal(x) {
  return new Intl.NumberFormat(HTML_LANG[state.lang], { maximumFractionDigits: 1 }).format(x);
}

function formatRate(rate) {
  if (rate === null || rate === undefined || !Number.isFinite(Number(rate))) return '—';
  return new Intl.NumberFormat(HTML_LANG[state.lang], { style: 'percent', maximumFractionDigits: 1 }).format(Number(rate));
}

function categoryName(code) {
  const category = state.categoryIndex.get(code);
  if (!category) return code ?? '—';
  return state.lang === 'en' ? category.name_en : category.name_zh;
}

/** A department by code (or link); English readers get name_en from /departments. */
function deptName(codeOrLink) {
  if (!codeOrLink) return '—';
  const code = typeof codeOrLink === 'string' ? codeOrLink : codeOrLink.code;
  const dept = state.deptIndex.get(code);
  if (dept) return state.lang === 'en' ? dept.name_en : dept.name_zh;
  return (typeof codeOrLink === 'object' && codeOrLink.name) || code;
}

function stateName(s) {
  return trOr(`state_${s}`, s);
}

function actionName(a) {
  return trOr(`action_${a}`, a);
}

function cardName(card) {
  return trOr(`card_${card}`, card);
}

function regionName(link) {
  if (!link) return null;
  return link.name || link.code;
}

/** street · community · grid, the way a dispatcher names a place. */
function placeText(c) {
  const parts = [c.street, c.community, c.grid].map(regionName).filter(Boolean);
  return parts.length ? parts.join(' · ') : (regionName(c.district) ?? tr('place_unknown'));
}

function leadName(routing) {
  const lead = routing?.lead;
  if (!lead) return '—';
  if (lead.kind === 'department') return deptName(lead);
  return tr('lead_territory', { name: lead.name || tr('territory_generic') });
}

// ---------------------------------------------------------------------------------------------
// DOM helpers

function option(value, label, selected = false, attrs = {}) {
  return el('option', { value, selected, ...attrs }, label);
}

function stateBadge(s) {
  return el('span', { class: `state-badge state-${s}`, 'data-field': 'state' }, stateName(s));
}

function cardBadge(card, { large = false } = {}) {
  if (!card) return null;
  return el('span', { class: `card-badge card-${card}${large ? ' large' : ''}`, 'data-card': card }, cardName(card));
}

function overdueTag(overdue) {
  return overdue ? el('span', { class: 'tag tag-overdue', 'data-field': 'overdue' }, tr('overdue')) : null;
}

function duplicateTag(n) {
  return n > 0 ? el('span', { class: 'tag tag-dup', 'data-field': 'duplicates', title: tr('duplicates_title') }, tr('duplicates_n', { n })) : null;
}

function section(titleKey, attrs, ...content) {
  return el('section', { class: 'detail-section', ...attrs }, el('h3', {}, tr(titleKey)), ...content);
}

/** A live "since" or "until" timer, updated every second by `tick`. */
function timer(kind, iso, attrs = {}) {
  const node = el('span', { class: `timer timer-${kind}`, 'data-timer': kind, 'data-at': iso, ...attrs });
  updateTimer(node, serverNow());
  return node;
}

function updateTimer(node, now) {
  const at = Date.parse(node.dataset.at);
  if (!Number.isFinite(at)) { node.textContent = '—'; return; }
  if (node.dataset.timer === 'since') {
    node.textContent = formatTimer(now - at);
  } else {
    const left = at - now;
    node.textContent = left > 0 ? formatTimer(left) : tr('due_now');
    node.classList.toggle('due', left <= 0);
  }
}

function tick() {
  const now = serverNow();
  for (const node of document.querySelectorAll('[data-timer]')) updateTimer(node, now);
  const clock = document.querySelector('#server-clock [data-field=server-now]');
  if (clock) clock.textContent = formatDateTime(new Date(now).toISOString(), { seconds: true });
}

function phoneLink(phone) {
  if (!phone) return el('span', { class: 'muted' }, '—');
  return el('a', { href: `tel:${phone.replace(/[^\d+]/g, '')}`, class: 'phone' }, phone);
}

// ---------------------------------------------------------------------------------------------
// Static text and language

function renderStaticText() {
  applyStaticText(state.lang, tr, 'page_title');
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(LANG_STORAGE_KEY, lang);
  renderAll();
}

function renderAll() {
  renderStaticText();
  renderLive();
  renderClock();
  renderFilters();
  renderCounts();
  renderQueue();
  renderDetail({ force: true });
  renderNotices({ force: true });
  if (state.stats) renderStats();
  if (state.proposals || state.packages) renderPackages();
  if (state.rules) { renderRules(); renderRuleForm(); }
  renderPreviewOptions();
  renderPreview();
  if (state.policy) renderPolicy();
}

// ---------------------------------------------------------------------------------------------
// Errors

function showError(err) {
  const where = err?.path ? ` (${err.path})` : '';
  $('error-text').textContent = tr('error_prefix') + (err?.message ?? String(err)) + where;
  $('error-banner').hidden = false;
  if (!state.ready) document.body.dataset.state = 'error';
}

function clearError() {
  $('error-banner').hidden = true;
}

/** For background refreshes: an aborted request is not a problem, anything else goes to the banner. */
function background(promise) {
  return promise.then(() => { if (state.ready) clearError(); }).catch((err) => {
    if (err?.name === 'AbortError') return;
    console.warn('dispatch console:', err);
    showError(err);
  });
}

// ---------------------------------------------------------------------------------------------
// Queue

function stateQuery(filter) {
  if (filter === 'open') return OPEN_STATES.join(',');
  if (filter === 'all') return '';
  return filter;
}

function listQuery(cursor) {
  const f = state.filters;
  return `cases${query({
    state: stateQuery(f.state),
    street: f.street,
    category: f.category,
    overdue: f.overdue ? 'true' : '',
    limit: QUEUE_PAGE,
    cursor,
  })}`;
}

/**
 * Page one again. Pages loaded further down are kept (the list is newest first by id, so older
 * ones below page one are unaffected by new cases) unless the filters changed.
 */
async function refreshList({ reset = false } = {}) {
  const seq = ++state.listSeq;
  if (reset) {
    state.cases = [];
    state.nextCursor = null;
    $('case-list').dataset.loading = 'true';
  }
  const page = await api(listQuery());
  if (seq !== state.listSeq) return;
  const fresh = page.cases ?? [];
  const oldest = fresh.length ? Math.min(...fresh.map((c) => c.id)) : Infinity;
  const kept = reset || !page.next_cursor ? [] : state.cases.filter((c) => c.id < oldest);
  state.cases = [...fresh, ...kept];
  state.nextCursor = kept.length ? state.nextCursor : page.next_cursor ?? null;
  state.counts = page.counts ?? null;
  delete $('case-list').dataset.loading;
  renderCounts();
  renderQueue();
}

async function loadMore() {
  if (!state.nextCursor) return;
  const seq = state.listSeq;
  const page = await api(listQuery(state.nextCursor));
  if (seq !== state.listSeq) return;
  const seen = new Set(state.cases.map((c) => c.id));
  state.cases.push(...(page.cases ?? []).filter((c) => !seen.has(c.id)));
  state.nextCursor = page.next_cursor ?? null;
  renderQueue();
}

function renderFilters() {
  const street = $('filter-street');
  setChildren(street, option('', tr(state.scoped ? 'filter_my_region' : 'filter_all_streets'), state.filters.street === ''));
  const byDistrict = new Map();
  for (const f of state.streets?.features ?? []) {
    const parent = f.properties.parent_code ?? '';
    if (!byDistrict.has(parent)) byDistrict.set(parent, []);
    byDistrict.get(parent).push(f.properties);
  }
  for (const [district, streets] of [...byDistrict].sort(([a], [b]) => a.localeCompare(b))) {
    const group = el('optgroup', { label: state.regionNames.get(district) ?? district });
    for (const s of streets.sort((a, b) => a.code.localeCompare(b.code))) {
      group.append(option(s.code, s.name, state.filters.street === s.code));
    }
    street.append(group);
  }

  const category = $('filter-category');
  setChildren(category, option('', tr('filter_all_categories'), state.filters.category === ''), ...categoryOptions(state.filters.category));

  const s = $('filter-state');
  setChildren(s, 
    option('open', tr('filter_state_open'), state.filters.state === 'open'),
    option('all', tr('filter_state_all'), state.filters.state === 'all'),
    ...STATES.map((code) => option(code, stateName(code), state.filters.state === code)));
  $('filter-overdue').checked = state.filters.overdue;
}

/** Categories grouped by their national event class, in the order the API lists them. */
function categoryOptions(selected) {
  const groups = new Map();
  for (const c of state.categories) {
    const key = c.event_class?.code ?? '';
    if (!groups.has(key)) groups.set(key, { eventClass: c.event_class, items: [] });
    groups.get(key).items.push(c);
  }
  return [...groups.values()].map(({ eventClass, items }) => {
    const label = eventClass ? (state.lang === 'en' ? eventClass.name_en : eventClass.name_zh) : '';
    return el('optgroup', { label }, items.map((c) => option(c.code, categoryName(c.code), selected === c.code)));
  });
}

function onFilterChange() {
  state.filters = {
    street: $('filter-street').value,
    category: $('filter-category').value,
    state: $('filter-state').value,
    overdue: $('filter-overdue').checked,
  };
  renderQueue();
  background(refreshList({ reset: true }));
}

function renderCounts() {
  const box = $('state-counts');
  const counts = state.counts;
  if (!counts) { setChildren(box); return; }
  const chip = (key, label, n, active, onclick, extra = '') => el('button', {
    type: 'button',
    class: `count-chip state-${key}${active ? ' active' : ''}${extra}`,
    'data-count-state': key,
    'aria-pressed': String(active),
    onclick,
  }, el('span', {}, label), el('b', {}, formatNumber(state.lang, n ?? 0)));
  const setState = (s) => () => {
    $('filter-state').value = state.filters.state === s ? 'open' : s;
    onFilterChange();
  };
  setChildren(box, 
    ...STATES.map((s) => chip(s, stateName(s), counts[s], state.filters.state === s, setState(s))),
    chip('overdue', tr('overdue'), counts.overdue, state.filters.overdue, () => {
      $('filter-overdue').checked = !state.filters.overdue;
      onFilterChange();
    }, counts.overdue ? ' has-overdue' : ''));
}

function openWhistles(c) {
  return (c.whistles ?? []).filter((w) => !w.acknowledged_at);
}

/** The soonest escalation step still to come among a case's unanswered whistles. */
function soonestStep(c) {
  let best = null;
  for (const w of openWhistles(c)) {
    if (w.next_step?.due_at && (!best || Date.parse(w.next_step.due_at) < Date.parse(best.due_at))) best = w.next_step;
  }
  return best;
}

function stepLabel(step) {
  const parts = [];
  if (step.notice) parts.push(tr('notice_n', { n: step.notice }));
  if (step.card) parts.push(cardName(step.card));
  if (step.push_to_supervision) parts.push(tr('push_supervision'));
  return parts.join(' + ') || tr('next_step');
}

function caseRow(c) {
  const open = openWhistles(c);
  const firstWhistle = open.reduce((a, w) => (!a || Date.parse(w.whistled_at) < Date.parse(a) ? w.whistled_at : a), null);
  const step = soonestStep(c);
  const selected = c.id === state.selectedId;
  return el('li', {
    class: `case-row${selected ? ' selected' : ''}${c.card ? ` has-card card-${c.card}` : ''}${c.overdue ? ' is-overdue' : ''}`,
    dataset: { caseId: c.id, state: c.state, card: c.card ?? 'none', overdue: String(Boolean(c.overdue)) },
  }, el('button', {
    type: 'button', class: 'case-row-btn', 'aria-current': selected ? 'true' : null, onclick: () => selectCase(c.id),
  },
  el('span', { class: 'row-line' },
    el('span', { class: 'case-id' }, `#${c.id}`),
    el('span', { class: 'case-cat' }, categoryName(c.category)),
    cardBadge(c.card),
    overdueTag(c.overdue),
    duplicateTag(c.duplicate_count),
    el('span', { class: 'row-gap' }),
    stateBadge(c.state)),
  el('span', { class: 'row-place' }, placeText(c)),
  el('span', { class: 'row-route' },
    el('span', { class: 'route-lead' }, `→ ${leadName(c.routing)}`),
    c.routing?.why ? el('span', { class: 'why', 'data-field': 'why' }, whyText(c.routing)) : null),
  el('span', { class: 'row-meta' },
    el('time', { datetime: c.reported_at }, formatDateTime(c.reported_at)),
    firstWhistle ? el('span', { class: 'row-timer' }, `${tr('whistled_for')} `, timer('since', firstWhistle)) : null,
    step ? el('span', { class: 'row-timer next' }, `${stepLabel(step)} `, timer('until', step.due_at)) : null)));
}

function renderQueue() {
  const list = $('case-list');
  const scroll = list.scrollTop;
  if (!state.cases.length) {
    setChildren(list, el('li', { class: 'queue-empty muted' }, list.dataset.loading ? tr('loading') : tr('queue_empty')));
  } else {
    setChildren(list, ...state.cases.map(caseRow));
  }
  list.scrollTop = scroll;
  $('queue-more').hidden = !state.nextCursor;
  $('queue-summary').textContent = state.cases.length ? tr('queue_shown', { n: formatNumber(state.lang, state.cases.length) }) : '';
}

// ---------------------------------------------------------------------------------------------
// Selected case

function setView(view) {
  document.body.dataset.view = view;
  if (view === 'detail') resizeCaseMap();
}

/** After the map's pane was hidden (a phone's queue view, another tab): resize, and fit again if
 * the last fit happened while it had no size. */
function resizeCaseMap() {
  const map = state.caseMap;
  if (!map) return;
  map.resize();
  if (state.caseMapFit && map.getContainer().clientWidth > 0) {
    const fit = state.caseMapFit;
    state.caseMapFit = null;
    fit();
  }
}

async function selectCase(id, { fromHash = false } = {}) {
  id = Number(id);
  if (!Number.isInteger(id) || id <= 0) return;
  if (state.tab !== 'cases') setTab('cases');
  const changed = id !== state.selectedId;
  state.selectedId = id;
  if (changed) {
    state.detail = null;
    state.detailSig = '';
    state.notices = null;
    state.noticesSig = '';
    if (state.message?.caseId !== id) state.message = null;
  }
  if (!fromHash) writeHash();
  for (const row of document.querySelectorAll('#case-list .case-row')) {
    const on = Number(row.dataset.caseId) === id;
    row.classList.toggle('selected', on);
    row.querySelector('.case-row-btn')?.setAttribute('aria-current', on ? 'true' : 'false');
  }
  setView('detail');
  renderDetail({ force: true });
  await Promise.all([loadDetail(id, { force: true }), loadNotices(id)]);
}

async function loadDetail(id = state.selectedId, { force = false } = {}) {
  if (!id) return;
  const seq = ++state.detailSeq;
  const detail = await api(`cases/${id}`);
  if (seq !== state.detailSeq || id !== state.selectedId) return;
  applyDetail(detail, { force });
}

async function loadNotices(id = state.selectedId) {
  if (!id) return;
  const notices = await api(`cases/${id}/notices`);
  if (id !== state.selectedId) return;
  state.notices = notices;
  renderNotices();
}

/** What a re-render depends on; the timers tick by themselves, so an unchanged case is left alone. */
function detailSignature(d) {
  return JSON.stringify([d.id, d.state, d.updated_at, d.card, d.overdue, d.duplicate_count, d.allowed_actions,
    (d.events ?? []).length, (d.whistles ?? []).map((w) => [w.department?.code, w.card, w.acknowledged_at, w.supervised, w.next_step?.due_at]),
    (d.duplicates ?? []).map((x) => [x.id, x.state]), d.answer, (d.photos ?? []).length, d.satisfaction, d.merged_into]);
}

function applyDetail(detail, { force = false } = {}) {
  // A slow fetch that started before the last action must not bring its older state back: the
  // history only grows, so a detail with fewer events is stale.
  const shown = state.detail;
  if (shown && shown.id === detail.id && (detail.events?.length ?? 0) < (shown.events?.length ?? 0)) return;
  state.detail = detail;
  const sig = detailSignature(detail);
  // Keep the queue row in step with what the detail says.
  const i = state.cases.findIndex((c) => c.id === detail.id);
  if (i >= 0 && detailSignature(state.cases[i]) !== sig) {
    state.cases[i] = { ...state.cases[i], ...pickSummary(detail) };
    renderQueue();
  }
  if (!force && sig === state.detailSig) return;
  state.detailSig = sig;
  renderDetail({ force: true });
  renderNotices(); // recipients are named from the case's grid
  background(showCaseOnMap(detail));
}

function pickSummary(d) {
  const { events, staff, duplicates, merged_cases, answer, photos, ...summary } = d;
  return summary;
}

function draftOf(id) {
  if (!state.drafts.has(id)) state.drafts.set(id, {});
  return state.drafts.get(id);
}

function renderDetail() {
  const d = state.detail;
  const id = state.selectedId;
  const pane = $('case-detail');
  pane.dataset.caseId = id ?? '';
  pane.dataset.state = d?.state ?? '';
  pane.dataset.card = d?.card ?? 'none';
  $('detail-empty').hidden = Boolean(id);
  $('detail-body').hidden = !id;
  const header = $('detail-header');
  if (!id) { setChildren(header); return; }
  if (!d || d.id !== id) {
    setChildren(header, el('h2', {}, `#${id}`), el('p', { class: 'muted' }, tr('loading')));
    setChildren($('detail-main'));
    setChildren($('detail-timeline'));
    return;
  }
  // The body scrolls on wide screens, the whole pane on phones; keep both where they were.
  const scrollers = [$('detail-body'), $('case-detail')];
  const scrolls = scrollers.map((node) => node.scrollTop);
  setChildren(header, 
    el('div', { class: 'detail-title' },
      el('h2', { tabindex: '-1' }, el('span', { class: 'case-id' }, `#${d.id}`), ' ', categoryName(d.category)),
      stateBadge(d.state),
      cardBadge(d.card, { large: (d.whistles ?? []).some((w) => w.card && !w.acknowledged_at) }),
      overdueTag(d.overdue),
      duplicateTag(d.duplicate_count)),
    el('p', { class: 'detail-sub' },
      el('span', {}, placeText(d)),
      el('span', { class: 'muted' }, ` · ${tr('reported_at')} `, el('time', { datetime: d.reported_at }, formatDateTime(d.reported_at)))),
    d.description ? el('p', { class: 'detail-desc', 'data-field': 'description' }, d.description) : null);

  setChildren($('detail-main'), 
    messageBox(),
    routingSection(d),
    triageSection(d),
    whistleSection(d),
    handlingSection(d),
    resultSection(d),
    territorySection(d),
    duplicatesSection(d));
  renderTimeline(d);
  scrollers.forEach((node, i) => { node.scrollTop = scrolls[i]; });
}

function messageBox() {
  const m = state.message;
  if (!m || m.caseId !== state.selectedId) return el('p', { id: 'action-message', class: 'form-message', hidden: true });
  return el('p', { id: 'action-message', class: `form-message ${m.kind}`, role: m.kind === 'error' ? 'alert' : 'status', 'data-kind': m.kind },
    m.text,
    m.allowed ? el('span', { class: 'allowed' }, ` ${tr('allowed_now')} ${m.allowed.length ? m.allowed.map(actionName).join('、') : '—'}`) : null);
}

function routingSection(d) {
  const r = d.routing;
  if (!r) return null;
  return section('routing_title', { 'data-section': 'routing' },
    el('dl', { class: 'facts' },
      el('dt', {}, tr('routing_lead')), el('dd', { 'data-field': 'lead' }, leadName(r)),
      el('dt', {}, tr('routing_co')), el('dd', {}, (r.co_departments ?? []).length ? r.co_departments.map(deptName).join('、') : '—'),
      el('dt', {}, tr('routing_why')), el('dd', { class: 'why', 'data-field': 'why' }, whyText(r),
        r.rule_id ? null : el('span', { class: 'tag' }, tr('routing_fallback')))));
}

function allowed(d, action) {
  return (d.allowed_actions ?? []).includes(action);
}

function triageSection(d) {
  if (allowed(d, 'accept')) return triageForm(d);
  if (!d.difficulty) return null;
  return section('triage_title', { 'data-section': 'triage' },
    el('dl', { class: 'facts' },
      el('dt', {}, tr('triage_responsibility')), el('dd', {}, d.responsibility ? tr(`responsibility_${d.responsibility}`) : '—'),
      el('dt', {}, tr('triage_difficulty')), el('dd', { 'data-field': 'difficulty' }, tr(`difficulty_${d.difficulty}`)),
      el('dt', {}, tr('triage_urgency')), el('dd', {}, d.urgency ? tr(`urgency_${d.urgency}`) : '—'),
      d.lead_department !== undefined && d.difficulty !== 'simple' ? [
        el('dt', {}, tr('routing_lead')), el('dd', { 'data-field': 'triage-lead' }, d.lead_department ? deptName(d.lead_department) : tr('lead_community')),
        el('dt', {}, tr('routing_co')), el('dd', {}, (d.co_departments ?? []).map(deptName).join('、') || '—')] : null,
      d.deadline ? [el('dt', {}, tr('triage_deadline')), el('dd', { class: d.overdue && new Date(d.deadline) < new Date(serverNow()) ? 'late' : '' },
        formatDateTime(d.deadline), ' ', timer('until', d.deadline))] : null,
      d.coordinator ? [el('dt', {}, tr('triage_coordinator')), el('dd', {}, d.coordinator)] : null));
}

/** A local datetime-local value (China time) for an instant. */
function chinaLocalInput(ms) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

function proposedLead(d) {
  return d.routing?.lead?.kind === 'department' ? d.routing.lead.code : '';
}

function proposedCo(d) {
  return (d.routing?.co_departments ?? []).map((x) => x.code);
}

function triageForm(d) {
  const draft = draftOf(d.id);
  draft.responsibility ??= d.routing?.lead?.kind === 'department' ? 'department' : 'territory';
  draft.urgency ??= 'normal';
  draft.difficulty ??= '';
  draft.lead ??= proposedLead(d);
  draft.co ??= proposedCo(d);
  draft.deadline ??= chinaLocalInput(serverNow() + 7 * 86400_000);
  draft.coordinator ??= '';
  const rerender = () => renderDetail();
  const radio = (name, value, labelKey) => el('label', { class: 'check' },
    el('input', {
      type: 'radio', name, value, checked: draft[name] === value,
      onchange: () => { draft[name] = value; },
    }), ' ', tr(labelKey));
  const form = el('form', {
    id: 'triage-form', class: 'triage-form',
    onsubmit: (event) => { event.preventDefault(); submitAccept(d); },
  },
  el('div', { class: 'triage-step' },
    el('span', { class: 'step-no' }, '1'),
    el('span', { class: 'triage-label' }, tr('triage_responsibility')),
    el('span', { class: 'triage-input', role: 'radiogroup' },
      radio('responsibility', 'territory', 'responsibility_territory'),
      radio('responsibility', 'department', 'responsibility_department'))),
  el('div', { class: 'triage-step' },
    el('span', { class: 'step-no' }, '2'),
    el('label', { class: 'triage-label', for: 'triage-difficulty' }, tr('triage_difficulty')),
    el('span', { class: 'triage-input' },
      el('select', {
        id: 'triage-difficulty', name: 'difficulty', required: true,
        onchange: (event) => { draft.difficulty = event.target.value; rerender(); },
      }, option('', tr('choose'), draft.difficulty === '', { disabled: true }),
      DIFFICULTIES.map((x) => option(x, tr(`difficulty_${x}`), draft.difficulty === x))),
      draft.difficulty ? el('span', { class: 'hint' }, tr(`difficulty_${draft.difficulty}_hint`)) : null)),
  draft.difficulty === 'long' ? el('div', { class: 'triage-step sub' },
    el('span', { class: 'step-no' }),
    el('label', { class: 'triage-label', for: 'triage-deadline' }, tr('triage_deadline')),
    el('span', { class: 'triage-input' },
      el('input', {
        type: 'datetime-local', id: 'triage-deadline', value: draft.deadline, required: true,
        oninput: (event) => { draft.deadline = event.target.value; },
      }), el('span', { class: 'hint' }, tr('china_time')))) : null,
  draft.difficulty === 'very_complex' ? el('div', { class: 'triage-step sub' },
    el('span', { class: 'step-no' }),
    el('label', { class: 'triage-label', for: 'triage-coordinator' }, tr('triage_coordinator')),
    el('span', { class: 'triage-input' },
      el('input', {
        type: 'text', id: 'triage-coordinator', value: draft.coordinator, required: true, maxlength: '100',
        placeholder: tr('coordinator_placeholder'),
        oninput: (event) => { draft.coordinator = event.target.value; },
      }))) : null,
  el('div', { class: 'triage-step' },
    el('span', { class: 'step-no' }, '3'),
    el('span', { class: 'triage-label' }, tr('triage_urgency')),
    el('span', { class: 'triage-input', role: 'radiogroup' },
      radio('urgency', 'normal', 'urgency_normal'),
      radio('urgency', 'urgent', 'urgency_urgent'))),
  draft.difficulty !== 'simple' ? el('details', { class: 'triage-override', open: draft.overrideOpen || null, ontoggle: (event) => { draft.overrideOpen = event.target.open; } },
    el('summary', {}, tr('triage_override'), ' ',
      el('span', { class: 'muted' }, `${tr('routing_lead')}: ${draft.lead ? deptName(draft.lead) : tr('lead_community')}`)),
    el('label', { class: 'field' }, el('span', {}, tr('routing_lead')),
      el('select', {
        id: 'triage-lead',
        onchange: (event) => { draft.lead = event.target.value; rerender(); },
      }, option('', tr('lead_community'), draft.lead === ''),
      state.departments.map((x) => option(x.code, deptName(x.code), draft.lead === x.code)))),
    el('fieldset', { class: 'dept-checks' }, el('legend', {}, tr('routing_co')),
      departmentChecks('triage-co', draft.co, (codes) => { draft.co = codes; }, draft.lead))) : null,
  el('div', { class: 'form-actions' },
    el('button', { type: 'submit', class: 'btn btn-primary', 'data-action': 'accept', disabled: state.busy }, tr('action_accept')),
    el('span', { class: 'hint' }, tr('accept_hint'))));
  return section('triage_title', { 'data-section': 'triage' }, form);
}

function departmentChecks(name, selected, onchange, exclude = '') {
  const box = el('div', { class: 'check-grid', id: name });
  for (const dept of state.departments) {
    if (dept.code === exclude) continue;
    box.append(el('label', { class: 'check' },
      el('input', {
        type: 'checkbox', name, value: dept.code, checked: selected.includes(dept.code),
        onchange: () => onchange([...box.querySelectorAll('input:checked')].map((x) => x.value)),
      }), ' ', deptName(dept.code)));
  }
  return box;
}

function sameSet(a, b) {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function submitAccept(d) {
  const draft = draftOf(d.id);
  if (!draft.difficulty) return localError(tr('need_difficulty'));
  const body = { difficulty: draft.difficulty, urgency: draft.urgency, responsibility: draft.responsibility };
  if (draft.difficulty === 'long') {
    if (!draft.deadline) return localError(tr('need_deadline'));
    body.deadline = `${draft.deadline.length === 16 ? `${draft.deadline}:00` : draft.deadline}${CHINA_OFFSET}`;
  }
  if (draft.difficulty === 'very_complex') {
    if (!draft.coordinator.trim()) return localError(tr('need_coordinator'));
    body.coordinator = draft.coordinator.trim();
  }
  // Departments only when the dispatcher changed the proposal; otherwise the server's routing stands.
  if (draft.difficulty !== 'simple') {
    const co = draft.co.filter((x) => x !== draft.lead);
    if (draft.lead !== proposedLead(d) || !sameSet(co, proposedCo(d))) {
      body.lead_department = draft.lead || null;
      body.co_departments = co;
    }
  }
  return act('accept', body);
}

function localError(text) {
  state.message = { kind: 'error', text, caseId: state.selectedId };
  renderDetail();
  $('action-message')?.scrollIntoView({ block: 'nearest' });
}

function whistleSection(d) {
  const whistles = d.whistles ?? [];
  const canWhistle = allowed(d, 'whistle');
  if (!whistles.length && !canWhistle) return null;
  const canAck = allowed(d, 'acknowledge');
  const rows = whistles.map((w) => {
    const code = w.department?.code;
    const answered = Boolean(w.acknowledged_at);
    return el('li', {
      class: `whistle-row${w.card ? ` card-${w.card}` : ''}${answered ? ' answered' : ''}`,
      dataset: { department: code, card: w.card ?? 'none', acknowledged: String(answered) },
    },
    el('div', { class: 'whistle-head' },
      el('span', { class: 'whistle-dept' }, deptName(w.department)),
      el('span', { class: 'tag' }, tr(`role_${w.role}`)),
      cardBadge(w.card),
      w.supervised ? el('span', { class: 'tag tag-overdue' }, tr('supervised')) : null,
      el('span', { class: 'row-gap' }),
      canAck && !answered ? el('button', {
        type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'acknowledge', 'data-department': code,
        disabled: state.busy, title: tr('acknowledge_title'),
        onclick: () => act('acknowledge', { department: code }),
      }, tr('acknowledge_button')) : null),
    el('div', { class: 'whistle-times' },
      el('span', {}, `${tr('whistled_at')} ${formatDateTime(w.whistled_at)}`),
      answered
        ? el('span', { 'data-field': 'ack' }, `${tr('acknowledged_at')} ${formatDateTime(w.acknowledged_at)} · ${tr('ack_took')} ${formatTimer(Date.parse(w.acknowledged_at) - Date.parse(w.whistled_at))}`)
        : el('span', { class: 'whistle-elapsed' }, `${tr('unanswered_for')} `, timer('since', w.whistled_at, { 'data-field': 'elapsed' }))),
    !answered && w.next_step?.due_at ? el('div', { class: 'whistle-next', 'data-field': 'next-step' },
      el('span', {}, tr('next_step_in', { step: stepLabel(w.next_step) })), ' ',
      timer('until', w.next_step.due_at, { 'data-field': 'countdown' }),
      el('span', { class: 'muted' }, ` (${formatDateTime(w.next_step.due_at)})`)) : null);
  });
  const draft = draftOf(d.id);
  draft.whistleDepts ??= [];
  const whistled = new Set(whistles.map((w) => w.department?.code));
  const control = canWhistle ? el('div', { class: 'whistle-control' },
    el('details', { class: 'whistle-pick', open: draft.whistleOpen || null, ontoggle: (event) => { draft.whistleOpen = event.target.open; } },
      el('summary', {}, whistles.length ? tr('whistle_more') : tr('whistle_choose')),
      departmentChecks('whistle-depts', draft.whistleDepts, (codes) => { draft.whistleDepts = codes; renderDetail(); })),
    el('div', { class: 'form-actions' },
      el('button', {
        type: 'button', class: 'btn btn-primary btn-whistle', 'data-action': 'whistle', disabled: state.busy,
        onclick: () => act('whistle', draft.whistleDepts.length ? { departments: draft.whistleDepts } : {}),
      }, tr('action_whistle')),
      el('span', { class: 'hint' }, draft.whistleDepts.length
        ? tr('whistle_to', { names: draft.whistleDepts.map(deptName).join('、') })
        : whistles.length ? tr('whistle_again_default') : defaultWhistleHint(d)),
      [...whistled].length && draft.whistleDepts.some((x) => whistled.has(x)) ? el('span', { class: 'hint warn' }, tr('whistle_repeat')) : null)) : null;
  return section('whistles_title', { 'data-section': 'whistles' },
    rows.length ? el('ol', { id: 'whistle-list', class: 'whistle-list' }, rows) : null,
    canAck ? el('p', { class: 'hint' }, tr('acknowledge_note')) : null,
    control);
}

function defaultWhistleHint(d) {
  // Beyond the contract the backend also reports the departments fixed at triage; use them if there.
  const lead = d.lead_department ?? (d.routing?.lead?.kind === 'department' ? d.routing.lead : null);
  const co = d.lead_department ? (d.co_departments ?? []) : (d.routing?.co_departments ?? []);
  const names = [lead, ...co].filter(Boolean).map(deptName);
  return names.length ? tr('whistle_default_to', { names: names.join('、') }) : tr('whistle_default');
}

/** Every action that is not triage, whistle or acknowledgement: only those the server allows now. */
function handlingSection(d) {
  const draft = draftOf(d.id);
  const parts = [];
  if (allowed(d, 'resolve')) {
    draft.answer ??= '';
    parts.push(el('form', {
      class: 'action-block', 'data-block': 'resolve',
      onsubmit: (event) => { event.preventDefault(); submitResolve(d); },
    },
    el('label', { class: 'field' }, el('span', {}, tr('answer_label')),
      el('textarea', {
        id: 'resolve-answer', rows: '3', maxlength: '4000', placeholder: tr('answer_placeholder'),
        oninput: (event) => { draft.answer = event.target.value; },
      }, draft.answer)),
    el('div', { class: 'form-actions' },
      el('label', { class: 'btn btn-small file-pick' }, tr('photo_choose'),
        el('input', { type: 'file', id: 'resolve-photo', accept: PHOTO_TYPES.join(','), onchange: (event) => readPhoto(d, event.target.files[0]) })),
      draft.photo ? el('span', { class: 'file-name' }, draft.photo.name,
        el('button', { type: 'button', class: 'link-btn', onclick: () => { draft.photo = null; renderDetail(); } }, ` ${tr('remove')}`)) : el('span', { class: 'hint' }, tr('photo_optional')),
      el('span', { class: 'row-gap' }),
      el('button', { type: 'submit', class: 'btn btn-primary', 'data-action': 'resolve', disabled: state.busy }, tr('action_resolve')))));
  }
  const simple = [];
  if (allowed(d, 'close')) {
    simple.push(el('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'close', disabled: state.busy, title: tr('close_title'), onclick: () => act('close') }, tr('action_close')));
  }
  if (allowed(d, 'reopen')) {
    simple.push(el('button', { type: 'button', class: 'btn', 'data-action': 'reopen', disabled: state.busy, title: tr('reopen_title'), onclick: () => act('reopen') }, tr('action_reopen')));
  }
  if (simple.length) parts.push(el('div', { class: 'action-block form-actions', 'data-block': 'verify' }, el('span', { class: 'hint' }, tr('verify_hint')), el('span', { class: 'row-gap' }), simple));
  if (allowed(d, 'evaluate')) {
    draft.stars ??= 0;
    const stars = [1, 2, 3, 4, 5].map((n) => el('button', {
      type: 'button', class: `star${n <= draft.stars ? ' on' : ''}`, 'data-star': String(n), 'aria-pressed': String(n === draft.stars),
      'aria-label': tr('stars_n', { n }), title: tr('stars_n', { n }),
      onclick: () => { draft.stars = n; renderDetail(); },
    }, n <= draft.stars ? '★' : '☆'));
    parts.push(el('div', { class: 'action-block', 'data-block': 'evaluate' },
      el('div', { class: 'form-actions' },
        el('span', { class: 'field-label' }, tr('evaluate_label')),
        el('span', { class: 'stars', role: 'group', 'aria-label': tr('evaluate_label') }, stars),
        el('span', { class: 'row-gap' }),
        el('button', {
          type: 'button', class: 'btn btn-primary', 'data-action': 'evaluate', disabled: state.busy || !draft.stars,
          onclick: () => act('evaluate', { satisfaction: draft.stars }),
        }, tr('action_evaluate'))),
      el('p', { class: 'hint' }, draft.stars && draft.stars <= 2 ? tr('evaluate_unsatisfied') : tr('evaluate_hint'))));
  }
  if (allowed(d, 'merge')) {
    const targets = (d.duplicates ?? []).filter((x) => x.category === d.category && !['merged', 'rejected'].includes(x.state) && x.id !== d.id);
    draft.mergeInto ??= targets[0] ? String(targets[0].id) : '';
    parts.push(el('div', { class: 'action-block form-actions', 'data-block': 'merge' },
      el('label', { class: 'field-label', for: 'merge-into' }, tr('merge_label')),
      targets.length
        ? el('select', { id: 'merge-into', onchange: (event) => { draft.mergeInto = event.target.value; } },
          targets.map((x) => option(String(x.id), tr('merge_option', { id: x.id, m: Math.round(x.distance_m), state: stateName(x.state) }), draft.mergeInto === String(x.id))))
        : el('input', { type: 'number', id: 'merge-into', min: '1', step: '1', class: 'id-input', value: draft.mergeInto, placeholder: tr('case_id'), oninput: (event) => { draft.mergeInto = event.target.value; } }),
      el('span', { class: 'row-gap' }),
      el('button', {
        type: 'button', class: 'btn', 'data-action': 'merge', disabled: state.busy,
        onclick: () => {
          const into = Number(draft.mergeInto);
          if (!Number.isInteger(into) || into <= 0) return localError(tr('need_merge_target'));
          return act('merge', { into });
        },
      }, tr('action_merge'))));
  }
  if (allowed(d, 'reject')) {
    draft.rejectReason ??= REJECT_REASONS[0];
    parts.push(el('div', { class: 'action-block form-actions', 'data-block': 'reject' },
      el('label', { class: 'field-label', for: 'reject-reason' }, tr('reject_label')),
      el('select', { id: 'reject-reason', onchange: (event) => { draft.rejectReason = event.target.value; } },
        REJECT_REASONS.map((x) => option(x, tr(`reason_${x}`), draft.rejectReason === x))),
      el('span', { class: 'row-gap' }),
      el('button', {
        type: 'button', class: 'btn btn-danger', 'data-action': 'reject', disabled: state.busy,
        onclick: () => act('reject', { reason: draft.rejectReason }),
      }, tr('action_reject'))));
  }
  if (!parts.length) {
    if (FINAL_STATES.includes(d.state)) {
      return section('handling_title', { 'data-section': 'handling' }, el('p', { class: 'muted' },
        d.state === 'merged' && d.merged_into
          ? [tr('merged_into'), ' ', el('button', { type: 'button', class: 'link-btn', onclick: () => selectCase(d.merged_into) }, `#${d.merged_into}`)]
          : tr('no_actions_final')));
    }
    return null;
  }
  return section('handling_title', { 'data-section': 'handling' }, parts);
}

function readPhoto(d, file) {
  const draft = draftOf(d.id);
  if (!file) return;
  if (!PHOTO_TYPES.includes(file.type)) return localError(tr('photo_bad_type'));
  if (file.size > PHOTO_MAX_BYTES) return localError(tr('photo_too_big', { mb: PHOTO_MAX_BYTES / 1024 / 1024 }));
  const reader = new FileReader();
  reader.onload = () => {
    const url = String(reader.result);
    draft.photo = { name: file.name, content_type: file.type, data_base64: url.slice(url.indexOf(',') + 1) };
    renderDetail();
  };
  reader.onerror = () => localError(tr('photo_unreadable'));
  reader.readAsDataURL(file);
}

function submitResolve(d) {
  const draft = draftOf(d.id);
  const answer = (draft.answer ?? '').trim();
  if (!answer) return localError(tr('need_answer'));
  const body = { answer };
  if (draft.photo) body.photos = [{ content_type: draft.photo.content_type, data_base64: draft.photo.data_base64 }];
  return act('resolve', body);
}

function resultSection(d) {
  const photos = d.photos ?? [];
  if (!d.answer && !photos.length && !d.satisfaction) return null;
  return section('result_title', { 'data-section': 'result' },
    d.answer ? el('p', { class: 'answer', 'data-field': 'answer' }, d.answer) : null,
    photos.length ? el('div', { class: 'photos' }, photos.map((url, i) => el('a', { href: url, target: '_blank', rel: 'noopener' },
      el('img', { src: url, alt: tr('photo_n', { n: i + 1 }), loading: 'lazy' })))) : null,
    d.satisfaction ? el('p', { class: 'satisfaction', 'data-field': 'satisfaction' },
      `${tr('evaluate_label')} `, el('span', { class: 'stars-static', 'aria-label': tr('stars_n', { n: d.satisfaction }) },
        '★'.repeat(d.satisfaction) + '☆'.repeat(5 - d.satisfaction))) : null);
}

function territorySection(d) {
  const chainLinks = [['district', d.district], ['street', d.street], ['community', d.community], ['grid', d.grid], ['micro_grid', d.micro_grid]]
    .filter(([, link]) => link);
  const branch = d.party_branch;
  const staff = d.staff ?? [];
  const staffRows = STAFF_ROLES.map((role) => {
    const people = staff.filter((p) => p.role === role);
    if (!people.length) return null;
    return el('div', { class: 'staff-row', 'data-role': role },
      el('dt', {}, tr(`role_${role}`)),
      el('dd', {}, el('ul', {}, people.map((p) => el('li', {}, el('span', { class: 'person' }, p.name), ' ', phoneLink(p.phone))))));
  }).filter(Boolean);
  return section('territory_title', { 'data-section': 'territory' },
    el('ol', { class: 'chain' }, chainLinks.map(([level, link]) => el('li', { title: `${tr(`level_${level}`)} ${link.code}` },
      el('span', {}, link.name || link.code), el('span', { class: 'muted' }, ` ${tr(`level_${level}`)}`)))),
    el('h4', {}, tr('party_branch')),
    branch
      ? el('dl', { class: 'facts', 'data-field': 'party-branch' },
        el('dt', {}, tr('party_branch_name')), el('dd', {}, branch.name),
        el('dt', {}, tr('secretary')), el('dd', {}, branch.secretary ?? '—'),
        el('dt', {}, tr('contact')), el('dd', {}, phoneLink(branch.contact)))
      : el('p', { class: 'muted' }, tr('no_party_branch')),
    el('h4', {}, tr('staff_notify')),
    staffRows.length ? el('dl', { class: 'staff' }, staffRows) : el('p', { class: 'muted' }, tr('no_staff')));
}

function duplicatesSection(d) {
  const dups = d.duplicates ?? [];
  const merged = d.merged_cases ?? [];
  if (!dups.length && !merged.length) return null;
  return section('duplicates_section', { 'data-section': 'duplicates' },
    dups.length ? el('ul', { class: 'dup-list' }, dups.map((x) => el('li', { 'data-dup-id': x.id },
      el('button', { type: 'button', class: 'link-btn', onclick: () => selectCase(x.id) }, `#${x.id}`), ' ',
      categoryName(x.category), ' ', stateBadge(x.state),
      el('span', { class: 'muted' }, ` ${tr('metres', { m: Math.round(x.distance_m) })} · ${formatDateTime(x.reported_at)}`),
      x.description ? el('span', { class: 'dup-desc' }, x.description) : null))) : null,
    merged.length ? el('p', { class: 'muted' }, tr('merged_cases'), ' ',
      merged.map((id, i) => [i ? '、' : '', el('button', { type: 'button', class: 'link-btn', onclick: () => selectCase(id) }, `#${id}`)])) : null);
}

function renderTimeline(d) {
  const events = [...(d.events ?? [])].sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.id - b.id);
  setChildren($('detail-timeline'), 
    el('h3', {}, tr('timeline_title'), ' ', el('span', { class: 'count' }, formatNumber(state.lang, events.length))),
    events.length
      ? el('ol', { id: 'timeline', class: 'timeline' }, events.map((e) => el('li', {
        class: `event event-${e.action}`, 'data-event-action': e.action, 'data-event-id': e.id,
      },
      el('div', { class: 'event-head' },
        el('span', { class: 'event-action' }, eventLabel(e)),
        // An escalation shows the card it raised; an acknowledgement says in words whether it was late.
        e.action === 'escalate' && e.data?.card ? cardBadge(e.data.card) : null,
        e.from_state !== e.to_state && e.to_state ? el('span', { class: 'event-states' },
          e.from_state ? stateName(e.from_state) : '', ' → ', stateName(e.to_state)) : null,
        el('time', { datetime: e.at }, formatDateTime(e.at, { seconds: true }))),
      eventDetails(e))))
      : el('p', { class: 'muted' }, tr('no_events')));
}

/** What an event was, in words; a scheduler step is named by what it did (SMS, card, supervision). */
function eventLabel(e) {
  if (e.action !== 'escalate') return actionName(e.action);
  const data = e.data ?? {};
  if (data.card) return tr('escalate_card');
  if (data.push_to_supervision) return tr('escalate_supervision');
  if (data.notice === 1) return tr('escalate_first_notice');
  return tr('escalate_notice');
}

function eventDetails(e) {
  const bits = [];
  if (e.department) bits.push(deptName(e.department));
  const data = e.data && typeof e.data === 'object' ? e.data : {};
  // The scheduler writes its own note in Chinese (第2次短信 · 黄牌 · 通知中心负责人): shown instead of
  // ours in Chinese, replaced by ours in English.
  const escalation = e.action === 'escalate';
  const noted = escalation && e.note && state.lang === 'zh';
  if (data.difficulty) bits.push(trOr(`difficulty_${data.difficulty}`, data.difficulty));
  if (data.notice && !noted) bits.push(tr('notice_n', { n: data.notice }));
  if (e.action === 'acknowledge' && Number.isFinite(data.minutes)) {
    bits.push(tr('ack_after', { t: formatMinutes(data.minutes) }));
    if (data.on_time === true) bits.push(tr('ack_on_time'));
    if (data.on_time === false) bits.push(data.card ? tr('ack_late_card', { card: cardName(data.card) }) : tr('ack_late'));
  }
  if (Array.isArray(data.departments) && data.departments.length) bits.push(data.departments.map(deptName).join('、'));
  if (data.satisfaction) bits.push(tr('stars_n', { n: data.satisfaction }));
  if (data.reason) bits.push(trOr(`reason_${data.reason}`, data.reason));
  if (data.into) bits.push(tr('merged_into_n', { id: data.into }));
  if (data.push_to_supervision && !noted) bits.push(tr('push_supervision'));
  if (Array.isArray(data.notify) && data.notify.length && !noted) bits.push(data.notify.map((x) => trOr(`notify_${x}`, x)).join('、'));
  if (e.actor) bits.push(tr('by_actor', { actor: trOr(`actor_${e.actor}`, e.actor) }));
  return [
    bits.length ? el('div', { class: 'event-meta' }, bits.join(' · ')) : null,
    e.note && (!escalation || noted) ? el('div', { class: 'event-note' }, e.note) : null,
  ];
}

/** "department:fire_rescue", "role:centre_head", "grid:150302001001011" as a reader names them. */
function recipientLabel(recipient) {
  if (!recipient) return '—';
  const i = recipient.indexOf(':');
  if (i < 0) return recipient;
  const kind = recipient.slice(0, i), code = recipient.slice(i + 1);
  if (kind === 'department') return deptName(code);
  if (kind === 'role') return trOr(`recipient_role_${code}`, code);
  if (kind === 'grid' || kind === 'region') {
    const d = state.detail;
    const name = [d?.grid, d?.community, d?.street].find((x) => x?.code === code)?.name;
    return tr('recipient_grid', { name: name ?? code });
  }
  return recipient;
}

function renderNotices() {
  const box = $('detail-notices');
  if (!state.selectedId) { setChildren(box); return; }
  const notices = state.notices;
  setChildren(box, 
    el('h3', {}, tr('notices_title'), ' ', el('span', { class: 'count' }, notices ? formatNumber(state.lang, notices.length) : '')),
    !notices ? el('p', { class: 'muted' }, tr('loading'))
      : notices.length ? el('ul', { id: 'notice-list', class: 'notice-list' }, notices.map((n) => {
        // The SMS gateway's receipt, when it sent one, is the last word on a delivered notice.
        const status = n.delivered_at
          ? (n.receipt === 'failed' ? 'undelivered' : n.receipt === 'delivered' ? 'received' : 'delivered')
          : n.last_error ? 'failed' : 'pending';
        const text = typeof n.payload === 'string' ? n.payload : n.payload?.text ?? n.payload?.message ?? null;
        return el('li', { 'data-notice-kind': n.kind, 'data-status': status },
          el('div', { class: 'notice-head' },
            el('span', { class: 'notice-kind' }, trOr(`notice_kind_${n.kind}`, n.kind)),
            el('span', { class: 'tag' }, trOr(`channel_${n.channel}`, n.channel)),
            el('span', { class: 'notice-to', title: n.recipient ?? '' }, recipientLabel(n.recipient)),
            el('span', { class: 'row-gap' }),
            el('span', { class: `notice-status ${status}`, title: n.last_error ?? '' }, tr(`notice_${status}`))),
          el('div', { class: 'notice-meta muted' },
            formatDateTime(n.created_at, { seconds: true }),
            n.delivered_at ? ` · ${tr('notice_delivered_at')} ${formatDateTime(n.delivered_at, { seconds: true })}` : '',
            n.attempts > 1 ? ` · ${tr('notice_attempts', { n: n.attempts })}` : '',
            n.last_error && !n.delivered_at ? ` · ${n.last_error}` : '',
            n.receipt ? ` · ${tr('notice_receipt_at')} ${formatDateTime(n.receipt_at, { seconds: true })}${n.receipt_detail ? `: ${n.receipt_detail}` : ''}` : ''),
          text ? el('div', { class: 'notice-text' }, text) : null);
      })) : el('p', { class: 'muted' }, tr('no_notices')));
}

/**
 * Do `action` to the selected case. The server answers with the new detail; a refusal (409 with
 * the allowed actions, 422 naming the field) is shown above the forms and the case is re-read, as
 * someone else may have moved it on.
 */
async function act(action, extra = {}) {
  const id = state.selectedId;
  if (!id || state.busy) return null;
  state.busy = true;
  renderDetail();
  try {
    const detail = await api(`cases/${id}/actions`, { method: 'POST', body: { action, ...extra } });
    state.detailSeq += 1; // detail fetches still in flight predate this action
    const draft = draftOf(id);
    if (action === 'resolve') { draft.answer = ''; draft.photo = null; }
    if (action === 'whistle') { draft.whistleDepts = []; draft.whistleOpen = false; }
    if (action === 'evaluate') draft.stars = 0;
    state.message = { kind: 'ok', text: tr('action_done', { action: actionName(action), state: stateName(detail.state) }), caseId: id };
    state.busy = false;
    if (id === state.selectedId) applyDetail(detail, { force: true });
    background(Promise.all([loadNotices(id), refreshList(), refreshClock()]));
    return detail;
  } catch (err) {
    state.busy = false;
    const allowedNow = err.body?.error?.allowed;
    state.message = { kind: 'error', text: err.message, allowed: Array.isArray(allowedNow) ? allowedNow : null, caseId: id, status: err.status };
    renderDetail();
    if (err.status) background(loadDetail(id, { force: true }));
    else showError(err);
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Maps

function plainStyle() {
  return {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }],
  };
}

/** A map over the plain background, or the configured basemap with a fallback to the plain one. */
function createMap(container, options) {
  const url = state.config.basemap_style_url;
  const map = new maplibregl.Map({
    container,
    style: url || plainStyle(),
    attributionControl: { compact: true },
    canvasContextAttributes: { preserveDrawingBuffer: true },
    dragRotate: false,
    pitchWithRotate: false,
    minZoom: 5,
    maxZoom: 19,
    ...options,
  });
  map.touchZoomRotate.disableRotation();
  let fellBack = !url;
  map.on('error', (event) => {
    console.warn('map error:', event.error?.message ?? event);
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(plainStyle(), { diff: false });
    }
  });
  const loaded = new Promise((resolve) => map.once('load', resolve));
  return { map, loaded };
}

const EMPTY = { type: 'FeatureCollection', features: [] };

function ensureCaseMap(center) {
  if (state.caseMap) return state.caseMapLoaded;
  const { map, loaded } = createMap('case-map', { center, zoom: 16 });
  state.caseMap = map;
  window.gridwatchDispatch.caseMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  state.caseMapLoaded = loaded.then(() => {
    const font = basemapFont(map);
    map.addSource('grids', { type: 'geojson', data: EMPTY });
    map.addSource('case-grid', { type: 'geojson', data: EMPTY });
    map.addSource('neighbours', { type: 'geojson', data: EMPTY });
    map.addSource('case-point', { type: 'geojson', data: EMPTY });
    map.addLayer({ id: 'grids-line', type: 'line', source: 'grids', paint: { 'line-color': '#9aa5b1', 'line-width': 0.8 } });
    map.addLayer({ id: 'case-grid-fill', type: 'fill', source: 'case-grid', paint: { 'fill-color': ACCENT, 'fill-opacity': 0.08 } });
    map.addLayer({ id: 'case-grid-line', type: 'line', source: 'case-grid', layout: { 'line-join': 'round' }, paint: { 'line-color': ACCENT, 'line-width': 2.4 } });
    map.addLayer({
      id: 'neighbours-circle', type: 'circle', source: 'neighbours',
      paint: {
        'circle-radius': 6,
        'circle-color': ['case', ['get', 'open'], '#d97706', '#9ca3af'],
        'circle-stroke-color': '#ffffff',
        'circle-stroke-width': 1.5,
      },
    });
    map.addLayer({
      id: 'neighbours-label', type: 'symbol', source: 'neighbours',
      layout: { 'text-field': ['get', 'label'], 'text-font': font ?? FONT_REGULAR, 'text-size': 11, 'text-offset': [0, 1.2], 'text-anchor': 'top' },
      paint: { 'text-color': '#52606d', 'text-halo-color': 'rgba(255,255,255,0.92)', 'text-halo-width': 1.4 },
    });
    map.addLayer({
      id: 'case-point-halo', type: 'circle', source: 'case-point',
      paint: { 'circle-radius': 16, 'circle-color': BRAND, 'circle-opacity': 0.15 },
    });
    map.addLayer({
      id: 'case-point', type: 'circle', source: 'case-point',
      paint: { 'circle-radius': 8, 'circle-color': BRAND, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2.5 },
    });
    map.on('click', 'neighbours-circle', (event) => {
      const id = event.features?.[0]?.properties?.id;
      if (id) selectCase(id);
    });
    map.on('mouseenter', 'neighbours-circle', () => { map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', 'neighbours-circle', () => { map.getCanvas().style.cursor = ''; });
  });
  return state.caseMapLoaded;
}

function gridsOf(communityCode) {
  if (!state.gridCache.has(communityCode)) {
    const promise = api(`regions${query({ level: 'grid', parent: communityCode })}`);
    promise.catch(() => state.gridCache.delete(communityCode));
    state.gridCache.set(communityCode, promise);
  }
  return state.gridCache.get(communityCode);
}

/** The duplicates to draw beside the case (they carry their own coordinates). */
function duplicatePoints(d) {
  return (d.duplicates ?? []).slice(0, MAX_DUPLICATE_POINTS)
    .filter((x) => Number.isFinite(x.lon) && Number.isFinite(x.lat))
    .map((x) => [x, [x.lon, x.lat]]);
}

function bboxOf(geometries, points) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const add = ([x, y]) => { b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y); b[2] = Math.max(b[2], x); b[3] = Math.max(b[3], y); };
  for (const g of geometries) {
    const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
    for (const poly of polys) for (const p of poly[0]) add(p);
  }
  points.forEach(add);
  return b;
}

async function showCaseOnMap(d) {
  if (!Number.isFinite(d.lon) || !Number.isFinite(d.lat)) return;
  await ensureCaseMap([d.lon, d.lat]);
  const map = state.caseMap;
  if (state.selectedId !== d.id) return;
  const firstTime = state.caseMapCaseId !== d.id;
  state.caseMapCaseId = d.id;
  map.getSource('case-point').setData({
    type: 'FeatureCollection',
    features: [{ type: 'Feature', geometry: { type: 'Point', coordinates: [d.lon, d.lat] }, properties: { id: d.id } }],
  });
  const [grids, dups] = await Promise.all([
    d.community?.code ? gridsOf(d.community.code).catch(() => EMPTY) : EMPTY,
    duplicatePoints(d),
  ]);
  if (state.selectedId !== d.id) return;
  const gridFeature = grids.features.find((f) => f.properties?.code === d.grid?.code) ?? null;
  map.getSource('grids').setData(grids);
  map.getSource('case-grid').setData(gridFeature ? { type: 'FeatureCollection', features: [gridFeature] } : EMPTY);
  map.getSource('neighbours').setData({
    type: 'FeatureCollection',
    features: dups.map(([x, p]) => ({
      type: 'Feature', geometry: { type: 'Point', coordinates: p },
      properties: { id: x.id, label: `#${x.id}`, open: !['evaluated', 'rejected', 'merged', 'closed'].includes(x.state) },
    })),
  });
  setChildren($('case-map-legend'), 
    el('span', { class: 'legend-dot case' }), tr('map_legend_case'),
    el('span', { class: 'legend-line' }), gridFeature ? `${tr('map_legend_grid')} ${gridFeature.properties.name ?? ''}` : tr('map_legend_no_grid'),
    dups.length ? [el('span', { class: 'legend-dot dup' }), tr('map_legend_dups', { n: dups.length })] : null);
  if (firstTime) {
    const bbox = bboxOf(gridFeature ? [gridFeature.geometry] : [], [[d.lon, d.lat], ...dups.map(([, p]) => p)]);
    const fit = () => {
      if (bbox[2] - bbox[0] < 1e-6 && bbox[3] - bbox[1] < 1e-6) map.jumpTo({ center: [d.lon, d.lat], zoom: 16.5 });
      else map.fitBounds(bbox, { padding: 28, maxZoom: 17.5, duration: 0 });
    };
    map.resize();
    if (map.getContainer().clientWidth > 0) { state.caseMapFit = null; fit(); } else state.caseMapFit = fit;
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates: the event stream, the poll behind it, the refreshes both ask for

function setLive(live) {
  state.live = live;
  renderLive();
}

function renderLive() {
  const node = $('live-status');
  node.dataset.live = state.live;
  node.textContent = tr(`live_${state.live}`);
  node.title = tr(`live_${state.live}_title`);
}

function connectStream() {
  if (typeof EventSource === 'undefined') { setLive('polling'); return Promise.resolve(); }
  state.sse?.close();
  const source = new EventSource(`${API}/cases/stream`);
  state.sse = source;
  let wasDown = false;
  const opened = new Promise((resolve) => {
    source.addEventListener('open', () => {
      setLive('live');
      // Whatever happened while the stream was down is fetched now.
      if (wasDown) scheduleRefresh({ list: true, detail: true, clock: true });
      resolve();
    });
    source.addEventListener('error', () => {
      wasDown = true;
      setLive(source.readyState === EventSource.CLOSED ? 'polling' : 'reconnecting');
      resolve();
    });
  });
  source.addEventListener('case', (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    state.sseEvents += 1;
    state.lastEvent = data;
    window.gridwatchDispatch.sseEvents = state.sseEvents;
    window.gridwatchDispatch.lastEvent = data;
    scheduleRefresh({ list: true, detail: Number(data?.id) === state.selectedId, clock: true });
  });
  return opened;
}

/** Coalesces a burst of events (a scheduler pass can escalate many whistles) into one refresh. */
function scheduleRefresh(what) {
  for (const key of Object.keys(state.refreshWanted)) state.refreshWanted[key] ||= Boolean(what[key]);
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(runRefresh, REFRESH_DEBOUNCE_MS);
}

function runRefresh() {
  const wanted = state.refreshWanted;
  state.refreshWanted = { list: false, detail: false, clock: false };
  const jobs = [];
  // The clock first: the refreshed rows and cards are drawn against the new offset.
  const clock = wanted.clock ? refreshClock() : Promise.resolve();
  jobs.push(clock);
  const after = clock.catch(() => {}); // a failed clock read must not hold back the rest
  if (wanted.list) jobs.push(after.then(() => refreshList()));
  if (wanted.detail && state.selectedId) {
    const id = state.selectedId;
    jobs.push(after.then(() => loadDetail(id)), loadNotices(id));
  }
  background(Promise.all(jobs));
}

function poll() {
  if (document.hidden) return;
  if (state.sse && state.sse.readyState === EventSource.CLOSED) connectStream();
  scheduleRefresh({ list: true, detail: true, clock: true });
  if (state.tab === 'packages') background(loadPackages());
}

// ---------------------------------------------------------------------------------------------
// Tabs

const TABS = ['cases', 'stats', 'packages', 'rules', 'escalation'];

function setTab(tab, { fromHash = false } = {}) {
  if (!TABS.includes(tab)) tab = 'cases';
  state.tab = tab;
  document.body.dataset.tab = tab;
  for (const name of TABS) {
    $(`view-${name}`).hidden = name !== tab;
    $(`tab-${name}`).setAttribute('aria-selected', String(name === tab));
    $(`tab-${name}`).classList.toggle('active', name === tab);
  }
  if (!fromHash) writeHash();
  if (tab === 'cases') resizeCaseMap();
  if (tab === 'stats') background(loadStats());
  if (tab === 'packages') background(loadPackages());
  if (tab === 'rules') { background(loadRules()); background(ensurePreviewMap()); }
  if (tab === 'escalation') background(loadPolicy());
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.tab !== 'cases') params.set('tab', state.tab);
  if (state.selectedId) params.set('case', String(state.selectedId));
  const hash = params.toString();
  const url = new URL(window.location.href);
  url.hash = hash;
  window.history.replaceState(null, '', url);
}

function readHash() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  return { tab: params.get('tab') ?? 'cases', caseId: Number(params.get('case')) || null };
}

// ---------------------------------------------------------------------------------------------
// Figures 统计

const STAT_COLUMNS = [
  { key: 'name', label: 'stats_col_name', kind: 'name' },
  { key: 'cases', label: 'stats_col_cases', kind: 'int' },
  { key: 'closed', label: 'stats_col_closed', kind: 'int' },
  { key: 'closure_rate', label: 'stats_col_closure_rate', kind: 'rate' },
  { key: 'whistles', label: 'stats_col_whistles', kind: 'int' },
  { key: 'on_time_rate', label: 'stats_col_on_time_rate', kind: 'rate' },
  { key: 'mean_ack_minutes', label: 'stats_col_mean_ack', kind: 'minutes' },
  { key: 'mean_resolve_hours', label: 'stats_col_mean_resolve', kind: 'hours' },
  { key: 'satisfaction_rate', label: 'stats_col_satisfaction_rate', kind: 'rate' },
  { key: 'overdue', label: 'stats_col_overdue', kind: 'int' },
];

function statsQuery(format) {
  return `dispatch/stats${query({ by: $('stats-by').value, from: $('stats-from').value, to: $('stats-to').value, format })}`;
}

async function loadStats() {
  const by = $('stats-by').value;
  const csv = $('stats-csv');
  csv.href = `${API}/${statsQuery('csv')}`;
  csv.download = `gridwatch-stats-${by}.csv`;
  const seq = ++state.statsSeq;
  $('stats-table').dataset.loading = 'true';
  const stats = await api(statsQuery());
  if (seq !== state.statsSeq) return;
  state.stats = stats;
  delete $('stats-table').dataset.loading;
  renderStats();
}

function rateClass(rate) {
  if (rate === null || rate === undefined) return '';
  return rate >= 0.9 ? 'good' : rate >= 0.7 ? 'fair' : 'bad';
}

function statCell(row, col) {
  const v = row[col.key];
  switch (col.kind) {
    case 'name': {
      const by = state.stats?.by;
      const name = by === 'department' ? deptName({ code: row.code, name: row.name }) : (row.name || row.code);
      return el('td', { class: 'name-cell' }, name, by !== 'department' && row.code ? el('span', { class: 'mono muted' }, ` ${row.code}`) : null);
    }
    case 'int': return el('td', { class: `num${col.key === 'overdue' && v > 0 ? ' late' : ''}` }, v === null || v === undefined ? '—' : formatNumber(state.lang, v));
    case 'rate': return el('td', { class: `num rate ${rateClass(v)}` }, formatRate(v));
    case 'minutes': return el('td', { class: 'num' }, formatMinutes(v));
    case 'hours': return el('td', { class: 'num' }, formatHours(v));
    default: return el('td', {}, v ?? '—');
  }
}

function renderStats() {
  const table = $('stats-table');
  const rows = [...(state.stats?.rows ?? [])];
  const { key, dir } = state.statsSort;
  rows.sort((a, b) => {
    const x = a[key], y = b[key];
    if (key === 'name') return dir * String(x ?? '').localeCompare(String(y ?? ''), 'zh-CN');
    // Rows with nothing to divide (null) stay at the bottom whichever way the column is sorted.
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
    if (y === null || y === undefined) return -1;
    return dir * (x - y);
  });
  const sum = (k) => rows.reduce((s, r) => s + (Number(r[k]) || 0), 0);
  const ratio = (a, b) => (b ? a / b : null);
  const total = {
    name: tr('stats_total'), cases: sum('cases'), closed: sum('closed'), whistles: sum('whistles'), overdue: sum('overdue'),
    closure_rate: ratio(sum('closed'), sum('cases')),
    on_time_rate: ratio(sum('acknowledged_on_time'), sum('whistles')),
    satisfaction_rate: ratio(sum('satisfied'), sum('rated')),
    mean_ack_minutes: null, mean_resolve_hours: null,
  };
  setChildren(table, 
    el('thead', {}, el('tr', {}, STAT_COLUMNS.map((col) => el('th', {
      class: col.kind === 'name' ? '' : 'num', scope: 'col', 'data-col': col.key,
      'aria-sort': key === col.key ? (dir > 0 ? 'ascending' : 'descending') : null,
    }, el('button', {
      type: 'button', class: 'sort-btn',
      onclick: () => {
        state.statsSort = { key: col.key, dir: state.statsSort.key === col.key ? -state.statsSort.dir : (col.key === 'name' ? 1 : -1) };
        renderStats();
      },
    }, tr(col.label), key === col.key ? (dir > 0 ? ' ▲' : ' ▼') : ''))))),
    el('tbody', {}, rows.length
      ? rows.map((row) => el('tr', { 'data-code': row.code }, STAT_COLUMNS.map((col) => statCell(row, col))))
      : el('tr', { class: 'empty' }, el('td', { colspan: String(STAT_COLUMNS.length) }, tr('stats_empty')))),
    rows.length > 1 ? el('tfoot', {}, el('tr', {}, STAT_COLUMNS.map((col) => (col.kind === 'name'
      ? el('td', {}, total.name) : statCell(total, col))))) : null);
}

// ---------------------------------------------------------------------------------------------
// Packages 打包

async function loadPackages() {
  const [proposals, packages] = await Promise.all([api('packages/proposals'), api('packages')]);
  state.proposals = proposals;
  state.packages = packages;
  renderPackages();
}

function caseLinks(ids, max = 12) {
  const shown = ids.slice(0, max);
  return [shown.map((id, i) => [i ? ' ' : '', el('button', { type: 'button', class: 'link-btn', onclick: () => selectCase(id) }, `#${id}`)]),
    ids.length > max ? el('span', { class: 'muted' }, ` ${tr('and_more', { n: ids.length - max })}`) : null];
}

function renderPackages() {
  const proposals = state.proposals ?? [];
  setChildren($('proposals-table'), 
    el('thead', {}, el('tr', {}, ['pkg_street', 'pkg_category', 'pkg_count', 'pkg_window', 'pkg_cases', 'pkg_note', ''].map((k) => el('th', {}, k ? tr(k) : '')))),
    el('tbody', {}, proposals.length ? proposals.map((p, i) => {
      const note = el('input', { type: 'text', class: 'note-input', maxlength: '500', placeholder: tr('pkg_note_placeholder'), 'aria-label': tr('pkg_note') });
      return el('tr', { 'data-street': p.street?.code, 'data-category': p.category },
        el('td', {}, regionName(p.street)),
        el('td', {}, categoryName(p.category)),
        el('td', { class: 'num' }, formatNumber(state.lang, p.count)),
        el('td', { class: 'num' }, tr('days_n', { n: p.window_days })),
        el('td', { class: 'ids' }, caseLinks(p.case_ids ?? [])),
        el('td', {}, note),
        el('td', {}, el('button', {
          type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'package', 'data-index': String(i),
          onclick: (event) => createPackage(p, note.value, event.currentTarget),
        }, tr('pkg_create'))));
    }) : el('tr', { class: 'empty' }, el('td', { colspan: '7' }, tr('pkg_no_proposals')))));
  const packages = state.packages ?? [];
  setChildren($('packages-table'), 
    el('thead', {}, el('tr', {}, ['pkg_id', 'pkg_street', 'pkg_category', 'pkg_cases', 'pkg_created_at', 'pkg_note'].map((k) => el('th', {}, tr(k))))),
    el('tbody', {}, packages.length ? packages.map((p) => el('tr', { 'data-package-id': p.id },
      el('td', {}, `#${p.id}`),
      el('td', {}, regionName(p.street) ?? p.street),
      el('td', {}, categoryName(p.category)),
      el('td', { class: 'ids' }, el('span', { class: 'muted' }, `${formatNumber(state.lang, (p.case_ids ?? []).length)} · `), caseLinks(p.case_ids ?? [], 8)),
      el('td', {}, formatDateTime(p.created_at)),
      el('td', {}, p.note ?? ''))) : el('tr', { class: 'empty' }, el('td', { colspan: '6' }, tr('pkg_none')))));
}

function showFormMessage(id, kind, text) {
  const node = $(id);
  node.hidden = !text;
  node.className = `form-message ${kind}`;
  node.dataset.kind = kind;
  node.textContent = text ?? '';
}

async function createPackage(p, note, button) {
  button.disabled = true;
  try {
    const body = { street: p.street?.code, category: p.category };
    if (note.trim()) body.note = note.trim();
    const created = await api('packages', { method: 'POST', body });
    showFormMessage('packages-message', 'ok', tr('pkg_created', { id: created.id, n: (created.case_ids ?? []).length }));
    await loadPackages();
  } catch (err) {
    showFormMessage('packages-message', 'error', err.message);
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Routing rules 路由规则 and the preview

async function loadRules() {
  state.rules = await api('routing-rules');
  renderRules();
  renderRuleForm();
}

function territoryLabel(link) {
  if (!link) return tr('rule_any_territory');
  const name = link.name || state.regionNames.get(link.code) || link.code;
  return name;
}

function renderRules() {
  const rules = state.rules ?? [];
  setChildren($('rules-table'), 
    el('thead', {}, el('tr', {}, ['rule_id', 'rule_category', 'rule_territory', 'rule_lead', 'rule_co', 'rule_note', ''].map((k) => el('th', {}, k ? tr(k) : '')))),
    el('tbody', {}, rules.length ? rules.map((r) => el('tr', { 'data-rule-id': r.id, class: state.editingRule === r.id ? 'selected' : '' },
      el('td', {}, `#${r.id}`),
      el('td', {}, r.category ? categoryName(r.category) : el('span', { class: 'muted' }, tr('rule_any_category'))),
      el('td', {}, r.territory ? territoryLabel(r.territory) : el('span', { class: 'muted' }, tr('rule_any_territory'))),
      el('td', {}, r.lead_department ? deptName(r.lead_department) : el('span', { class: 'muted' }, tr('lead_community'))),
      el('td', {}, (r.co_departments ?? []).map(deptName).join('、') || '—'),
      el('td', { class: 'note-cell' }, r.note ?? ''),
      el('td', { class: 'row-actions' },
        el('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit-rule', onclick: () => editRule(r.id) }, tr('edit')),
        el('button', {
          type: 'button', class: 'btn btn-small btn-danger', 'data-action': 'delete-rule',
          onclick: (event) => deleteRule(r.id, event.currentTarget),
        }, tr('delete'))))) : el('tr', { class: 'empty' }, el('td', { colspan: '7' }, tr('rules_none')))));
}

function editRule(id) {
  state.editingRule = id;
  showFormMessage('rule-message', 'ok', '');
  renderRules();
  renderRuleForm();
  $('rule-form').scrollIntoView({ block: 'nearest' });
}

function territoryOptions(selected) {
  const groups = [];
  const districts = (state.districts?.features ?? []).map((f) => f.properties).sort((a, b) => a.code.localeCompare(b.code));
  groups.push(el('optgroup', { label: tr('level_district') }, districts.map((p) => option(p.code, p.name, selected === p.code))));
  const streets = (state.streets?.features ?? []).map((f) => f.properties).sort((a, b) => a.code.localeCompare(b.code));
  groups.push(el('optgroup', { label: tr('level_street') }, streets.map((p) => option(p.code, `${state.regionNames.get(p.parent_code) ?? ''} ${p.name}`.trim(), selected === p.code))));
  return groups;
}

function renderRuleForm() {
  const form = $('rule-form');
  const editing = state.editingRule;
  form.hidden = editing === null;
  if (editing === null) return;
  const rule = editing === 'new' ? null : (state.rules ?? []).find((r) => r.id === editing);
  if (editing !== 'new' && !rule) { state.editingRule = null; form.hidden = true; return; }
  form.dataset.ruleId = editing === 'new' ? '' : String(rule.id);
  $('rule-form-title').textContent = rule ? tr('rule_edit_title', { id: rule.id }) : tr('rule_new_title');
  setChildren($('rule-category'), option('', tr('rule_any_category'), !rule?.category), ...categoryOptions(rule?.category ?? ''));
  setChildren($('rule-territory'), option('', tr('rule_any_territory'), !rule?.territory), ...territoryOptions(rule?.territory?.code ?? ''));
  setChildren($('rule-lead'), option('', tr('lead_community'), !rule?.lead_department),
    ...state.departments.map((x) => option(x.code, deptName(x.code), rule?.lead_department === x.code)));
  $('rule-note').value = rule?.note ?? '';
  setChildren($('rule-co'), departmentChecks('rule-co-dept', rule?.co_departments ?? [], () => {}));
}

async function saveRule(event) {
  event.preventDefault();
  const editing = state.editingRule;
  const body = {
    category: $('rule-category').value || null,
    territory: $('rule-territory').value || null,
    lead_department: $('rule-lead').value || null,
    co_departments: [...document.querySelectorAll('#rule-co input:checked')].map((x) => x.value).filter((x) => x !== $('rule-lead').value),
    note: $('rule-note').value.trim() || null,
  };
  $('rule-save').disabled = true;
  try {
    const saved = editing === 'new'
      ? await api('routing-rules', { method: 'POST', body })
      : await api(`routing-rules/${editing}`, { method: 'PUT', body });
    state.editingRule = null;
    await loadRules();
    showFormMessage('rule-message', 'ok', '');
    flashRow(`#rules-table tr[data-rule-id="${saved.id}"]`);
    if (state.preview) background(runPreview());
  } catch (err) {
    const field = err.body?.error?.field;
    showFormMessage('rule-message', 'error', field ? `${err.message} (${field})` : err.message);
  } finally {
    $('rule-save').disabled = false;
  }
}

function flashRow(selector) {
  const row = document.querySelector(selector);
  if (!row) return;
  row.classList.add('flash');
  setTimeout(() => row.classList.remove('flash'), 1600);
}

/** Two clicks: the first arms the button for a few seconds, the second deletes. */
async function deleteRule(id, button) {
  if (button.dataset.armed !== 'true') {
    button.dataset.armed = 'true';
    button.textContent = tr('delete_confirm');
    setTimeout(() => {
      if (button.isConnected) { button.dataset.armed = 'false'; button.textContent = tr('delete'); }
    }, 4000);
    return;
  }
  button.disabled = true;
  try {
    await api(`routing-rules/${id}`, { method: 'DELETE' });
    if (state.editingRule === id) state.editingRule = null;
    await loadRules();
  } catch (err) {
    showError(err);
    button.disabled = false;
  }
}

function renderPreviewOptions() {
  const select = $('preview-category');
  const current = select.value || state.categories[0]?.code || '';
  setChildren(select, ...categoryOptions(current));
}

function ensurePreviewMap() {
  if (state.previewMap) { state.previewMap.resize(); return state.previewLoaded; }
  const { map, loaded } = createMap('preview-map', { center: [106.84, 39.672], zoom: 11 });
  state.previewMap = map;
  window.gridwatchDispatch.previewMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  state.previewLoaded = loaded.then(() => {
    const font = basemapFont(map);
    map.addSource('districts', { type: 'geojson', data: state.districts ?? EMPTY });
    map.addSource('streets', { type: 'geojson', data: state.streets ?? EMPTY });
    map.addSource('preview-point', { type: 'geojson', data: EMPTY });
    map.addLayer({ id: 'streets-fill', type: 'fill', source: 'streets', paint: { 'fill-color': '#64748b', 'fill-opacity': 0.05 } });
    map.addLayer({ id: 'streets-line', type: 'line', source: 'streets', paint: { 'line-color': '#5b4b8a', 'line-width': 1.2 } });
    map.addLayer({ id: 'districts-line', type: 'line', source: 'districts', paint: { 'line-color': '#2b2d42', 'line-width': 2 } });
    map.addLayer({
      id: 'streets-label', type: 'symbol', source: 'streets', minzoom: 10.5,
      layout: { 'text-field': ['get', 'name'], 'text-font': font ?? FONT_MEDIUM, 'text-size': 12 },
      paint: { 'text-color': '#3b2f6b', 'text-halo-color': 'rgba(255,255,255,0.92)', 'text-halo-width': 1.5 },
    });
    map.addLayer({
      id: 'preview-point', type: 'circle', source: 'preview-point',
      paint: { 'circle-radius': 8, 'circle-color': BRAND, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2.5 },
    });
    // The streets' extent: the demo's urban cores, not the whole desert between them.
    const bbox = bboxOf((state.streets?.features ?? []).map((f) => f.geometry), []);
    if (Number.isFinite(bbox[0])) map.fitBounds(bbox, { padding: 20, duration: 0 });
    map.on('click', (event) => {
      $('preview-lon').value = event.lngLat.lng.toFixed(6);
      $('preview-lat').value = event.lngLat.lat.toFixed(6);
      background(runPreview());
    });
    if (state.preview) setPreviewPoint(state.preview.lon, state.preview.lat);
  });
  return state.previewLoaded;
}

function setPreviewPoint(lon, lat) {
  state.previewMap?.getSource('preview-point')?.setData({
    type: 'FeatureCollection', features: [{ type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties: {} }],
  });
}

async function runPreview() {
  const lon = Number($('preview-lon').value), lat = Number($('preview-lat').value);
  const category = $('preview-category').value;
  if (!$('preview-lon').value || !$('preview-lat').value || !Number.isFinite(lon) || !Number.isFinite(lat)) {
    state.preview = { error: tr('preview_need_point') };
    renderPreview();
    return;
  }
  setPreviewPoint(lon, lat);
  state.preview = { lon, lat, category, loading: true };
  renderPreview();
  try {
    const answer = await api(`routing/preview${query({ lon, lat, category })}`);
    state.preview = { lon, lat, category, answer };
  } catch (err) {
    if (err.status) state.preview = { lon, lat, category, error: err.message };
    else throw err;
  }
  renderPreview();
}

function renderPreview() {
  const box = $('preview-result');
  const p = state.preview;
  if (!p) { setChildren(box); return; }
  if (p.error) { setChildren(box, el('p', { class: 'form-message error' }, p.error)); return; }
  if (p.loading) { setChildren(box, el('p', { class: 'muted' }, tr('loading'))); return; }
  const located = p.answer?.located ?? {};
  const routing = p.answer?.routing;
  const chain = ['district', 'street', 'community', 'grid', 'micro_grid'].map((level) => located[level]).filter(Boolean).map(regionName);
  setChildren(box, 
    el('dl', { class: 'facts' },
      el('dt', {}, tr('preview_located')), el('dd', { 'data-field': 'located' },
        chain.join(' › ') || '—', located.status ? el('span', { class: 'tag' }, trOr(`locate_${located.status}`, located.status)) : null),
      el('dt', {}, tr('routing_lead')), el('dd', { 'data-field': 'lead' }, leadName(routing)),
      el('dt', {}, tr('routing_co')), el('dd', {}, (routing?.co_departments ?? []).map(deptName).join('、') || '—'),
      el('dt', {}, tr('routing_why')), el('dd', { class: 'why', 'data-field': 'why' }, whyText(routing))));
}

// ---------------------------------------------------------------------------------------------
// Escalation policy 亮牌规则

async function loadPolicy() {
  state.policy = await api('escalation-policy');
  if (!state.policyDraft) renderPolicy();
}

function afterLabel(minutes) {
  if (!minutes) return tr('esc_at_whistle');
  return tr('esc_after', { t: formatOffset(minutes).slice(1) });
}

function renderPolicy() {
  const policy = state.policy;
  if (!policy) return;
  const editing = Boolean(state.policyDraft);
  $('escalation-title').textContent = `${tr('escalation_title')} · ${trOr(`policy_${policy.name}`, policy.name)}`;
  $('escalation-edit').hidden = editing;
  $('escalation-actions').hidden = !editing;
  const head = el('thead', {}, el('tr', {}, ['esc_when', 'esc_notice', 'esc_card', 'esc_notify', 'esc_supervision', editing ? '' : null]
    .filter((k) => k !== null).map((k) => el('th', {}, k ? tr(k) : ''))));
  if (!editing) {
    setChildren($('escalation-table'), head, el('tbody', {}, policy.steps.map((s, i) => el('tr', { 'data-step': String(i), 'data-card': s.card ?? 'none' },
      el('td', { class: 'when' }, afterLabel(s.after_minutes)),
      el('td', {}, s.notice ? tr('notice_n', { n: s.notice }) : '—'),
      el('td', {}, s.card ? cardBadge(s.card) : '—'),
      el('td', {}, (s.notify ?? []).length ? s.notify.map((x) => trOr(`notify_${x}`, x)).join('；') : '—'),
      el('td', {}, s.push_to_supervision ? el('span', { class: 'tag tag-overdue' }, tr('push_supervision')) : '—')))));
    return;
  }
  const steps = state.policyDraft;
  const targets = [...new Set([...NOTIFY_TARGETS, ...steps.flatMap((s) => s.notify ?? [])])];
  setChildren($('escalation-table'), head, el('tbody', {}, steps.map((s, i) => el('tr', { 'data-step': String(i) },
    el('td', {}, el('input', {
      type: 'number', class: 'minutes-input', min: '0', step: '1', value: String(s.after_minutes), 'aria-label': tr('esc_minutes'),
      oninput: (event) => { s.after_minutes = Number(event.target.value); },
    }), ' ', tr('esc_minutes')),
    el('td', {}, el('select', { onchange: (event) => { s.notice = event.target.value ? Number(event.target.value) : null; } },
      option('', '—', !s.notice), [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => option(String(n), tr('notice_n', { n }), s.notice === n)))),
    el('td', {}, el('select', { onchange: (event) => { s.card = event.target.value || null; } },
      option('', '—', !s.card), ['yellow', 'red'].map((c) => option(c, cardName(c), s.card === c)))),
    el('td', {}, targets.map((x) => el('label', { class: 'check' }, el('input', {
      type: 'checkbox', checked: (s.notify ?? []).includes(x),
      onchange: (event) => {
        s.notify = event.target.checked ? [...new Set([...(s.notify ?? []), x])] : (s.notify ?? []).filter((y) => y !== x);
      },
    }), ' ', trOr(`notify_${x}`, x)))),
    el('td', {}, el('label', { class: 'check' }, el('input', {
      type: 'checkbox', checked: Boolean(s.push_to_supervision), onchange: (event) => { s.push_to_supervision = event.target.checked; },
    }), ' ', tr('push_supervision'))),
    el('td', {}, el('button', {
      type: 'button', class: 'btn-icon btn-del', 'aria-label': tr('delete'), title: tr('delete'),
      onclick: () => { steps.splice(i, 1); renderPolicy(); },
    }, '×'))))));
}

async function savePolicy() {
  const steps = [...state.policyDraft].sort((a, b) => a.after_minutes - b.after_minutes);
  $('escalation-save').disabled = true;
  try {
    state.policy = await api('escalation-policy', { method: 'PUT', body: { name: state.policy.name, steps } });
    state.policyDraft = null;
    showFormMessage('escalation-message', 'ok', tr('escalation_saved'));
    renderPolicy();
  } catch (err) {
    showFormMessage('escalation-message', 'error', err.message);
  } finally {
    $('escalation-save').disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Start-up

function bindControls() {
  $('lang-toggle').addEventListener('click', () => setLanguage(state.lang === 'zh' ? 'en' : 'zh'));
  $('error-dismiss').addEventListener('click', () => { $('error-banner').hidden = true; });
  $('error-reload').addEventListener('click', () => window.location.reload());
  for (const tab of TABS) $(`tab-${tab}`).addEventListener('click', () => setTab(tab));
  for (const id of ['filter-street', 'filter-category', 'filter-state', 'filter-overdue']) $(id).addEventListener('change', onFilterChange);
  $('queue-more').addEventListener('click', () => background(loadMore()));
  $('detail-back').addEventListener('click', () => setView('queue'));
  for (const id of ['stats-by', 'stats-from', 'stats-to']) $(id).addEventListener('change', () => background(loadStats()));
  $('packages-refresh').addEventListener('click', () => background(loadPackages()));
  $('rule-new').addEventListener('click', () => editRule('new'));
  $('rule-cancel').addEventListener('click', () => { state.editingRule = null; renderRules(); renderRuleForm(); });
  $('rule-form').addEventListener('submit', saveRule);
  $('preview-form').addEventListener('submit', (event) => { event.preventDefault(); background(runPreview()); });
  $('escalation-edit').addEventListener('click', () => {
    state.policyDraft = structuredClone(state.policy?.steps ?? []);
    showFormMessage('escalation-message', 'ok', '');
    renderPolicy();
  });
  $('escalation-cancel').addEventListener('click', () => { state.policyDraft = null; renderPolicy(); });
  $('escalation-add').addEventListener('click', () => {
    const last = state.policyDraft.at(-1);
    state.policyDraft.push({ after_minutes: (last?.after_minutes ?? 0) + 60, notice: null, card: null, notify: [], push_to_supervision: false });
    renderPolicy();
  });
  $('escalation-save').addEventListener('click', savePolicy);
  window.addEventListener('hashchange', () => {
    const { tab, caseId } = readHash();
    if (tab !== state.tab) setTab(tab, { fromHash: true });
    if (caseId && caseId !== state.selectedId) background(selectCase(caseId, { fromHash: true }));
  });
  // Closing the stream ourselves keeps a navigation from being logged as a broken connection.
  window.addEventListener('pagehide', () => state.sse?.close());
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.ready) poll(); });
}

async function start() {
  renderStaticText();
  renderLive();
  bindControls();

  const [config, categories, departments, streets, districts] = await Promise.all([
    api('config'),
    api('categories'),
    api('departments'),
    api('regions?level=street'),
    api('regions?level=district'),
    refreshClock(),
  ]);
  state.config = config ?? state.config;
  state.categories = categories;
  for (const c of categories) state.categoryIndex.set(c.code, c);
  state.departments = departments;
  for (const d of departments) state.deptIndex.set(d.code, d);
  // A leader scoped to a street or community is offered only the streets of their region.
  const user = await session;
  state.scoped = Boolean(user?.scope);
  state.streets = { ...streets, features: streets.features.filter((f) => inScope(user, f.properties.code)) };
  state.districts = districts;
  for (const f of [...districts.features, ...streets.features]) state.regionNames.set(f.properties.code, f.properties.name);
  renderFilters();
  renderPreviewOptions();

  const { tab, caseId } = readHash();
  const stream = connectStream();
  await refreshList({ reset: true });
  if (caseId) {
    state.selectedId = caseId;
    setView('detail');
    try {
      await Promise.all([loadDetail(caseId, { force: true }), loadNotices(caseId)]);
    } catch (err) {
      // A case in an old link that no longer exists is not a reason to refuse to start.
      if (err.status !== 404) throw err;
      state.selectedId = null;
      setView('queue');
      renderDetail();
    }
  }
  setTab(tab, { fromHash: true });
  await Promise.race([stream, new Promise((resolve) => setTimeout(resolve, STREAM_WAIT_MS))]);

  setInterval(tick, 1000);
  setInterval(poll, POLL_MS);
  state.ready = true;
  document.body.dataset.state = 'ready';
}

// Published before start() runs, so start() can fill in the maps as soon as they exist.
window.gridwatchDispatch = {
  ready: null,
  caseMap: null,
  previewMap: null,
  sseEvents: 0,
  lastEvent: null,
  selectCase,
  setLanguage,
  setTab,
  /** Do an action to the selected case, as the buttons do (tests use it to provoke a refusal). */
  act,
  serverNow,
  state,
};
window.gridwatchDispatch.ready = start();
window.gridwatchDispatch.ready.catch((err) => {
  console.warn('dispatch console failed to start:', err);
  showError(err);
});
