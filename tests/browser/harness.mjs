// Shared plumbing of the browser checks: arguments, Debian's headless Chromium, and the
// check/pass/fail reporting that ends with a "N passed, N failed" line.
//
// A check fails on its own assertion, and also on anything the page did that would otherwise go
// unseen: an uncaught page error, a console error, or a request to another host (the pages must
// work without internet).
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

export class CheckFailed extends Error {}

/** `<base_url> <screenshot_dir>` from the command line; exits with usage on anything else. */
export async function parseArgs(script) {
  const [baseArg, shotDir] = process.argv.slice(2);
  if (!baseArg || !shotDir) {
    console.error(`usage: node tests/browser/${script} <base_url> <screenshot_dir>`);
    process.exit(2);
  }
  await mkdir(shotDir, { recursive: true });
  const baseUrl = baseArg.replace(/\/+$/, '');
  return { baseUrl, origin: new URL(baseUrl).origin, shot: (name) => path.join(shotDir, name) };
}

/** The password of the demo users (README lists them). */
export const DEMO_PASSWORD = 'gridwatch-demo';

/**
 * Logs in as a demo user through the API and returns the session. From then on this script's own
 * `fetch` calls to the service (the checks' oracles) carry the session cookie; pass the session
 * to `launchChromium` for pages that need a logged-in user.
 */
export async function logIn(baseUrl, username = 'admin') {
  const response = await fetch(`${baseUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username, password: DEMO_PASSWORD }),
  });
  if (!response.ok) throw new Error(`logging in as ${username}: HTTP ${response.status} ${await response.text()}`);
  const cookie = (response.headers.get('set-cookie') ?? '').split(';')[0];
  const [name, value] = cookie.split('=');
  if (name !== 'gw_session' || !value) throw new Error(`logging in as ${username}: no session cookie`);
  const plainFetch = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.startsWith(baseUrl)) return plainFetch(input, init);
    const headers = new Headers(init.headers ?? {});
    headers.set('Cookie', cookie);
    return plainFetch(input, { ...init, headers });
  };
  return { username, cookie: { name, value, url: baseUrl } };
}

/**
 * Debian's Chromium, headless, with nothing that reaches for the network by itself. With a
 * session from `logIn`, every browser context starts logged in as that user.
 */
export async function launchChromium(session = null) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  if (session) {
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (options) => {
      const context = await newContext(options);
      await context.addCookies([session.cookie]);
      return context;
    };
    browser.newPage = async (options) => (await browser.newContext(options)).newPage();
  }
  return browser;
}

/** The reporting of one script's checks. */
export function createChecks(origin) {
  let passed = 0;
  let current = 'start-up';
  const problems = []; // page errors, console errors, foreign requests: reported at the next pass
  const fail = (message) => {
    throw new CheckFailed(message);
  };
  return {
    check(name) {
      current = name;
    },
    pass(detail) {
      if (problems.length) fail(problems.join('\n     '));
      passed += 1;
      console.log(`ok   ${current}${detail ? ` — ${detail}` : ''}`);
    },
    fail,
    expect(condition, message) {
      if (!condition) fail(message);
    },
    watch(page, label = 'page') {
      page.on('pageerror', (err) => problems.push(`[${label}] uncaught page error: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`[${label}] console error: ${msg.text()}`);
      });
      page.on('request', (request) => {
        const url = request.url();
        if (url.startsWith('data:') || url.startsWith('blob:')) return;
        if (new URL(url).origin !== origin) problems.push(`[${label}] request to another host: ${url}`);
      });
    },
    /** Opens `url` and waits for the page's `data-state` to be ready; an error state fails the check. */
    async openReady(page, url, timeout = 60_000) {
      await page.goto(url, { waitUntil: 'domcontentloaded', timeout });
      try {
        await page.waitForFunction(() => ['ready', 'error'].includes(document.body?.dataset.state), null, { timeout });
      } catch {
        fail(`page did not reach data-state=ready within ${timeout / 1000} s ` +
          `(state: ${await page.evaluate(() => document.body?.dataset.state)})`);
      }
      if (await page.evaluate(() => document.body.dataset.state) === 'error') {
        const banner = await page.locator('#error-text').innerText().catch(() => '(no banner text)');
        fail(`page reports an error: ${banner.trim()}`);
      }
    },
    done() {
      console.log(`${passed} passed, 0 failed`);
    },
    /** For `main().catch(...)`: the failed check, then the closing line, exit 1. */
    report(err) {
      const message = err instanceof CheckFailed ? err.message : (err.stack ?? String(err));
      console.log(`FAIL ${current}: ${message}`);
      if (problems.length && !(err instanceof CheckFailed)) console.log(`     also: ${problems.join('\n     ')}`);
      console.log(`${passed} passed, 1 failed`);
      process.exit(1);
    },
  };
}
