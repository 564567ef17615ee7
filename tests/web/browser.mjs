// Drives the tutors' console in Debian's Chromium (playwright-core), for the browser tests.
//
// usage: node browser.mjs CONFIG.json
//
// CONFIG: {"url", "login", "password", "segment", "screenshots": dir or null, "learner": name}.
// Talks with the test over stdio, one JSON object a line: it prints {"step": "watching"} once
// the queue page is open and waits for a line on stdin (the test then publishes an
// intervention), and prints {"step": "done", ...} with what it saw at the end. axe-core runs
// on every page; its serious and critical violations are reported.
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const axeSource = join(here, 'node_modules', 'axe-core', 'axe.min.js');
const lines = createInterface({ input: process.stdin });
const input = lines[Symbol.asyncIterator]();

function say(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const profile = mkdtempSync(join(tmpdir(), 'tutorstream-chromium-'));
// A fresh profile each run (Playwright passes it to Chromium as --user-data-dir); a tablet's
// viewport, where the console must work; bypassCSP lets axe's script in despite the console's
// script-src 'self'.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1024, height: 768 },
  bypassCSP: true,
});
const violations = {};
const shots = [];

async function audit(page, name) {
  await page.addScriptTag({ path: axeSource });
  const result = await page.evaluate(async () => {
    const found = await window.axe.run(document, { resultTypes: ['violations'] });
    return found.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
  violations[name] = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (config.screenshots) {
    const path = join(config.screenshots, `console-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  }
}

try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);

  await page.goto(`${config.url}/console/`);
  await audit(page, 'signin');
  await page.getByRole('link', { name: /Sign in with your school account/ }).click();
  await page.getByLabel('Login').waitFor();
  await audit(page, 'provider-login');
  await page.getByLabel('Login').fill(config.login);
  await page.getByLabel('Password').fill(config.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Your classes' }).waitFor();
  await audit(page, 'classes');

  await page.goto(`${config.url}/console/classes/${config.segment}/`);
  await page.getByText('Live: new interventions appear as they arrive.').waitFor();
  await audit(page, 'queue-empty');
  say({ step: 'watching' });
  const published = JSON.parse((await input.next()).value);
  const started = Date.now();
  const card = page.locator(`#i-${published.intervention_id}`);
  await card.waitFor();
  const arrivedMs = Date.now() - started;
  const evidence = (await card.locator('.evidence').innerText()).trim();
  const heading = (await card.locator('h3').innerText()).trim();
  await audit(page, 'queue');
  // A tablet held upright.
  await page.setViewportSize({ width: 768, height: 1024 });
  await audit(page, 'queue-tablet');
  await page.setViewportSize({ width: 1024, height: 768 });

  // Keyboard: focus the card, write a note, approve with "a".
  await card.focus();
  await page.keyboard.press('n');
  await page.keyboard.type('Checked with them in class.');
  await page.keyboard.press('Escape');
  await page.keyboard.press('a');
  await page.locator(`#decided #i-${published.intervention_id} .decision`).waitFor();
  const decision = (await page.locator(`#decided #i-${published.intervention_id} .decision`).innerText()).trim();
  await audit(page, 'queue-decided');

  await page.getByRole('link', { name: 'Roster and webhooks' }).click();
  await page.getByRole('heading', { name: /Roster and webhooks/ }).waitFor();
  await page.locator('tr.delivery-delivered').first().waitFor();
  await audit(page, 'settings');

  await page.goto(`${config.url}/console/classes/${config.segment}/`);
  await page.getByRole('link', { name: 'Class overview' }).click();
  await page.getByRole('heading', { name: /Interventions in the last day/ }).waitFor();
  await audit(page, 'overview');

  await page.goto(`${config.url}/console/classes/${config.segment}/`);
  await page.locator(`#decided #i-${published.intervention_id}`).getByRole('link', { name: 'learner page' }).click();
  await page.getByRole('heading', { name: 'Mastery per skill' }).waitFor();
  await audit(page, 'learner');

  // A tutor of another class: signs in, sees nothing of this class, is refused the action.
  let other = null;
  if (config.other_login) {
    await context.clearCookies();
    await page.goto(`${config.url}/console/login`);
    await page.getByLabel('Login').fill(config.other_login);
    await page.getByLabel('Password').fill(config.other_password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Your classes' }).waitFor();
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const answer = await page.goto(`${config.url}/console/classes/${config.segment}/`);
    const text = await page.locator('main').innerText();
    await audit(page, 'not-your-class');
    const action = await page.evaluate(async ([url, token]) => {
      const form = new FormData();
      form.append('csrf', token);
      const r = await fetch(url, { method: 'POST', body: form, headers: { 'X-Console-Fetch': '1' } });
      return r.status;
    }, [`${config.url}/console/classes/${config.segment}/interventions/${published.intervention_id}/escalate`, csrf]);
    other = { page_status: answer.status(), page_text: text, action_status: action };
  }

  say({ step: 'done', evidence, heading, decision, arrived_ms: arrivedMs, violations, screenshots: shots, other });
} catch (err) {
  say({ step: 'failed', error: String(err && err.stack || err), violations });
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  lines.close();
}
