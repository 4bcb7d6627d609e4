#!/usr/bin/env node
// Browser checks of the gridwatch map page in a real headless Chromium (Debian's /usr/bin/chromium).
//
// Usage: node tests/browser/map.mjs <base_url> <screenshot_dir>
//   e.g. node tests/browser/map.mjs http://127.0.0.1:8080 target/screenshots
//
// Prints one line per check and stops at the first failure with a non-zero exit code. Any uncaught
// page error, console error, or request to a host other than <base_url> fails the run too: the page
// must work without internet. Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { createChecks, launchChromium, parseArgs } from './harness.mjs';

const STEP_TIMEOUT_MS = 20_000;
const URBAN_CORE = { center: [106.84, 39.672], zoom: 14 }; // Haibowan city centre
const PHONE = { width: 390, height: 844 };

const { baseUrl, origin, shot } = await parseArgs('map.mjs');
const { check, pass, fail, expect, watch, done, report, openReady } = createChecks(origin);


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

async function main() {
  const browser = await launchChromium();
  try {
    // Chinese locale and time zone of the users; the page must not depend on them, but this is what they see.
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page, 'desktop');

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
    pass(`title ok, zoom ${overview.zoom.toFixed(1)}, ${overview.districtLabels} district labels, ${overview.count} reports`);

    check('(a) grid outlines render at an urban core');
    await jumpAndSettle(page, URBAN_CORE);
    const gridLines = await page.evaluate(() => window.gridwatch.map.queryRenderedFeatures({ layers: ['grid-line'] }).length);
    await page.screenshot({ path: shot('core.png') });
    expect(gridLines > 0, `queryRenderedFeatures on grid-line returned nothing at ${URBAN_CORE.center} z${URBAN_CORE.zoom}`);
    pass(`${gridLines} grid outline features at ${URBAN_CORE.center.join(',')} z${URBAN_CORE.zoom}`);

    check('(b) heatmap draws pixels');
    const heat = await heatmapPixelDifference(page);
    const share = heat.differing / heat.total;
    expect(share >= 0.005, `only ${heat.differing} of ${heat.total} pixels change when the heatmap is hidden (need ≥ 0.5%)`);
    pass(`${heat.differing} pixels (${(share * 100).toFixed(1)}%) differ with the heatmap hidden`);

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
    const filtered = page.waitForResponse((r) => r.url().includes('/api/v1/reports/heat') && r.url().includes('category='));
    await firstBox.uncheck();
    const response = await filtered;
    expect(response.ok(), `filtered heat request failed with ${response.status()}`);
    expect(!decodeURIComponent(response.url()).split('category=')[1].split('&')[0].split(',').includes(code),
      `unchecked category ${code} is still in the query ${response.url()}`);
    await page.waitForFunction((n) => {
      const c = document.querySelector('#report-count').dataset.count;
      return c !== '' && Number(c) !== n;
    }, initial);
    const afterCategory = Number(await readCount());
    expect(afterCategory < initial, `count went from ${initial} to ${afterCategory} after removing ${code}`);
    const dated = page.waitForResponse((r) => r.url().includes('/api/v1/reports/heat') && r.url().includes('from='));
    await page.locator('#date-from').fill('2026-04-01');
    expect((await dated).ok(), 'heat request with a date filter failed');
    await page.waitForFunction(() => document.querySelector('#report-count').dataset.count !== '');
    const afterDate = Number(await readCount());
    expect(afterDate <= afterCategory, `count rose from ${afterCategory} to ${afterDate} after adding a start date`);
    pass(`${initial} → ${afterCategory} without ${code} → ${afterDate} from 2026-04-01`);

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
    await phone.close();
    pass(`collapsed filters ${Math.round(collapsed.width)}px wide, open on tap; tapped grid ${tapTarget.code} opens a ${Math.round(sheet.height)}px sheet`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
