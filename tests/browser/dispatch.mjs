#!/usr/bin/env node
// Browser checks of the dispatcher console 调度台 in a real headless Chromium (Debian's /usr/bin/chromium).
//
// Usage: node tests/browser/dispatch.mjs <base_url> <screenshot_dir>
//   e.g. node tests/browser/dispatch.mjs http://127.0.0.1:8080 target/screenshots
//
// Needs a server started with `--demo --controllable-clock`. The script files a report from Node and
// takes its case round the whole whistle loop 吹哨答卷 in the console: it must appear without a reload
// (by the event stream), be accepted and whistled, show a yellow card once the server clock is
// advanced past the hour, and be acknowledged, resolved, closed and rated. Clock advances add up on a
// shared server, so every time is compared with GET /api/v1/clock, never with the machine's clock.
//
// Prints one line per check and stops at the first failure with a non-zero exit code. Any uncaught
// page error, console error, or request to a host other than <base_url> fails the run too: the page
// must work without internet. Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { createChecks, launchChromium, logIn, parseArgs } from './harness.mjs';

const STEP_TIMEOUT_MS = 20_000;
// Shorter than the console's 15 s poll: what shows up within it came by the event stream.
const LIVE_TIMEOUT_MS = 10_000;
const PHONE = { width: 390, height: 844 };
const CJK = /[\u3400-\u9fff]/;
const STATS_COLUMNS = ['code', 'name', 'cases', 'closed', 'closure_rate', 'whistles', 'acknowledged_on_time', 'on_time_rate',
  'mean_ack_minutes', 'mean_resolve_hours', 'rated', 'satisfied', 'satisfaction_rate', 'overdue'];

const { baseUrl, origin, shot } = await parseArgs('dispatch.mjs');
const { check, pass, fail, expect, watch, done, report, openReady } = createChecks(origin);

/** The API from Node, as a resident's phone or the test rig would call it. */
async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${baseUrl}/api/v1/${path}`, {
    method,
    headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: the caller looks at the status */ }
  return { status: response.status, body: json, text };
}


/** Waits for a selector, failing the check with `what` rather than a bare timeout. */
async function waitFor(page, selector, what, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForSelector(selector, { timeout });
  } catch {
    fail(`${what} (no ${selector} within ${timeout / 1000} s)`);
  }
}

async function waitForState(page, id, state) {
  await waitFor(page, `#case-detail[data-case-id="${id}"][data-state="${state}"]`,
    `case ${id} did not reach "${state}" (it is "${await page.getAttribute('#case-detail', 'data-state')}"; ` +
    `message: ${await page.locator('#action-message').innerText().catch(() => '')})`);
}

/** Seconds shown by a timer: "1:02:03", or "2 天 1:02:03" / "2 d 1:02:03" past a day. */
function timerSeconds(text) {
  const m = /(?:(\d+)\s*(?:天|d)\s*)?(\d+):(\d\d):(\d\d)/.exec(text ?? '');
  if (!m) return null;
  return Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

/** Whether `needles` occur in `haystack` in that order (other entries may come between). */
function inOrder(haystack, needles) {
  let i = 0;
  for (const item of haystack) if (item === needles[i]) i += 1;
  return i === needles.length;
}

async function main() {
  const browser = await launchChromium(await logIn(baseUrl));
  try {
    const context = await browser.newContext({
      viewport: { width: 1366, height: 860 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', acceptDownloads: true,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page, 'desktop');

    check('console opens and reports ready, with the queue and live updates');
    await openReady(page, `${baseUrl}/dispatch.html`);
    const title = await page.title();
    expect(title === '调度台 · gridwatch', `unexpected page title ${JSON.stringify(title)}`);
    const overview = await page.evaluate(() => ({
      h1: document.querySelector('h1').textContent.trim(),
      live: document.querySelector('#live-status').dataset.live,
      rows: document.querySelectorAll('#case-list .case-row').length,
      counts: Object.fromEntries([...document.querySelectorAll('#state-counts [data-count-state]')]
        .map((chip) => [chip.dataset.countState, Number(chip.querySelector('b').textContent.replace(/\D/g, ''))])),
      streets: document.querySelectorAll('#filter-street option').length,
      mapLink: document.querySelector('.topbar a[href="./"]')?.textContent.trim(),
    }));
    expect(overview.h1 === '调度台', `heading reads ${JSON.stringify(overview.h1)}`);
    expect(overview.live === 'live', `event stream is not connected (live status "${overview.live}")`);
    const total = ['reported', 'accepted', 'whistled', 'acknowledged', 'resolved', 'closed', 'evaluated', 'rejected', 'merged']
      .reduce((sum, s) => sum + (overview.counts[s] ?? 0), 0);
    expect(total > 0, `the state counts add up to nothing: ${JSON.stringify(overview.counts)}`);
    expect(overview.streets > 1, 'the street filter lists no streets');
    expect(overview.mapLink, 'no link back to the map in the top bar');
    await page.screenshot({ path: shot('dispatch-overview.png') });
    pass(`${overview.rows} open cases listed, ${total} in all (${overview.counts.closed ?? 0} closed, ` +
      `${overview.counts.evaluated ?? 0} evaluated), ${overview.streets - 1} streets, stream live`);

    check('(a) a new report appears in the queue without a reload, with its routing reason');
    await page.evaluate(() => { window.__dispatchTestNoReload = true; });
    const eventsBefore = await page.evaluate(() => window.gridwatchDispatch.sseEvents);
    const stamp = new Date().toISOString().slice(11, 19);
    const filed = await api('reports', {
      method: 'POST',
      body: { category: 'fire_lane_blocked', lon: 106.8405, lat: 39.6720, source: 'resident', description: `浏览器测试：消防通道被电动车和杂物堵塞（${stamp}）` },
    });
    expect(filed.status === 201, `POST /reports answered ${filed.status}: ${filed.text.slice(0, 300)}`);
    const id = filed.body?.case_id;
    const why = filed.body?.routing?.why_zh;
    expect(Number.isInteger(id), `POST /reports gave no case_id: ${filed.text.slice(0, 300)}`);
    expect(typeof why === 'string' && why.length > 0, `POST /reports gave no routing.why: ${filed.text.slice(0, 300)}`);
    const row = `#case-list .case-row[data-case-id="${id}"]`;
    await waitFor(page, row, `case ${id} did not appear in the queue by the event stream`, LIVE_TIMEOUT_MS);
    const shown = await page.evaluate((sel) => {
      const node = document.querySelector(sel);
      return {
        noReload: window.__dispatchTestNoReload === true,
        events: window.gridwatchDispatch.sseEvents,
        why: node.querySelector('[data-field=why]')?.textContent.trim(),
        state: node.dataset.state,
        text: node.textContent,
        first: document.querySelector('#case-list .case-row')?.dataset.caseId,
      };
    }, row);
    expect(shown.noReload, 'the page was reloaded');
    expect(shown.events > eventsBefore, `no event arrived on the stream (${eventsBefore} → ${shown.events})`);
    expect(shown.why === why, `the row shows the reason ${JSON.stringify(shown.why)}, the server gave ${JSON.stringify(why)}`);
    expect(shown.state === 'reported', `the new case is "${shown.state}", not reported`);
    expect(shown.text.includes('消防通道堵塞'), `the row does not name the category: ${shown.text}`);
    expect(shown.first === String(id), `the new case is not first in the queue (first is #${shown.first})`);
    const created = await api(`cases/${id}`);
    expect(created.status === 200, `GET /cases/${id} answered ${created.status}`);
    const place = [created.body.street?.name, created.body.community?.name, created.body.grid?.name].filter(Boolean);
    expect(place.length && place.every((name) => shown.text.includes(name)), `the row does not show the place ${place.join(' · ')}: ${shown.text}`);
    pass(`case #${id} at ${place.join(' · ')} arrived by the stream; why: ${why}`);

    check('(b) accepted as complex and whistled: a whistle row with running timers and no card');
    await page.locator(`${row} .case-row-btn`).click();
    await waitFor(page, `#case-detail[data-case-id="${id}"] [data-action="accept"]`, 'the case detail shows no accept button');
    const detailWhy = await page.locator('[data-section=routing] [data-field=why]').innerText();
    expect(detailWhy.includes(why), `the detail's routing reason reads ${JSON.stringify(detailWhy)}`);
    const mapShown = await page.waitForFunction((caseId) => {
      const { caseMap: map, state } = window.gridwatchDispatch;
      return Boolean(map && state.caseMapCaseId === caseId && map.loaded()
        && map.queryRenderedFeatures({ layers: ['case-point'] }).some((f) => f.properties.id === caseId));
    }, id, { timeout: STEP_TIMEOUT_MS }).then(() => true).catch(() => false);
    expect(mapShown, 'the case map does not show the case point');
    // The grid's outline arrives after the point (its community's grids are fetched first).
    const gridCode = created.body.grid?.code ?? null;
    const gridOnMap = await page.waitForFunction((code) => {
      const map = window.gridwatchDispatch.caseMap;
      const shown = map.querySourceFeatures('case-grid').map((f) => f.properties.code)[0] ?? null;
      return (code === null || shown === code) ? (shown ?? 'none') : false;
    }, gridCode, { timeout: STEP_TIMEOUT_MS }).then((h) => h.jsonValue()).catch(async () => page.evaluate(() =>
      window.gridwatchDispatch.caseMap.querySourceFeatures('case-grid').map((f) => f.properties.code)[0] ?? null));
    expect(!gridCode || gridOnMap === gridCode, `the map outlines grid ${gridOnMap}, the case is in ${gridCode}`);
    await page.locator('#triage-difficulty').selectOption('complex');
    if (created.body.routing?.lead?.kind !== 'department') {
      // The proposal leaves it to the community: name a department so there is someone to whistle.
      await page.locator('.triage-override summary').click();
      await page.locator('#triage-lead').selectOption('fire_rescue');
    }
    await page.screenshot({ path: shot('dispatch-triage.png') });
    await page.locator('[data-action="accept"]').click();
    await waitForState(page, id, 'accepted');
    await page.locator('[data-action="whistle"]').click();
    await waitForState(page, id, 'whistled');
    const whistles = await page.evaluate(() => [...document.querySelectorAll('#whistle-list .whistle-row')].map((w) => ({
      department: w.dataset.department, card: w.dataset.card,
      elapsed: w.querySelector('[data-field=elapsed]')?.textContent, countdown: w.querySelector('[data-field=countdown]')?.textContent,
    })));
    expect(whistles.length > 0, 'no whistle row after whistling');
    expect(whistles.every((w) => w.card === 'none'), `a card shows right after the whistle: ${JSON.stringify(whistles)}`);
    expect(await page.locator('#case-detail [data-card="yellow"], #case-detail [data-card="red"]').count() === 0, 'a card badge shows right after the whistle');
    const firstElapsed = timerSeconds(whistles[0].elapsed);
    expect(firstElapsed !== null && firstElapsed < 300, `the whistle's elapsed timer reads ${JSON.stringify(whistles[0].elapsed)}`);
    expect(timerSeconds(whistles[0].countdown) !== null, `the whistle shows no countdown to the next step (${JSON.stringify(whistles[0].countdown)})`);
    await page.waitForTimeout(2100);
    const laterElapsed = timerSeconds(await page.locator('#whistle-list .whistle-row [data-field=elapsed]').first().textContent());
    expect(laterElapsed > firstElapsed, `the elapsed timer does not run (${firstElapsed} s → ${laterElapsed} s)`);
    await waitFor(page, '#notice-list li', 'no notice listed after the whistle (notice 1 goes out at once)');
    const noticeCount = await page.locator('#notice-list li').count();
    pass(`${whistles.map((w) => w.department).join(', ')} whistled; elapsed ${whistles[0].elapsed} → ${laterElapsed} s, ` +
      `next step in ${whistles[0].countdown}; ${noticeCount} notice(s); grid on map ${gridOnMap ?? 'none'}`);

    // The SMS gateway confirms notice 1 with its own key; the console shows it at its next refresh.
    const smsKey = process.env.GRIDWATCH_TEST_SMS_KEY;
    expect(smsKey, 'no SMS gateway key was made for this run (GRIDWATCH_TEST_SMS_KEY)');
    const sentNotices = await api(`cases/${id}/notices`);
    const notice1 = (sentNotices.body ?? []).find((n) => n.kind === 'whistle_notice');
    expect(notice1, `no whistle notice among ${sentNotices.text.slice(0, 300)}`);
    const receipt = await fetch(`${baseUrl}/api/v1/notices/${encodeURIComponent(notice1.id)}/receipt`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${smsKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ status: 'delivered', detail: '网关回执 88120' }),
    });
    expect(receipt.status === 200, `the gateway's receipt answered ${receipt.status}: ${(await receipt.text()).slice(0, 200)}`);

    check('(c) 61 minutes later on the server clock a yellow card shows without a reload');
    const clockBefore = await api('clock');
    expect(clockBefore.status === 200, `GET /clock answered ${clockBefore.status}`);
    const advanced = await api('clock/advance', { method: 'POST', body: { minutes: 61 } });
    expect(advanced.status === 200, `POST /clock/advance answered ${advanced.status} (is the server running with --controllable-clock?): ${advanced.text.slice(0, 200)}`);
    const gained = (Date.parse(advanced.body.now) - Date.parse(clockBefore.body.now)) / 60000;
    expect(gained >= 60.9, `the server clock moved ${gained.toFixed(1)} minutes, not 61`);
    const yellow = `#whistle-list .whistle-row[data-card="yellow"]`;
    try {
      await page.waitForSelector(yellow, { timeout: LIVE_TIMEOUT_MS });
    } catch {
      const cards = await page.evaluate(() => [...document.querySelectorAll('#whistle-list .whistle-row')].map((w) => w.dataset.card));
      fail(`no yellow card within ${LIVE_TIMEOUT_MS / 1000} s of the advance (whistle cards: ${cards.join(', ')})`);
    }
    // The queue row and the header are redrawn from their own fetches: give them the same time.
    await page.waitForFunction((sel) => document.querySelector('#detail-header [data-card="yellow"]')
      && document.querySelector(sel)?.dataset.card === 'yellow', row, { timeout: LIVE_TIMEOUT_MS }).catch(() => {});
    const carded = await page.evaluate((sel) => ({
      noReload: window.__dispatchTestNoReload === true,
      header: document.querySelector('#detail-header [data-card="yellow"]')?.textContent.trim(),
      row: document.querySelector(sel)?.dataset.card,
      rowBadge: document.querySelector(`${sel} .card-badge`)?.textContent.trim(),
      elapsed: document.querySelector('#whistle-list .whistle-row[data-card="yellow"] [data-field=elapsed]')?.textContent,
      offset: Number(document.querySelector('#server-clock').dataset.offsetMinutes),
    }), row);
    expect(carded.noReload, 'the page was reloaded');
    expect(carded.header === '黄牌', `the case header shows no yellow card (${JSON.stringify(carded.header)})`);
    expect(carded.row === 'yellow' && carded.rowBadge === '黄牌', `the queue row shows no yellow card (${carded.row}, ${carded.rowBadge})`);
    const elapsedNow = timerSeconds(carded.elapsed);
    expect(elapsedNow >= 61 * 60, `the elapsed timer reads ${carded.elapsed}, not past 61 minutes: is it computed on the server clock?`);
    expect(carded.offset >= (clockBefore.body.offset_minutes ?? 0) + 61, `the console's clock offset is ${carded.offset} min, the server's ${advanced.body.offset_minutes}`);
    const received = `#notice-list li[data-notice-kind="whistle_notice"][data-status="received"]`;
    await waitFor(page, received, 'notice 1 does not show the gateway\'s delivered receipt');
    const receiptText = await page.locator(received).first().textContent();
    expect(receiptText.includes('短信已送达') && receiptText.includes('网关回执 88120'),
      `notice 1 reads ${JSON.stringify(receiptText)}: no 短信已送达 with the gateway's reference`);
    await page.screenshot({ path: shot('dispatch-yellow-card.png') });
    pass(`yellow card on the whistle, the case header and the queue row; elapsed ${carded.elapsed}; clock offset ${carded.offset} min; ` +
      `notice 1 shows the gateway's receipt`);

    check('(d) acknowledged, resolved, closed and rated 5 stars: evaluated, every step in the history');
    for (let i = 0; i < 10; i++) {
      const button = page.locator('#whistle-list [data-action="acknowledge"]').first();
      if (!(await button.count())) break;
      const department = await button.getAttribute('data-department');
      await button.click();
      await waitFor(page, `#whistle-list .whistle-row[data-department="${department}"][data-acknowledged="true"]`, `the acknowledgement of ${department} is not shown`);
    }
    await waitForState(page, id, 'acknowledged');
    const keptCard = await page.locator('#whistle-list .whistle-row[data-card="yellow"]').count();
    await page.locator('#resolve-answer').fill('已联系物业清理通道内的电动车和杂物，消防通道恢复畅通，并在通道口设置禁停标识。');
    await page.locator('[data-action="resolve"]').click();
    await waitForState(page, id, 'resolved');
    const answer = await page.locator('[data-field=answer]').innerText();
    expect(answer.includes('消防通道恢复畅通'), `the answer is not shown (${JSON.stringify(answer)})`);
    await page.locator('[data-action="close"]').click();
    await waitForState(page, id, 'closed');
    await page.locator('[data-star="5"]').click();
    await page.locator('[data-action="evaluate"]').click();
    await waitForState(page, id, 'evaluated');
    const history = await page.evaluate(() => ({
      actions: [...document.querySelectorAll('#timeline [data-event-action]')].map((e) => e.dataset.eventAction),
      buttons: [...document.querySelectorAll('#detail-main [data-action]')].map((b) => b.dataset.action),
      stars: document.querySelector('[data-field=satisfaction]')?.textContent,
    }));
    const loop = ['accept', 'whistle', 'acknowledge', 'resolve', 'close', 'evaluate'];
    expect(inOrder(history.actions, loop), `the history does not list ${loop.join(' → ')}: ${history.actions.join(', ')}`);
    expect(history.buttons.length === 0, `buttons for actions still show on an evaluated case: ${history.buttons.join(', ')}`);
    expect((history.stars ?? '').includes('★★★★★'), `the rating is not shown (${JSON.stringify(history.stars)})`);
    const serverSide = await api(`cases/${id}`);
    expect(serverSide.body?.state === 'evaluated' && serverSide.body?.satisfaction === 5,
      `the server has the case as ${serverSide.body?.state} with satisfaction ${serverSide.body?.satisfaction}`);
    await page.screenshot({ path: shot('dispatch-evaluated.png') });
    pass(`history: ${history.actions.join(' → ')}; ${keptCard} whistle(s) keep their yellow card after the answer`);

    check('(e) an illegal action is refused with 409 and the allowed actions, and the console shows why');
    const illegal = await api(`cases/${id}/actions`, { method: 'POST', body: { action: 'close' } });
    expect(illegal.status === 409, `closing an evaluated case answered ${illegal.status}: ${illegal.text.slice(0, 300)}`);
    const refusal = illegal.body?.error;
    expect(refusal?.code === 'illegal_transition', `409 error code is ${JSON.stringify(refusal?.code)}`);
    expect(Array.isArray(refusal?.allowed), `409 has no "allowed" list: ${illegal.text.slice(0, 300)}`);
    expect(typeof refusal?.message === 'string' && refusal.message.length > 0, '409 has no message');
    // Chromium logs every 4xx response as a console error, so the refusal is provoked in a page of
    // its own, which is watched for page errors only.
    const probe = await context.newPage();
    const probeErrors = [];
    probe.on('pageerror', (err) => probeErrors.push(err.message));
    await openReady(probe, `${baseUrl}/dispatch.html#case=${id}`);
    await waitFor(probe, `#case-detail[data-case-id="${id}"][data-state="evaluated"]`, 'the probe page does not show the evaluated case');
    await probe.evaluate(() => window.gridwatchDispatch.act('close'));
    await waitFor(probe, '#action-message[data-kind="error"]', 'the console shows no message for a refused action');
    const shownRefusal = await probe.locator('#action-message').innerText();
    expect(shownRefusal.includes(refusal.message.trim()), `the console shows ${JSON.stringify(shownRefusal)}, the server said ${JSON.stringify(refusal.message)}`);
    expect(probeErrors.length === 0, `page errors: ${probeErrors.join('; ')}`);
    await probe.close();
    pass(`409 ${refusal.code}: "${refusal.message}", allowed [${refusal.allowed.join(', ')}]; shown in the console`);

    check('(f) figures: the table has rows and the CSV link downloads the header row');
    await page.locator('#tab-stats').click();
    await waitFor(page, '#stats-table tbody tr[data-code]', 'the figures table has no rows');
    const statsShown = await page.evaluate(() => ({
      headers: [...document.querySelectorAll('#stats-table thead th')].map((th) => th.textContent.trim()),
      rows: document.querySelectorAll('#stats-table tbody tr[data-code]').length,
      csv: document.querySelector('#stats-csv').href,
      fire: document.querySelector('#stats-table tbody tr[data-code="fire_rescue"]')?.textContent,
    }));
    for (const heading of ['办结率', '按时应哨率', '满意率', '超时']) {
      expect(statsShown.headers.some((h) => h.startsWith(heading)), `no "${heading}" column: ${statsShown.headers.join(' | ')}`);
    }
    expect(new URL(statsShown.csv).origin === origin && statsShown.csv.includes('format=csv'), `the CSV link is ${statsShown.csv}`);
    const csvResponse = await fetch(statsShown.csv);
    const csvText = (await csvResponse.text()).replace(/^\uFEFF/, '');
    const header = csvText.split(/\r?\n/)[0].split(',').map((x) => x.trim().replace(/^"|"$/g, ''));
    expect(csvResponse.ok, `the CSV link answered ${csvResponse.status}`);
    expect(csvText.startsWith('code,name,cases'), `the CSV starts with ${JSON.stringify(csvText.slice(0, 80))}`);
    const missing = STATS_COLUMNS.filter((col) => !header.includes(col));
    expect(missing.length === 0, `the CSV header lacks ${missing.join(', ')}: ${header.join(',')}`);
    const byStreet = page.waitForResponse((r) => r.url().includes('/api/v1/dispatch/stats') && r.url().includes('by=street'));
    await page.locator('#stats-by').selectOption('street');
    expect((await byStreet).ok(), 'the figures by street failed');
    await page.waitForFunction(() => [...document.querySelectorAll('#stats-table tbody tr[data-code]')].some((tr) => /^\d{9}$/.test(tr.dataset.code)));
    const streetRows = await page.locator('#stats-table tbody tr[data-code]').count();
    await page.screenshot({ path: shot('dispatch-stats.png') });
    pass(`${statsShown.rows} department rows, ${streetRows} street rows; CSV ${csvText.split('\n').length - 1} data lines, header ${header.length} columns`);

    check('(g) packages, routing rules (add, preview, delete) and the escalation policy');
    await page.locator('#tab-packages').click();
    await waitFor(page, '#proposals-table tbody tr', 'the package proposals table is empty');
    const proposals = await page.locator('#proposals-table tbody tr[data-street]').count();
    await page.locator('#tab-rules').click();
    await waitFor(page, '#rules-table tbody tr', 'the routing rules table is empty');
    const rulesBefore = (await api('routing-rules')).body ?? [];
    const streets = (await api('regions?level=street')).body?.features?.map((f) => f.properties.code) ?? [];
    const categoryCodes = ((await api('categories')).body ?? []).map((c) => c.code);
    const ruleCategory = categoryCodes.includes('charging_wanted') ? 'charging_wanted' : categoryCodes.at(-1);
    const street = streets.reverse().find((code) => !rulesBefore.some((r) => r.category === ruleCategory && r.territory?.code === code));
    expect(street, `every street already has a ${ruleCategory} rule`);
    await page.locator('#rule-new').click();
    await page.locator('#rule-category').selectOption(ruleCategory);
    await page.locator('#rule-territory').selectOption(street);
    await page.locator('#rule-lead').selectOption('power_supply');
    await page.locator('#rule-note').fill('浏览器测试规则');
    const createdRule = page.waitForResponse((r) => r.url().endsWith('/api/v1/routing-rules') && r.request().method() === 'POST');
    await page.locator('#rule-save').click();
    const ruleResponse = await createdRule;
    expect(ruleResponse.status() === 201, `creating a rule answered ${ruleResponse.status()}: ${await ruleResponse.text()}`);
    const rule = await ruleResponse.json();
    await waitFor(page, `#rules-table tr[data-rule-id="${rule.id}"]`, `rule #${rule.id} is not listed`);
    // The preview: a click on the map fills in the position, then the fire-lane case's point.
    const box = await page.locator('#preview-map canvas').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForFunction(() => document.querySelector('#preview-lon').value !== '' && document.querySelector('#preview-result dl'));
    await page.locator('#preview-lon').fill('106.8405');
    await page.locator('#preview-lat').fill('39.6720');
    await page.locator('#preview-category').selectOption('fire_lane_blocked');
    const previewed = page.waitForResponse((r) => r.url().includes('/api/v1/routing/preview') && r.url().includes('lon=106.8405'));
    await page.locator('#preview-run').click();
    expect((await previewed).ok(), 'the routing preview failed');
    const expected = await api('routing/preview?lon=106.8405&lat=39.6720&category=fire_lane_blocked');
    await page.waitForFunction((w) => document.querySelector('#preview-result [data-field=why]')?.textContent.trim() === w, expected.body?.routing?.why_zh)
      .catch(async () => fail(`the preview shows ${JSON.stringify(await page.locator('#preview-result').innerText())}, ` +
        `the server's reason is ${JSON.stringify(expected.body?.routing?.why_zh)}`));
    await page.screenshot({ path: shot('dispatch-rules.png') });
    const deleteButton = page.locator(`#rules-table tr[data-rule-id="${rule.id}"] [data-action="delete-rule"]`);
    await deleteButton.click();
    await deleteButton.click(); // the second click confirms
    await page.waitForSelector(`#rules-table tr[data-rule-id="${rule.id}"]`, { state: 'detached' })
      .catch(() => fail(`rule #${rule.id} is still listed after deleting it`));
    const rulesAfter = (await api('routing-rules')).body ?? [];
    expect(!rulesAfter.some((r) => r.id === rule.id), `rule #${rule.id} still exists on the server`);
    await page.locator('#tab-escalation').click();
    const policy = (await api('escalation-policy')).body;
    await waitFor(page, '#escalation-table tbody tr[data-step]', 'the escalation policy table is empty');
    const steps = await page.locator('#escalation-table tbody tr[data-step]').count();
    expect(steps === policy.steps.length, `the policy table has ${steps} rows, the policy ${policy.steps.length} steps`);
    const yellowStep = await page.locator('#escalation-table tr[data-card="yellow"]').innerText();
    expect(yellowStep.includes('黄牌'), `the yellow-card step reads ${JSON.stringify(yellowStep)}`);
    pass(`${proposals} package proposal(s); rule #${rule.id} added, listed and deleted; preview: ${expected.body?.routing?.why}; ` +
      `${steps} escalation steps (${yellowStep.replace(/\s+/g, ' ').trim()})`);

    check('(h) switching to English translates the console');
    await page.locator('#tab-cases').click();
    await page.locator('#lang-toggle').click();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    const english = await page.evaluate(() => ({
      title: document.title,
      h1: document.querySelector('h1').textContent.trim(),
      tabs: [...document.querySelectorAll('.tab')].map((t) => t.textContent.trim()),
      headings: [...document.querySelectorAll('#case-detail h3')].map((h) => h.textContent.trim()),
      state: document.querySelector('#detail-header .state-badge')?.textContent.trim(),
      chrome: [...document.querySelectorAll('.topbar, .tabs, .queue-filters, .state-counts, #case-detail h3, #case-detail button, #case-detail dt, .whistle-times, th')]
        .map((n) => n.textContent).join(' '),
    }));
    expect(english.h1 === 'Dispatch console' && english.title.startsWith('Dispatch console'), `the heading reads ${JSON.stringify(english.h1)}`);
    expect(english.tabs.includes('Figures') && english.tabs.every((t) => !CJK.test(t)), `tabs not in English: ${english.tabs.join(' | ')}`);
    expect(english.headings.length > 0 && english.headings.every((h) => !CJK.test(h)), `case headings not in English: ${english.headings.join(' | ')}`);
    expect(english.state === 'Evaluated', `the state badge reads ${JSON.stringify(english.state)}`);
    const untranslated = english.chrome.match(/\b[a-z]+(?:_[a-z]+)+\b/g);
    expect(!untranslated, `untranslated keys on screen: ${[...new Set(untranslated ?? [])].join(', ')}`);
    await page.screenshot({ path: shot('dispatch-english.png') });
    await page.locator('#lang-toggle').click();
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    pass(`"调度台" → "${english.h1}", tabs ${english.tabs.join(' / ')}, state "${english.state}"`);

    check('phone-sized screen: the queue, then the case, each fit the width');
    const phone = await browser.newContext({
      viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const mobile = await phone.newPage();
    mobile.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(mobile, 'phone');
    await openReady(mobile, `${baseUrl}/dispatch.html?lang=zh`);
    await mobile.locator('#filter-state').selectOption('all');
    await waitFor(mobile, `#case-list .case-row[data-case-id="${id}"]`, 'the phone queue does not list the test case');
    const widths = () => mobile.evaluate(() => document.documentElement.scrollWidth);
    expect(await widths() <= PHONE.width, `the queue is wider than the phone (${await widths()} px)`);
    expect(!(await mobile.locator('#case-detail').isVisible()), 'the case pane shows beside the queue on a phone');
    await mobile.screenshot({ path: shot('dispatch-phone.png') });
    await mobile.locator(`#case-list .case-row[data-case-id="${id}"] .case-row-btn`).tap();
    await waitFor(mobile, `#case-detail[data-case-id="${id}"][data-state="evaluated"]`, 'tapping the case does not open it');
    expect(!(await mobile.locator('#queue').isVisible()), 'the queue still shows beside the case on a phone');
    expect(await mobile.locator('#detail-back').isVisible(), 'no way back to the queue on a phone');
    const headerBox = await mobile.locator('#detail-header h2').boundingBox();
    expect(headerBox && headerBox.x >= 0 && headerBox.x + headerBox.width <= PHONE.width + 1, 'the case heading does not fit the screen');
    expect(await widths() <= PHONE.width, `the case is wider than the phone (${await widths()} px)`);
    await mobile.waitForTimeout(500); // let the small map draw
    await mobile.screenshot({ path: shot('dispatch-phone-detail.png') });
    await mobile.locator('#detail-back').tap();
    expect(await mobile.locator('#queue').isVisible(), 'the back button does not return to the queue');
    await phone.close();
    pass(`queue and case each ${PHONE.width} px wide or less; back returns to the queue`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
