#!/usr/bin/env node
// Browser checks of the snap-and-report page 随手拍 in a real headless Chromium (Debian's /usr/bin/chromium),
// as a phone: 390 × 844, touch, device scale 2, location permission granted.
//
// Usage: node tests/browser/report.mjs <base_url> <screenshot_dir>
//   e.g. node tests/browser/report.mjs http://127.0.0.1:8080 target/screenshots
//
// Needs a server started with `--demo` (the Wuhai demo city). The script picks two demo grids and a
// point inside each (confirmed with GET /locate), puts the phone in the first, and then: (a) the page
// shows the tiles and where the phone's position goes; (b) a JPEG drawn in the page, with an EXIF GPS
// position in the second grid written into it here, is uploaded, its position offered and used, and
// the stored copy has no EXIF left; (c) a report is sent and the server has it exactly once; (d)
// offline, a report with a photo is queued and sent by itself once online; (e) when the first answer
// to a report with a photo is lost, the retry carries the same Idempotency-Key and files it once; (f)
// a text file named .jpg shows the server's 415 message, and a 422 keeps the form and names the
// field; (g) English; (h) the page opens offline from the service worker's cache, a report saved
// offline survives a reload, and a photo picked offline goes up once online; (i) without location
// permission a photo's position is used by itself and a tap on the map overrides it, at 360 px, and
// the form is a centred column on a desktop. Markers in the descriptions are unique per run, so the
// script can run again against the same server.
//
// Prints one line per check and stops at the first failure with a non-zero exit code. Any uncaught
// page error, console error, or request to a host other than <base_url> fails the run too: the page
// must work without internet. Chromium logs every failed request as a console error ("Failed to load
// resource"), so while a check provokes failures on purpose (offline, a lost answer, a 415) those
// lines alone are expected. Ends with a "N passed, N failed" line. Needs `npm install` in tests/.
import { createChecks, launchChromium, logIn, parseArgs } from './harness.mjs';

const STEP_TIMEOUT_MS = 20_000;
const QUEUE_TIMEOUT_MS = 40_000; // backoff starts at 2 s; a drain after 'online' takes a few
const PHONE = { width: 390, height: 844 };
const CJK = /[\u3400-\u9fff]/;
const FAILED_REQUEST = /Failed to load resource|net::ERR_/;

const { baseUrl, origin, shot } = await parseArgs('report.mjs');
const { check, pass, fail, expect, done, report, openReady } = createChecks(origin);

// ---------------------------------------------------------------------------------------------
// Watching the pages: the harness's rules, with failed requests allowed while a check asks for them.

const problems = [];
let tolerated = null;

function watchPage(page, label) {
  page.on('pageerror', (err) => problems.push(`[${label}] uncaught page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (tolerated && tolerated.test(msg.text())) return;
    problems.push(`[${label}] console error: ${msg.text()}`);
  });
  page.on('request', (request) => {
    const url = request.url();
    if (url.startsWith('data:') || url.startsWith('blob:')) return;
    if (new URL(url).origin !== origin) problems.push(`[${label}] request to another host: ${url}`);
  });
}

function passed(detail) {
  if (problems.length) fail(problems.splice(0).join('\n     '));
  pass(detail);
}

// ---------------------------------------------------------------------------------------------
// The API from Node, as the test rig sees the server

async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const json = body !== undefined && !(body instanceof Uint8Array);
  const response = await fetch(`${baseUrl}/api/v1/${path}`, {
    method,
    headers: { Accept: 'application/json', ...(json ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : json ? JSON.stringify(body) : body,
  });
  const text = await response.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { /* not JSON: the caller looks at the status */ }
  return { status: response.status, body: parsed, text, headers: response.headers };
}

async function locate(lon, lat) {
  const answer = await api(`locate?lon=${lon}&lat=${lat}&crs=wgs84`);
  expect(answer.status === 200, `GET /locate answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  return answer.body;
}

/** Reports whose description holds `marker`, among the newest 1000 (optionally within a region). */
async function reportsWith(marker, region) {
  const answer = await api(`reports?limit=1000${region ? `&region=${region}` : ''}`);
  expect(answer.status === 200, `GET /reports answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  return answer.body.reports.filter((r) => (r.description ?? '').includes(marker));
}

async function expectOnce(marker, region) {
  const all = await reportsWith(marker, null);
  expect(all.length === 1, `${all.length} reports hold the marker ${marker} (ids ${all.map((r) => r.id).join(', ')}), not exactly one`);
  if (region) {
    const inRegion = await reportsWith(marker, region);
    expect(inRegion.length === 1, `${inRegion.length} reports with the marker ${marker} in region ${region}`);
  }
  return all[0];
}

// ---------------------------------------------------------------------------------------------
// Test data: two demo grids, a point well inside each

function polygonsOf(geometry) {
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

/** The area centroid of the largest polygon's outer ring (the demo grids are convex quads). */
function interiorPoint(geometry) {
  let best = null;
  for (const polygon of polygonsOf(geometry)) {
    const ring = polygon[0];
    let a = 0, cx = 0, cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f;
      cx += (ring[j][0] + ring[i][0]) * f;
      cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (a !== 0 && (!best || Math.abs(a) > best.area)) best = { area: Math.abs(a), lon: cx / (3 * a), lat: cy / (3 * a) };
  }
  return best && { lon: Number(best.lon.toFixed(7)), lat: Number(best.lat.toFixed(7)) };
}

async function pickGrids() {
  const regions = await api('regions?level=grid');
  expect(regions.status === 200, `GET /regions?level=grid answered ${regions.status}`);
  const grids = regions.body.features.filter((f) => f.properties.level === 'grid')
    .sort((a, b) => a.properties.code.localeCompare(b.properties.code));
  expect(grids.length >= 2, `the demo has ${grids.length} grids`);
  const usable = async (feature) => {
    const point = interiorPoint(feature.geometry);
    if (!point) return null;
    const located = await locate(point.lon, point.lat);
    if (located.status !== 'inside' || located.grid?.code !== feature.properties.code || !located.party_branch) return null;
    return { ...point, code: feature.properties.code, community: feature.properties.parent_code, located };
  };
  // From the middle of the list, away from whatever the first grids of the data happen to be.
  let first = null;
  for (const feature of [...grids.slice(grids.length >> 1), ...grids]) {
    first = await usable(feature);
    if (first) break;
  }
  expect(first, 'no demo grid has an interior point that /locate puts inside it with a party branch');
  let second = null;
  for (const feature of grids) {
    const p = feature.properties;
    if (p.parent_code === first.community || p.name === first.located.grid.name) continue;
    second = await usable(feature);
    if (second) break;
  }
  expect(second, 'no second demo grid in another community');
  return [first, second];
}

// ---------------------------------------------------------------------------------------------
// Photos: a JPEG drawn in the page, and an EXIF GPS segment written into it here

/** An 800 × 600 JPEG of a street scene, drawn by the page's canvas; `label` makes its bytes unique. */
async function drawJpeg(page, label) {
  const dataUrl = await page.evaluate((text) => {
    const canvas = document.createElement('canvas');
    canvas.width = 800;
    canvas.height = 600;
    const g = canvas.getContext('2d');
    const sky = g.createLinearGradient(0, 0, 0, 360);
    sky.addColorStop(0, '#7fb3e6');
    sky.addColorStop(1, '#dcecf8');
    g.fillStyle = sky;
    g.fillRect(0, 0, 800, 360);
    g.fillStyle = '#9a9a92';
    g.fillRect(0, 360, 800, 240);
    g.fillStyle = '#c9b79c';
    g.fillRect(90, 90, 300, 270); // a block of flats
    g.fillStyle = '#5b6b7d';
    for (let y = 115; y < 340; y += 55) for (let x = 115; x < 370; x += 65) g.fillRect(x, y, 36, 30);
    g.strokeStyle = '#e6e6e0'; // the fire lane's markings
    g.lineWidth = 8;
    g.setLineDash([40, 30]);
    g.beginPath(); g.moveTo(470, 600); g.lineTo(560, 360); g.stroke();
    g.setLineDash([]);
    g.fillStyle = '#c0262d'; // an e-bike in the lane
    g.fillRect(520, 430, 150, 40);
    g.strokeStyle = '#222';
    g.lineWidth = 10;
    for (const x of [540, 650]) { g.beginPath(); g.arc(x, 490, 30, 0, Math.PI * 2); g.stroke(); }
    g.fillStyle = '#111';
    g.font = '28px sans-serif';
    g.fillText(text, 30, 570);
    return canvas.toDataURL('image/jpeg', 0.85);
  }, `gridwatch ${label} ${Date.now()}`);
  const jpeg = Buffer.from(dataUrl.split(',')[1], 'base64');
  expect(jpeg[0] === 0xff && jpeg[1] === 0xd8, 'the canvas did not give a JPEG');
  return jpeg;
}

/** Three RATIONALs, degrees / minutes / seconds (to a thousandth of a second, about 3 cm). */
function dmsRationals(value) {
  const v = Math.abs(value);
  const d = Math.floor(v);
  const minutes = (v - d) * 60;
  const m = Math.floor(minutes);
  const s = Math.round((minutes - m) * 60 * 1000);
  const out = Buffer.alloc(24);
  [[d, 1], [m, 1], [s, 1000]].forEach(([num, den], i) => {
    out.writeUInt32LE(num, i * 8);
    out.writeUInt32LE(den, i * 8 + 4);
  });
  return out;
}

/**
 * An APP1 "Exif" segment: a little-endian TIFF whose IFD0 holds only the GPS IFD pointer, and a
 * GPS IFD with GPSVersionID, GPSLatitudeRef 'N', GPSLatitude, GPSLongitudeRef 'E', GPSLongitude.
 */
function exifGpsSegment(lon, lat) {
  const tiff = Buffer.alloc(140);
  tiff.write('II', 0, 'latin1');
  tiff.writeUInt16LE(42, 2);
  tiff.writeUInt32LE(8, 4); // IFD0 at 8
  const entry = (at, tag, type, count, write) => {
    tiff.writeUInt16LE(tag, at);
    tiff.writeUInt16LE(type, at + 2);
    tiff.writeUInt32LE(count, at + 4);
    write(at + 8);
  };
  // IFD0 (8..26): one entry, GPSInfo (0x8825, LONG) → the GPS IFD at 26.
  tiff.writeUInt16LE(1, 8);
  entry(10, 0x8825, 4, 1, (v) => tiff.writeUInt32LE(26, v));
  tiff.writeUInt32LE(0, 22); // no next IFD
  // GPS IFD (26..92): five entries; the rationals follow at 92 (latitude) and 116 (longitude).
  tiff.writeUInt16LE(5, 26);
  entry(28, 0x0000, 1, 4, (v) => tiff.set([2, 3, 0, 0], v));             // GPSVersionID 2.3.0.0
  entry(40, 0x0001, 2, 2, (v) => tiff.write(lat >= 0 ? 'N\0' : 'S\0', v, 'latin1'));
  entry(52, 0x0002, 5, 3, (v) => tiff.writeUInt32LE(92, v));             // GPSLatitude
  entry(64, 0x0003, 2, 2, (v) => tiff.write(lon >= 0 ? 'E\0' : 'W\0', v, 'latin1'));
  entry(76, 0x0004, 5, 3, (v) => tiff.writeUInt32LE(116, v));            // GPSLongitude
  tiff.writeUInt32LE(0, 88);
  dmsRationals(lat).copy(tiff, 92);
  dmsRationals(lon).copy(tiff, 116);
  const header = Buffer.alloc(4);
  header.writeUInt16BE(0xffe1, 0);
  header.writeUInt16BE(2 + 6 + tiff.length, 2);
  return Buffer.concat([header, Buffer.from('Exif\0\0', 'latin1'), tiff]);
}

/** The JPEG with the EXIF segment right after SOI. */
function withExifGps(jpeg, lon, lat) {
  return Buffer.concat([jpeg.subarray(0, 2), exifGpsSegment(lon, lat), jpeg.subarray(2)]);
}

/** The APP1 segments of a JPEG's header, each as its first bytes. */
function app1Segments(jpeg) {
  const found = [];
  let at = 2;
  while (at + 4 <= jpeg.length && jpeg[at] === 0xff) {
    const marker = jpeg[at + 1];
    if (marker === 0xda || marker === 0xd9) break; // start of scan: no metadata after it
    const length = jpeg.readUInt16BE(at + 2);
    if (marker === 0xe1) found.push(jpeg.subarray(at + 4, at + 4 + Math.min(length - 2, 12)).toString('latin1'));
    at += 2 + length;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Page helpers

async function waitFor(page, selector, what, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForSelector(selector, { timeout });
  } catch {
    fail(`${what} (no ${selector} within ${timeout / 1000} s)`);
  }
}

/** Waits until `selector`'s text is `expected` (trimmed). */
async function waitForText(page, selector, expected, what, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
      [selector, expected], { timeout });
  } catch {
    const shown = await page.evaluate((sel) => document.querySelector(sel)?.textContent.trim() ?? null, selector);
    fail(`${what}: ${selector} reads ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`);
  }
}

async function queueLength(page) {
  return page.evaluate(() => window.gridwatchReport.queueLength());
}

async function fileAnother(page) {
  if (await page.locator('#file-another').isVisible()) await page.locator('#file-another').tap();
  await page.waitForSelector('#report-form', { state: 'visible' });
}

/** Picks a category tile, fills the description and sends; the caller waits for the outcome. */
async function fillAndSend(page, category, description) {
  await page.locator(`#category-grid label[data-category="${category}"]`).tap();
  await page.locator('#description').fill(description);
  await page.locator('#submit').tap();
}

async function waitForGrid(page, located, what) {
  await waitFor(page, '#assignment [data-field=grid-name]', `${what}: no grid shown`);
  await waitForText(page, '#assignment [data-field=grid-name]', located.grid.name, what);
  await waitForText(page, '#assignment [data-field=party-branch-name]', located.party_branch.name, `${what} (party branch)`);
}

/**
 * A full-page screenshot. The send button sticks to the bottom of the screen, which a full-page
 * capture would paint in the middle of the form; for the picture it goes back where it belongs.
 */
async function fullShot(page, name) {
  const style = await page.addStyleTag({ content: '.submit-bar { position: static !important; }' });
  await page.screenshot({ path: shot(name), fullPage: true });
  await style.evaluate((node) => node.remove());
}

async function mapIdle(page) {
  await page.waitForFunction(() => {
    const map = window.gridwatchReport.map;
    return !map || (map.loaded() && map.getSource('grids') && !map.isMoving());
  }, null, { timeout: STEP_TIMEOUT_MS }).catch(() => {});
  await page.waitForTimeout(300);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const [home, away] = await pickGrids();
  const categories = (await api('categories')).body ?? [];
  expect(categories.length > 0, 'GET /categories lists no categories');
  const codes = categories.map((c) => c.code);
  const pick = (code, i) => (codes.includes(code) ? code : codes[i % codes.length]);
  const run = Date.now().toString(36);

  // The page is public: the browser stays anonymous; the checks' own reads log in as the admin.
  await logIn(baseUrl);
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({
      viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
      permissions: ['geolocation'], geolocation: { longitude: home.lon, latitude: home.lat, accuracy: 12 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchPage(page, 'phone');
    const reportPosts = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.endsWith('/api/v1/reports')) {
        reportPosts.push({ key: request.headers()['idempotency-key'], body: request.postData() });
      }
    });

    // -------------------------------------------------------------------------------------------
    check('(a) the page opens with category tiles, and the phone position goes to its grid and party branch');
    await openReady(page, `${baseUrl}/report.html?lang=zh`);
    expect(await page.title() === '随手拍 · gridwatch', `unexpected title ${JSON.stringify(await page.title())}`);
    const tiles = await page.evaluate(() => [...document.querySelectorAll('#category-grid .cat-tile')].map((tile) => ({
      code: tile.dataset.category,
      name: tile.querySelector('.cat-name')?.textContent.trim(),
      icon: tile.querySelector('svg')?.innerHTML ?? '',
      height: tile.getBoundingClientRect().height,
      width: tile.getBoundingClientRect().width,
    })));
    expect(tiles.length === categories.length, `${tiles.length} tiles for ${categories.length} categories`);
    for (const c of categories) {
      const tile = tiles.find((x) => x.code === c.code);
      expect(tile?.name === c.name_zh, `the tile of ${c.code} reads ${JSON.stringify(tile?.name)}, not ${c.name_zh}`);
    }
    expect(tiles.every((x) => x.icon.includes('<path') || x.icon.includes('<circle')), 'a tile has no icon');
    const icons = new Set(tiles.map((x) => x.icon)).size;
    expect(icons === tiles.length, `${tiles.length} tiles share ${icons} icons: every seed category should have its own`);
    expect(tiles.every((x) => x.height >= 44 && x.width >= 44), `a tile is smaller than 44 px: ${JSON.stringify(tiles.map((x) => [x.width, x.height]))}`);
    await waitFor(page, '#location-status[data-source="geolocation"]', 'the phone position is not used');
    const accuracy = await page.locator('#location-status [data-field=accuracy]').innerText();
    expect(accuracy.includes('12'), `the accuracy reads ${JSON.stringify(accuracy)}, the phone said 12 m`);
    await waitForGrid(page, home.located, 'the phone position');
    const place = await page.locator('#assignment').innerText();
    for (const part of [home.located.community?.name, home.located.street?.name].filter(Boolean)) {
      expect(place.includes(part), `"this goes to" does not name ${part}: ${JSON.stringify(place)}`);
    }
    const layout = await page.evaluate(() => ({
      width: document.documentElement.scrollWidth,
      marker: Boolean(document.querySelector('#report-map .maplibregl-marker')),
      take: document.querySelector('.photo-take').getBoundingClientRect().height,
      submit: document.querySelector('#submit').getBoundingClientRect().height,
      capture: document.querySelector('#photo-camera').getAttribute('capture'),
      accept: document.querySelector('#photo-camera').getAttribute('accept'),
    }));
    expect(layout.width <= PHONE.width, `the page is wider than the phone (${layout.width} px)`);
    expect(layout.marker, 'no marker on the map');
    expect(layout.capture === 'environment' && layout.accept === 'image/*', `the camera input is capture=${layout.capture} accept=${layout.accept}`);
    expect(layout.take >= 56 && layout.submit >= 48, `the photo button (${layout.take} px) or the send button (${layout.submit} px) is small for a thumb`);
    passed(`${tiles.length} tiles with ${icons} distinct icons; phone at ${home.lat}, ${home.lon} → ${home.located.grid.name} · ` +
      `${home.located.community?.name} · ${home.located.street?.name}; 党支部 ${home.located.party_branch.name}`);

    // -------------------------------------------------------------------------------------------
    check('(b) a JPEG with EXIF GPS in another grid: uploaded at once, its position offered and used; the stored copy has no EXIF');
    const jpeg = withExifGps(await drawJpeg(page, 'b'), away.lon, away.lat);
    const uploadAnswer = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/api/v1/photos') && r.request().method() === 'POST');
    await page.setInputFiles('#photo-pick', { name: 'fire-lane.jpg', mimeType: 'image/jpeg', buffer: jpeg });
    const upload = await uploadAnswer;
    const sentType = upload.request().headers()['content-type'];
    const sentBytes = upload.request().postDataBuffer()?.length;
    expect(sentType === 'image/jpeg', `the photo went up as ${sentType}`);
    // Chromium does not hand a Blob body to the protocol; when it does, it must be the file as it is.
    expect(sentBytes === undefined || sentBytes === jpeg.length, `the page sent ${sentBytes} bytes of the ${jpeg.length}-byte photo`);
    expect([200, 201].includes(upload.status()), `POST /photos answered ${upload.status()}: ${(await upload.text()).slice(0, 300)}`);
    const photo = await upload.json();
    expect(/^[0-9a-f]{32}$/.test(photo.id ?? ''), `the photo id is ${JSON.stringify(photo.id)}`);
    expect(photo.exif_gps && Math.abs(photo.exif_gps.lon - away.lon) < 1e-6 && Math.abs(photo.exif_gps.lat - away.lat) < 1e-6,
      `the server read ${JSON.stringify(photo.exif_gps)} from the EXIF, which says ${away.lon}, ${away.lat}`);
    await waitFor(page, `#photo-list .photo[data-status="uploaded"][data-photo-id="${photo.id}"]`, 'the photo is not shown as uploaded');
    await waitFor(page, '#use-photo-location:not([hidden])', 'the photo\'s location is not offered');
    await page.locator('#use-photo-location').tap();
    await waitFor(page, '#location-status[data-source="photo"]', 'the location does not come from the photo');
    const awayLocated = await locate(photo.exif_gps.lon, photo.exif_gps.lat);
    expect(awayLocated.grid?.code === away.code, `/locate puts the photo's position in ${awayLocated.grid?.code}, not ${away.code}`);
    await waitForGrid(page, awayLocated, 'the photo\'s position');
    const stored = await fetch(new URL(photo.url, baseUrl));
    const storedBytes = Buffer.from(await stored.arrayBuffer());
    expect(stored.ok && storedBytes[0] === 0xff && storedBytes[1] === 0xd8, `GET ${photo.url} answered ${stored.status}, not a JPEG`);
    const app1 = app1Segments(storedBytes);
    expect(!app1.some((s) => s.startsWith('Exif')), `the stored copy still has an EXIF APP1 segment (${JSON.stringify(app1)})`);
    expect(!storedBytes.includes(Buffer.from('Exif\0\0', 'latin1')), 'the stored copy still contains "Exif\\0\\0"');
    const thumb = await fetch(new URL(photo.thumbnail_url, baseUrl));
    expect(thumb.ok && (thumb.headers.get('content-type') ?? '').startsWith('image/'), `GET ${photo.thumbnail_url} answered ${thumb.status}`);
    // The resident, not logged in, reads their own photo back with the key in its URL (without it
    // the answer is 401: photos.rs in the integration tests).
    const own = await page.evaluate(async (url) => (await fetch(url, { credentials: 'omit' })).status, photo.thumbnail_url);
    expect(/\?key=[0-9a-f]{32}$/.test(photo.thumbnail_url), `the uploader's thumbnail URL ${photo.thumbnail_url} carries no key`);
    expect(own === 200, `without logging in the page read its own thumbnail with ${own}, not 200`);
    await mapIdle(page);
    await fullShot(page, 'report-mobile.png');
    passed(`photo ${photo.id} (${upload.status()}, ${photo.width}×${photo.height}), EXIF ${photo.exif_gps.lat.toFixed(6)}, ` +
      `${photo.exif_gps.lon.toFixed(6)} → ${awayLocated.grid.name}; stored copy ${storedBytes.length} bytes, APP1 segments: ${app1.length}`);

    // -------------------------------------------------------------------------------------------
    check('(c) choose a category, describe, send: the success card, and the server has the report exactly once');
    const markerC = `gw-report-c-${run}`;
    const categoryC = pick('fire_lane_blocked', 0);
    await page.locator('#source-choice label:has(input[value="rider"])').tap();
    await page.locator('#reporter-name').fill('测试骑手');
    await page.locator('#reporter-phone').fill('138 0000 0000');
    const filedAnswer = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/api/v1/reports') && r.request().method() === 'POST');
    const pressed = Date.now();
    await fillAndSend(page, categoryC, `消防通道被电动车堵住，无法通行（浏览器测试 ${markerC}）`);
    const filedResponse = await filedAnswer;
    expect(filedResponse.status() === 201, `POST /reports answered ${filedResponse.status()}: ${(await filedResponse.text()).slice(0, 300)}`);
    const filed = await filedResponse.json();
    const sent = JSON.parse(filedResponse.request().postData());
    const key = filedResponse.request().headers()['idempotency-key'];
    expect(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(key ?? ''), `the Idempotency-Key is ${JSON.stringify(key)}, not a UUID`);
    expect(sent.crs === 'wgs84' && sent.category === categoryC && sent.source === 'rider', `the page sent ${JSON.stringify(sent)}`);
    expect(JSON.stringify(sent.photos) === JSON.stringify([photo.id]), `the report names photos ${JSON.stringify(sent.photos)}, not [${photo.id}]`);
    expect(sent.reporter?.name === '测试骑手' && sent.reporter?.phone === '138 0000 0000', `the reporter went as ${JSON.stringify(sent.reporter)}`);
    expect(Math.abs(sent.lon - awayLocated.lon) < 1e-6 && Math.abs(sent.lat - awayLocated.lat) < 1e-6, `the report went at ${sent.lon}, ${sent.lat}, not the photo's position`);
    const reportedAt = Date.parse(sent.reported_at);
    expect(reportedAt >= pressed - 1000 && reportedAt <= Date.now() + 1000, `reported_at ${sent.reported_at} is not the moment of sending`);
    await waitFor(page, `#result[data-kind="success"][data-report-id="${filed.id}"]`, 'no success card for the report');
    await waitForText(page, '#result [data-field=report-id]', `#${filed.id}`, 'the success card\'s report number');
    await waitForText(page, '#result [data-field=grid-name]', awayLocated.grid.name, 'the success card\'s grid');
    await waitForText(page, '#result [data-field=party-branch-name]', awayLocated.party_branch.name, 'the success card\'s party branch');
    const lead = filed.routing?.lead;
    const leadShown = await page.locator('#result [data-field=lead]').innerText().catch(() => '');
    expect(!lead || leadShown.includes(lead.name), `the success card shows the lead ${JSON.stringify(leadShown)}, the server ${JSON.stringify(lead)}`);
    const one = await api(`reports/${filed.id}`);
    expect(one.status === 200, `GET /reports/${filed.id} answered ${one.status}`);
    expect(one.body.category === categoryC && one.body.description.includes(markerC) && one.body.source === 'rider',
      `the server has ${JSON.stringify({ category: one.body.category, source: one.body.source, description: one.body.description })}`);
    expect(one.body.grid_code === away.code, `the server filed it in grid ${one.body.grid_code}, not ${away.code}`);
    expect(!filed.photos || JSON.stringify(filed.photos) === JSON.stringify([photo.id]), `the report took photos ${JSON.stringify(filed.photos)}`);
    if (Array.isArray(one.body.photos)) {
      const ids = one.body.photos.map((p) => (typeof p === 'string' ? p : p.id));
      expect(ids.includes(photo.id), `GET /reports/${filed.id} lists photos ${JSON.stringify(ids)}`);
    }
    await expectOnce(markerC, away.code);
    expect(await queueLength(page) === 0, 'the outbox is not empty after a sent report');
    await fullShot(page, 'report-success.png');
    passed(`report #${filed.id} (case #${filed.case_id}) in ${awayLocated.grid.name}, lead ${lead?.name ?? '—'}; key ${key}`);

    // -------------------------------------------------------------------------------------------
    check('(d) offline: the report with a photo is queued, then sent by itself once the phone is online again');
    await fileAnother(page);
    await waitForGrid(page, home.located, 'the next report starts from the phone position again');
    tolerated = FAILED_REQUEST;
    await context.setOffline(true);
    await waitFor(page, '#net-status:not([hidden])', 'the page does not say it is offline');
    await page.setInputFiles('#photo-pick', { name: 'offline.jpg', mimeType: 'image/jpeg', buffer: await drawJpeg(page, 'd') });
    await waitFor(page, '#photo-list .photo[data-status="pending"]', 'the photo chosen offline is not waiting for the connection');
    const markerD = `gw-report-d-${run}`;
    const postsBeforeD = reportPosts.length;
    await fillAndSend(page, pick('random_piling', 1), `楼道里堆满杂物（离线测试 ${markerD}）`);
    await waitFor(page, '#result[data-kind="queued"]', 'no "saved, waiting" card after sending offline');
    await waitFor(page, '#queue-banner[data-count="1"]:not([hidden])', 'the banner does not show 1 waiting');
    const bannerText = await page.locator('#queue-count').innerText();
    expect(bannerText.includes('1 条待发送'), `the banner reads ${JSON.stringify(bannerText)}`);
    expect(await queueLength(page) === 1, `queueLength() is ${await queueLength(page)}, not 1`);
    expect((await reportsWith(markerD)).length === 0, 'the server has the report although the phone is offline');
    await fullShot(page, 'report-queued.png');
    await context.setOffline(false);
    await waitFor(page, '#result[data-kind="success"]', 'the queue did not send the report by itself once online', QUEUE_TIMEOUT_MS);
    await page.waitForFunction(() => window.gridwatchReport.queueLength().then((n) => n === 0), null, { timeout: STEP_TIMEOUT_MS })
      .catch(() => fail('the outbox is not empty after the report was sent'));
    const idD = Number(await page.getAttribute('#result', 'data-report-id'));
    const filedD = await expectOnce(markerD, home.code);
    expect(filedD.id === idD, `the success card shows #${idD}, the server has #${filedD.id}`);
    const postsD = reportPosts.slice(postsBeforeD);
    expect(postsD.length >= 1 && postsD.every((p) => p.key === postsD[0].key), `the queued report went with keys ${postsD.map((p) => p.key).join(', ')}`);
    const bodyD = JSON.parse(postsD.at(-1).body);
    expect(Array.isArray(bodyD.photos) && bodyD.photos.length === 1, `the queued report went with photos ${JSON.stringify(bodyD.photos)}: the offline photo was not uploaded first`);
    expect(await page.locator('#queue-banner').isHidden(), 'the banner still shows after the queue drained');
    tolerated = null;
    passed(`queued offline (banner "${bannerText}"), sent as #${idD} with photo ${bodyD.photos[0]} after ${postsD.length} POST(s) with one key`);

    // -------------------------------------------------------------------------------------------
    check('(e) a lost answer: the first POST reaches the server, the page sees a network error, the retry with the same key files it once');
    await fileAnother(page);
    await waitForGrid(page, home.located, 'the phone position');
    const markerE = `gw-report-e-${run}`;
    // With a photo, so the replay is checked before the photo is found to be taken already.
    const photoAnswerE = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/api/v1/photos') && r.request().method() === 'POST');
    await page.setInputFiles('#photo-pick', { name: 'pothole.jpg', mimeType: 'image/jpeg', buffer: await drawJpeg(page, 'e') });
    const photoE = await (await photoAnswerE).json();
    await waitFor(page, `#photo-list .photo[data-status="uploaded"][data-photo-id="${photoE.id}"]`, 'the photo is not uploaded');
    const attempts = [];
    await page.route('**/api/v1/reports', async (route) => {
      const request = route.request();
      if (request.method() !== 'POST') { await route.fallback(); return; }
      const response = await route.fetch();
      attempts.push({
        key: request.headers()['idempotency-key'], status: response.status(), replayed: response.headers()['idempotent-replayed'] ?? null,
        photos: JSON.parse(request.postData() ?? '{}').photos ?? [],
      });
      if (attempts.length === 1) await route.abort('connectionreset');
      else await route.fulfill({ response });
    });
    tolerated = FAILED_REQUEST;
    await fillAndSend(page, pick('road_hazard', 2), `路面塌陷，有安全隐患（答复丢失测试 ${markerE}）`);
    await waitFor(page, '#result[data-kind="success"]', 'the page did not retry the report whose answer was lost', QUEUE_TIMEOUT_MS);
    await page.unroute('**/api/v1/reports');
    tolerated = null;
    expect(attempts.length >= 2, `${attempts.length} POST attempt(s)`);
    expect(attempts.every((a) => a.key && a.key === attempts[0].key), `the attempts carried keys ${attempts.map((a) => a.key).join(', ')}`);
    expect(attempts[0].status === 201, `the first attempt was answered ${attempts[0].status}`);
    const last = attempts.at(-1);
    expect(last.status === 200 && last.replayed === 'true', `the retry was answered ${last.status} with Idempotent-Replayed ${last.replayed}`);
    expect(attempts.every((a) => JSON.stringify(a.photos) === JSON.stringify([photoE.id])), `the attempts named photos ${JSON.stringify(attempts.map((a) => a.photos))}`);
    const filedE = await expectOnce(markerE, home.code);
    const idE = Number(await page.getAttribute('#result', 'data-report-id'));
    expect(idE === filedE.id, `the success card shows #${idE}, the server has #${filedE.id}`);
    passed(`${attempts.length} attempts with key ${attempts[0].key} and photo ${photoE.id}: ${attempts.map((a) => a.status).join(' → ')} (replayed); one report #${filedE.id}`);

    // -------------------------------------------------------------------------------------------
    check('(f) bad input: a text file named .jpg shows the server\'s 415 message; a 422 keeps the form and names the field');
    await fileAnother(page);
    const notAPhoto = Buffer.from('This is a shopping list, not a photo.\n牛奶 鸡蛋 面包\n', 'utf8');
    const refused = await api('photos', { method: 'POST', body: new Uint8Array(notAPhoto), headers: { 'Content-Type': 'image/jpeg' } });
    expect(refused.status === 415, `POST /photos with a text file answered ${refused.status}, not 415: ${refused.text.slice(0, 200)}`);
    const message = refused.body?.error?.message;
    expect(typeof message === 'string' && message.length > 0, `the 415 has no message: ${refused.text.slice(0, 200)}`);
    tolerated = FAILED_REQUEST;
    await page.setInputFiles('#photo-pick', { name: 'not-a-photo.jpg', mimeType: 'image/jpeg', buffer: notAPhoto });
    await waitFor(page, '#photo-list .photo[data-status="error"]', 'the refused file is not marked');
    await page.waitForFunction((m) => document.querySelector('#photo-message [data-field=photo-error]')?.textContent.includes(m), message, { timeout: STEP_TIMEOUT_MS })
      .catch(async () => fail(`the page shows ${JSON.stringify(await page.locator('#photo-message').innerText().catch(() => ''))}, ` +
        `the server said ${JSON.stringify(message)}`));
    const shownError = await page.locator('#photo-message [data-field=photo-error]').innerText();
    await page.locator('#photo-list .photo[data-status="error"] .photo-remove').tap();
    await page.waitForSelector('#photo-list .photo', { state: 'detached' });
    expect(await page.locator('#photo-message').isHidden(), 'the message stays after the photo was removed');
    // A phone number the server refuses: 422 with its field; nothing is filed or queued.
    const markerF = `gw-report-f-${run}`;
    await page.locator('#reporter-phone').fill('call me maybe');
    const refusedAnswer = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/api/v1/reports') && r.request().method() === 'POST');
    await fillAndSend(page, pick('wall_leak', 4), `楼道墙面渗水（校验测试 ${markerF}）`);
    const refusedReport = await refusedAnswer;
    expect(refusedReport.status() === 422, `a report with the phone "call me maybe" was answered ${refusedReport.status()}`);
    const invalid = (await refusedReport.json()).error;
    await page.waitForFunction((m) => document.querySelector('#form-message [data-field=form-error]')?.textContent === m, invalid.message, { timeout: STEP_TIMEOUT_MS })
      .catch(async () => fail(`the form shows ${JSON.stringify(await page.locator('#form-message').innerText().catch(() => ''))}, the server said ${JSON.stringify(invalid.message)}`));
    const kept = await page.evaluate(() => ({
      view: document.body.dataset.view,
      description: document.querySelector('#description').value,
      invalid: [...document.querySelectorAll('[aria-invalid=true]')].map((n) => n.id),
      fieldShown: document.querySelector('#form-message .field-name')?.textContent ?? '',
    }));
    expect(kept.view === 'form' && kept.description.includes(markerF), `after the 422 the form was not kept (view ${kept.view})`);
    expect(!invalid.field || kept.fieldShown.includes(invalid.field), `the form does not name the field ${invalid.field}: ${JSON.stringify(kept.fieldShown)}`);
    expect(invalid.field !== 'reporter.phone' || kept.invalid.includes('reporter-phone'), `the phone field is not marked (${kept.invalid.join(', ')})`);
    expect(await queueLength(page) === 0, 'a refused report was left in the outbox');
    expect((await reportsWith(markerF)).length === 0, 'the refused report was filed');
    tolerated = null;
    await page.locator('#reporter-phone').fill('');
    await page.locator('#description').fill('');
    expect(await page.locator('#form-message').isHidden(), 'the error stays after the field was corrected');
    passed(`415 shown: ${JSON.stringify(shownError)}; 422 on ${invalid.field}: ${JSON.stringify(invalid.message)}, form kept`);

    // -------------------------------------------------------------------------------------------
    check('(g) the English switch shows English labels');
    await waitForGrid(page, home.located, 'the phone position');
    await page.locator('#lang-toggle').tap();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    const english = await page.evaluate(() => ({
      title: document.title,
      h1: document.querySelector('h1').textContent.trim(),
      steps: [...document.querySelectorAll('.step-title')].map((h) => h.textContent.replace(/\s+/g, ' ').trim()),
      tiles: Object.fromEntries([...document.querySelectorAll('#category-grid .cat-tile')].map((t) => [t.dataset.category, t.querySelector('.cat-name').textContent.trim()])),
      submit: document.querySelector('#submit').textContent.trim(),
      source: document.querySelector('#location-status [data-field=location-source]')?.textContent.trim(),
      labels: [...document.querySelectorAll('.field-label, .pill span, .contact-fields .field > span, .photo-take, .photo-pick, .privacy, .hint')]
        .map((n) => n.textContent.trim()),
      goesTo: document.querySelector('#assignment .assign-label')?.textContent.trim(),
      chrome: document.querySelector('#report-form').innerText + document.querySelector('.topbar').innerText,
    }));
    expect(english.h1 === 'Snap & report' && english.title.startsWith('Snap & report'), `the heading reads ${JSON.stringify(english.h1)}`);
    expect(english.steps.every((s) => !CJK.test(s)), `step titles not in English: ${english.steps.join(' | ')}`);
    expect(english.labels.every((s) => !CJK.test(s)), `labels not in English: ${english.labels.filter((s) => CJK.test(s)).join(' | ')}`);
    for (const c of categories) expect(english.tiles[c.code] === c.name_en, `the ${c.code} tile reads ${JSON.stringify(english.tiles[c.code])}, not ${c.name_en}`);
    expect(english.submit === 'Send report', `the send button reads ${JSON.stringify(english.submit)}`);
    expect(english.source === 'Phone position', `the location source reads ${JSON.stringify(english.source)}`);
    expect(english.goesTo === 'This goes to:', `"this goes to" reads ${JSON.stringify(english.goesTo)}`);
    const untranslated = english.chrome.match(/\b[a-z]+(?:_[a-z]+)+\b/g);
    expect(!untranslated, `untranslated keys on screen: ${[...new Set(untranslated ?? [])].join(', ')}`);
    await mapIdle(page);
    await fullShot(page, 'report-en.png');
    expect(await page.evaluate(() => localStorage.getItem('gridwatch.lang')) === 'en', 'the language choice is not remembered');
    await page.locator('#lang-toggle').tap();
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    passed(`"${english.h1}"; steps ${english.steps.join(' / ')}; send "${english.submit}"`);

    // -------------------------------------------------------------------------------------------
    check('(h) offline start: the page opens from the service worker\'s cache; a report saved offline survives a reload');
    const worker = await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.ready;
      const cached = [];
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        cached.push(...(await cache.keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search));
      }
      return { scope: registration.scope, controlled: Boolean(navigator.serviceWorker.controller), cached };
    });
    expect(worker.controlled, 'the service worker does not control the page');
    expect(new URL(worker.scope).pathname === '/report', `the service worker's scope is ${worker.scope}, not /report`);
    for (const path of ['/report.html', '/report.js', '/report.css', '/report-i18n.js', '/i18n.js', '/dom.js', '/basemap.js',
      '/vendor/maplibre-gl/maplibre-gl.mjs', '/vendor/maplibre-gl/maplibre-gl.css', '/api/v1/categories']) {
      expect(worker.cached.includes(path), `the service worker did not cache ${path} (cached: ${worker.cached.join(', ')})`);
    }
    tolerated = FAILED_REQUEST;
    await context.setOffline(true);
    await openReady(page, `${baseUrl}/report.html`);
    const offlineStart = await page.evaluate(() => ({
      tiles: document.querySelectorAll('#category-grid .cat-tile').length,
      viaWorker: performance.getEntriesByType('navigation')[0]?.workerStart > 0,
      online: navigator.onLine,
    }));
    expect(!offlineStart.online, 'the browser is not offline');
    expect(offlineStart.tiles === categories.length, `offline, ${offlineStart.tiles} tiles for ${categories.length} categories`);
    expect(offlineStart.viaWorker, 'the offline page did not come through the service worker');
    await waitFor(page, '#location-status[data-source="geolocation"]', 'offline, the phone position is not used');
    const markerH = `gw-report-h-${run}`;
    await fillAndSend(page, pick('oil_smoke', 3), `饭店油烟直排小区（离线重载测试 ${markerH}）`);
    await waitFor(page, '#result[data-kind="queued"]', 'no "saved, waiting" card');
    await openReady(page, `${baseUrl}/report.html`);
    await waitFor(page, '#queue-banner[data-count="1"]:not([hidden])', 'after a reload the banner does not show the saved report');
    await context.setOffline(false);
    await waitFor(page, '#sent-list .outbox-item[data-report-id]', 'the saved report was not sent once online', QUEUE_TIMEOUT_MS);
    await page.waitForFunction(() => document.querySelector('#queue-banner').hidden, null, { timeout: STEP_TIMEOUT_MS })
      .catch(() => fail('the banner still shows after the queue drained'));
    // A photo picked offline goes up as soon as the connection is back, not only with the report.
    await context.setOffline(true);
    await page.setInputFiles('#photo-pick', { name: 'later.jpg', mimeType: 'image/jpeg', buffer: await drawJpeg(page, 'h') });
    await waitFor(page, '#photo-list .photo[data-status="pending"]', 'the photo picked offline is not waiting');
    await context.setOffline(false);
    await waitFor(page, '#photo-list .photo[data-status="uploaded"]', 'the photo picked offline was not uploaded once online');
    await page.locator('#photo-list .photo .photo-remove').tap();
    tolerated = null;
    const filedH = await expectOnce(markerH, home.code);
    const idH = Number(await page.getAttribute('#sent-list .outbox-item', 'data-report-id'));
    expect(idH === filedH.id, `the page lists #${idH} as delivered, the server has #${filedH.id}`);
    passed(`${worker.cached.length} cached entries; opened offline with ${offlineStart.tiles} tiles; saved, reloaded, sent as #${filedH.id}; ` +
      'a photo picked offline went up once online');
    await context.close();

    // -------------------------------------------------------------------------------------------
    check('(i) without location permission: a photo\'s position is used by itself, a tap on the map overrides it; 360 px and desktop');
    const narrow = await browser.newContext({
      viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
    });
    const small = await narrow.newPage();
    small.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchPage(small, '360px');
    await openReady(small, `${baseUrl}/report.html?lang=zh`);
    await waitFor(small, '#geo-note:not([hidden])', 'no note that the phone position is not available');
    // With no phone position, a photo's own position is used without asking.
    await small.setInputFiles('#photo-pick', { name: 'gps.jpg', mimeType: 'image/jpeg', buffer: withExifGps(await drawJpeg(small, 'i'), away.lon, away.lat) });
    await waitFor(small, '#location-status[data-source="photo"]', 'without a phone position the photo\'s position is not used by itself');
    await waitForGrid(small, awayLocated, 'the photo\'s position, used by itself');
    expect(await small.locator('#use-photo-location').isHidden(), 'the photo\'s position is offered although it is in use');
    await mapIdle(small);
    const box = await small.locator('#report-map canvas').boundingBox();
    await small.evaluate(() => document.querySelector('#report-map').scrollIntoView({ block: 'center' }));
    const canvasBox = await small.locator('#report-map canvas').boundingBox();
    // Off the marker (which sits in the middle), so the tap moves the position somewhere else.
    await small.touchscreen.tap(canvasBox.x + canvasBox.width * 0.2, canvasBox.y + canvasBox.height * 0.8);
    await waitFor(small, '#location-status[data-source="map"]', 'a tap on the map does not set the location');
    const tapped = await small.evaluate(() => ({ lon: window.gridwatchReport.state.location.lon, lat: window.gridwatchReport.state.location.lat }));
    expect(Math.abs(tapped.lon - away.lon) > 1e-4 || Math.abs(tapped.lat - away.lat) > 1e-4, 'the tap did not move the position');
    const tappedLocated = await locate(tapped.lon.toFixed(7), tapped.lat.toFixed(7));
    await small.waitForFunction((s) => document.querySelector('#assignment')?.dataset.status === s, tappedLocated.status, { timeout: STEP_TIMEOUT_MS })
      .catch(async () => fail(`the page shows status ${await small.getAttribute('#assignment', 'data-status')}, /locate says ${tappedLocated.status}`));
    if (tappedLocated.grid) await waitForText(small, '#assignment [data-field=grid-name]', tappedLocated.grid.name, 'the tapped position\'s grid');
    else await waitFor(small, '#assignment [data-field=outside]', 'a position outside the grids is not said to be outside');
    const narrowWidth = await small.evaluate(() => document.documentElement.scrollWidth);
    expect(narrowWidth <= 360, `the page is ${narrowWidth} px wide on a 360 px screen`);
    expect(box && box.width > 300, `the map is ${box?.width} px wide`);
    await narrow.close();
    const desktop = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
    const wide = await desktop.newPage();
    wide.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchPage(wide, 'desktop');
    await openReady(wide, `${baseUrl}/report.html?lang=zh`);
    const column = await wide.evaluate(() => {
      const r = document.querySelector('.report-main').getBoundingClientRect();
      return { left: r.left, right: window.innerWidth - r.right, width: r.width, scroll: document.documentElement.scrollWidth };
    });
    expect(column.scroll <= 1280 && column.width <= 740 && Math.abs(column.left - column.right) < 20,
      `on a desktop the form is ${column.width} px wide at ${column.left} px from the left, ${column.right} px from the right`);
    await mapIdle(wide);
    await wide.screenshot({ path: shot('report-desktop.png') });
    await desktop.close();
    passed(`photo position used by itself (${awayLocated.grid.name}); tap → ${tapped.lat.toFixed(5)}, ${tapped.lon.toFixed(5)} (${tappedLocated.status}${tappedLocated.grid ? `, ${tappedLocated.grid.name}` : ''}); ` +
      `360 px: ${narrowWidth} px wide; desktop column ${Math.round(column.width)} px, centred`);

    done();
  } finally {
    await browser.close();
  }
}

main().catch(report);
