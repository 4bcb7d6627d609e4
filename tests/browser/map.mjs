#!/usr/bin/env node
// Browser checks of the gridwatch map page in a real headless Chromium (Debian's /usr/bin/chromium).
//
// Usage: node tests/browser/map.mjs <base_url> <screenshot_dir>
//   e.g. node tests/browser/map.mjs http://127.0.0.1:8080 target/screenshots
//
// Prints one line per check and stops at the first failure with a non-zero exit code. Any uncaught
// page error, console error, or request to a host other than <base_url> fails the run too: the page
// must work without internet. Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
//
// The heatmap and the choropleth are drawn from the server's vector tiles (/tiles/incidents and
// /tiles/grids); counts are checked against /api/v1/reports/trend, which the page also uses. The hot
// spots are checked against /api/v1/hotspots (the grids drawn hot and cold, by feature-state, are
// the answer's) and the rising list against /api/v1/emerging (the same request, fetched again).
import { createChecks, launchChromium, logIn, parseArgs } from './harness.mjs';

const STEP_TIMEOUT_MS = 20_000;
const URBAN_CORE = { center: [106.84, 39.672], zoom: 14 }; // Haibowan city centre
const PHONE = { width: 390, height: 844 };

const { baseUrl, origin, shot } = await parseArgs('map.mjs');
const { check, pass, fail, expect, watch, done, report, openReady } = createChecks(origin);


/** Every tile response a page got: `{ layer, url, params, status }`, newest last. */
function recordTiles(page) {
  const tiles = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    const match = url.pathname.match(/^\/tiles\/(incidents|grids)\/\d+\/\d+\/\d+\.mvt$/);
    if (match) tiles.push({ layer: match[1], url: response.url(), params: url.searchParams, status: response.status() });
  });
  return tiles;
}

/** Resolves with the first response of a `layer` tile whose query satisfies `test(params)`. */
function tileResponse(page, layer, test) {
  const waiting = page.waitForResponse((response) => {
    const url = new URL(response.url());
    return url.pathname.startsWith(`/tiles/${layer}/`) && test(url.searchParams);
  });
  // Awaited by the check; one left behind by an earlier failure must not crash the report.
  waiting.catch(() => {});
  return waiting;
}

/** The last day of the bucket starting on `start` (YYYY-MM-DD), as the `to` filter takes it. */
function bucketEnd(start, interval) {
  const [y, m, d] = start.split('-').map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  if (interval === 'week') date.setUTCDate(date.getUTCDate() + 6);
  else date.setUTCMonth(date.getUTCMonth() + 1, 0);
  return date.toISOString().slice(0, 10);
}

async function api(page, path) {
  return page.evaluate(async (p) => {
    const response = await fetch(p);
    if (!response.ok) throw new Error(`${p}: ${response.status}`);
    return response.json();
  }, path);
}

/** The reports count the page shows, in the filter panel and on its badge. */
function shownCount(page) {
  return page.evaluate(() => ({
    panel: document.querySelector('#report-count').dataset.count,
    badge: document.querySelector('#filters-toggle-count').dataset.count,
    badgeText: document.querySelector('#filters-toggle-count').textContent,
    label: document.querySelector('#tl-label').textContent,
  }));
}

/** Waits until the map has drawn everything it asked for. */
async function settle(page) {
  await page.evaluate(() => new Promise((resolve) => {
    const { map } = window.gridwatch;
    requestAnimationFrame(() => {
      if (map.loaded()) resolve();
      else map.once('idle', resolve);
    });
  }));
}

/** Drags the timeline's thumb to bucket `index` with the mouse (press at `from`, move, release). */
async function dragSlider(page, from, index) {
  const box = await page.locator('#tl-range').boundingBox();
  const max = Number(await page.locator('#tl-range').getAttribute('max'));
  const thumb = 8; // half of Chromium's range thumb
  const at = (i) => box.x + thumb + ((box.width - 2 * thumb) * i) / Math.max(1, max);
  const y = box.y + box.height / 2;
  await page.mouse.move(at(from), y);
  await page.mouse.down();
  let x = at(from);
  for (let k = 1; k <= 6; k++) {
    x = at(from) + ((at(index) - at(from)) * k) / 6;
    await page.mouse.move(x, y);
  }
  // Like a hand, correct the last few pixels while still holding the thumb.
  const stepPx = (box.width - 2 * thumb) / Math.max(1, max);
  for (let tries = 0; tries < 12; tries++) {
    const value = Number(await page.locator('#tl-range').inputValue());
    if (value === index) break;
    x += Math.sign(index - value) * Math.max(2, stepPx / 3);
    await page.mouse.move(x, y);
  }
  await page.mouse.up();
}

/** Move the camera inside the page and resolve when the map has finished drawing. */
async function jumpAndSettle(page, camera) {
  await page.evaluate(async (cam) => {
    const { map } = window.gridwatch;
    const idle = new Promise((resolve) => map.once('idle', resolve));
    map.jumpTo(cam);
    map.triggerRepaint();
    await idle;
  }, camera);
}

/** Pixels that differ between the canvas with the heatmap shown and hidden. */
async function heatmapPixelDifference(page) {
  return page.evaluate(async () => {
    const { map } = window.gridwatch;
    const settle = () => new Promise((resolve) => { map.once('idle', resolve); map.triggerRepaint(); });
    const capture = () => map.getCanvas().toDataURL('image/png');
    const decode = (url) => new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('cannot decode canvas image'));
      img.src = url;
    });
    await settle();
    const shown = capture();
    map.setLayoutProperty('reports-heat', 'visibility', 'none');
    await settle();
    const hidden = capture();
    map.setLayoutProperty('reports-heat', 'visibility', 'visible');
    await settle();
    const [a, b] = await Promise.all([decode(shown), decode(hidden)]);
    const pixels = (img) => {
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(img, 0, 0);
      return ctx.getImageData(0, 0, img.width, img.height).data;
    };
    const pa = pixels(a), pb = pixels(b);
    let differing = 0;
    for (let i = 0; i < pa.length; i += 4) {
      if (Math.abs(pa[i] - pb[i]) + Math.abs(pa[i + 1] - pb[i + 1]) + Math.abs(pa[i + 2] - pb[i + 2]) > 24) differing++;
    }
    return { differing, total: pa.length / 4 };
  });
}

/** Screen points (page coordinates) each inside a different rendered grid, clear of the panels. */
async function gridClickTargets(page, max) {
  return page.evaluate((max) => {
    const { map } = window.gridwatch;
    const canvas = map.getCanvas().getBoundingClientRect();
    const covered = ['#filters', '#region-panel', '#legend', '#zoom-hint', '.maplibregl-ctrl-bottom-right']
      .map((sel) => document.querySelector(sel))
      .filter((node) => node && !node.hidden && node.offsetParent !== null)
      .map((node) => node.getBoundingClientRect());
    const free = (x, y) => !covered.some((r) => x >= r.left - 8 && x <= r.right + 8 && y >= r.top - 8 && y <= r.bottom + 8);
    const seen = new Set();
    const targets = [];
    for (let y = 40; y < canvas.height - 40; y += 30) {
      for (let x = 40; x < canvas.width - 40; x += 30) {
        const px = canvas.left + x, py = canvas.top + y;
        if (!free(px, py)) continue;
        const hits = map.queryRenderedFeatures([x, y], { layers: ['grid-fill', 'micro-grid-fill'] });
        if (hits.length !== 1 || hits[0].layer.id !== 'grid-fill') continue;
        const code = hits[0].properties.code;
        // Away from the grid's edge (the neighbour must not be hit 6 px away), so the click is unambiguous.
        const ring = [[x - 6, y], [x + 6, y], [x, y - 6], [x, y + 6]];
        if (ring.some((p) => map.queryRenderedFeatures(p, { layers: ['grid-fill'] }).some((f) => f.properties.code !== code))) continue;
        if (seen.has(code)) continue;
        seen.add(code);
        targets.push({ x: px, y: py, code, d: Math.hypot(x - canvas.width / 2, y - canvas.height / 2) });
      }
    }
    // Grids near the centre of the view first: that is where the view was aimed.
    return targets.sort((a, b) => a.d - b.d).slice(0, max);
  }, max);
}

/** (f) The timeline: drag, play a step, weekly steps and back to all time; tiles and counts follow. */
async function timeSliderChecks(page) {
  check('(f) the time slider drives the tiles and the count by month and by week');
  await openReady(page, `${baseUrl}/?lang=zh`);
  await jumpAndSettle(page, URBAN_CORE);
  const months = (await api(page, '/api/v1/reports/trend?interval=month')).buckets;
  expect(months.length >= 6, `the demo's trend has only ${months.length} months`);
  const shown = await page.evaluate(() => ({
    mode: document.querySelector('#timeline').dataset.mode,
    max: Number(document.querySelector('#tl-range').max),
    interval: document.querySelector('#timeline [data-interval][aria-pressed=true]')?.dataset.interval,
  }));
  expect(shown.mode === 'all' && shown.interval === 'month', `the timeline starts in ${shown.mode}/${shown.interval}, not all time by month`);
  expect(shown.max === months.length - 1, `the slider has ${shown.max + 1} steps, the trend ${months.length} months`);

  // Drag from the second month to the fifth.
  const target = 4;
  const bucketTile = (layer, bucket, interval) => tileResponse(page, layer,
    (params) => params.get('from') === bucket.start && params.get('to') === bucketEnd(bucket.start, interval));
  const dragged = bucketTile('incidents', months[target], 'month');
  const draggedGrids = bucketTile('grids', months[target], 'month');
  await dragSlider(page, 1, target);
  const value = Number(await page.locator('#tl-range').inputValue());
  expect(value === target, `dragging to month ${target} left the slider on ${value}`);
  expect((await dragged).status() === 200 && (await draggedGrids).status() === 200, 'the bucket\'s tiles failed');
  await page.waitForFunction((n) => document.querySelector('#report-count').dataset.count === String(n), months[target].reports);
  const afterDrag = await shownCount(page);
  expect(afterDrag.badge === String(months[target].reports), `badge shows ${afterDrag.badge}, the trend's ${months[target].start} has ${months[target].reports}`);
  const monthNumber = Number(months[target].start.slice(5, 7));
  expect(afterDrag.label.includes(`${monthNumber}月`), `the period label reads ${JSON.stringify(afterDrag.label)} for ${months[target].start}`);
  const tileSources = await page.evaluate(() => ['incidents', 'grids'].map((id) => window.gridwatch.map.getSource(id).tiles[0]));
  for (const url of tileSources) {
    const params = new URL(url.replace('{z}/{x}/{y}', '0/0/0')).searchParams;
    expect(params.get('from') === months[target].start && params.get('to') === bucketEnd(months[target].start, 'month'),
      `a tile source still reads ${url}`);
  }
  await settle(page);
  await page.screenshot({ path: shot('map-timeslider.png') });

  // Play: the next month comes on its own; pause stops it.
  const next = bucketTile('incidents', months[target + 1], 'month');
  await page.locator('#tl-play').click();
  expect((await next).status() === 200, 'the played step\'s tile failed');
  await page.waitForFunction((n) => document.querySelector('#report-count').dataset.count === String(n), months[target + 1].reports);
  await page.locator('#tl-play').click();
  const paused = await page.evaluate(() => ({
    playing: document.querySelector('#tl-play').getAttribute('aria-pressed'),
    value: Number(document.querySelector('#tl-range').value),
  }));
  expect(paused.playing === 'false', 'the play button did not pause');
  await page.waitForTimeout(2500);
  const stayed = Number(await page.locator('#tl-range').inputValue());
  expect(stayed === paused.value, `the slider moved on from ${paused.value} to ${stayed} after pausing`);

  // Weekly: the week holding the month's first day, then one step on.
  const weeks = (await api(page, '/api/v1/reports/trend?interval=week')).buckets;
  await page.locator('#timeline [data-interval=week]').click();
  await page.waitForFunction((n) => Number(document.querySelector('#tl-range').max) === n - 1, weeks.length);
  const weekIndex = Number(await page.locator('#tl-range').inputValue());
  const monthStart = months[paused.value].start;
  expect(weeks[weekIndex].start <= monthStart && monthStart <= bucketEnd(weeks[weekIndex].start, 'week'),
    `switching to weeks from ${monthStart} lands on the week of ${weeks[weekIndex].start}`);
  const stepped = bucketTile('incidents', weeks[weekIndex + 1], 'week');
  await page.locator('#tl-next').click();
  expect((await stepped).status() === 200, 'the weekly step\'s tile failed');
  const monday = new Date(`${weeks[weekIndex + 1].start}T00:00:00Z`).getUTCDay();
  expect(monday === 1, `week ${weeks[weekIndex + 1].start} does not start on a Monday`);
  await page.waitForFunction((n) => document.querySelector('#report-count').dataset.count === String(n), weeks[weekIndex + 1].reports);
  const weekly = await shownCount(page);

  // All time: no from/to, the whole count.
  const total = months.reduce((sum, b) => sum + b.reports, 0);
  const allTile = tileResponse(page, 'incidents', (params) => !params.has('from') && !params.has('to'));
  await page.locator('#tl-all').click();
  await allTile;
  await page.waitForFunction((n) => document.querySelector('#report-count').dataset.count === String(n), total);
  const mode = await page.evaluate(() => document.querySelector('#timeline').dataset.mode);
  expect(mode === 'all', `the timeline is in ${mode} mode after "all time"`);
  await page.locator('#timeline [data-interval=month]').click();
  await page.waitForFunction((n) => Number(document.querySelector('#tl-range').max) === n - 1, months.length);
  pass(`${months[target].start}: ${afterDrag.badge} reports ("${afterDrag.label}"); played on to ${months[target + 1].start}, paused; ` +
    `week ${weeks[weekIndex + 1].start}: ${weekly.badge}; all time: ${total}`);
}

/** Expected class colour of a value under the legend's classes (`null` value: no data). */
function classColour(legend, value) {
  if (value === null || value === undefined) return legend.noData;
  for (const item of legend.items) {
    if ((item.min === null || value >= item.min) && (item.max === null || value < item.max)) return item.colour;
  }
  return 'none';
}

/** The choropleth as drawn: its paint, the legend's classes and every rendered grid's colour. */
function readChoropleth(page, measure) {
  return page.evaluate((measure) => {
    const { map } = window.gridwatch;
    const hex = (c) => '#' + [c.r, c.g, c.b].map((v) => Math.round((v / (c.a || 1)) * 255).toString(16).padStart(2, '0')).join('');
    const items = [...document.querySelectorAll('#choropleth-legend .class-item:not(.no-data)')].map((li) => ({
      colour: li.dataset.colour.toLowerCase(),
      min: li.dataset.min === '' ? null : Number(li.dataset.min),
      max: li.dataset.max === '' ? null : Number(li.dataset.max),
    }));
    const noData = document.querySelector('#choropleth-legend .class-item.no-data')?.dataset.colour.toLowerCase();
    const features = map.queryRenderedFeatures({ layers: ['grid-choropleth'] });
    return {
      paint: JSON.stringify(map.getPaintProperty('grid-choropleth', 'fill-color')),
      opacity: JSON.stringify(map.getPaintProperty('grid-choropleth', 'fill-opacity')),
      heatVisible: map.getLayoutProperty('reports-heat', 'visibility'),
      legend: { items, noData, text: document.querySelector('#choropleth-legend').innerText },
      features: features.map((f) => ({ code: f.properties.code, value: f.properties[measure] ?? null, colour: hex(f.layer.paint['fill-color']) })),
    };
  }, measure);
}

function expectColoursFollowLegend(result, measure) {
  const wrong = result.features.filter((f) => f.colour !== classColour(result.legend, f.value));
  expect(wrong.length === 0, `${wrong.length} grids coloured against the legend for ${measure}, e.g. ` +
    JSON.stringify(wrong.slice(0, 2).map((f) => ({ ...f, expected: classColour(result.legend, f.value) }))));
}

/** (g) Each choropleth measure changes the legend and the grids' fill colours. */
async function choroplethChecks(page) {
  check('(g) the choropleth switch colours the grids by each measure, with its legend');
  await jumpAndSettle(page, URBAN_CORE);
  const options = await page.locator('#choropleth-measure option').evaluateAll((nodes) => nodes.map((n) => n.value));
  const measures = ['reports', 'density_km2', 'closure_rate', 'overdue', 'satisfaction_rate'];
  expect(['off', ...measures].every((m) => options.includes(m)), `the switch offers ${options.join(', ')}`);
  const legends = new Map();
  const details = [];
  for (const measure of measures) {
    await page.locator('#choropleth-measure').selectOption(measure);
    await page.waitForFunction((m) => document.querySelector('#legend').dataset.measure === m, measure);
    await settle(page);
    const result = await readChoropleth(page, measure);
    expect(result.paint.includes(`["get","${measure}"]`), `fill-color does not read ${measure}: ${result.paint}`);
    expect(result.opacity !== '0', `the choropleth is transparent with ${measure} chosen`);
    expect(result.legend.items.length >= 3 && result.legend.noData, `the legend for ${measure} has ${result.legend.items.length} classes`);
    expect(result.features.length > 50, `only ${result.features.length} grids drawn in the choropleth`);
    expectColoursFollowLegend(result, measure);
    const used = new Set(result.features.map((f) => f.colour));
    // Over a whole year nearly every case is closed and few are overdue: one colour can be right there.
    expect(['overdue', 'closure_rate'].includes(measure) || used.size >= 2, `all grids share one colour for ${measure}`);
    const same = [...legends.entries()].find(([, text]) => text === result.legend.text);
    expect(!same, `the legend for ${measure} reads as ${same?.[0]}'s: ${result.legend.text}`);
    legends.set(measure, result.legend.text);
    expect(result.heatVisible === 'none', 'the heatmap stays on over the choropleth');
    details.push(`${measure} ${used.size} colours`);
    if (measure === 'density_km2') await page.screenshot({ path: shot('map-choropleth.png') });
  }

  // A rate with nothing to rate is "no data", not the lowest class: the last month, barely begun,
  // leaves most grids without a rated case. The classes follow the slider too.
  const before = legends.get('satisfaction_rate');
  await page.locator('#choropleth-measure').selectOption('reports');
  await page.waitForFunction(() => document.querySelector('#legend').dataset.measure === 'reports');
  const allTimeReports = (await readChoropleth(page, 'reports')).legend.items.map((item) => item.max);
  await page.locator('#tl-range').focus();
  await page.keyboard.press('End');
  await page.waitForFunction(() => document.querySelector('#timeline').dataset.mode === 'bucket');
  await settle(page);
  const lastMonthReports = await readChoropleth(page, 'reports');
  expectColoursFollowLegend(lastMonthReports, 'reports in the last month');
  expect(JSON.stringify(lastMonthReports.legend.items.map((item) => item.max)) !== JSON.stringify(allTimeReports),
    `the report classes stay ${JSON.stringify(allTimeReports)} for a single month`);
  await page.locator('#choropleth-measure').selectOption('satisfaction_rate');
  await page.waitForFunction(() => document.querySelector('#legend').dataset.measure === 'satisfaction_rate');
  await settle(page);
  const recent = await readChoropleth(page, 'satisfaction_rate');
  expectColoursFollowLegend(recent, 'satisfaction_rate in the last month');
  const noData = recent.features.filter((f) => f.value === null);
  expect(noData.length > 0 && noData.every((f) => f.colour === recent.legend.noData),
    `${noData.length} grids without a satisfaction rate in the last month, drawn ${[...new Set(noData.map((f) => f.colour))].join(', ')}`);
  expect(recent.legend.noData !== recent.legend.items[0].colour, 'no data is drawn as the lowest class');
  expect(recent.legend.text !== before, 'the legend does not name the period shown');
  await page.locator('#tl-all').click();
  await page.locator('#choropleth-measure').selectOption('off');
  await settle(page);
  const off = await page.evaluate(() => ({
    opacity: window.gridwatch.map.getPaintProperty('grid-choropleth', 'fill-opacity'),
    legendHidden: document.querySelector('#choropleth-legend').hidden,
    heat: window.gridwatch.map.getLayoutProperty('reports-heat', 'visibility'),
  }));
  expect(off.opacity === 0 && off.legendHidden && off.heat === 'visible', `"off" leaves ${JSON.stringify(off)}`);
  pass(`${details.join(', ')}, all as the legend says; last month: ${noData.length} of ${recent.features.length} grids "no data", ` +
    `report classes ${JSON.stringify(allTimeReports.slice(0, 4))} → ${JSON.stringify(lastMonthReports.legend.items.map((i) => i.max).slice(0, 4))}; off hides it`);
}

/** (h) A clicked grid shows its trend: one bar per bucket, the total of the API's trend. */
async function gridTrendChecks(page) {
  check('(h) a clicked grid shows its trend chart and its figures');
  await jumpAndSettle(page, URBAN_CORE);
  const [target] = await gridClickTargets(page, 1);
  expect(target, 'found no grid to click');
  await page.mouse.click(target.x, target.y);
  await page.locator('#trend-section [data-field=trend-chart]').waitFor({ state: 'attached' });
  await page.locator('#figures-section [data-field=figures]').waitFor({ state: 'attached' });
  const trend = await api(page, `/api/v1/reports/trend?interval=month&region=${target.code}`);
  const sum = trend.buckets.reduce((s, b) => s + b.reports, 0);
  const closed = trend.buckets.reduce((s, b) => s + b.closed, 0);
  const shown = await page.evaluate((code) => {
    const bars = [...document.querySelectorAll('#trend-section .trend-bar')].map((g) => ({
      start: g.dataset.start, reports: Number(g.dataset.reports), closed: Number(g.dataset.closed),
      height: Number(g.querySelector('rect.reports').getAttribute('height')),
    }));
    const total = document.querySelector('#trend-section [data-field=trend-total]');
    const figure = (key) => document.querySelector(`#figures-section dd[data-measure=${key}]`)?.dataset.value;
    const feature = window.gridwatch.map.querySourceFeatures('grids', { sourceLayer: 'grids', filter: ['==', ['get', 'code'], code] })[0];
    return {
      code: document.querySelector('#region-content [data-field=code]')?.textContent.trim(),
      bars,
      total: Number(total.dataset.total),
      closed: Number(total.dataset.closed),
      figures: { reports: figure('reports'), closure_rate: figure('closure_rate'), satisfaction_rate: figure('satisfaction_rate') },
      tile: feature?.properties ?? null,
    };
  }, target.code);
  expect(shown.code === target.code, `clicked ${target.code}, the panel shows ${shown.code}`);
  expect(shown.bars.length === trend.buckets.length, `${shown.bars.length} bars for ${trend.buckets.length} buckets`);
  expect(shown.bars.every((bar, i) => bar.start === trend.buckets[i].start && bar.reports === trend.buckets[i].reports && bar.closed === trend.buckets[i].closed),
    'the bars do not follow the trend buckets');
  const tallest = shown.bars.reduce((a, b) => (b.reports > a.reports ? b : a));
  expect(tallest.height > 0 && shown.bars.every((bar) => bar.height <= tallest.height + 1e-6), 'the bar heights do not follow the counts');
  expect(shown.total === sum && shown.closed === closed, `the chart's total is ${shown.total}/${shown.closed}, the trend's ${sum}/${closed}`);
  expect(shown.tile && shown.figures.reports === String(shown.tile.reports)
    && (shown.figures.closure_rate || undefined) === (shown.tile.closure_rate === undefined ? undefined : String(shown.tile.closure_rate)),
  `figures ${JSON.stringify(shown.figures)} are not the tile's ${JSON.stringify(shown.tile)}`);
  expect(Number(shown.figures.reports) === sum, `the tile says ${shown.figures.reports} reports for ${target.code}, its trend ${sum}`);
  // The chart follows the slider's interval.
  const weeks = await api(page, `/api/v1/reports/trend?interval=week&region=${target.code}`);
  await page.locator('#timeline [data-interval=week]').click();
  await page.waitForFunction((n) => document.querySelectorAll('#trend-section .trend-bar').length === n, weeks.buckets.length);
  await page.locator('#timeline [data-interval=month]').click();
  await page.waitForFunction((n) => document.querySelectorAll('#trend-section .trend-bar').length === n, trend.buckets.length);
  // A click on a bar shows its month on the map.
  const month = shown.bars.filter((bar) => bar.reports > 0).at(-2) ?? shown.bars[0];
  const barTile = tileResponse(page, 'incidents', (params) => params.get('from') === month.start);
  await page.locator(`#trend-section .trend-bar[data-start="${month.start}"] rect.hit`).click({ force: true });
  await barTile;
  await page.waitForFunction((start) => document.querySelector(`#trend-section .trend-bar[data-start="${start}"]`)?.classList.contains('current'), month.start);
  await page.waitForFunction((n) => document.querySelector('#figures-section dd[data-measure=reports]')?.dataset.value === String(n), month.reports);
  await settle(page);
  await page.locator('#trend-section').scrollIntoViewIfNeeded();
  await page.screenshot({ path: shot('map-grid-trend.png') });
  pass(`${target.code}: ${shown.bars.length} monthly bars, ${shown.total} reports (${shown.closed} closed) = the trend's = the tile's; ` +
    `weekly ${weeks.buckets.length} bars; bar ${month.start} → map and figures show its ${month.reports}`);
}

/** (i) The new controls in English. */
async function englishAnalyticsChecks(page) {
  check('(i) the timeline, choropleth and trend speak English');
  await page.locator('#lang-toggle').click();
  await page.waitForFunction(() => document.documentElement.lang === 'en');
  await page.locator('#choropleth-measure').selectOption('satisfaction_rate');
  await page.waitForFunction(() => document.querySelector('#legend').dataset.measure === 'satisfaction_rate');
  const texts = await page.evaluate(() => ({
    intervals: [...document.querySelectorAll('#timeline [data-interval]')].map((b) => b.textContent.trim()),
    buttons: ['#tl-prev', '#tl-play', '#tl-next', '#tl-range'].map((sel) => document.querySelector(sel).getAttribute('aria-label')),
    all: document.querySelector('#tl-all').textContent.trim(),
    label: document.querySelector('#tl-label').textContent.trim(),
    options: [...document.querySelectorAll('#choropleth-measure option')].map((o) => o.textContent.trim()),
    chLabel: document.querySelector('[data-i18n=choropleth]').textContent.trim(),
    legend: document.querySelector('#choropleth-legend').innerText.trim(),
    panel: [...document.querySelectorAll('#figures-section h3, #figures-section .figures-period, #figures-section dt, #figures-section dd, #trend-section h3, #trend-section .trend-total, #trend-section .trend-key')]
      .map((n) => n.textContent.trim()),
    chart: [...document.querySelectorAll('#trend-section svg title, #trend-section svg text')].map((n) => n.textContent),
  }));
  const cjk = /[\u3400-\u9fff]/;
  const all = [...texts.intervals, ...texts.buttons, texts.all, texts.label, ...texts.options, texts.chLabel, texts.legend, ...texts.panel, ...texts.chart];
  // The chart's title names the region, whose name stays Chinese in both languages.
  const chinese = all.filter((text) => !text || (cjk.test(text) && !text.startsWith('Report trend of')));
  expect(chinese.length === 0, `not in English: ${JSON.stringify(chinese)}`);
  expect(texts.intervals.join('/') === 'Weekly/Monthly' && texts.options.includes('Closure rate'), `unexpected labels ${JSON.stringify(texts)}`);
  expect(texts.panel.length >= 10, `the panel shows only ${texts.panel.length} analytics texts`);
  await page.screenshot({ path: shot('map-english-analytics.png') });
  await page.locator('#choropleth-measure').selectOption('off');
  await page.locator('#lang-toggle').click();
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  pass(`${texts.intervals.join('/')}, ${texts.buttons.join(', ')}, "${texts.all}", "${texts.label}", "${texts.options.join('/')}"`);
}

/** The grids drawn as hot and cold spots: rendered features of the hot spot fill, by their
 * feature-state and the colour MapLibre evaluated for them. */
function readHotspots(page) {
  return page.evaluate(() => {
    const { map } = window.gridwatch;
    const hex = (c) => '#' + [c.r, c.g, c.b].map((v) => Math.round((v / (c.a || 1)) * 255).toString(16).padStart(2, '0')).join('');
    const features = map.queryRenderedFeatures({ layers: ['grid-hotspot-fill'] });
    const drawn = { hot: new Set(), cold: new Set(), plain: new Set() };
    const colours = { hot: new Set(), cold: new Set() };
    for (const f of features) {
      const spot = f.state?.spot;
      const opacity = f.layer.paint['fill-opacity'];
      if ((spot === 'hot' || spot === 'cold') && opacity > 0) {
        drawn[spot].add(f.properties.code);
        colours[spot].add(hex(f.layer.paint['fill-color']));
      } else {
        drawn.plain.add(f.properties.code);
      }
    }
    const legend = document.querySelector('#hotspot-legend');
    const counts = legend.querySelector('[data-field=hotspot-counts]');
    return {
      hot: [...drawn.hot].sort(),
      cold: [...drawn.cold].sort(),
      plain: drawn.plain.size,
      colours: { hot: [...colours.hot], cold: [...colours.cold] },
      visibility: ['grid-hotspot-fill', 'grid-hotspot-line'].map((id) => map.getLayoutProperty(id, 'visibility')),
      heat: map.getLayoutProperty('reports-heat', 'visibility'),
      legend: {
        hidden: legend.hidden,
        text: legend.innerText.trim(),
        hot: counts?.dataset.hot ?? null,
        cold: counts?.dataset.cold ?? null,
        none: !!legend.querySelector('[data-field=hotspot-none]'),
        state: document.querySelector('#legend').dataset.hotspots,
      },
    };
  });
}

/** Waits for the next hot spots answer the page receives whose query satisfies `test(params)`. */
function hotspotResponse(page, test = () => true) {
  const waiting = page.waitForResponse((response) => {
    const url = new URL(response.url());
    return url.pathname === '/api/v1/hotspots' && test(url.searchParams);
  });
  waiting.catch(() => {});
  return waiting;
}

/** Fetches `path` from the page, timing it. */
async function timedApi(page, path) {
  return page.evaluate(async (p) => {
    const started = performance.now();
    const response = await fetch(p);
    const body = await response.json();
    if (!response.ok) throw new Error(`${p}: ${response.status} ${JSON.stringify(body)}`);
    return { body, ms: Math.round(performance.now() - started) };
  }, path);
}

/** Fits the whole city (the "全市" button) and waits for the map to settle. */
async function showCity(page) {
  await page.evaluate(() => new Promise((resolve) => {
    const { map } = window.gridwatch;
    map.once('moveend', () => map.once('idle', resolve));
    document.querySelector('#reset-view').click();
  }));
  await settle(page);
}

/** (j) Hot and cold spots: the switch, the grids drawn, the legend, the filter, removal. */
async function hotspotChecks(page) {
  check('(j) hot spots: the grids drawn hot and cold are the API\'s, the legend counts them, filters refresh them');
  await openReady(page, `${baseUrl}/?lang=zh`);
  await showCity(page);
  const categories = await api(page, '/api/v1/categories');

  // All categories, all time.
  const first = hotspotResponse(page);
  await page.locator('#hotspot-toggle').check();
  const firstResponse = await first;
  expect(firstResponse.ok(), `the hot spots request failed with ${firstResponse.status()}`);
  const firstUrl = new URL(firstResponse.url());
  expect(firstUrl.searchParams.get('permutations') === '9999' && firstUrl.searchParams.get('alpha') === '0.05',
    `the page asks ${firstUrl.search}, not 9999 permutations at α = 0.05`);
  expect(!firstUrl.searchParams.has('category') && !firstUrl.searchParams.has('from'), `all categories of all time are asked with ${firstUrl.search}`);
  const city = await timedApi(page, `${firstUrl.pathname}${firstUrl.search}`);
  await page.waitForFunction(() => document.querySelector('#legend').dataset.hotspots === 'ready');
  await settle(page);
  let shown = await readHotspots(page);
  expect(shown.visibility.every((v) => v === 'visible'), `hot spot layers are ${shown.visibility.join('/')} with the switch on`);
  expect(shown.heat === 'none', 'the heatmap stays on over the hot spots');
  expect(shown.legend.hot === String(city.body.hot) && shown.legend.cold === String(city.body.cold),
    `the legend says ${shown.legend.hot} hot / ${shown.legend.cold} cold, the API ${city.body.hot} / ${city.body.cold}`);
  expect(shown.hot.length === city.body.hot && shown.cold.length === city.body.cold,
    `${shown.hot.length} grids drawn hot and ${shown.cold.length} cold, the API has ${city.body.hot} and ${city.body.cold}`);
  expect(shown.legend.none === (city.body.hot + city.body.cold === 0),
    `the "none significant" note is ${shown.legend.none ? 'shown' : 'missing'} with ${city.body.hot} hot and ${city.body.cold} cold`);
  const cityLegend = shown.legend.text;

  // The category with the most hot spots (the API is asked for each, which also times it).
  let chosen = null;
  const timings = [city.ms];
  for (const category of categories) {
    const answer = await timedApi(page, `/api/v1/hotspots?category=${category.code}&permutations=9999&alpha=0.05`);
    timings.push(answer.ms);
    if (answer.body.hot > (chosen?.answer.hot ?? 0)) chosen = { category, answer: answer.body };
  }
  expect(chosen, 'no category has a significant hot spot in the demo data');
  const code = chosen.category.code;
  const filtered = hotspotResponse(page, (params) => params.get('category') === code);
  await page.locator('#categories-none').click();
  await page.locator(`#category-list input[value="${code}"]`).check();
  expect((await filtered).ok(), 'the filtered hot spots request failed');
  await page.waitForFunction((n) => document.querySelector('#hotspot-legend [data-field=hotspot-counts]')?.dataset.hot === String(n)
    && document.querySelector('#legend').dataset.hotspots === 'ready', chosen.answer.hot);
  await settle(page);
  shown = await readHotspots(page);
  const apiHot = chosen.answer.grids.filter((g) => g.class === 'hot').map((g) => g.code).sort();
  const apiCold = chosen.answer.grids.filter((g) => g.class === 'cold').map((g) => g.code).sort();
  expect(apiHot.length === chosen.answer.hot && apiCold.length === chosen.answer.cold, 'the API\'s hot/cold counts do not match its grids');
  expect(JSON.stringify(shown.hot) === JSON.stringify(apiHot),
    `drawn hot ${JSON.stringify(shown.hot)}, the API's hot ${JSON.stringify(apiHot)}`);
  expect(JSON.stringify(shown.cold) === JSON.stringify(apiCold), `${shown.cold.length} grids drawn cold, the API has ${apiCold.length}`);
  expect(shown.colours.hot.length === 1 && shown.colours.hot[0] !== shown.colours.cold[0], `hot grids drawn in ${shown.colours.hot}, cold in ${shown.colours.cold}`);
  expect(shown.legend.text.includes(`热点 ${chosen.answer.hot}`) && shown.legend.text.includes(`冷点 ${chosen.answer.cold}`)
    && shown.legend.text.includes('FDR α=0.05') && shown.legend.text.includes('9999 次置换'),
  `the legend reads ${JSON.stringify(shown.legend.text)}`);
  expect(!shown.legend.none, 'the "none significant" note shows with hot spots drawn');
  expect(shown.legend.text !== cityLegend, 'the legend did not change with the category filter');

  // The timeline: a month's spots replace all time's.
  const months = (await api(page, `/api/v1/reports/trend?interval=month&category=${code}`)).buckets;
  const busiest = months.reduce((a, b) => (b.reports > a.reports ? b : a));
  const monthly = hotspotResponse(page, (params) => params.get('from') === busiest.start && params.get('to') === bucketEnd(busiest.start, 'month'));
  // One move of the slider (each step would make the server build that period's tiles).
  await page.locator('#tl-range').fill(String(months.indexOf(busiest)));
  const monthResponse = await monthly;
  const monthAnswer = await monthResponse.json();
  await page.waitForFunction((n) => document.querySelector('#hotspot-legend [data-field=hotspot-counts]')?.dataset.hot === String(n[0])
    && document.querySelector('#hotspot-legend [data-field=hotspot-counts]')?.dataset.cold === String(n[1])
    && document.querySelector('#legend').dataset.hotspots === 'ready', [monthAnswer.hot, monthAnswer.cold]);
  await settle(page);
  const month = await readHotspots(page);
  expect(month.hot.length === monthAnswer.hot && month.cold.length === monthAnswer.cold,
    `in ${busiest.start} ${month.hot.length}/${month.cold.length} grids drawn hot/cold, the API has ${monthAnswer.hot}/${monthAnswer.cold}`);
  const monthLabel = `${Number(busiest.start.slice(5, 7))}月`;
  expect(month.legend.text.includes(monthLabel), `the legend does not name ${busiest.start}: ${JSON.stringify(month.legend.text)}`);
  const allTime = hotspotResponse(page, (params) => params.get('category') === code && !params.has('from'));
  await page.locator('#tl-all').click();
  await allTime;
  await page.waitForFunction((n) => document.querySelector('#hotspot-legend [data-field=hotspot-counts]')?.dataset.hot === String(n)
    && document.querySelector('#legend').dataset.hotspots === 'ready', chosen.answer.hot);

  // A close look where the hot grids crowd most, for the screenshot.
  const crowd = await page.evaluate(() => {
    const { map } = window.gridwatch;
    const centres = new Map();
    for (const f of map.queryRenderedFeatures({ layers: ['grid-hotspot-fill'] })) {
      if (f.state?.spot !== 'hot' || centres.has(f.properties.code)) continue;
      const ring = f.geometry.type === 'Polygon' ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
      centres.set(f.properties.code, [ring.reduce((s, p) => s + p[0], 0) / ring.length, ring.reduce((s, p) => s + p[1], 0) / ring.length]);
    }
    const list = [...centres.values()];
    const near = (c) => list.filter((o) => Math.hypot(o[0] - c[0], o[1] - c[1]) < 0.02);
    const best = list.reduce((a, b) => (near(b).length > near(a).length ? b : a));
    const group = near(best);
    return { centre: [group.reduce((s, c) => s + c[0], 0) / group.length, group.reduce((s, c) => s + c[1], 0) / group.length], n: group.length };
  });
  await jumpAndSettle(page, { center: crowd.centre, zoom: 13 });
  const close = await readHotspots(page);
  expect(close.hot.length >= crowd.n, `${close.hot.length} grids drawn hot close up, ${crowd.n} expected in view`);
  await page.waitForTimeout(200);
  await page.screenshot({ path: shot('map-hotspots.png') });

  // Off: the layers go, the states are cleared and the heat comes back.
  await page.locator('#hotspot-toggle').uncheck();
  await settle(page);
  const off = await readHotspots(page);
  expect(off.visibility.every((v) => v === 'none') && off.legend.hidden && off.legend.state === 'off',
    `switched off, the layers are ${off.visibility.join('/')} and the legend ${off.legend.hidden ? 'hidden' : 'shown'}`);
  expect(off.hot.length === 0 && off.cold.length === 0, `${off.hot.length} grids still marked hot after switching off`);
  expect(off.heat === 'visible', 'the heatmap did not come back with the hot spots off');
  await page.locator('#categories-all').click();
  await page.waitForFunction(() => document.querySelectorAll('#category-list input:checked').length === document.querySelectorAll('#category-list input').length);
  pass(`all: ${city.body.hot} hot / ${city.body.cold} cold (${city.body.hot + city.body.cold ? 'drawn' : 'note shown'}); ` +
    `${code}: ${shown.hot.length} hot and ${shown.cold.length} cold grids drawn = the API's; ${busiest.start}: ${month.hot.length}/${month.cold.length}; ` +
    `hotspots request ${timings.join(', ')} ms; off clears them`);
}

/** The rising list as shown, and what the API says for the same request. */
async function readRising(page) {
  const shown = await page.evaluate(() => ({
    request: document.querySelector('#rising-body').dataset.request,
    rows: [...document.querySelectorAll('#rising-body .rising-row')].map((b) => ({
      code: b.dataset.code, category: b.dataset.category,
      current: Number(b.dataset.current), previous: Number(b.dataset.previous), last_year: Number(b.dataset.lastYear),
      grid: b.querySelector('.rise-grid').textContent.trim(), categoryName: b.querySelector('.rise-cat').textContent.trim(),
    })),
    count: document.querySelector('#rising-summary [data-field=rising-count]')?.dataset.rising,
    window: document.querySelector('#rising-window').textContent.trim(),
    from: document.querySelector('#rising-window').dataset.from,
    none: !!document.querySelector('#rising-body [data-field=rising-none]'),
    summary: document.querySelector('#rising-summary').textContent.trim(),
  }));
  const answer = await api(page, `/${shown.request}`);
  return { shown, answer, rising: answer.rows.filter((row) => row.rising) };
}

function expectRisingMatches({ shown, answer, rising }, categories, what) {
  expect(shown.rows.length === rising.length, `${what}: ${shown.rows.length} rows listed, the API has ${rising.length} rising`);
  expect(shown.count === String(answer.rising), `${what}: the summary says ${shown.count}, the API ${answer.rising}`);
  expect(shown.from === answer.current.from, `${what}: the panel shows the window from ${shown.from}, the API ${answer.current.from}`);
  expect(shown.none === (rising.length === 0), `${what}: the "nothing rising" note is ${shown.none ? 'shown' : 'missing'}`);
  shown.rows.forEach((row, i) => {
    const want = rising[i];
    const name = categories.find((c) => c.code === want.category)?.name_zh;
    expect(row.code === want.grid.code && row.category === want.category && row.current === want.current
      && row.previous === want.previous && row.last_year === want.last_year && row.grid === want.grid.name && row.categoryName === name,
    `${what}: row ${i} shows ${JSON.stringify(row)}, the API ${JSON.stringify(want)}`);
  });
}

/** (k) The rising list: the API's rising rows, its period switch, the timeline, a click on a row. */
async function risingChecks(page) {
  check('(k) the rising list lists the API\'s rising rows, follows the timeline and flies to a grid');
  await openReady(page, `${baseUrl}/?lang=zh`);
  await showCity(page);
  const categories = await api(page, '/api/v1/categories');
  const opened = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/emerging');
  await page.locator('#rising-toggle').click();
  await opened;
  await page.waitForFunction(() => document.querySelector('#rising-body').dataset.request);
  expect(await page.locator('#rising-panel').isVisible() && !(await page.locator('#filters').isVisible()),
    'the rising list does not take the filters\' place');
  let read = await readRising(page);
  const params = new URL(read.shown.request, baseUrl).searchParams;
  expect(params.get('period') === 'month', `the list opens by ${params.get('period')}, the timeline is by month`);
  // All time on the timeline: today's period, or, when nothing at all is reported in it yet, an
  // earlier one with a note saying so.
  const fallback = await page.locator('#rising-body .rising-fallback').count();
  expect(params.has('at') === (fallback > 0), `asked ${read.shown.request} with${fallback ? '' : 'out'} the fallback note`);
  expectRisingMatches(read, categories, 'today, by month');
  const today = read;

  await page.locator('#rising-panel [data-period=week]').click();
  await page.waitForFunction(() => document.querySelector('#rising-body').dataset.request.includes('period=week'));
  read = await readRising(page);
  expectRisingMatches(read, categories, 'today, by week');
  await page.locator('#rising-panel [data-period=month]').click();
  await page.waitForFunction(() => document.querySelector('#rising-body').dataset.request.includes('period=month'));

  // The timeline's month: its last day is the day asked.
  const months = (await api(page, '/api/v1/reports/trend?interval=month')).buckets;
  const monthsWithRising = [];
  for (const bucket of months.slice(-4)) {
    const end = bucketEnd(bucket.start, 'month');
    const answer = await api(page, `/api/v1/emerging?period=month&at=${end}`);
    if (answer.rising > 0 && end < '2026-12-01') monthsWithRising.push({ bucket, end, answer });
  }
  expect(monthsWithRising.length > 0, 'no recent month has rising grids in the demo data');
  const { bucket, end } = monthsWithRising.at(-1);
  await page.locator('#tl-range').fill(String(months.findIndex((b) => b.start === bucket.start)));
  await page.waitForFunction((at) => document.querySelector('#rising-body').dataset.request.includes(`at=${at}`)
    && !document.querySelector('#rising-body').classList.contains('loading'), end);
  read = await readRising(page);
  expectRisingMatches(read, categories, `the timeline's ${bucket.start}`);
  expect(read.shown.rows.length > 0, `nothing listed for ${bucket.start}`);
  const monthRead = read;
  expect(read.shown.window.includes(`${Number(bucket.start.slice(5, 7))}月`) && read.shown.summary.includes('跟随时间轴'),
    `the panel reads ${JSON.stringify(read.shown.window)} / ${JSON.stringify(read.shown.summary)} for ${bucket.start}`);

  // A click on the first row: the map flies to the grid and its panel opens.
  const target = read.shown.rows[0];
  const before = await page.evaluate(() => ({ zoom: window.gridwatch.map.getZoom(), centre: window.gridwatch.map.getCenter().toArray() }));
  const moved = page.evaluate(() => new Promise((resolve) => {
    const { map } = window.gridwatch;
    map.once('moveend', () => map.once('idle', resolve));
  }));
  await page.locator('#rising-body .rising-row').first().click();
  await moved;
  await page.locator('#region-content [data-field^="party-branch"]').first().waitFor({ state: 'visible' });
  const after = await page.evaluate((code) => {
    const { map } = window.gridwatch;
    const [feature] = map.queryRenderedFeatures({ layers: ['grid-fill'], filter: ['==', ['get', 'code'], code] });
    const canvas = map.getCanvas().getBoundingClientRect();
    const left = document.querySelector('#rising-panel').getBoundingClientRect().right;
    const right = document.querySelector('#region-panel').getBoundingClientRect().left;
    const ring = !feature ? [] : feature.geometry.type === 'Polygon' ? feature.geometry.coordinates[0] : feature.geometry.coordinates.flatMap((p) => p[0]);
    const points = ring.map((p) => map.project(p)).map((p) => ({ x: p.x + canvas.left, y: p.y + canvas.top }));
    return {
      zoom: map.getZoom(),
      centre: map.getCenter().toArray(),
      found: !!feature,
      inside: points.length > 0 && points.every((p) => p.x >= left && p.x <= right && p.y >= canvas.top && p.y <= canvas.bottom),
      selected: feature ? map.getFeatureState({ source: 'regions', id: code }).selected === true : false,
      panelCode: document.querySelector('#region-content [data-field=code]')?.textContent.trim(),
      rowSelected: document.querySelector('#rising-body .rising-row.selected')?.dataset.code,
    };
  }, target.code);
  expect(after.zoom > before.zoom + 3, `the map stays at zoom ${after.zoom.toFixed(1)} (was ${before.zoom.toFixed(1)})`);
  expect(after.found && after.inside, `grid ${target.code} is not in view between the panels after the click (${JSON.stringify(after)})`);
  expect(after.panelCode === target.code && after.selected, `the region panel shows ${after.panelCode}, not ${target.code}`);
  expect(after.rowSelected === target.code, 'the clicked row is not marked');
  await page.screenshot({ path: shot('map-rising.png') });

  // A day picked in the panel wins until the timeline moves again.
  await page.locator('#rising-prev').click();
  const previousMonth = bucketEnd(months[months.findIndex((b) => b.start === bucket.start) - 1].start, 'month');
  await page.waitForFunction((at) => document.querySelector('#rising-body').dataset.request.includes(`at=${at}`)
    && !document.querySelector('#rising-body').classList.contains('loading'), previousMonth);
  read = await readRising(page);
  expectRisingMatches(read, categories, 'the month before');
  await page.locator('#tl-all').click();
  await page.waitForFunction((request) => document.querySelector('#rising-body').dataset.request === request
    && !document.querySelector('#rising-body').classList.contains('loading'), today.shown.request);
  pass(`today: ${today.shown.rows.length} rising (${today.shown.window}); ${bucket.start}: ${monthRead.shown.rows.length} rising = the API's rows; ` +
    `row ${target.grid} (${target.categoryName} ${target.current}/${target.previous}/${target.last_year}) → zoom ${before.zoom.toFixed(1)} → ${after.zoom.toFixed(1)}, panel open`);
}

/** (l) Hot spots and the rising list in English. */
async function englishHotspotChecks(page) {
  check('(l) the hot spots legend, the rising list and the dashboard link speak English');
  await page.locator('#lang-toggle').click();
  await page.waitForFunction(() => document.documentElement.lang === 'en');
  await page.locator('#hotspot-toggle').check();
  await page.waitForFunction(() => document.querySelector('#legend').dataset.hotspots === 'ready');
  const categories = await api(page, '/api/v1/categories');
  const texts = await page.evaluate(() => ({
    nav: document.querySelector('a[href="dashboard.html"]')?.textContent.trim(),
    toggle: document.querySelector('[data-i18n=hotspots]').textContent.trim(),
    risingButton: document.querySelector('#rising-toggle').textContent.trim(),
    legend: document.querySelector('#hotspot-legend').innerText.trim(),
    panel: ['#rising-title', '.rising-note', '#rising-window', '#rising-summary', '.rising-compared']
      .map((sel) => document.querySelector(sel)?.textContent.trim() ?? ''),
    periods: [...document.querySelectorAll('#rising-panel [data-period]')].map((b) => b.textContent.trim()),
    labels: ['#rising-prev', '#rising-next', '#rising-close', '#rising-at'].map((sel) => document.querySelector(sel).getAttribute('aria-label')),
    rows: [...document.querySelectorAll('#rising-body .rising-row')].map((b) => ({
      category: b.dataset.category,
      categoryName: b.querySelector('.rise-cat span:not(.swatch)').textContent.trim(),
      figures: b.querySelector('.rise-figures').textContent.trim(),
    })),
  }));
  const cjk = /[\u3400-\u9fff]/;
  const all = [texts.nav, texts.toggle, texts.risingButton, texts.legend, ...texts.panel, ...texts.periods, ...texts.labels,
    ...texts.rows.flatMap((r) => [r.categoryName, r.figures])];
  const chinese = all.filter((text) => !text || cjk.test(text));
  expect(chinese.length === 0, `not in English: ${JSON.stringify(chinese)}`);
  expect(texts.nav === 'Street dashboard', `the dashboard link reads ${JSON.stringify(texts.nav)}`);
  expect(/Hot \d+/.test(texts.legend) && /Cold \d+/.test(texts.legend) && texts.legend.includes('permutations'), `the legend reads ${JSON.stringify(texts.legend)}`);
  expect(texts.rows.length > 0 && texts.rows.every((r) => r.categoryName === categories.find((c) => c.code === r.category)?.name_en),
    `rows name their categories ${JSON.stringify(texts.rows.map((r) => r.categoryName))}`);
  await page.locator('#hotspot-toggle').uncheck();
  await page.locator('#rising-close').click();
  await page.locator('#lang-toggle').click();
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  const back = await page.evaluate(() => ({
    nav: document.querySelector('a[href="dashboard.html"]').textContent.trim(),
    filters: document.querySelector('#filters').offsetParent !== null,
  }));
  expect(back.nav === '街道看板' && back.filters, `back in Chinese the link reads ${back.nav}; filters shown: ${back.filters}`);
  pass(`"${texts.nav}", "${texts.toggle}", "${texts.legend.split('\n')[0]}", "${texts.panel[0]}" / "${texts.panel[2]}", ${texts.rows.length} rows in English`);
}

async function main() {
  const browser = await launchChromium(await logIn(baseUrl));
  try {
    // Chinese locale and time zone of the users; the page must not depend on them, but this is what they see.
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page, 'desktop');
    const tiles = recordTiles(page);
    const apiCalls = [];
    page.on('request', (request) => { if (request.url().includes('/api/')) apiCalls.push(request.url()); });

    check('page loads and reports ready');
    await openReady(page, `${baseUrl}/`);
    const title = await page.title();
    expect(title === '网格治理热力图 · gridwatch', `unexpected page title ${JSON.stringify(title)}`);
    const overview = await page.evaluate(() => {
      const { map } = window.gridwatch;
      return {
        zoom: map.getZoom(),
        center: map.getCenter().toArray(),
        districtLabels: map.queryRenderedFeatures({ layers: ['district-label'] }).length,
        districts: map.queryRenderedFeatures({ layers: ['district-line'] }).length,
        count: document.querySelector('#report-count').dataset.count,
      };
    });
    await page.screenshot({ path: shot('overview.png') });
    expect(overview.districts > 0, 'no district outline rendered in the initial view');
    expect(overview.districtLabels > 0, 'no district label rendered in the initial view');
    const [lon, lat] = overview.center;
    expect(lon > 106.3 && lon < 107.4 && lat > 38.8 && lat < 40.1, `initial view is not on Wuhai (centre ${lon.toFixed(3)},${lat.toFixed(3)})`);
    const cityTrend = await api(page, '/api/v1/reports/trend?interval=month');
    const cityTotal = cityTrend.buckets.reduce((sum, b) => sum + b.reports, 0);
    expect(Number(overview.count) === cityTotal, `the page shows ${overview.count} reports, the city's trend sums to ${cityTotal}`);
    expect(!apiCalls.some((url) => url.includes('/reports/heat')), 'the page still downloads /api/v1/reports/heat');
    pass(`title ok, zoom ${overview.zoom.toFixed(1)}, ${overview.districtLabels} district labels, ${overview.count} reports (= the trend's sum)`);

    check('(a) grid outlines render at an urban core');
    await jumpAndSettle(page, URBAN_CORE);
    const gridLines = await page.evaluate(() => window.gridwatch.map.queryRenderedFeatures({ layers: ['grid-line'] }).length);
    await page.screenshot({ path: shot('core.png') });
    expect(gridLines > 0, `queryRenderedFeatures on grid-line returned nothing at ${URBAN_CORE.center} z${URBAN_CORE.zoom}`);
    pass(`${gridLines} grid outline features at ${URBAN_CORE.center.join(',')} z${URBAN_CORE.zoom}`);

    check('(b) heatmap is fed by /tiles/incidents and draws pixels');
    const heatSource = await page.evaluate(() => {
      const { map } = window.gridwatch;
      const layer = map.getLayer('reports-heat');
      const source = map.getSource(layer.source);
      const features = map.querySourceFeatures(layer.source, { sourceLayer: 'incidents' });
      return {
        source: layer.source,
        type: source.type,
        tiles: source.tiles,
        loaded: map.isSourceLoaded(layer.source),
        weight: JSON.stringify(map.getPaintProperty('reports-heat', 'heatmap-weight')),
        features: features.length,
        reports: features.reduce((sum, f) => sum + (f.properties.count ?? 0), 0),
      };
    });
    expect(heatSource.type === 'vector' && heatSource.tiles.every((u) => u.startsWith(`${origin}/tiles/incidents/{z}/{x}/{y}.mvt`)),
      `the heat layer's source is ${heatSource.type} ${JSON.stringify(heatSource.tiles)}, not the incidents tiles`);
    expect(heatSource.weight.includes('"count"'), `heatmap-weight does not use the cells' count: ${heatSource.weight}`);
    expect(heatSource.loaded && heatSource.features > 0 && heatSource.reports > 0,
      `the incidents source has ${heatSource.features} features (${heatSource.reports} reports; loaded: ${heatSource.loaded})`);
    const incidentTiles = tiles.filter((tile) => tile.layer === 'incidents');
    expect(incidentTiles.length > 0, 'no /tiles/incidents request was made');
    const badTiles = tiles.filter((tile) => tile.status !== 200 && tile.status !== 304);
    expect(badTiles.length === 0, `tile requests failed: ${badTiles.slice(0, 3).map((tile) => `${tile.status} ${tile.url}`).join(', ')}`);
    const heat = await heatmapPixelDifference(page);
    const share = heat.differing / heat.total;
    expect(share >= 0.005, `only ${heat.differing} of ${heat.total} pixels change when the heatmap is hidden (need ≥ 0.5%)`);
    await page.screenshot({ path: shot('map-heat-tiles.png') });
    pass(`${incidentTiles.length} incidents tiles (200), ${heatSource.features} features carrying ${heatSource.reports} reports in view; ` +
      `${heat.differing} pixels (${(share * 100).toFixed(1)}%) differ with the heatmap hidden`);

    check('(c) clicking a grid opens its panel with code and party branch');
    const targets = await gridClickTargets(page, 6);
    expect(targets.length > 0, 'found no grid to click in the urban core view');
    let opened = null;
    for (const target of targets) {
      await page.mouse.click(target.x, target.y);
      await page.locator('#region-panel').waitFor({ state: 'visible' });
      // The panel is complete when the party branch section (or its "none" note) is there.
      await page.locator('#region-content [data-field^="party-branch"]').first().waitFor({ state: 'visible' });
      const shown = await page.evaluate(() => ({
        code: document.querySelector('#region-content [data-field=code]')?.textContent.trim(),
        branch: document.querySelector('#region-content [data-field=party-branch-name]')?.textContent.trim() ?? null,
        staff: document.querySelectorAll('#region-content .staff li').length,
        level: document.querySelector('#region-content .level-badge')?.textContent.trim(),
        total: document.querySelector('#region-content [data-field=report-total]')?.textContent.trim(),
        version: document.querySelector('#region-content [data-field=version]')?.textContent.trim(),
      }));
      expect(/^[\d,]+$/.test(shown.total ?? ''), `panel shows no report total (${JSON.stringify(shown.total)})`);
      expect(shown.version, 'panel shows no boundary version');
      expect(/^\d{15}$/.test(shown.code ?? ''), `panel shows code ${JSON.stringify(shown.code)}, not a 15-digit grid code`);
      expect(shown.code === target.code, `clicked grid ${target.code} but the panel shows ${shown.code}`);
      if (shown.branch) { opened = shown; break; }
    }
    expect(opened, `none of ${targets.length} clicked grids showed a party branch (${targets.map((t) => t.code).join(', ')})`);
    await page.screenshot({ path: shot('grid-panel.png') });
    pass(`${opened.code} (${opened.level}): ${opened.branch}, ${opened.staff} staff, ${opened.total} reports, ${opened.version}`);

    check('(d) switching to English changes the UI labels');
    const readUi = () => page.evaluate(() => ({
      lang: document.documentElement.lang,
      title: document.querySelector('h1').textContent.trim(),
      categoriesHeading: document.querySelector('[data-i18n=categories]').textContent.trim(),
      firstCategory: document.querySelector('#category-list .category-name')?.textContent.trim(),
      panelHeadings: [...document.querySelectorAll('#region-content h3')].map((h) => h.textContent.trim()),
      docTitle: document.title,
    }));
    const before = await readUi();
    await page.locator('#lang-toggle').click();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    const after = await readUi();
    const cjk = /[\u3400-\u9fff]/;
    const categories = await page.evaluate(async () => (await (await fetch('/api/v1/categories')).json()));
    for (const key of ['title', 'categoriesHeading']) {
      expect(after[key] !== before[key] && !cjk.test(after[key]), `${key} did not switch to English: ${JSON.stringify(after[key])}`);
    }
    expect(after.firstCategory === categories[0].name_en, `first category reads ${JSON.stringify(after.firstCategory)}, expected ${JSON.stringify(categories[0].name_en)}`);
    expect(after.panelHeadings.length > 0 && after.panelHeadings.every((h) => !cjk.test(h)), `panel headings not in English: ${after.panelHeadings.join(' | ')}`);
    await page.waitForTimeout(300); // let the map redraw its labels with codes
    await page.screenshot({ path: shot('english.png') });
    await openReady(page, `${baseUrl}/`);
    const remembered = await page.evaluate(() => document.documentElement.lang);
    expect(remembered === 'en', `language choice not remembered across a reload (lang=${remembered})`);
    await openReady(page, `${baseUrl}/?lang=zh`);
    const fromUrl = await page.evaluate(() => [document.documentElement.lang, document.querySelector('h1').textContent.trim()]);
    expect(fromUrl[0] === 'zh-CN' && fromUrl[1] === before.title, `?lang=zh did not override the remembered English (${fromUrl.join(', ')})`);
    pass(`"${before.title}" → "${after.title}", "${before.firstCategory}" → "${after.firstCategory}"; remembered after reload; ?lang=zh wins`);

    check('(e) a category filter changes the shown count');
    const readCount = () => page.evaluate(() => document.querySelector('#report-count').dataset.count);
    const initial = Number(await readCount());
    expect(Number.isFinite(initial) && initial > 0, `no reports shown before filtering (count ${initial})`);
    const firstBox = page.locator('#category-list input[type=checkbox]').first();
    const code = await firstBox.getAttribute('value');
    const categoriesOf = (params) => (params.get('category') ?? '').split(',');
    const filteredTrend = page.waitForResponse((r) => r.url().includes('/api/v1/reports/trend') && r.url().includes('category='));
    const filteredTile = tileResponse(page, 'incidents', (params) => params.has('category') && !categoriesOf(params).includes(code));
    const filteredGrids = tileResponse(page, 'grids', (params) => params.has('category') && !categoriesOf(params).includes(code));
    await firstBox.uncheck();
    const response = await filteredTrend;
    expect(response.ok(), `filtered trend request failed with ${response.status()}`);
    expect(!decodeURIComponent(response.url()).split('category=')[1].split('&')[0].split(',').includes(code),
      `unchecked category ${code} is still in the query ${response.url()}`);
    for (const tile of [await filteredTile, await filteredGrids]) {
      expect(tile.status() === 200, `filtered tile ${tile.url()} answered ${tile.status()}`);
    }
    await page.waitForFunction((n) => {
      const c = document.querySelector('#report-count').dataset.count;
      return c !== '' && Number(c) !== n;
    }, initial);
    const afterCategory = Number(await readCount());
    expect(afterCategory < initial, `count went from ${initial} to ${afterCategory} after removing ${code}`);
    const filteredSum = (await response.json()).buckets.reduce((sum, b) => sum + b.reports, 0);
    expect(afterCategory === filteredSum, `the page shows ${afterCategory}, the filtered trend sums to ${filteredSum}`);
    const dated = page.waitForResponse((r) => r.url().includes('/api/v1/reports/trend') && r.url().includes('from='));
    const datedTile = tileResponse(page, 'incidents', (params) => params.get('from') === '2026-04-01');
    await page.locator('#date-from').fill('2026-04-01');
    expect((await dated).ok(), 'trend request with a date filter failed');
    expect((await datedTile).ok(), 'incidents tile with a date filter failed');
    await page.waitForFunction(() => document.querySelector('#report-count').dataset.count !== '');
    const afterDate = Number(await readCount());
    expect(afterDate <= afterCategory, `count went from ${afterCategory} to ${afterDate} after adding a start date`);
    pass(`${initial} → ${afterCategory} without ${code} → ${afterDate} from 2026-04-01; tiles and trend follow`);

    await timeSliderChecks(page);
    await choroplethChecks(page);
    await gridTrendChecks(page);
    await englishAnalyticsChecks(page);
    await hotspotChecks(page);
    await risingChecks(page);
    await englishHotspotChecks(page);

    check('phone-sized viewport: filters collapse, panel fits');
    const phone = await browser.newContext({
      viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const mobile = await phone.newPage();
    mobile.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(mobile, 'phone');
    await openReady(mobile, `${baseUrl}/?lang=zh`);
    expect(!(await mobile.locator('#filters-body').isVisible()), 'filters are expanded on a phone-sized screen');
    const collapsed = await mobile.locator('#filters').boundingBox();
    expect(collapsed.width < PHONE.width * 0.6, `collapsed filters are ${collapsed.width}px wide`);
    await mobile.locator('#filters-toggle').tap();
    expect(await mobile.locator('#filters-body').isVisible(), 'the filters toggle does not open the filters');
    await mobile.locator('#filters-toggle').tap();
    const scroll = await mobile.evaluate(() => document.documentElement.scrollWidth);
    expect(scroll <= PHONE.width, `page is wider than the phone screen (${scroll}px)`);
    await mobile.screenshot({ path: shot('phone.png') });
    await jumpAndSettle(mobile, URBAN_CORE);
    const [tapTarget] = await gridClickTargets(mobile, 1);
    expect(tapTarget, 'found no grid to tap on the phone-sized screen');
    await mobile.touchscreen.tap(tapTarget.x, tapTarget.y);
    await mobile.locator('#region-content [data-field^="party-branch"]').first().waitFor({ state: 'visible' });
    const sheet = await mobile.locator('#region-panel').boundingBox();
    expect(sheet.y + sheet.height <= PHONE.height + 1 && sheet.height <= PHONE.height * 0.6,
      `region panel does not fit as a bottom sheet (top ${Math.round(sheet.y)}, height ${Math.round(sheet.height)})`);
    await mobile.screenshot({ path: shot('phone-panel.png') });
    pass(`collapsed filters ${Math.round(collapsed.width)}px wide, open on tap; tapped grid ${tapTarget.code} opens a ${Math.round(sheet.height)}px sheet`);

    check('phone-sized viewport: timeline, choropleth legend and trend fit');
    await mobile.locator('#region-close').tap();
    await mobile.locator('#region-panel').waitFor({ state: 'hidden' });
    const timelineBox = await mobile.locator('#timeline').boundingBox();
    expect(timelineBox && timelineBox.x >= 0 && timelineBox.x + timelineBox.width <= PHONE.width + 0.5,
      `the timeline does not fit the phone's width (${JSON.stringify(timelineBox)})`);
    const controls = await mobile.evaluate(() => {
      const bar = document.querySelector('#timeline').getBoundingClientRect();
      const parts = ['.segmented', '#tl-prev', '#tl-play', '#tl-next', '#tl-label', '#tl-all', '#tl-range']
        .map((sel) => ({ sel, r: document.querySelector(sel).getBoundingClientRect() }));
      const outside = parts.filter(({ r }) => r.left < bar.left - 0.5 || r.right > bar.right + 0.5 || r.top < bar.top - 0.5 || r.bottom > bar.bottom + 0.5)
        .map(({ sel }) => sel);
      const overlaps = [];
      for (let i = 0; i < parts.length; i++) {
        for (let j = i + 1; j < parts.length; j++) {
          const a = parts[i].r, b = parts[j].r;
          if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps.push(`${parts[i].sel}/${parts[j].sel}`);
        }
      }
      const small = parts.filter(({ sel, r }) => sel !== '#tl-label' && (r.height < 24 || r.width < 24)).map(({ sel }) => sel);
      const legend = document.querySelector('#legend').getBoundingClientRect();
      return { outside, overlaps, small, legendAbove: legend.bottom <= bar.top, range: parts.at(-1).r.width };
    });
    expect(controls.outside.length === 0, `timeline controls stick out of the bar: ${controls.outside.join(', ')}`);
    expect(controls.overlaps.length === 0, `timeline controls overlap: ${controls.overlaps.join(', ')}`);
    expect(controls.small.length === 0, `timeline controls too small to tap: ${controls.small.join(', ')}`);
    expect(controls.legendAbove, 'the legend overlaps the timeline on a phone');
    expect(controls.range >= PHONE.width * 0.6, `the slider's track is only ${Math.round(controls.range)}px wide`);
    await mobile.locator('#choropleth-measure').selectOption('density_km2');
    // With the choropleth on the heat is set aside, so it is the grids tiles that follow the slider.
    const phoneTile = tileResponse(mobile, 'grids', (params) => params.has('from'));
    await mobile.locator('#tl-next').tap();
    await phoneTile;
    await settle(mobile);
    await mobile.waitForFunction(() => document.querySelector('#legend').dataset.measure === 'density_km2');
    const phoneScroll = await mobile.evaluate(() => document.documentElement.scrollWidth);
    expect(phoneScroll <= PHONE.width, `page is wider than the phone screen with the analytics on (${phoneScroll}px)`);
    await mobile.screenshot({ path: shot('map-phone-analytics.png') });
    await mobile.touchscreen.tap(tapTarget.x, tapTarget.y);
    await mobile.locator('#trend-section [data-field=trend-chart]').waitFor({ state: 'attached' });
    await mobile.locator('#trend-section').scrollIntoViewIfNeeded();
    const chart = await mobile.locator('#trend-section [data-field=trend-chart]').boundingBox();
    const sheet2 = await mobile.locator('#region-panel').boundingBox();
    expect(chart.width <= sheet2.width && chart.x >= sheet2.x, `the trend chart (${Math.round(chart.width)}px) does not fit the sheet`);
    await mobile.screenshot({ path: shot('map-phone-trend.png') });
    await phone.close();
    pass(`timeline ${Math.round(timelineBox.width)}×${Math.round(timelineBox.height)}px, track ${Math.round(controls.range)}px, no overlaps; trend chart ${Math.round(chart.width)}px in the sheet`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
