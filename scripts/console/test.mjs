// End-to-end test of the console (issue 21, ADR 41) in headless Chromium (Debian's
// package), driven by playwright-core with the system browser: nothing is downloaded.
//
//   node scripts/console/test.mjs BASE_URL TOKEN SCREENSHOT_DIR READ_TOKEN
//
// Against a running `intake serve` whose TOKEN has the admin scope and READ_TOKEN the
// read scope alone (the console then hides what it may not do), with outbound
// calls to private addresses allowed and one delivery attempt (so a delivery to a
// closed local port dies at once). It signs in with the keyboard, creates a dataset,
// imports a document and watches the histogram change within 2 s of a second import,
// replays a dead delivery, pauses and resumes a worker, and fails on any console
// error. Screenshots are compared loosely: the layout's parts are present and placed
// (charts side by side, tables filled), not pixel for pixel.
import { strict as assert } from 'node:assert';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const [base, token, shots, reader] = process.argv.slice(2);
assert.ok(base && token && shots && reader, 'usage: test.mjs BASE_URL TOKEN SCREENSHOT_DIR READ_TOKEN');
mkdirSync(shots, { recursive: true });
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const example = (folder, name) => readFileSync(path.join(root, 'examples', folder, name));
const dataset = `console-${Date.now().toString(36)}`;

async function call(method, route, body, type = 'application/json') {
  const res = await fetch(base + route, {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', 'Content-Type': type },
    body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : body,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Markr results of one test: `n` students with the given marks out of 20.
function results(test, marks, extra = '') {
  const items = marks.map((m, i) => result(test, `${test}${i}`, `${i}`, m));
  return `<mcq-test-results>${items.join('')}${extra}</mcq-test-results>`;
}

function result(test, student, lastName, marks) {
  return `<mcq-test-result scanned-on="2017-12-04T12:12:10+11:00">
    <first-name>S</first-name><last-name>${lastName}</last-name><student-number>${student}</student-number>
    <test-id>${test}</test-id><summary-marks available="20" obtained="${marks}" /></mcq-test-result>`;
}

function closedPort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Every box is visible and has room; `side` pairs lie side by side.
async function layout(page, selectors, side = []) {
  const boxes = {};
  for (const selector of selectors) {
    const box = await page.locator(selector).first().boundingBox();
    assert.ok(box && box.width > 40 && box.height > 10, `${selector} is laid out: ${JSON.stringify(box)}`);
    boxes[selector] = box;
  }
  for (const [left, right] of side) {
    const a = boxes[left];
    const b = boxes[right];
    assert.ok(a.x + a.width <= b.x + 1 && Math.abs(a.y - b.y) < 40, `${left} is left of ${right}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const errors = [];
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));

  // Sign in with the keyboard only; a wrong token is refused first.
  await page.goto(`${base}/console/`);
  await page.keyboard.press('Tab');
  await page.keyboard.type('not-a-token');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'does not know' }).waitFor();
  await page.locator('#token').fill('');
  await page.locator('#token').focus();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Datasets' }).waitFor();
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!stored.includes(token), 'the token is kept in memory only');

  // A dataset and a first document.
  const contract = JSON.parse(example('contracts', 'exam-results.json'));
  await call('POST', '/v1/datasets', { name: dataset, contract });
  await call('POST', `/v1/datasets/${dataset}/imports?wait=true`, results('101', [10, 12, 14, 16]), 'text/xml+markr');
  await page.getByRole('link', { name: dataset }).waitFor({ timeout: 5000 });
  await page.getByRole('link', { name: dataset }).click();
  const bars = page.locator('#histogram rect.bar');
  await bars.first().waitFor();
  assert.equal(await bars.count(), 1, 'one test, one bar');
  assert.equal(await page.locator('#imports tr[data-import] .status').first().textContent(), 'completed');
  assert.equal(await page.locator('#measure').inputValue(), 'percent', 'the ratio is shown first');
  await layout(page, ['header', '#summary', '#histogram', '#boxplot', '#imports table'], [['#histogram', '#boxplot']]);

  // A second test: the page shows its bar within 2 s of the import committing.
  await call('POST', `/v1/datasets/${dataset}/imports?wait=true`, results('102', [5, 19]), 'text/xml+markr');
  const committed = Date.now();
  await page.waitForFunction(() => document.querySelectorAll('#histogram rect.bar').length === 2, null, { timeout: 2000 });
  const counts = await bars.evaluateAll((rects) => rects.map((r) => [r.dataset.group, Number(r.dataset.count)]));
  assert.deepEqual(counts, [['101', 4], ['102', 2]]);
  console.log(`histogram updated ${Date.now() - committed} ms after the import committed`);
  assert.equal(await page.locator('#boxplot g.group').count(), 2);
  await page.locator('#record-count').filter({ hasText: '6' }).waitFor();
  await page.locator('#imports tr[data-import]').nth(1).waitFor();
  await page.screenshot({ path: path.join(shots, 'dataset.png'), fullPage: true });

  // A contract version 2: the diff shows what changed.
  const next = { ...contract, measures: { ...contract.measures, obtained_twice: { ratio: ['obtained', 'available'], scale: 200 } } };
  await call('POST', `/v1/datasets/${dataset}/contracts`, next);
  await page.reload();
  await page.locator('#token').fill(token);
  await page.keyboard.press('Enter');
  await page.locator('#histogram').waitFor();
  await page.locator('#version').selectOption('2');
  const diff = await page.locator('pre.diff').textContent();
  assert.match(diff, /^\+ .*obtained_twice/m, diff);

  // A dead delivery, replayed from the Deliveries page.
  const port = await closedPort();
  await call('POST', `/v1/datasets/${dataset}/subscriptions`, { url: `http://127.0.0.1:${port}/hook`, events: ['import.completed'] });
  // Student 1010 under another name: an identity conflict, reported on the dataset's page.
  const renamed = result('103', '1010', 'Other', 9);
  await call('POST', `/v1/datasets/${dataset}/imports?wait=true`, results('103', [7], renamed), 'text/xml+markr');
  await page.getByRole('link', { name: 'Deliveries' }).click();
  const replay = page.getByRole('button', { name: /^Replay 1 dead/ });
  await replay.waitFor({ timeout: 15000 });
  await page.screenshot({ path: path.join(shots, 'deliveries.png'), fullPage: true });
  await replay.focus();
  await page.keyboard.press('Enter');
  await page.locator('.replayed').filter({ hasText: '1 replayed' }).waitFor();

  // A rollup job: listed with its progress on the Operations page.
  const job = await call('POST', `/v1/datasets/${dataset}/jobs`, { kind: 'rollup', name: 'by_test', measure: 'percent', group_by: 'test_id' });

  // Pause and resume a kind of work from the Operations page.
  await page.getByRole('link', { name: 'Operations' }).click();
  await page.locator(`tr[data-job="${job.id}"]`).waitFor();
  await page.getByRole('button', { name: 'Pause imports' }).click();
  await page.locator('tr[data-kind="imports"] .status').filter({ hasText: 'paused' }).waitFor();
  const state = await call('GET', '/admin/state');
  assert.equal(state.workers.find((w) => w.kind === 'imports').status, 'paused');
  await page.screenshot({ path: path.join(shots, 'operations.png'), fullPage: true });
  await layout(page, ['#workers']);
  await page.getByRole('button', { name: 'Resume imports' }).click();
  await page.locator('tr[data-kind="imports"] .status').filter({ hasText: 'running' }).waitFor();

  // Every import, newest first, on the Imports page.
  await page.getByRole('link', { name: 'Imports' }).click();
  await page.locator('#all-imports tbody tr').nth(2).waitFor();
  const listed = await page.locator('#all-imports tbody tr td:first-child').allTextContents();
  assert.deepEqual(listed, [dataset, dataset, dataset], 'three imports of the dataset');

  // A read-only token sees no operations and no buttons that change anything.
  const readerPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  readerPage.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  readerPage.on('pageerror', (e) => errors.push(e.message));
  await readerPage.goto(`${base}/console/#/datasets/${dataset}`);
  await readerPage.locator('#token').fill(reader);
  await readerPage.keyboard.press('Enter');
  await readerPage.locator('#imports tr[data-import]').first().waitFor();
  assert.equal(await readerPage.getByRole('link', { name: 'Operations' }).isVisible(), false);
  assert.equal(await readerPage.getByRole('button', { name: 'Reprocess' }).count(), 0);
  assert.equal(await readerPage.getByRole('button', { name: 'Dry run' }).count(), 0);
  assert.equal(await readerPage.getByRole('button', { name: 'Document' }).count(), 3);
  await readerPage.locator('#conflicts summary').filter({ hasText: '1 conflict reported' }).click();
  const conflict = await readerPage.locator('#conflicts-table tbody tr').first().textContent();
  assert.match(conflict, /identity.*1010.*last_name/, conflict);

  assert.deepEqual(errors, [], 'no console errors');
  console.log(`console test passed (dataset ${dataset}); screenshots in ${shots}`);
} catch (e) {
  // Where it stood, for whoever reads the failure.
  await page?.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`console errors so far: ${JSON.stringify(errors)}`);
  throw e;
} finally {
  await browser.close();
}
