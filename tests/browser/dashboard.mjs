#!/usr/bin/env node
// Browser checks of the street leader's dashboard 街道领导看板 in a real headless Chromium (Debian's
// /usr/bin/chromium).
//
// Usage: node tests/browser/dashboard.mjs <base_url> <screenshot_dir>
//   e.g. node tests/browser/dashboard.mjs http://127.0.0.1:8080 target/screenshots
//
// Needs a server started with `--demo`. The figures the page shows are compared with the API's own
// answers, fetched again from Node: GET /api/v1/dashboard (headline figures, categories, the top
// grids; the CSV and GeoJSON exports), /api/v1/reports/trend (one bar per bucket), /api/v1/hotspots
// (the hot and cold counts and the grids outlined on the map) and /api/v1/emerging (the rising list).
//
// Prints one line per check and stops at the first failure with a non-zero exit code. Any uncaught
// page error, console error, or request to a host other than <base_url> fails the run too: the page
// must work without internet. Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { readFile } from 'node:fs/promises';
import { createChecks, launchChromium, logIn, parseArgs } from './harness.mjs';

const STEP_TIMEOUT_MS = 20_000;
const PHONE = { width: 390, height: 844 };
const A4 = { width: 794, height: 1123 }; // 210 × 297 mm at 96 dpi
const CJK = /[\u3400-\u9fff]/;
const GRID_COLUMNS = ['code', 'name', 'community_code', 'community_name', 'reports', 'density_km2', 'area_km2', 'cases',
  'closure_rate', 'overdue', 'satisfaction_rate'];
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Demo data run until 2026-10-31, then a few reports from 2026-12-01: nothing in between.
const EMPTY_WINDOW = { from: '2026-11-05', to: '2026-11-25' };

const { baseUrl, origin, shot } = await parseArgs('dashboard.mjs');
const { check, pass, fail, expect, watch, done, report, openReady } = createChecks(origin);

/** GET from Node, as any other client would. */
async function api(path) {
  const response = await fetch(`${baseUrl}/api/v1/${path}`, { headers: { Accept: 'application/json' } });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: the caller looks at the status */ }
  if (!response.ok) fail(`GET /api/v1/${path} answered ${response.status}: ${text.slice(0, 200)}`);
  return body;
}

function qs(params) {
  return Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

const close = (a, b) => (a === null && b === null) || (a !== null && b !== null && Math.abs(a - b) < 1e-9);

/** A China date, the way the page computes "today" from the server's clock. */
const chinaDay = (iso) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(iso));

function addDays(day, n) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

/** A minimal CSV reader: quoted fields with doubled quotes, commas and newlines inside. */
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += ch;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** The view the page shows: its region, dates and category, read from its controls. */
function shownView(page) {
  return page.evaluate(() => ({
    region: document.querySelector('#region-select').value,
    from: document.querySelector('#date-from').value,
    to: document.querySelector('#date-to').value,
    category: document.querySelector('#category-select').value,
    url: window.location.search,
    preset: document.querySelector('#presets [aria-pressed=true]')?.dataset.preset ?? null,
  }));
}

/** Does `action` and waits until the refresh it starts has drawn every part of the view. */
async function refreshAfter(page, action) {
  const before = await page.evaluate(() => Number(document.body.dataset.refreshed ?? 0));
  await action();
  try {
    await page.waitForFunction((n) => Number(document.body.dataset.refreshed ?? 0) > n && document.body.dataset.loading === 'false',
      before, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`the dashboard did not finish refreshing within ${STEP_TIMEOUT_MS / 1000} s (status: ` +
      `${await page.locator('#dash-status').innerText().catch(() => '?')})`);
  }
}

/** Waits until the map has drawn everything it asked for. */
async function settle(page) {
  await page.evaluate(() => new Promise((resolve) => {
    const { map } = window.gridwatchDashboard;
    requestAnimationFrame(() => {
      if (map.loaded() && !map.isMoving()) resolve();
      else map.once('idle', resolve);
    });
  }));
}

/** Scrolls back to the top (a click may have scrolled a card into view) and lets the map settle. */
async function top(page) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await settle(page);
}

/** The headline figures as shown: `data-value` (the raw number) and the text of each card. */
function shownKpis(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#kpis .kpi')].map((node) => [node.dataset.kpi, {
    value: node.querySelector('.kpi-value').dataset.value === '' ? null : Number(node.querySelector('.kpi-value').dataset.value),
    text: node.querySelector('.kpi-value').textContent,
    label: node.querySelector('.kpi-label').textContent,
  }])));
}

function expectKpisMatch(kpis, totals, what) {
  const pairs = [['reports', totals.reports], ['cases', totals.cases], ['closure', totals.closure_rate],
    ['satisfaction', totals.satisfaction_rate], ['overdue', totals.overdue], ['grids', totals.grids]];
  for (const [key, expected] of pairs) {
    expect(kpis[key], `no "${key}" headline figure`);
    expect(close(kpis[key].value, expected ?? null), `${what}: the page shows ${key} = ${kpis[key].value}, the API ${expected}`);
  }
  const formatted = new Intl.NumberFormat('zh-CN').format(totals.reports);
  expect(kpis.reports.text === formatted, `the reports figure reads ${JSON.stringify(kpis.reports.text)}, expected ${formatted}`);
}

/** The top-grid rows as shown. */
function shownTopGrids(page) {
  return page.evaluate(() => [...document.querySelectorAll('#top-grids tbody tr.grid-row')].map((tr) => ({
    code: tr.dataset.code,
    reports: Number(tr.dataset.reports),
    reportsText: tr.querySelector('[data-field=reports]').textContent,
    name: tr.querySelector('[data-field=name]').textContent,
    closure: tr.querySelector('[data-field=closure]').dataset.value,
    overdue: tr.querySelector('[data-field=overdue]').textContent,
  })));
}

function expectTopGridsMatch(rows, json) {
  const expected = json.grids.filter((g) => g.reports > 0).slice(0, 10);
  expect(rows.length === expected.length, `the top-grids table has ${rows.length} rows, the API ${expected.length} grids with reports (top 10)`);
  rows.forEach((row, i) => {
    const g = expected[i];
    expect(row.code === g.code && row.reports === g.reports && row.name === g.name,
      `top-grid row ${i + 1} is ${row.code} ${row.name} (${row.reports}), the API's ${g.code} ${g.name} (${g.reports})`);
    expect(close(row.closure === '' ? null : Number(row.closure), g.closure_rate) && row.overdue === String(g.overdue),
      `top-grid row ${i + 1}: closure ${row.closure} / overdue ${row.overdue}, the API ${g.closure_rate} / ${g.overdue}`);
  });
}

async function download(page, selector) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: STEP_TIMEOUT_MS }), page.locator(selector).click()]);
  const failure = await file.failure();
  if (failure) fail(`the ${selector} download failed: ${failure}`);
  return { name: file.suggestedFilename(), bytes: await readFile(await file.path()) };
}

async function main() {
  const browser = await launchChromium(await logIn(baseUrl));
  try {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', acceptDownloads: true,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page, 'desktop');
    const emergingCalls = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/api/v1/emerging') emergingCalls.push(request.url());
    });

    const [regions, categories, clock] = await Promise.all([api('regions'), api('categories'), api('clock')]);
    const today = chinaDay(clock.now);
    const byLevel = (level) => regions.features.filter((f) => f.properties.level === level).map((f) => f.properties)
      .sort((a, b) => a.code.localeCompare(b.code));
    const streets = byLevel('street');
    const communities = byLevel('community');
    expect(streets.length >= 2 && communities.length >= 1, `the demo has ${streets.length} streets and ${communities.length} communities`);

    check('the dashboard loads in Chinese, with a street preselected and the last 12 months');
    await openReady(page, `${baseUrl}/dashboard.html?lang=zh`);
    const title = await page.title();
    expect(title === '街道领导看板 · gridwatch', `unexpected page title ${JSON.stringify(title)}`);
    const first = await shownView(page);
    expect(first.region === streets[0].code, `the page starts on ${first.region}, not the first street ${streets[0].code}`);
    expect(first.preset === '12m' && first.to === today && first.from === addDays(`${Number(today.slice(0, 4)) - 1}${today.slice(4)}`, 1),
      `the default period is ${first.preset} ${first.from}..${first.to} (today is ${today})`);
    expect(first.url.includes(`region=${streets[0].code}`) && first.url.includes('preset=12m'), `the URL keeps ${first.url}`);
    const optionCount = await page.locator('#region-select option').count();
    const leaders = streets.length + communities.length + byLevel('district').length;
    expect(optionCount === leaders, `the region select offers ${optionCount} options, the API has ${leaders} districts, streets and communities`);
    const strings = await page.evaluate(async () => {
      const table = await import('/dashboard-i18n.js');
      return {
        zh: table.keys('zh'), en: table.keys('en'),
        untranslated: [...document.querySelectorAll('[data-i18n]')].filter((n) => n.textContent === n.dataset.i18n).map((n) => n.dataset.i18n),
      };
    });
    const missingEn = strings.zh.filter((k) => !strings.en.includes(k));
    const extraEn = strings.en.filter((k) => !strings.zh.includes(k));
    expect(missingEn.length === 0 && extraEn.length === 0, `dashboard-i18n.js: missing in English ${missingEn.join(', ')}; only in English ${extraEn.join(', ')}`);
    expect(strings.untranslated.length === 0, `keys shown as text: ${strings.untranslated.join(', ')}`);
    pass(`${streets[0].name} ${first.from}..${first.to}; ${optionCount} regions to choose from; ${strings.zh.length} strings in both languages`);

    // A street that is not the first (the select must really change the view) and that has hot or
    // cold spots over the last 12 months, so the map has outlines to check.
    const yearAgo = addDays(`${Number(today.slice(0, 4)) - 1}${today.slice(4)}`, 1);
    let street = streets[1];
    for (const s of streets.slice(1)) {
      const spots = await api(`hotspots?${qs({ parent: s.code, from: yearAgo, to: today, permutations: 9999, alpha: 0.05 })}`);
      if (spots.hot + spots.cold > 0) { street = s; break; }
    }
    check(`choosing ${street.name} shows its headline figures, as GET /api/v1/dashboard`);
    await refreshAfter(page, () => page.locator('#region-select').selectOption(street.code));
    const view = await shownView(page);
    expect(view.region === street.code && view.url.includes(`region=${street.code}`), `after choosing ${street.code} the page shows ${view.region} (${view.url})`);
    const filter = { region: street.code, from: view.from, to: view.to };
    const json = await api(`dashboard?${qs(filter)}`);
    expect(json.region.code === street.code && json.totals.reports > 0, `the API has ${json.totals.reports} reports in ${street.code}`);
    const kpis = await shownKpis(page);
    expectKpisMatch(kpis, json.totals, street.name);
    const heading = await page.locator('#region-title').innerText();
    expect(heading.includes(street.name) && heading.includes('街道'), `the heading reads ${JSON.stringify(heading)}`);
    pass(`${json.totals.reports} reports, ${json.totals.cases} cases, closure ${kpis.closure.text}, satisfaction ${kpis.satisfaction.text}, ` +
      `${json.totals.overdue} overdue, ${json.totals.grids} grids`);

    check('the top-grids table is the API\'s 10 grids with most reports');
    const rows = await shownTopGrids(page);
    expectTopGridsMatch(rows, json);
    pass(`${rows.length} rows, first ${rows[0].name} with ${rows[0].reportsText} reports`);

    check('one category bar per category with reports, in the API\'s order and counts');
    const bars = await page.locator('#cats-chart .cat-bar').evaluateAll((nodes) => nodes.map((b) => ({ code: b.dataset.code, reports: Number(b.dataset.reports) })));
    const withReports = json.categories.filter((c) => c.reports > 0);
    expect(bars.length === withReports.length, `${bars.length} bars drawn, ${withReports.length} categories with reports`);
    bars.forEach((bar, i) => expect(bar.code === withReports[i].code && bar.reports === withReports[i].reports,
      `bar ${i + 1} is ${bar.code} ${bar.reports}, the API's ${withReports[i].code} ${withReports[i].reports}`));
    const widths = await page.locator('#cats-chart .cat-bar').evaluateAll((nodes) => nodes.map((b) => Number(b.getAttribute('width'))));
    expect(widths.every((w, i) => i === 0 || w <= widths[i - 1] + 1e-6) && widths[0] > widths.at(-1),
      `the bars' widths do not follow the counts: ${widths.map((w) => w.toFixed(0)).join(', ')}`);
    // A click on a bar filters the whole view by that category; the select clears it again.
    const picked = withReports[1];
    await refreshAfter(page, () => page.locator(`#cats-chart .cat-row[data-code="${picked.code}"]`).click());
    const filtered = await shownView(page);
    const filteredKpis = await shownKpis(page);
    expect(filtered.category === picked.code && filtered.url.includes(`category=${picked.code}`), `a click on ${picked.code} filters by ${filtered.category} (${filtered.url})`);
    expect(filteredKpis.reports.value === picked.reports, `filtered by ${picked.code} the page shows ${filteredKpis.reports.value} reports, the category has ${picked.reports}`);
    expect(await page.locator('#cats-chart .cat-bar').count() === 1, 'filtered by one category the chart still has several bars');
    await refreshAfter(page, () => page.locator('#category-select').selectOption(''));
    expect((await shownKpis(page)).reports.value === json.totals.reports, 'clearing the category does not bring the figures back');
    pass(`${bars.length} bars, ${bars[0].code} longest (${bars[0].reports}); ${picked.code} alone: ${filteredKpis.reports.value} reports`);

    check('the trend chart has one bar per bucket of GET /api/v1/reports/trend');
    const interval = await page.locator('#trend-chart svg').getAttribute('data-interval');
    expect(interval === 'month', `a 12-month window is drawn by ${interval}`);
    const trend = await api(`reports/trend?${qs({ ...filter, interval })}`);
    const trendBars = await page.locator('#trend-chart .trend-bar').evaluateAll((nodes) => nodes.map((b) => ({ start: b.dataset.start, reports: Number(b.dataset.reports) })));
    expect(trendBars.length === trend.buckets.length, `${trendBars.length} trend bars, ${trend.buckets.length} buckets`);
    expect(trendBars.every((b, i) => b.start === trend.buckets[i].start && b.reports === trend.buckets[i].reports), 'the trend bars do not match the buckets');
    const trendTotal = trend.buckets.reduce((s, b) => s + b.reports, 0);
    expect(trendTotal === json.totals.reports, `the trend sums to ${trendTotal}, the dashboard has ${json.totals.reports} reports`);
    await page.locator('#trend-card [data-interval=week]').click();
    await page.waitForFunction(() => document.querySelector('#trend-chart svg')?.dataset.interval === 'week' && document.body.dataset.loading === 'false');
    const weeks = await api(`reports/trend?${qs({ ...filter, interval: 'week' })}`);
    const weekBars = await page.locator('#trend-chart .trend-bar').count();
    expect(weekBars === weeks.buckets.length, `${weekBars} weekly bars, ${weeks.buckets.length} weeks`);
    expect((await shownView(page)).url.includes('interval=week'), 'the URL does not keep the weekly trend');
    await page.locator('#trend-card [data-interval=month]').click();
    await page.waitForFunction(() => document.querySelector('#trend-chart svg')?.dataset.interval === 'month' && document.body.dataset.loading === 'false');
    pass(`${trendBars.length} months (sum ${trendTotal}), ${weekBars} weeks`);

    check('the map shades the street\'s grids and outlines the hot and cold spots of GET /api/v1/hotspots');
    await settle(page);
    const hotspots = await api(`hotspots?${qs({ parent: street.code, from: view.from, to: view.to, permutations: 9999, alpha: 0.05 })}`);
    const drawn = await page.evaluate(() => {
      const { map } = window.gridwatchDashboard;
      const codes = (layer) => [...new Set(map.queryRenderedFeatures({ layers: [layer] }).map((f) => f.properties.code))].sort();
      const fills = map.queryRenderedFeatures({ layers: ['grid-fill'] });
      return {
        grids: codes('grid-fill'),
        colours: [...new Set(fills.map((f) => f.properties.colour))],
        hot: codes('spot-hot'),
        cold: codes('spot-cold'),
        region: map.queryRenderedFeatures({ layers: ['region-line'] }).length,
        legendHot: Number(document.querySelector('#map-legend [data-field=hot]')?.dataset.count),
        legendCold: Number(document.querySelector('#map-legend [data-field=cold]')?.dataset.count),
        legendText: document.querySelector('#map-legend').innerText,
      };
    });
    expect(drawn.grids.length === json.totals.grids, `${drawn.grids.length} grids drawn, the street has ${json.totals.grids}`);
    expect(drawn.grids.join() === json.grids.map((g) => g.code).sort().join(), 'the grids drawn are not the dashboard\'s grids');
    expect(drawn.colours.length >= 3, `the grids are shaded in only ${drawn.colours.length} colours`);
    expect(drawn.region > 0, 'the street\'s outline is not drawn');
    const hotCodes = hotspots.grids.filter((g) => g.class === 'hot').map((g) => g.code).sort();
    const coldCodes = hotspots.grids.filter((g) => g.class === 'cold').map((g) => g.code).sort();
    expect(hotspots.hot === hotCodes.length && hotspots.cold === coldCodes.length, 'the hotspots answer\'s counts do not match its grids');
    expect(drawn.legendHot === hotspots.hot && drawn.legendCold === hotspots.cold,
      `the legend shows ${drawn.legendHot} hot / ${drawn.legendCold} cold, the API ${hotspots.hot} / ${hotspots.cold}`);
    expect(drawn.legendText.includes(`热点 ${hotspots.hot}`) && drawn.legendText.includes(`冷点 ${hotspots.cold}`), `the legend reads ${JSON.stringify(drawn.legendText)}`);
    expect(drawn.hot.join() === hotCodes.join(), `hot outlines on ${drawn.hot.join(' ')}, the API's hot spots ${hotCodes.join(' ')}`);
    expect(drawn.cold.join() === coldCodes.join(), `cold outlines on ${drawn.cold.join(' ')}, the API's cold spots ${coldCodes.join(' ')}`);
    await top(page);
    await page.screenshot({ path: shot('dashboard.png'), fullPage: true });
    pass(`${drawn.grids.length} grids in ${drawn.colours.length} shades; ${hotspots.hot} hot, ${hotspots.cold} cold (FDR ${hotspots.fdr_threshold ?? '—'})`);

    check('the rising list is GET /api/v1/emerging\'s, and steps back a period');
    const emergingUrl = emergingCalls.at(-1);
    expect(emergingUrl && new URL(emergingUrl).searchParams.get('region') === street.code, `the page asked ${emergingUrl} for the rising list`);
    const emerging = await api(`emerging${new URL(emergingUrl).search}`);
    const risingShown = await page.locator('#rising-body .dr-row[data-rising=true]').count();
    const risingRows = emerging.rows.filter((r) => r.rising).length;
    expect(risingShown === risingRows, `${risingShown} rising rows shown, the API has ${risingRows}`);
    if (risingRows === 0) expect(await page.locator('#rising-body [data-field=dr-none]').isVisible(), 'no "nothing rising" note');
    const windowBefore = await page.locator('#rising-window').innerText();
    await refreshAfter(page, () => page.locator('#rising-prev').click());
    const stepped = new URL(emergingCalls.at(-1)).searchParams.get('at');
    expect(stepped === addDays(emerging.current.from, -1), `the previous period was asked at ${stepped}, expected the day before ${emerging.current.from}`);
    const windowAfter = await page.locator('#rising-window').innerText();
    expect(windowAfter !== windowBefore, `the rising window still reads ${windowAfter}`);
    pass(`${emerging.period} ${emerging.current.from}..${emerging.current.to}: ${risingRows} rising of ${emerging.rows.length}; stepped back to ${stepped}`);

    check('clicking a top-grid row highlights that grid and zooms the map to it');
    await settle(page);
    const zoomBefore = await page.evaluate(() => window.gridwatchDashboard.map.getZoom());
    const target = rows[0];
    await page.locator(`#top-grids tr[data-code="${target.code}"]`).click();
    await page.waitForFunction((z) => {
      const { map } = window.gridwatchDashboard;
      return !map.isMoving() && map.getZoom() > z + 0.5;
    }, zoomBefore);
    await settle(page);
    const zoomed = await page.evaluate((code) => {
      const { map } = window.gridwatchDashboard;
      const c = map.getCenter();
      return {
        zoom: map.getZoom(),
        filter: JSON.stringify(map.getFilter('grid-selected')),
        selected: document.querySelector(`#top-grids tr[data-code="${code}"]`).classList.contains('selected'),
        atCentre: map.queryRenderedFeatures(map.project(c), { layers: ['grid-fill'] }).map((f) => f.properties.code),
      };
    }, target.code);
    expect(zoomed.filter.includes(target.code) && zoomed.selected, `grid ${target.code} is not highlighted (${zoomed.filter})`);
    expect(zoomed.atCentre.includes(target.code), `the map centres on ${zoomed.atCentre.join(',')}, not ${target.code}`);
    pass(`zoom ${zoomBefore.toFixed(1)} → ${zoomed.zoom.toFixed(1)} on ${target.name}`);

    check('CSV export downloads one row per grid of the dashboard');
    const csv = await download(page, '#export-csv');
    const table = parseCsv(csv.bytes.toString('utf8').replace(/^\uFEFF/, '')).filter((r) => r.length > 1);
    expect(table[0].join(',') === GRID_COLUMNS.join(','), `the CSV header is ${table[0].join(',')}`);
    const csvRows = table.slice(1);
    expect(csvRows.length === json.grids.length, `the CSV has ${csvRows.length} rows, the dashboard ${json.grids.length} grids`);
    expect(csvRows[0][0] === json.grids[0].code && Number(csvRows[0][4]) === json.grids[0].reports, `the CSV's first row is ${csvRows[0].join(',')}`);
    const csvSum = csvRows.reduce((s, r) => s + Number(r[4]), 0);
    expect(csvSum === json.grids.reduce((s, g) => s + g.reports, 0), `the CSV's reports sum to ${csvSum}`);
    expect(csv.name.endsWith('.csv'), `the CSV is saved as ${csv.name}`);
    pass(`${csv.name}: ${csvRows.length} rows, ${csvSum} reports`);

    check('GeoJSON export downloads one polygon per grid');
    const geo = await download(page, '#export-geojson');
    const collection = JSON.parse(geo.bytes.toString('utf8'));
    expect(collection.type === 'FeatureCollection' && collection.features.length === json.grids.length,
      `the GeoJSON has ${collection.features?.length} features, the dashboard ${json.grids.length} grids`);
    expect(collection.features.every((f) => ['Polygon', 'MultiPolygon'].includes(f.geometry?.type)), 'a GeoJSON feature has no polygon');
    expect(collection.features.map((f) => f.properties.code).sort().join() === json.grids.map((g) => g.code).sort().join(), 'the GeoJSON grids differ from the dashboard\'s');
    const lon = collection.features[0].geometry.coordinates.flat(3)[0];
    expect(lon > 106 && lon < 108, `the GeoJSON is not in lon/lat (first x ${lon})`);
    pass(`${geo.name}: ${collection.features.length} features`);

    check('PNG export downloads an image of the map');
    const png = await download(page, '#export-png');
    expect(PNG_MAGIC.every((b, i) => png.bytes[i] === b), `the download does not start with the PNG signature: ${[...png.bytes.subarray(0, 8)].map((b) => b.toString(16)).join(' ')}`);
    const pngWidth = png.bytes.readUInt32BE(16), pngHeight = png.bytes.readUInt32BE(20);
    expect(png.bytes.length > 20_000 && pngWidth >= 400 && pngHeight >= 300, `the PNG is ${png.bytes.length} bytes, ${pngWidth}×${pngHeight}`);
    pass(`${png.name}: ${pngWidth}×${pngHeight}, ${Math.round(png.bytes.length / 1024)} KB`);

    check('打印 prints an A4 layout with the map as a still');
    // The whole street on the print, as a leader would print it.
    await page.locator('#map-reset').click();
    await page.waitForFunction(() => document.querySelector('#top-grids tr.selected') === null);
    await settle(page);
    await page.evaluate(() => { window.__printed = 0; window.print = () => { window.__printed += 1; }; });
    await page.locator('#export-print').click();
    await page.waitForFunction(() => window.__printed === 1);
    expect((await page.locator('#map-snapshot').getAttribute('src'))?.startsWith('data:image/png'), 'the map still was not made before printing');
    await page.setViewportSize(A4);
    await page.emulateMedia({ media: 'print' });
    const printed = await page.evaluate(() => {
      const box = (sel) => document.querySelector(sel).getBoundingClientRect();
      const shown = (sel) => { const n = document.querySelector(sel); return n.offsetParent !== null && box(sel).height > 0; };
      return {
        controls: shown('#controls'), map: shown('#dash-map'), snapshot: shown('#map-snapshot'), kpis: shown('#kpis'),
        trend: shown('#trend-chart svg'), cats: shown('#cats-chart svg'), table: shown('#top-grids'),
        snapshotWidth: box('#map-snapshot').width, scroll: document.documentElement.scrollWidth,
      };
    });
    expect(!printed.controls, 'the filters are printed');
    expect(!printed.map && printed.snapshot && printed.snapshotWidth > A4.width * 0.8, `the print shows map ${printed.map}, still ${printed.snapshot} (${Math.round(printed.snapshotWidth)} px)`);
    expect(printed.kpis && printed.trend && printed.cats && printed.table, `a part is missing from the print: ${JSON.stringify(printed)}`);
    expect(printed.scroll <= A4.width, `the print is ${printed.scroll}px wide, wider than A4`);
    const printChart = await page.locator('#trend-chart svg').getAttribute('width');
    expect(Number(printChart) <= 400, `the trend is drawn ${printChart}px wide for a half A4 column`);
    await page.screenshot({ path: shot('dashboard-print.png'), fullPage: true });
    await page.evaluate(() => window.dispatchEvent(new Event('afterprint')));
    await page.emulateMedia({ media: 'screen' });
    await page.setViewportSize({ width: 1280, height: 800 });
    pass(`still ${Math.round(printed.snapshotWidth)}px wide on a ${A4.width}px page`);

    check('the 中/EN switch shows the dashboard in English, and the choice is remembered');
    await page.locator('#lang-toggle').click();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    const english = await page.evaluate(() => ({
      title: document.title,
      labels: [...document.querySelectorAll('#kpis .kpi-label, .card-head h3, #presets .seg-btn, #top-grids th, .field > span:first-child')].map((n) => n.textContent),
      allCategories: document.querySelector('#category-select option').textContent,
      firstBar: document.querySelector('#cats-chart .cat-label').textContent,
      legend: document.querySelector('#map-legend').innerText,
      period: document.querySelector('#period-title').innerText,
    }));
    expect(english.title === 'Street dashboard · gridwatch', `English title ${JSON.stringify(english.title)}`);
    const chinese = english.labels.filter((text) => CJK.test(text));
    expect(chinese.length === 0, `labels still in Chinese: ${chinese.join(' | ')}`);
    expect(english.labels.includes('Reports') && english.labels.includes('Last 12 months') && english.labels.includes('Grid'), `English labels: ${english.labels.join(' | ')}`);
    expect(english.allCategories === 'All categories', `the category select reads ${english.allCategories}`);
    const firstName = categories.find((c) => c.code === withReports[0].code).name_en;
    expect(english.firstBar === firstName, `the first category bar reads ${english.firstBar}, not ${firstName}`);
    expect(english.legend.includes(`Hot ${hotspots.hot}`) && english.legend.includes(`Cold ${hotspots.cold}`), `the English legend reads ${JSON.stringify(english.legend)}`);
    expect(!CJK.test(english.period), `the period reads ${english.period}`);
    await top(page);
    await page.screenshot({ path: shot('dashboard-en.png'), fullPage: true });
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    const reloaded = await shownView(page);
    expect(await page.evaluate(() => document.documentElement.lang) === 'en', 'the language was not remembered over a reload');
    expect(reloaded.region === street.code && reloaded.preset === '12m', `after a reload the page shows ${reloaded.region} ${reloaded.preset}`);
    await page.locator('#lang-toggle').click();
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    pass(`"${english.labels.slice(0, 3).join('", "')}"…; first bar "${english.firstBar}"; remembered over a reload`);

    check('近30天 updates the figures to the last 30 days');
    await refreshAfter(page, () => page.locator('#presets [data-preset="30d"]').click());
    const month = await shownView(page);
    expect(month.from === addDays(today, -29) && month.to === today && month.preset === '30d' && month.url.includes('preset=30d'),
      `近30天 shows ${month.from}..${month.to} (${month.url})`);
    const monthJson = await api(`dashboard?${qs({ region: street.code, from: month.from, to: month.to })}`);
    const monthKpis = await shownKpis(page);
    expectKpisMatch(monthKpis, monthJson.totals, `${street.name} in the last 30 days`);
    expect(monthKpis.reports.value < kpis.reports.value, `30 days show ${monthKpis.reports.value} reports, 12 months ${kpis.reports.value}`);
    const monthTrend = await api(`reports/trend?${qs({ region: street.code, from: month.from, to: month.to, interval: 'month' })}`);
    expect(await page.locator('#trend-chart .trend-bar').count() === monthTrend.buckets.length || monthJson.totals.reports === 0,
      'the trend bars do not follow the preset');
    expectTopGridsMatch(await shownTopGrids(page), monthJson);
    await refreshAfter(page, () => page.locator('#presets [data-preset="12m"]').click());
    expectKpisMatch(await shownKpis(page), json.totals, `${street.name} back in the last 12 months`);
    pass(`${month.from}..${month.to}: ${monthJson.totals.reports} reports (12 months: ${json.totals.reports})`);

    check(`a period without reports says 该时段无上报 (${EMPTY_WINDOW.from}..${EMPTY_WINDOW.to})`);
    const emptyJson = await api(`dashboard?${qs({ region: street.code, ...EMPTY_WINDOW })}`);
    expect(emptyJson.totals.reports === 0, `the demo has ${emptyJson.totals.reports} reports in ${EMPTY_WINDOW.from}..${EMPTY_WINDOW.to}; pick another empty window`);
    await refreshAfter(page, () => page.locator('#date-from').fill(EMPTY_WINDOW.from));
    await refreshAfter(page, () => page.locator('#date-to').fill(EMPTY_WINDOW.to));
    const empty = await page.evaluate(() => ({
      url: window.location.search,
      reports: document.querySelector('#kpis [data-kpi=reports] .kpi-value').dataset.value,
      closure: document.querySelector('#kpis [data-kpi=closure] .kpi-value').textContent,
      cats: document.querySelector('#cats-chart [data-field=empty]')?.textContent,
      trend: document.querySelector('#trend-chart [data-field=empty]')?.textContent,
      table: document.querySelector('#top-grids [data-field=empty]')?.textContent,
      banner: !document.querySelector('#error-banner').hidden,
      preset: document.querySelector('#presets [aria-pressed=true]'),
    }));
    expect(empty.url.includes(`from=${EMPTY_WINDOW.from}`) && empty.url.includes(`to=${EMPTY_WINDOW.to}`) && !empty.url.includes('preset='), `the URL reads ${empty.url}`);
    expect(empty.reports === '0' && empty.closure === '—', `the figures read ${empty.reports} reports, closure ${empty.closure}`);
    expect(empty.cats === '该时段无上报' && empty.trend === '该时段无上报' && empty.table === '该时段无上报',
      `empty states: categories ${empty.cats}, trend ${empty.trend}, table ${empty.table}`);
    expect(!empty.banner && empty.preset === null, 'an empty period shows an error banner or a preset');
    await page.screenshot({ path: shot('dashboard-empty.png') });
    pass('figures 0 and —, charts and table say 该时段无上报, no error');

    check('a community from the URL, with dates and a category, preselects everything');
    const community = communities.find((c) => c.code.startsWith(street.code)) ?? communities[0];
    const category = withReports[0].code;
    const linked = { region: community.code, from: '2026-01-01', to: '2026-06-30', category };
    await openReady(page, `${baseUrl}/dashboard.html?${qs(linked)}`);
    const linkedView = await shownView(page);
    expect(linkedView.region === community.code && linkedView.from === linked.from && linkedView.to === linked.to && linkedView.category === category,
      `the page shows ${JSON.stringify(linkedView)} for ${JSON.stringify(linked)}`);
    const communityJson = await api(`dashboard?${qs(linked)}`);
    expect(communityJson.level === 'community', `the API calls ${community.code} a ${communityJson.level}`);
    expectKpisMatch(await shownKpis(page), communityJson.totals, `${community.name}, ${category}`);
    const catBars = await page.locator('#cats-chart .cat-bar').count();
    expect(catBars === communityJson.categories.filter((c) => c.reports > 0).length && catBars <= 1, `${catBars} category bars under a one-category filter`);
    expect((await page.locator('#region-title').innerText()).includes('社区'), 'the heading does not say 社区');
    pass(`${community.name}: ${communityJson.totals.reports} ${category} reports in the first half of 2026`);

    check('failed requests show the server\'s message in the error banner; an unknown region is said so');
    // A page of its own: the failures it is served make Chromium log console errors on purpose.
    const probe = await context.newPage();
    probe.setDefaultTimeout(STEP_TIMEOUT_MS);
    const probeErrors = [];
    probe.on('pageerror', (err) => probeErrors.push(err.message));
    await probe.goto(`${baseUrl}/dashboard.html?region=999999999`);
    await probe.waitForFunction(() => document.body.dataset.state === 'ready');
    const unknown = await probe.evaluate(() => ({
      banner: !document.querySelector('#error-banner').hidden, text: document.querySelector('#error-text').textContent,
      region: document.querySelector('#region-select').value,
    }));
    expect(unknown.banner && unknown.text.includes('999999999') && unknown.region === streets[0].code,
      `an unknown region shows banner ${unknown.banner} "${unknown.text}", region ${unknown.region}`);
    await probe.route((url) => url.pathname === '/api/v1/dashboard' && !url.searchParams.has('format'), (route) => route.fulfill({
      status: 500, contentType: 'application/json', body: JSON.stringify({ error: { code: 'internal', message: 'internal error' } }),
    }));
    await refreshAfter(probe, () => probe.locator('#presets [data-preset="90d"]').click());
    const failed = await probe.evaluate(() => ({
      banner: !document.querySelector('#error-banner').hidden, text: document.querySelector('#error-text').textContent,
      reports: document.querySelector('#kpis [data-kpi=reports] .kpi-value').textContent,
      cats: document.querySelector('#cats-chart [data-field=failed]')?.textContent,
    }));
    expect(failed.banner && failed.text.includes('internal error') && failed.text.includes('dashboard'), `a 500 shows banner ${failed.banner}: "${failed.text}"`);
    expect(failed.reports === '—' && failed.cats, `after a failed load the page still shows ${failed.reports} reports (categories: ${failed.cats})`);
    await probe.screenshot({ path: shot('dashboard-error.png') });
    await probe.unrouteAll();
    await refreshAfter(probe, () => probe.locator('#presets [data-preset="12m"]').click());
    expect(await probe.locator('#error-banner').isHidden(), 'the banner stays after a request that worked');
    expect(probeErrors.length === 0, `page errors: ${probeErrors.join('; ')}`);
    await probe.close();
    pass(`"${unknown.text}"; "${failed.text}"`);

    check('phone-sized viewport: one column, nothing wider than the screen, rows still zoom the map');
    const phone = await browser.newContext({
      viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const mobile = await phone.newPage();
    mobile.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(mobile, 'phone');
    await openReady(mobile, `${baseUrl}/dashboard.html?region=${street.code}&lang=zh`);
    const layout = await mobile.evaluate(() => {
      const box = (sel) => document.querySelector(sel).getBoundingClientRect();
      const kpis = [...document.querySelectorAll('#kpis .kpi')].map((n) => n.getBoundingClientRect());
      return {
        scroll: document.documentElement.scrollWidth,
        kpiColumns: new Set(kpis.map((r) => Math.round(r.left))).size,
        map: box('#map-card'), cats: box('#cats-card'),
        small: [...document.querySelectorAll('#presets .seg-btn, .export-tools .btn, #lang-toggle')].filter((n) => n.getBoundingClientRect().height < 24).length,
      };
    });
    expect(layout.scroll <= PHONE.width, `the page is ${layout.scroll}px wide on a ${PHONE.width}px phone`);
    expect(layout.kpiColumns === 2, `the headline figures sit in ${layout.kpiColumns} columns`);
    expect(layout.cats.top >= layout.map.bottom - 1 && layout.map.width <= PHONE.width, 'the map and the categories do not stack');
    expect(layout.small === 0, `${layout.small} buttons are too small to tap`);
    await top(mobile);
    await mobile.screenshot({ path: shot('dashboard-phone.png'), fullPage: true });
    await settle(mobile);
    const phoneZoom = await mobile.evaluate(() => window.gridwatchDashboard.map.getZoom());
    await mobile.locator('#top-grids tr.grid-row').first().tap();
    await mobile.waitForFunction((z) => {
      const { map } = window.gridwatchDashboard;
      return !map.isMoving() && map.getZoom() > z + 0.5;
    }, phoneZoom);
    await phone.close();
    pass(`${layout.scroll}px wide, headline figures in 2 columns, map ${Math.round(layout.map.height)}px tall; a tapped row zooms from ${phoneZoom.toFixed(1)}`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
