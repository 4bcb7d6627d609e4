#!/usr/bin/env node
// Browser checks of the API reference page (/api/docs → api-docs.html): Swagger UI, served by
// gridwatch from npm's swagger-ui-dist, renders the generated /api/openapi.json with every tag,
// and "Try it out" on GET /api/v1/categories really calls the server and shows its answer.
//
// Usage: node tests/browser/api-docs.mjs <base_url> <screenshot_dir>
// Any uncaught page error, console error or request to another host fails the run.
import { createChecks, launchChromium, parseArgs } from './harness.mjs';

const { baseUrl, origin, shot } = await parseArgs('api-docs.mjs');
const { check, pass, expect, done, report, watch } = createChecks(origin);

async function main() {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page);

    check('api-docs: /api/docs shows every tag of the document');
    const doc = await (await fetch(`${baseUrl}/api/openapi.json`)).json();
    const tags = doc.tags.map((t) => t.name);
    await page.goto(`${baseUrl}/api/docs`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.opblock-tag', { timeout: 30_000 });
    const shown = await page.locator('.opblock-tag').evaluateAll((els) => els.map((e) => e.dataset.tag));
    for (const t of tags) expect(shown.includes(t), `tag ${t} not shown (shown: ${shown.join(', ')})`);
    expect(page.url().endsWith('/api-docs.html'), `landed on ${page.url()}`);
    pass(`${shown.length} tags, ${Object.keys(doc.paths).length} paths`);

    check('api-docs: Try it out on GET /api/v1/categories answers 200 with the categories');
    await page.locator('.opblock-tag[data-tag="reports"]').click();
    const op = page.locator('#operations-reports-reports_categories');
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('button.execute').click();
    const status = op.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor({ timeout: 20_000 });
    const code = (await status.innerText()).trim();
    expect(code === '200', `status shown: ${code}`);
    const body = await op.locator('.live-responses-table .microlight').first().innerText();
    expect(body.includes('fire_lane_blocked'), 'the answer does not list fire_lane_blocked');
    await status.scrollIntoViewIfNeeded();
    await page.screenshot({ path: shot('api-docs.png') });
    pass('200, fire_lane_blocked listed');
  } finally {
    await browser.close();
  }
  done();
}

main().catch(report);
