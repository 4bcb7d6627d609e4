#!/usr/bin/env node
// Browser checks of the sketch editor (/editor.html) in headless Chromium (Debian's /usr/bin/chromium).
//
// Usage: node tests/browser/editor.mjs <base_url> <screenshot_dir>
//
// Uploads geodata/sketches/kangle-pencil.jpg, sets its five control points (four through the
// `window.editor.addGcp` hook, plus one pair made by real clicks on the sketch and the map, then the
// exact one), checks the fit report and the overlay, vectorises and checks the 18 candidates; then
// reviews the cleaning fixes and accepts them. The redraw check matches the faces to the community's
// 14 grids and to the four micro-grids of 华庭御品小区 (150302001001008, which comes back as the union
// of them) and is publishable as drawn; merging those four faces instead is blocked by the check.
// Publishes through the button (grids and micro-grids version 2 on the map), splits
// 150302001001003 (no micro-grids yet) with a line drawn by real clicks and publishes that (the
// locate endpoint then answers with the new micro-grid code), merges two grids up to a check, drags
// a shared corner, and switches to English. Publishing writes to the database: run it on a fresh
// `serve --demo`.
// Any page error, console error or request to another host fails the run.
// Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { createChecks, launchChromium, logIn, parseArgs } from './harness.mjs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const READY_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 30_000;
const SKETCH = fileURLToPath(new URL('../../geodata/sketches/kangle-pencil.jpg', import.meta.url));
const GCPS = fileURLToPath(new URL('../../geodata/sketches/kangle-pencil.gcps.json', import.meta.url));
const REGION = '150302001001';
const EXPECTED_CANDIDATES = 18;
// The compound grid the sketch draws as its four micro-grids, and a grid without micro-grids to split.
const COMPOUND = '150302001001008';
const COMPOUND_MICRO = ['01', '02', '03', '04'].map((n) => `${COMPOUND}${n}`);
const SPLIT_GRID = '150302001001003';

const { baseUrl, origin, shot } = await parseArgs('editor.mjs');
const CODE_15 = /^\d{15}$/;
const { check, pass, fail, expect, watch, done, report } = createChecks(origin);

/** Resolves once the map has rendered everything it was given. */
const mapIdle = (page) => page.evaluate(() => new Promise((resolve) => {
  const map = window.editor.map;
  if (map.loaded() && !map.isMoving()) resolve(); else map.once('idle', resolve);
}));

/** The editing session as the page sees it after its last check. */
const editState = (page) => page.evaluate(() => {
  const edit = window.editor.state.edit;
  return {
    scope: edit?.scope ?? null,
    tool: edit?.tool ?? null,
    check: edit?.check ?? null,
    publication: edit?.publication ?? null,
    publishEnabled: !document.querySelector('#publish-button').disabled,
    rows: document.querySelectorAll('#children-table tbody tr[data-status]').length,
    status: document.querySelector('#check-status').textContent,
  };
});

/** Screen position of a lon/lat on the map. */
const toScreen = (page, lonLat) => page.evaluate((p) => {
  const map = window.editor.map;
  const box = map.getCanvas().getBoundingClientRect();
  const q = map.project(p);
  return { x: box.left + q.x, y: box.top + q.y };
}, lonLat);

/** A point well inside a polygon: the middle of the widest run of a horizontal scan line at mid-height. */
function interiorPoint(geometry) {
  const rings = geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat();
  const ys = rings.flat().map((c) => c[1]);
  let best = null;
  for (const f of [0.5, 0.35, 0.65, 0.25, 0.75]) {
    const y = Math.min(...ys) + f * (Math.max(...ys) - Math.min(...ys));
    const xs = [];
    for (const ring of rings) {
      for (let i = 0; i + 1 < ring.length; i++) {
        const [a, b] = [ring[i], ring[i + 1]];
        if ((a[1] > y) !== (b[1] > y)) xs.push(a[0] + ((y - a[1]) / (b[1] - a[1])) * (b[0] - a[0]));
      }
    }
    xs.sort((p, q) => p - q);
    for (let i = 0; i + 1 < xs.length; i += 2) {
      if (!best || xs[i + 1] - xs[i] > best.w) best = { w: xs[i + 1] - xs[i], p: [(xs[i] + xs[i + 1]) / 2, y] };
    }
  }
  return best.p;
}

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
  const browser = await launchChromium(await logIn(baseUrl));
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

    check('review lists the cleaning fixes and draws them on the map');
    await page.locator('#review-button').click();
    await page.waitForFunction(() => window.editor.state.stage === 'review' && window.editor.state.review !== null);
    await mapIdle(page);
    const rv = await page.evaluate(() => {
      const r = window.editor.state.review;
      const map = window.editor.map;
      return {
        parent: r.parent.code,
        fixes: r.fixes.length,
        remaining: r.remaining.length,
        listed: document.querySelectorAll('#fix-list li[data-fix]').length,
        drawn: new Set(map.queryRenderedFeatures({ layers: ['fixes-fill'] }).map((f) => f.properties.i)).size,
        firstKind: document.querySelector('#fix-list li .fix-kind')?.textContent ?? '',
        firstArea: document.querySelector('#fix-list li .fix-area')?.textContent ?? '',
        acceptVisible: Boolean(document.querySelector('#accept-button')?.offsetParent),
        gcpDockHidden: document.querySelector('#dock-georef').hidden,
      };
    });
    expect(rv.parent === REGION, `review parent ${rv.parent}`);
    expect(rv.fixes > 0 && rv.listed === rv.fixes, `${rv.fixes} fixes, ${rv.listed} listed`);
    expect(rv.drawn > 0, 'no fix drawn on the map');
    expect(/[\u4e00-\u9fff]/.test(rv.firstKind), `fix kind not in Chinese: "${rv.firstKind}"`);
    expect(/\d/.test(rv.firstArea), `no area in the fix list (${rv.firstArea})`);
    expect(rv.acceptVisible && rv.gcpDockHidden, 'the review dock is not showing');
    await page.locator('#fix-list li[data-fix="0"]').hover();
    const hovered = await page.evaluate(() => window.editor.map.getFeatureState({ source: 'fixes', id: 0 }).hover === true);
    expect(hovered, 'hovering a fix does not highlight it on the map');
    await page.screenshot({ path: shot('editor-review.png') });
    pass(`${rv.fixes} fixes (${rv.drawn} drawn), ${rv.remaining} issues remaining`);

    check('accepting the fixes starts editing the community: the faces match its grids and the compound\'s micro-grids, publishable as drawn');
    await page.locator('#accept-button').click();
    await page.waitForFunction(() => window.editor.state.stage === 'edit' && window.editor.state.edit?.check !== null);
    await page.evaluate(() => window.editor.checked());
    let ed = await editState(page);
    const reviewed = await page.evaluate(() => window.editor.state.review.candidates.features.length);
    expect(ed.scope.code === REGION && ed.scope.childLevel === 'grid', `scope ${JSON.stringify(ed.scope)}`);
    const drawnFeatures = await page.evaluate(() => window.editor.draw.getSnapshot().filter((f) => f.properties.mode === 'grid').length);
    expect(drawnFeatures === reviewed, `${drawnFeatures} features in terra-draw for ${reviewed} candidates`);
    const describe = (check) => JSON.stringify({ publishable: check.publishable,
      blocking: check.issues.filter((i) => i.blocking).map((i) => i.message),
      children: check.children.map(({ code, level, status, matched_by }) => `${code} ${level} ${status} ${matched_by}`) });
    let children = ed.check.children;
    const proposed = children.filter((c) => c.feature != null);
    expect(proposed.length === reviewed, `${proposed.length} children with a feature for ${reviewed} features`);
    const gridEntries = children.filter((c) => c.level === 'grid');
    const microEntries = children.filter((c) => c.level === 'micro_grid');
    expect(gridEntries.length === 15 && microEntries.length === 4, `${gridEntries.length} grid entries, ${microEntries.length} micro-grid entries: ${describe(ed.check)}`);
    for (const c of gridEntries) {
      expect(CODE_15.test(c.code) && c.code.startsWith(REGION) && c.parent_code === REGION, `grid entry ${c.code} (parent ${c.parent_code})`);
      expect(['changed', 'unchanged'].includes(c.status), `grid ${c.code} is ${c.status}`);
    }
    const compound = children.find((c) => c.code === COMPOUND);
    expect(compound?.matched_by === 'micro_grids' && compound.feature === null && compound.key === null,
      `${COMPOUND}: ${JSON.stringify(compound)}`);
    const microCodes = microEntries.map((c) => c.code).sort();
    expect(JSON.stringify(microCodes) === JSON.stringify(COMPOUND_MICRO), `micro-grid entries ${JSON.stringify(microCodes)}`);
    for (const c of microEntries) {
      expect(c.parent_code === COMPOUND && c.matched_by === 'overlap' && c.key != null && c.feature != null,
        `micro-grid entry ${JSON.stringify(c)}`);
    }
    expect(ed.check.publishable, `not publishable: ${describe(ed.check)}`);
    expect(!ed.check.issues.some((i) => i.blocking), `blocking issues: ${describe(ed.check)}`);
    expect(ed.publishEnabled, 'the publish button is disabled');
    expect(ed.status === '可发布', `check status reads "${ed.status}"`);
    // The table: every entry a row, the micro-grids indented right under their grid, which says what it is.
    const table = await page.evaluate(() => [...document.querySelectorAll('#children-table tbody tr[data-status]')].map((tr) => ({
      code: tr.dataset.code, level: tr.dataset.level, lower: tr.classList.contains('lower-level'),
      indent: parseFloat(getComputedStyle(tr.querySelector('td')).paddingLeft), text: tr.textContent })));
    expect(table.length === children.length, `${table.length} rows in the children table for ${children.length} entries`);
    const at = table.findIndex((r) => r.code === COMPOUND);
    const under = table.slice(at + 1, at + 5);
    expect(at >= 0 && under.every((r) => r.lower && r.level === 'micro_grid' && COMPOUND_MICRO.includes(r.code)),
      `rows after ${COMPOUND}: ${JSON.stringify(under.map((r) => r.code))}`);
    expect(under.every((r) => r.indent > table[at].indent && r.text.includes('微网格')), 'micro-grid rows are not indented and tagged');
    expect(table[at].text.includes('由微网格合成'), `${COMPOUND} row reads "${table[at]?.text}"`);
    await mapIdle(page);
    const outlined = await page.evaluate(() => window.editor.map.queryRenderedFeatures({ layers: ['edit-compound-line'] })
      .map((f) => f.properties.code));
    expect(outlined.includes(COMPOUND), `the compound grid is not outlined on the map (${JSON.stringify(outlined)})`);
    // The compound grid and its micro-grids in view in the table for the screenshot.
    await page.locator(`#children-table tbody tr[data-code="${COMPOUND}"]`).evaluate((tr) => {
      const wrap = tr.closest('.table-wrap');
      wrap.scrollTop += tr.getBoundingClientRect().top - wrap.getBoundingClientRect().top - tr.closest('table').tHead.offsetHeight;
    });
    await page.screenshot({ path: shot('editor-edit.png') });
    const changedEntries = children.filter((c) => c.status === 'changed');
    pass(`${gridEntries.length} grids (${COMPOUND} ${compound.matched_by}) + ${microEntries.length} micro-grids; `
      + `${changedEntries.length} changed; ${ed.check.issues.length} issues, none blocking`);

    check(`merging the four micro-grid faces of ${COMPOUND} into one: the check blocks it, as publishing would`);
    await page.locator('#tool-merge').click();
    const pickedMicro = await page.evaluate((codes) => window.editor.selectForMerge(codes), COMPOUND_MICRO);
    expect(pickedMicro.length === 4, `picked ${JSON.stringify(pickedMicro)}`);
    await page.locator('#merge-apply').click();
    await page.waitForFunction(() => window.editor.state.edit.tool === 'select');
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    const merged = ed.check.children.find((c) => c.code === COMPOUND);
    expect(merged?.matched_by === 'overlap' && merged.feature != null, `${COMPOUND} after the merge: ${JSON.stringify(merged)}`);
    expect(!ed.check.children.some((c) => c.level === 'micro_grid'), `micro-grid entries left: ${describe(ed.check)}`);
    const blocking = ed.check.issues.filter((i) => i.blocking);
    expect(!ed.check.publishable && blocking.length > 0, `check after the merge: ${describe(ed.check)}`);
    expect(blocking.every((i) => i.message.startsWith(`${COMPOUND} is redrawn but its current micro-grids no longer fit it`)),
      `blocking messages ${JSON.stringify(blocking.map((i) => i.message))}`);
    expect(!ed.publishEnabled && ed.status === '不可发布', `publish enabled ${ed.publishEnabled}, status "${ed.status}"`);
    const listedBlocking = await page.locator('#edit-report .issue-list li.blocking').count();
    expect(listedBlocking === blocking.length, `${listedBlocking} blocking issues listed for ${blocking.length}`);
    await mapIdle(page);
    await page.screenshot({ path: shot('editor-blocked.png') });
    // Undo: leave editing and accept the review again.
    await page.locator('#scope-back').click();
    await page.waitForFunction(() => window.editor.state.stage === 'review');
    await page.locator('#accept-button').click();
    await page.waitForFunction(() => window.editor.state.stage === 'edit' && window.editor.state.edit?.check !== null);
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    expect(ed.check.publishable && ed.check.children.length === children.length, `after accepting again: ${describe(ed.check)}`);
    children = ed.check.children;
    pass(`${blocking.length} blocking issues (${[...new Set(blocking.map((i) => i.kind))].join(', ')}), publish disabled; accepted again`);

    check('publish through the button: 201, the grids and the compound\'s micro-grids are version 2 on the map');
    await page.locator('#publish-button').click();
    await page.evaluate(() => window.editor.published());
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    if (ed.publication?.publication?.id == null) {
      fail(`no publication: ${JSON.stringify(ed.publication)}; banner: ${await page.locator('#error-banner').isVisible() ? await page.locator('#error-text').innerText() : 'none'}; `
        + `problems: ${JSON.stringify(await page.evaluate(() => window.editor.state.edit.rejected))}`);
    }
    const summary = ed.publication.summary;
    const changedCodes = children.filter((c) => c.status === 'changed').map((c) => c.code);
    expect(summary.new_versions === changedCodes.length && summary.created === 0 && summary.retired === 0,
      `summary ${JSON.stringify(summary)} for ${changedCodes.length} changed`);
    const resultText = await page.locator('#publish-result').innerText();
    expect(resultText.includes(String(summary.new_versions)), `publish result shows "${resultText}"`);
    await mapIdle(page);
    const versions = await page.evaluate(() => {
      const out = {};
      for (const f of window.editor.map.queryRenderedFeatures({ layers: ['regions-grid', 'regions-micro_grid'] })) out[f.properties.code] = f.properties.version;
      return out;
    });
    for (const code of changedCodes) expect(versions[code] === 2, `${code} is version ${versions[code]} on the map`);
    for (const code of COMPOUND_MICRO) expect(versions[code] === 2, `micro-grid ${code} is version ${versions[code]} on the map`);
    // Reloaded from the server: the community's grids as they are now, nothing to publish.
    expect(ed.check && ed.check.children.length === 15 && ed.check.children.every((c) => c.status === 'unchanged'),
      `after publishing: ${describe(ed.check)}`);
    expect(!ed.check.publishable && ed.check.issues.length === 0, `nothing changed: ${describe(ed.check)}`);
    expect(!ed.publishEnabled, 'the publish button stays enabled with nothing to publish');
    expect(ed.status === '没有改动', `check status reads "${ed.status}"`);
    await page.screenshot({ path: shot('editor-published.png') });
    pass(`${JSON.stringify(summary)}, published at ${ed.publication.publication.published_at}`);

    check(`split ${SPLIT_GRID}, a grid without micro-grids, into micro-grids with a drawn line; publish; locate finds one`);
    const splitHasMicro = await page.evaluate((code) => window.editor.state.regions.features.some((f) => f.properties.parent_code === code), SPLIT_GRID);
    expect(!splitHasMicro, `${SPLIT_GRID} already has micro-grids`);
    const gridGeom = await page.evaluate((code) => window.editor.state.regions.features.find((f) => f.properties.code === code).geometry, SPLIT_GRID);
    const mid = interiorPoint(gridGeom);
    // Select the grid with a real click, then the split tool.
    const click = await toScreen(page, mid);
    await page.mouse.click(click.x, click.y);
    await page.waitForFunction(() => window.editor.state.edit.selected !== null);
    const selectedCode = await page.evaluate(() => window.editor.draw.getSnapshotFeature(window.editor.state.edit.selected).properties.code);
    expect(selectedCode === SPLIT_GRID, `the click selected ${selectedCode}`);
    await page.locator('#tool-split').click();
    await page.waitForFunction((code) => window.editor.state.edit?.scope.code === code && window.editor.state.edit.tool === 'cut', SPLIT_GRID);
    await page.evaluate(() => window.editor.checked());
    await mapIdle(page);
    const scopeTitle = await page.locator('#scope-title').innerText();
    expect(scopeTitle.includes('微网格'), `scope title "${scopeTitle}"`);
    // A line right across the grid, through the interior point, drawn by clicks (the last one twice).
    const ring = (gridGeom.type === 'Polygon' ? gridGeom.coordinates : gridGeom.coordinates[0])[0];
    const xs = ring.map((c) => c[0]);
    const margin = (Math.max(...xs) - Math.min(...xs)) * 0.08;
    const a = await toScreen(page, [Math.min(...xs) - margin, mid[1]]);
    const b = await toScreen(page, [Math.max(...xs) + margin, mid[1] + 0.0002]);
    await page.mouse.click(a.x, a.y);
    await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2);
    await page.mouse.move(b.x, b.y);
    await page.mouse.click(b.x, b.y);
    await page.waitForTimeout(150);
    await page.mouse.click(b.x, b.y);
    await page.waitForFunction(() => window.editor.state.edit.tool === 'select');
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    const created = ed.check?.children.filter((c) => c.status === 'new') ?? [];
    if (!ed.check?.publishable || created.length < 2) fail(`check after the split: ${ed.check ? describe(ed.check) : 'none'}`);
    expect(ed.check.child_level === 'micro_grid', `child level ${ed.check.child_level}`);
    expect(ed.check.children.every((c) => c.level === 'micro_grid' && c.parent_code === SPLIT_GRID), `split children: ${describe(ed.check)}`);
    expect(ed.publishEnabled, 'the publish button is disabled after the split');
    await page.locator('#publish-button').click();
    await page.evaluate(() => window.editor.published());
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    const newCodes = (ed.publication?.children ?? []).filter((c) => c.status === 'new').map((c) => c.code);
    expect(newCodes.length >= 2 && newCodes.every((c) => /^\d{17}$/.test(c) && c.startsWith(SPLIT_GRID)), `new micro-grid codes ${JSON.stringify(newCodes)}`);
    const target = newCodes[newCodes.length - 1];
    const targetGeom = await page.evaluate((code) => window.editor.state.regions.features.find((f) => f.properties.code === code)?.geometry ?? null, target);
    expect(targetGeom, `micro-grid ${target} is not among the regions the page reloaded`);
    const inside = interiorPoint(targetGeom);
    const answer = await page.evaluate(async ([lon, lat]) => (await fetch(`api/v1/locate?lon=${lon}&lat=${lat}`)).json(), inside);
    expect(answer.micro_grid?.code === target, `locate at ${inside} answers ${JSON.stringify(answer.micro_grid)} for ${target}`);
    expect(answer.grid?.code === SPLIT_GRID, `locate answers grid ${JSON.stringify(answer.grid)}`);
    await mapIdle(page);
    const microOnMap = await page.evaluate((code) => window.editor.map.queryRenderedFeatures({ layers: ['regions-micro_grid'] })
      .some((f) => f.properties.code === code), target);
    expect(microOnMap, `micro-grid ${target} is not drawn on the map`);
    await page.screenshot({ path: shot('editor-split.png') });
    pass(`${SPLIT_GRID} → new ${newCodes.join(', ')}; locate ${inside.map((v) => v.toFixed(6))} → ${answer.micro_grid.code}`);

    check('merging two adjacent grids reaches a check');
    await page.locator('#scope-back').click();
    await page.waitForFunction((code) => window.editor.state.edit?.scope.code === code, REGION);
    await page.evaluate(() => window.editor.checked());
    // Two grids sharing an edge (two or more vertices), neither of them one with micro-grids.
    const pair = await page.evaluate(() => {
      const codes = new Map(window.editor.state.edit.check.children.filter((c) => c.key != null).map((c) => [c.key, c.code]));
      const withMicro = new Set(window.editor.state.regions.features.map((f) => f.properties.parent_code));
      const feats = window.editor.draw.getSnapshot().filter((f) => f.properties.mode === 'grid' && codes.has(f.id) && !withMicro.has(codes.get(f.id)));
      for (let i = 0; i < feats.length; i++) {
        const mine = new Set(feats[i].geometry.coordinates[0].slice(0, -1).map(String));
        for (let j = i + 1; j < feats.length; j++) {
          const shared = feats[j].geometry.coordinates[0].slice(0, -1).filter((c) => mine.has(String(c))).length;
          if (shared >= 2) return [codes.get(feats[i].id), codes.get(feats[j].id)];
        }
      }
      return null;
    });
    expect(pair, 'no two grids share an edge');
    await page.locator('#tool-merge').click();
    const picked = await page.evaluate((codes) => window.editor.selectForMerge(codes), pair);
    expect(picked.length === 2, `picked ${JSON.stringify(picked)}`);
    await page.locator('#merge-apply').click();
    await page.waitForFunction(() => window.editor.state.edit.tool === 'select');
    await page.evaluate(() => window.editor.checked());
    ed = await editState(page);
    const byCode = new Map((ed.check?.children ?? []).map((c) => [c.code, c.status]));
    expect(byCode.get(pair[0]) === 'changed' && byCode.get(pair[1]) === 'retired',
      `after merging ${pair.join(' + ')}: ${JSON.stringify([...byCode])}`);
    pass(`${pair[0]} + ${pair[1]} → ${pair[0]} changed, ${pair[1]} retired; publishable ${ed.check.publishable}`);

    check('dragging a vertex shared by neighbouring grids moves it in all of them, then checks');
    // An inner corner where three or more grids meet, on a grid selected by a real click.
    const corner = await page.evaluate(() => {
      const feats = window.editor.draw.getSnapshot().filter((f) => f.properties.mode === 'grid');
      const count = new Map();
      for (const f of feats) for (const c of f.geometry.coordinates[0].slice(0, -1)) count.set(String(c), (count.get(String(c)) ?? 0) + 1);
      for (const f of feats) {
        const c = f.geometry.coordinates[0].find((q) => count.get(String(q)) >= 3);
        if (c) return { id: f.id, vertex: c, sharedBy: count.get(String(c)), geometry: f.geometry };
      }
      return null;
    });
    expect(corner, 'no vertex shared by three grids');
    const inGrid = await toScreen(page, interiorPoint(corner.geometry));
    await page.mouse.click(inGrid.x, inGrid.y);
    await page.waitForFunction((id) => window.editor.state.edit.selected === id, corner.id);
    const from = await toScreen(page, corner.vertex);
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    for (let i = 1; i <= 8; i++) await page.mouse.move(from.x + 2 * i, from.y + 1.5 * i);
    await page.mouse.up();
    await page.evaluate(() => window.editor.checked());
    const moved = await page.evaluate(({ id, old, before }) => {
      const feats = window.editor.draw.getSnapshot().filter((f) => f.properties.mode === 'grid');
      const at = (c) => feats.filter((f) => f.geometry.coordinates[0].some((q) => q[0] === c[0] && q[1] === c[1])).length;
      const was = new Set(before.map(String));
      const added = window.editor.draw.getSnapshotFeature(id).geometry.coordinates[0].slice(0, -1).filter((q) => !was.has(String(q)));
      const edit = window.editor.state.edit;
      return { left: at(old), added: added.length, newAt: added.length ? at(added[0]) : 0, checked: edit.check !== null && !edit.dirty };
    }, { id: corner.id, old: corner.vertex, before: corner.geometry.coordinates[0] });
    expect(moved.added === 1, `${moved.added} new vertices in the dragged grid`);
    expect(moved.left === 0, `${moved.left} grids still have the old corner`);
    expect(moved.newAt >= corner.sharedBy, `the moved corner is in ${moved.newAt} grids, was in ${corner.sharedBy}`);
    expect(moved.checked, 'no check after the drag');
    pass(`corner of ${corner.sharedBy} grids moved in all of them`);

    check('switching to English changes the labels');
    await page.locator('#lang-toggle').click();
    const en = await page.evaluate(() => ({
      h1: document.querySelector('h1').textContent,
      vectorise: document.querySelector('#vectorise-button').textContent,
      upload: document.querySelector('#upload-button').textContent,
      kind: document.querySelector('#fit-report .fit-kind')?.textContent,
      publish: document.querySelector('#publish-button').textContent,
      scope: document.querySelector('#scope-title').textContent,
      status: document.querySelector('#children-table tbody tr[data-status] .status')?.textContent ?? '',
      lang: document.documentElement.lang,
      stored: localStorage.getItem('gridwatch.lang'),
    }));
    expect(en.h1 === 'Sketch digitiser', `heading is "${en.h1}"`);
    expect(en.vectorise === 'Vectorise' && en.upload === 'Upload', `buttons read "${en.upload}", "${en.vectorise}"`);
    expect(en.lang === 'en' && en.stored === 'en', `lang ${en.lang}, stored ${en.stored}`);
    expect(!/[\u4e00-\u9fff]/.test(en.kind ?? ''), `fit kind still Chinese: ${en.kind}`);
    expect(en.publish === 'Publish new version', `publish button reads "${en.publish}"`);
    expect(en.scope.startsWith('Grids of '), `scope title reads "${en.scope}"`);
    expect(/^[A-Za-z]+$/.test(en.status), `status reads "${en.status}"`);
    await page.screenshot({ path: shot('editor-en.png') });
    pass(`${en.h1} / ${en.upload} / ${en.vectorise} / ${en.kind} / ${en.publish} / ${en.scope}`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
