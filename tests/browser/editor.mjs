#!/usr/bin/env node
// Browser checks of the sketch editor (/editor.html) in headless Chromium (Debian's /usr/bin/chromium).
//
// Usage: node tests/browser/editor.mjs <base_url> <screenshot_dir>
//
// Uploads geodata/sketches/kangle-pencil.jpg, sets its five control points (four through the
// `window.editor.addGcp` hook, plus one pair made by real clicks on the sketch and the map, then the
// exact one), checks the fit report and the overlay, vectorises and checks the 18 candidates, then
// switches to English. Any page error, console error or request to another host fails the run.
// Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { createChecks, launchChromium, parseArgs } from './harness.mjs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const READY_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 30_000;
const SKETCH = fileURLToPath(new URL('../../geodata/sketches/kangle-pencil.jpg', import.meta.url));
const GCPS = fileURLToPath(new URL('../../geodata/sketches/kangle-pencil.gcps.json', import.meta.url));
const REGION = '150302001001';
const EXPECTED_CANDIDATES = 18;

const { baseUrl, origin, shot } = await parseArgs('editor.mjs');
const { check, pass, fail, expect, watch, done, report } = createChecks(origin);

const fitState = (page) => page.evaluate(() => {
  const f = window.editor.state.fit?.fit;
  return {
    rows: document.querySelectorAll('#gcp-table tbody tr[data-index]').length,
    kind: document.querySelector('#fit-report .fit-kind')?.dataset.kind ?? null,
    kindText: document.querySelector('#fit-report .fit-kind')?.textContent ?? null,
    rmseText: document.querySelector('#fit-report .fit-rmse')?.textContent ?? null,
    rmse: f?.rmse_m ?? null,
    points: f?.points ?? null,
    residualCells: [...document.querySelectorAll('#gcp-table td[data-field=residual]')].filter((td) => td.textContent.trim() && td.textContent.trim() !== '–').length,
  };
});

async function main() {
  const gcps = JSON.parse(await readFile(GCPS, 'utf8'));
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page);

    check('editor page loads in Chinese');
    await page.goto(`${baseUrl}/editor.html?lang=zh`, { waitUntil: 'domcontentloaded', timeout: READY_TIMEOUT_MS });
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body?.dataset.state), null, { timeout: READY_TIMEOUT_MS });
    const stateNow = await page.evaluate(() => document.body.dataset.state);
    if (stateNow === 'error') fail(`page reports an error: ${await page.locator('#error-text').innerText()}`);
    const heading = await page.locator('h1').innerText();
    expect(heading === '手绘网格图数字化', `heading is "${heading}"`);
    expect(await page.evaluate(() => Boolean(window.editor.map.getLayer('regions-grid'))), 'no grid outline layer on the map');
    pass(heading);

    check('upload the kangle pencil sketch with a region code');
    await page.locator('#upload-file').setInputFiles(SKETCH);
    await page.locator('#upload-title').fill('康乐社区 铅笔草图 (browser test)');
    await page.locator('#upload-region').fill(REGION);
    await page.locator('#upload-button').click();
    await page.waitForFunction(() => window.editor.state.sketch && document.querySelector('#sketch-img').complete
      && document.querySelector('#sketch-img').naturalWidth > 0);
    const sketch = await page.evaluate(() => window.editor.state.sketch);
    expect(sketch.width === 1600 && sketch.height === 1200, `sketch is ${sketch.width}×${sketch.height}`);
    expect(sketch.region_code === REGION, `region code is ${sketch.region_code}`);
    const selected = await page.locator('#sketch-select').inputValue();
    expect(selected === String(sketch.id), `the sketch list does not select the new sketch (${selected})`);
    pass(`sketch #${sketch.id}, ${sketch.width}×${sketch.height}`);

    check('a control point pair made by clicking the sketch and the map');
    const [g0] = gcps;
    const onImage = await page.evaluate(([px, py]) => window.editor.pixelToClient(px, py), [g0.px, g0.py]);
    await page.mouse.click(onImage.x, onImage.y);
    let rows = await page.evaluate(() => window.editor.state.gcps);
    expect(rows.length === 1 && rows[0].px != null && rows[0].lon == null, `after the image click: ${JSON.stringify(rows)}`);
    const onMap = await page.evaluate(([lon, lat]) => {
      const box = window.editor.map.getCanvas().getBoundingClientRect();
      const p = window.editor.map.project([lon, lat]);
      return { x: box.left + p.x, y: box.top + p.y };
    }, [g0.lon, g0.lat]);
    await page.mouse.click(onMap.x, onMap.y);
    rows = await page.evaluate(() => window.editor.state.gcps);
    expect(rows.length === 1 && rows[0].lon != null, `after the map click: ${JSON.stringify(rows)}`);
    const dpx = Math.hypot(rows[0].px - g0.px, rows[0].py - g0.py);
    const dm = Math.hypot((rows[0].lon - g0.lon) * 111320 * Math.cos(g0.lat * Math.PI / 180), (rows[0].lat - g0.lat) * 110540);
    expect(dpx < 6, `clicked pixel is ${dpx.toFixed(1)} px from the target`);
    expect(dm < 10, `clicked position is ${dm.toFixed(1)} m from the target`);
    const tableRows = await page.locator('#gcp-table tbody tr[data-index]').count();
    expect(tableRows === 1, `${tableRows} rows in the control point table`);
    // Replace the clicked pair by the exact one, through its delete button.
    await page.locator('#gcp-table tbody tr[data-index="0"] .btn-del').click();
    expect((await page.evaluate(() => window.editor.state.gcps.length)) === 0, 'delete did not remove the point');
    pass(`clicked pair within ${dpx.toFixed(1)} px / ${dm.toFixed(1)} m; deleted again`);

    check('five exact control points give a fit report with RMSE < 2 m');
    await page.evaluate(async (points) => {
      for (const g of points) window.editor.addGcp(g.px, g.py, g.lon, g.lat);
      await window.editor.settled();
    }, gcps);
    await page.waitForFunction(() => window.editor.state.fit?.fit?.points === 5 && !window.editor.state.fitting);
    const fit = await fitState(page);
    expect(fit.rows === 5, `${fit.rows} rows in the table`);
    expect(fit.kind && fit.kindText, 'no transform kind in the report');
    expect(fit.rmse !== null && fit.rmse < 2, `RMSE is ${fit.rmse} m`);
    expect(/\d/.test(fit.rmseText ?? ''), `RMSE not shown (${fit.rmseText})`);
    expect(fit.residualCells === 5, `${fit.residualCells} rows show a residual`);
    pass(`${fit.kind} (${fit.kindText}), ${fit.rmseText}`);

    check('the georeferenced overlay is on the map');
    await page.waitForFunction(() => {
      const map = window.editor.map;
      return map.getLayer('sketch-overlay') && map.getSource('sketch-overlay') && map.loaded();
    });
    const overlay = await page.evaluate(() => {
      const map = window.editor.map;
      return { visibility: map.getLayoutProperty('sketch-overlay', 'visibility') ?? 'visible',
        coordinates: map.getSource('sketch-overlay').coordinates, url: map.getSource('sketch-overlay').url };
    });
    expect(overlay.visibility === 'visible', `overlay visibility ${overlay.visibility}`);
    expect(/overlay\.png/.test(overlay.url), `overlay url ${overlay.url}`);
    await page.locator('#overlay-opacity').fill('45');
    const opacity = await page.evaluate(() => window.editor.map.getPaintProperty('sketch-overlay', 'raster-opacity'));
    expect(Math.abs(opacity - 0.45) < 1e-6, `opacity slider set raster-opacity ${opacity}`);
    await page.waitForFunction(() => window.editor.map.loaded());
    await page.screenshot({ path: shot('editor-gcps.png') });
    pass(`corners ${JSON.stringify(overlay.coordinates[0])} … ${JSON.stringify(overlay.coordinates[2])}, opacity ${opacity}`);

    check(`vectorise gives ${EXPECTED_CANDIDATES} candidate polygons, listed and drawn`);
    await page.locator('#vectorise-button').click();
    await page.waitForFunction(() => window.editor.state.candidates !== null);
    const listed = await page.locator('#candidates .cand-list li').count();
    expect(listed === EXPECTED_CANDIDATES, `${listed} candidates listed`);
    await page.evaluate(() => new Promise((resolve) => {
      const map = window.editor.map;
      if (map.loaded()) resolve(); else map.once('idle', resolve);
    }));
    const drawn = await page.evaluate(() => {
      const map = window.editor.map;
      const faces = new Set(map.queryRenderedFeatures({ layers: ['candidates-fill'] }).map((f) => f.properties.face));
      return { faces: faces.size, source: map.getSource('candidates')._data?.features?.length ?? null };
    });
    expect(drawn.faces === EXPECTED_CANDIDATES, `${drawn.faces} candidate faces rendered on the map`);
    const areaShown = await page.locator('#candidates .cand-list li .cand-area').first().innerText();
    expect(/\d/.test(areaShown), `no area in the list (${areaShown})`);
    const sketchProblems = await page.locator('#candidates .problems li').count();
    await page.screenshot({ path: shot('editor-candidates.png') });
    pass(`${listed} listed, ${drawn.faces} rendered, ${sketchProblems} drawing problems listed, first area ${areaShown}`);

    check('switching to English changes the labels');
    await page.locator('#lang-toggle').click();
    const en = await page.evaluate(() => ({
      h1: document.querySelector('h1').textContent,
      vectorise: document.querySelector('#vectorise-button').textContent,
      upload: document.querySelector('#upload-button').textContent,
      kind: document.querySelector('#fit-report .fit-kind')?.textContent,
      lang: document.documentElement.lang,
      stored: localStorage.getItem('gridwatch.lang'),
    }));
    expect(en.h1 === 'Sketch digitiser', `heading is "${en.h1}"`);
    expect(en.vectorise === 'Vectorise' && en.upload === 'Upload', `buttons read "${en.upload}", "${en.vectorise}"`);
    expect(en.lang === 'en' && en.stored === 'en', `lang ${en.lang}, stored ${en.stored}`);
    expect(!/[\u4e00-\u9fff]/.test(en.kind ?? ''), `fit kind still Chinese: ${en.kind}`);
    await page.screenshot({ path: shot('editor-en.png') });
    pass(`${en.h1} / ${en.upload} / ${en.vectorise} / ${en.kind}`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
