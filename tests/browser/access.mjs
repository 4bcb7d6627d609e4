#!/usr/bin/env node
// Browser checks of log-in and region-scoped access in a real headless Chromium (Debian's
// /usr/bin/chromium): the street leader of 新华街道 logs in on the log-in page and sees only their
// street — in the dispatcher's console (queue and street filter) and on the dashboard — while a
// case of another street stays out of reach; a wrong password is refused on the page; logging out
// sends staff pages back to the log-in page.
//
// Usage: node tests/browser/access.mjs <base_url> <screenshot_dir>
//
// Needs a server started with `--demo`. What the page shows is compared with what the API answers
// from Node: the admin's queue (every street) and the street leader's own.
// Prints one line per check; ends with a "N passed, N failed" line.
import { createChecks, DEMO_PASSWORD, launchChromium, parseArgs } from './harness.mjs';

const STREET = '150302001'; // 新华街道
const STREET_NAME = '新华街道';
const TIMEOUT_MS = 30_000;

const { baseUrl, origin, shot } = await parseArgs('access.mjs');
const { check, pass, fail, expect, watch, done, report, openReady } = createChecks(origin);

/** Logs in from Node and returns a GET helper carrying that session's cookie. */
async function apiAs(username) {
  const response = await fetch(`${baseUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: DEMO_PASSWORD }),
  });
  if (!response.ok) fail(`logging in as ${username} from Node: HTTP ${response.status}`);
  const cookie = (response.headers.get('set-cookie') ?? '').split(';')[0];
  return async (path) => {
    const r = await fetch(`${baseUrl}/api/v1/${path}`, { headers: { Cookie: cookie, Accept: 'application/json' } });
    return { status: r.status, body: await r.json().catch(() => null) };
  };
}

/** Every case of a queue, following the cursor. */
async function allCases(get, filter = '') {
  const ids = [];
  let cursor = null;
  do {
    const { status, body } = await get(`cases?limit=500${filter}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (status !== 200) fail(`GET /cases answered ${status}`);
    ids.push(...body.cases);
    cursor = body.next_cursor ?? null;
  } while (cursor);
  return ids;
}

async function main() {
  const admin = await apiAs('admin');
  const { body: grids } = await admin(`regions?level=grid&parent=${STREET}001`);
  const streetGrid = grids.features[0].properties.code;
  const leader = await apiAs('xinhua');
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'zh-CN' });
    const page = await context.newPage();
    // Watched from the first logged-in page on: until then the 401 of GET /session is expected.

    check('without logging in, the map is the public map');
    await openReady(page, `${baseUrl}/`);
    const visitor = await page.evaluate(() => ({
      visitor: document.body.dataset.visitor,
      logIn: document.querySelector('#log-in')?.getAttribute('href'),
      note: getComputedStyle(document.querySelector('#public-note')).display !== 'none',
      analysis: getComputedStyle(document.querySelector('.analysis-row')).display,
      dispatchLink: getComputedStyle(document.querySelector('a[href="dispatch.html"]')).display,
    }));
    expect(visitor.visitor === 'public' && visitor.logIn?.startsWith('login.html'), `visitor view: ${JSON.stringify(visitor)}`);
    expect(visitor.note && visitor.analysis === 'none' && visitor.dispatchLink === 'none',
      `public note shown, staff tools hidden: ${JSON.stringify(visitor)}`);
    const grid = streetGrid;
    await page.evaluate((code) => window.gridwatch.selectRegion(code), grid);
    await page.locator('#region-content [data-field="public-note"]').waitFor({ timeout: TIMEOUT_MS });
    const panel = await page.locator('#region-content').innerText();
    expect(!(await page.locator('#region-content [data-field="party-branch"]').count()), 'no party branch or staff for visitors');
    await page.locator('#region-content [data-field="trend-suppressed"]').waitFor({ timeout: TIMEOUT_MS });
    expect(!/(?<!\d)1[3-9]\d{9}(?!\d)/.test(panel), `no phone numbers in the panel: ${panel}`);
    const trend = await page.evaluate(async () => (await (await fetch('/api/v1/reports/trend?interval=month')).json()));
    expect(trend.suppressed_below === 3 && trend.buckets.every((b) => b.reports === 0 || b.reports >= 3),
      `the public trend hides small counts: ${JSON.stringify(trend).slice(0, 200)}`);
    await page.screenshot({ path: shot('access-public-map.png') });
    pass(`grid ${grid}: ${panel.split('\n').slice(0, 2).join(' ')}`);

    check('a staff page without a session goes to the log-in page');
    await page.goto(`${baseUrl}/dispatch.html`, { waitUntil: 'domcontentloaded' });
    await page.waitForURL(/\/login\.html\?next=dispatch\.html/, { timeout: TIMEOUT_MS });
    await page.locator('#username').waitFor({ timeout: TIMEOUT_MS });
    expect(!(await page.locator('#change-form').isVisible()), 'the password change form waits for a one-time password');
    await page.screenshot({ path: shot('access-login.png') });
    pass(new URL(page.url()).search);

    check('a wrong password is refused on the page, without saying which part was wrong');
    await page.fill('#username', 'xinhua');
    await page.fill('#password', 'not the password');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor({ state: 'visible', timeout: TIMEOUT_MS });
    const refusal = await page.locator('#login-error').innerText();
    expect(/wrong username or password/.test(refusal), `refusal shown: ${refusal}`);
    expect(new URL(page.url()).pathname === '/login.html', `stayed on the log-in page: ${page.url()}`);
    pass(refusal);

    check('the street leader logs in and is sent back to the console');
    await page.fill('#password', DEMO_PASSWORD);
    const queueAnswer = page.waitForResponse((r) => /\/api\/v1\/cases\?/.test(r.url()), { timeout: TIMEOUT_MS });
    await page.click('#login-submit');
    await page.waitForURL(/\/dispatch\.html/, { timeout: TIMEOUT_MS });
    watch(page);
    await openReady(page, page.url());
    const badge = await page.locator('#session-user').innerText({ timeout: TIMEOUT_MS });
    expect(badge.includes(STREET_NAME) && badge.includes('李娜'), `the top bar names the user and street: ${badge}`);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'gw_session');
    expect(session?.httpOnly && session.sameSite === 'Lax', `session cookie HttpOnly, SameSite=Lax: ${JSON.stringify(session)}`);
    pass(badge);

    check("the queue holds only the street's cases, and fewer than the city's");
    const everyCase = await allCases(admin);
    const streetCases = everyCase.filter((c) => c.street?.code === STREET);
    const elsewhere = everyCase.filter((c) => c.street && c.street.code !== STREET);
    expect(elsewhere.length > 0 && streetCases.length > 0, `demo cases in and outside the street: ${streetCases.length} / ${elsewhere.length}`);
    const own = await allCases(leader);
    expect(own.every((c) => c.street?.code === STREET), 'the API gives the leader only their street');
    expect(own.length === streetCases.length, `leader's queue ${own.length} = street's ${streetCases.length}`);
    // The page shows the first page of its queue; the same request from the API gives the
    // leader exactly those rows, and the admin cases of other streets too.
    const requested = new URL((await queueAnswer).url());
    const pageQuery = `cases${requested.search}`;
    const { body: firstPage } = await leader(pageQuery);
    const { body: cityPage } = await admin(pageQuery);
    expect(cityPage.cases.some((c) => c.street?.code !== STREET), `the city's ${pageQuery} has other streets`);
    await page.waitForFunction((n) => document.querySelectorAll('#case-list .case-row').length === n,
      firstPage.cases.length, { timeout: TIMEOUT_MS }).catch(() => {});
    const shown = await page.$$eval('#case-list .case-row', (rows) => rows.map((r) => Number(r.dataset.caseId)));
    const expected = firstPage.cases.map((c) => c.id);
    expect(JSON.stringify(shown) === JSON.stringify(expected), `rows ${shown.slice(0, 5)}… = API ${expected.slice(0, 5)}…`);
    const streetIds = new Set(streetCases.map((c) => c.id));
    expect(shown.every((id) => streetIds.has(id)), 'every row is a case of the street');
    await page.screenshot({ path: shot('access-street-leader-queue.png') });
    pass(`${pageQuery}: ${shown.length} rows shown; ${own.length} cases of ${STREET_NAME} against ${everyCase.length} in the city`);

    check('the street filter offers only their street');
    const options = await page.$$eval('#filter-street option', (os) => os.map((o) => o.value).filter(Boolean));
    expect(JSON.stringify(options) === JSON.stringify([STREET]), `street options: ${options}`);
    const all = await page.locator('#filter-street option[value=""]').innerText();
    expect(all === '本辖区全部', `the "all" option speaks of their region: ${all}`);
    pass(`${all}, ${options.join(',')}`);

    check("another street's case cannot be opened, by link or by asking");
    const away = elsewhere[0].id;
    page.removeAllListeners('console'); // the console logs the 404s asked for here
    const asked = await page.evaluate(async (id) => (await fetch(`/api/v1/cases/${id}`)).status, away);
    expect(asked === 404, `GET /cases/${away} from the page: ${asked}`);
    await page.goto('about:blank'); // a fresh load of the link, not a hash change
    await page.goto(`${baseUrl}/dispatch.html#case=${away}`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: TIMEOUT_MS });
    await page.waitForTimeout(500);
    const opened = await page.locator('#case-detail').getAttribute('data-case-id');
    expect(!opened, `the link opens no case: panel for "${opened}"`);
    const own404 = await leader(`cases/${away}`);
    expect(own404.status === 404, `API: ${own404.status}`);
    pass(`case ${away} of ${elsewhere[0].street.name}: 404, the link opens the queue`);
    watch(page);

    check("the dashboard asked for the district shows the leader's street");
    await openReady(page, `${baseUrl}/dashboard.html?region=150302`);
    const title = await page.locator('#region-title').innerText();
    expect(title.includes(STREET_NAME), `dashboard title: ${title}`);
    const { body: dash } = await leader('dashboard?region=150302');
    expect(dash.region.code === STREET, `API narrows it too: ${dash.region.code}`);
    await page.screenshot({ path: shot('access-street-leader-dashboard.png') });
    pass(title.replace(/\s+/g, ' '));

    check('logging out ends the session');
    await openReady(page, `${baseUrl}/dispatch.html`);
    page.removeAllListeners('console'); // from here on, 401s are what is expected
    await page.click('#log-out');
    await page.waitForURL(/\/login\.html/, { timeout: TIMEOUT_MS });
    const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    expect(after === 401, `GET /session after logging out: ${after}`);
    await page.goto(`${baseUrl}/dashboard.html`, { waitUntil: 'domcontentloaded' });
    await page.waitForURL(/\/login\.html\?next=dashboard\.html/, { timeout: TIMEOUT_MS });
    pass(new URL(page.url()).pathname);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
