// The Intake console (ADR 41): one ES module, no framework, no build step. It talks to
// the public API with a bearer token that it keeps in this module's memory only.

const session = { token: null, signedIn: false, scopes: [], caller: null };
let refresh = null; // the current page's refresh, called every second
let timer = null;

// ---- DOM helpers (text is always set as text, never parsed as HTML) ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const svgNs = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const main = () => document.getElementById('main');
const can = (scope) => session.scopes.includes(scope) || session.scopes.includes('admin');
const fmt = (n, digits = 2) =>
  n === null || n === undefined ? '—' : Number(n).toLocaleString('en', { maximumFractionDigits: digits });
const when = (t) => (t ? new Date(t).toLocaleString() : '—');
const enc = encodeURIComponent;

// ---- the API ----

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, { method = 'GET', body, etag, raw } = {}) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (etag) headers['If-None-Match'] = etag;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (res.status === 304) return { notModified: true, etag };
  if (raw && res.ok) return res;
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return { body: json, etag: res.headers.get('ETag') };
}

function failure(e) {
  return h('p', { class: 'error', role: 'alert' }, e.message);
}

// ---- routing ----

function go() {
  if (!session.signedIn) return;
  const [page, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${page || 'datasets'}`);
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  refresh = null;
  const pages = {
    datasets: rest.length ? datasetPage : datasetsPage,
    imports: importsPage,
    deliveries: deliveriesPage,
    operations: operationsPage,
  };
  const show = pages[page] || datasetsPage;
  main().replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  show(...rest.map(decodeURIComponent)).catch((e) => main().replaceChildren(failure(e)));
}

function every(second) {
  refresh = second;
}

async function tick() {
  if (!refresh) return;
  const running = refresh;
  try {
    await running();
  } catch (e) {
    console.warn('refresh failed', e.message);
  }
}

// ---- sign in ----

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById('token');
  const error = document.getElementById('sign-in-error');
  session.token = input.value.trim();
  try {
    const { body } = await api('/v1/session');
    if (!body.scopes.length) throw new Error('The server does not know this token.');
    session.scopes = body.scopes;
    session.caller = body.caller;
  } catch (e) {
    session.token = null;
    error.textContent = e.message;
    return;
  }
  input.value = '';
  start();
}

function start() {
  session.signedIn = true;
  document.getElementById('nav').hidden = false;
  for (const el of document.querySelectorAll('[data-scope]')) el.hidden = !can(el.dataset.scope);
  timer = setInterval(tick, 1000);
  if (!location.hash) location.hash = '#/datasets';
  go();
}

function signOut() {
  session.token = null;
  session.signedIn = false;
  session.scopes = [];
  clearInterval(timer);
  location.hash = '';
  location.reload();
}

// ---- datasets ----

async function datasetsPage() {
  const { body } = await api('/v1/datasets');
  const rows = await Promise.all(
    body.datasets.map(async (d) => {
      let last = null;
      try {
        last = (await api(`/v1/datasets/${enc(d.name)}/imports?limit=1`)).body.imports[0];
      } catch (_) {
        /* shown as none */
      }
      const full = (await api(`/v1/datasets/${enc(d.name)}`)).body;
      return h('tr', {},
        h('td', {}, h('a', { href: `#/datasets/${enc(d.name)}` }, d.name)),
        h('td', { class: 'n' }, d.current_contract),
        h('td', { class: 'n' }, fmt(full.records, 0)),
        h('td', { class: 'n' }, d.revision),
        h('td', {}, last ? [h('span', { class: `status-${last.status}` }, last.status), ' ', when(last.received_at)] : '—'));
    }));
  main().replaceChildren(
    h('h1', {}, 'Datasets'),
    h('div', { class: 'card' },
      rows.length
        ? h('table', { id: 'datasets' },
            h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'n' }, 'Contract'),
              h('th', { class: 'n' }, 'Records'), h('th', { class: 'n' }, 'Revision'), h('th', {}, 'Last import'))),
            h('tbody', {}, rows))
        : h('p', { class: 'muted' }, 'No dataset yet: create one with POST /v1/datasets.')));
  let seen = JSON.stringify(body.datasets.map((d) => [d.name, d.revision]));
  every(async () => {
    const now = (await api('/v1/datasets')).body.datasets;
    const key = JSON.stringify(now.map((d) => [d.name, d.revision]));
    if (key !== seen) {
      seen = key;
      await datasetsPage();
    }
  });
}

async function datasetPage(name) {
  const base = `/v1/datasets/${enc(name)}`;
  const dataset = (await api(base)).body;
  const contracts = (await api(`${base}/contracts`)).body.contracts;
  const current = contracts.find((c) => c.version === dataset.current_contract) || contracts[contracts.length - 1];
  const measures = Object.keys(current.contract.measures || {});
  const dimensions = current.contract.dimensions || [];

  const summary = h('p', { id: 'summary' });
  const measure = h('select', { id: 'measure', 'aria-label': 'Measure' }, measures.map((m) => h('option', {}, m)));
  // A derived ratio (a percentage, say) is what people look at first.
  const ratio = measures.find((m) => typeof current.contract.measures[m] === 'object');
  if (ratio) measure.value = ratio;
  const groupBy = h('select', { id: 'group-by', 'aria-label': 'Group by' },
    h('option', { value: '' }, '(all records)'), dimensions.map((d) => h('option', {}, d)));
  if (dimensions.length) groupBy.value = dimensions[0];
  const charts = h('div', { class: 'charts', id: 'charts' });
  const imports = h('div', { id: 'imports' });
  const conflicts = h('div', { id: 'conflicts' });
  const versions = h('select', { id: 'version', 'aria-label': 'Contract version' },
    contracts.map((c) => h('option', { value: c.version }, `version ${c.version}`)));
  versions.value = String(current.version);
  const contractView = h('div', {});
  const showContract = () => {
    const v = Number(versions.value);
    const chosen = contracts.find((c) => c.version === v);
    const before = contracts.find((c) => c.version === v - 1);
    contractView.replaceChildren(
      before ? diff(before.contract, chosen.contract) : h('pre', {}, JSON.stringify(chosen.contract, null, 2)));
  };
  versions.addEventListener('change', showContract);
  showContract();

  let chartTag = null;
  let revision = null;
  let unfinished = true;
  const drawCharts = async (force) => {
    if (!measures.length) {
      charts.replaceChildren(h('p', { class: 'muted' }, 'The contract declares no measure to chart.'));
      return;
    }
    const q = `measure=${enc(measure.value)}${groupBy.value ? `&group_by=${enc(groupBy.value)}` : ''}`;
    const answer = await api(`${base}/aggregate?${q}`, { etag: force ? null : chartTag });
    if (answer.notModified) return;
    chartTag = answer.etag;
    charts.replaceChildren(histogram(answer.body.groups, measure.value), boxPlot(answer.body.groups, measure.value));
  };
  measure.addEventListener('change', () => drawCharts(true));
  groupBy.addEventListener('change', () => drawCharts(true));

  const drawImports = async () => {
    const list = (await api(`${base}/imports?limit=10`)).body.imports;
    unfinished = list.some((i) => i.status === 'received' || i.status === 'processing');
    imports.replaceChildren(importTable(name, list, current.contract));
  };
  const drawSummary = async () => {
    const now = (await api(base)).body;
    summary.replaceChildren(
      `Contract version ${now.current_contract} · `,
      h('span', { id: 'record-count' }, fmt(now.records, 0)), ' records · revision ',
      h('span', { id: 'revision' }, now.revision), ' · created ', when(now.created_at));
    const page = (await api(`${base}/conflicts?limit=100`)).body.conflicts;
    conflicts.replaceChildren(page.length
      ? h('details', {}, h('summary', {}, page.length === 100 ? '100 or more conflicts reported'
          : `${page.length} conflict${page.length === 1 ? '' : 's'} reported`),
          h('table', { id: 'conflicts-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'Kind'), h('th', {}, 'Key'), h('th', {}, 'Where'), h('th', {}, 'Disagreeing fields'))),
            h('tbody', {}, page.slice(0, 20).map((c) => h('tr', {},
              h('td', {}, c.kind), h('td', {}, c.key, c.identity ? ` (identity ${c.identity})` : ''),
              h('td', {}, where(c.location)),
              h('td', {}, c.differences.map((d) => `${d.field}: ${JSON.stringify(d.existing)} → ${JSON.stringify(d.incoming)}`).join('; ')))))))
      : 'No conflicts reported.');
    const changed = now.revision !== revision;
    revision = now.revision;
    return changed;
  };

  main().replaceChildren(
    h('h1', {}, name),
    h('div', { class: 'card' }, summary, conflicts),
    h('div', { class: 'card' },
      h('h2', {}, 'Measure by dimension'),
      h('div', { class: 'controls' }, h('label', {}, 'Measure ', measure), h('label', {}, 'Group by ', groupBy)),
      charts),
    h('div', { class: 'card' }, h('h2', {}, 'Recent imports'), imports),
    h('div', { class: 'card' }, h('h2', {}, 'Contract'), h('label', {}, 'Show ', versions,
      h('span', { class: 'muted' }, ' (changes from the version before it)')), contractView));
  await drawSummary();
  await Promise.all([drawCharts(true), drawImports()]);
  every(async () => {
    const changed = await drawSummary();
    if (changed) await drawCharts(false);
    if (changed || unfinished) await drawImports();
  });
}

function importTable(dataset, list, contract) {
  if (!list.length) return h('p', { class: 'muted' }, 'No import yet.');
  const rows = list.map((i) => {
    const r = i.report;
    const counts = r
      ? `${fmt(r.seen, 0)} seen · ${fmt(r.inserted, 0)} new · ${fmt(r.updated, 0)} updated` +
        (r.deleted ? ` · ${fmt(r.deleted, 0)} deleted` : '') + ` · ${fmt(r.invalid, 0)} invalid`
      : '';
    const progress = i.progress
      ? h('span', {}, h('progress', { max: i.progress.bytes_total || 1, value: i.progress.bytes_read }),
          ` ${fmt(i.progress.records_seen, 0)} records, ${fmt(i.progress.records_per_second, 0)}/s`)
      : null;
    const errors = r && r.errors.length
      ? h('details', {}, h('summary', {}, `${r.errors.length}${r.errors_truncated ? '+' : ''} errors`),
          h('ul', {}, r.errors.map((e) => h('li', {}, `${where(e.location)}${e.field ? ` (${e.field})` : ''}: ${e.message}`))))
      : null;
    const actions = h('span', {},
      h('button', { type: 'button', onclick: () => download(dataset, i) }, 'Document'),
      can('write') && (i.status === 'completed' || i.status === 'failed')
        ? h('button', { type: 'button', onclick: (ev) => reprocess(ev.target, dataset, i.id) }, 'Reprocess')
        : null,
      can('write') && i.content_type !== 'application/vnd.intake.deletions+json'
        ? h('button', { type: 'button', onclick: (ev) => dryRun(ev.target, dataset, i.id, contract) }, 'Dry run')
        : null);
    return h('tr', { 'data-import': i.id },
      h('td', {}, h('code', {}, i.id.slice(0, 12)), h('br'), h('span', { class: 'muted' }, i.source)),
      h('td', { class: `status status-${i.status}` }, i.status),
      h('td', {}, when(i.received_at)),
      h('td', {}, counts, progress, errors),
      h('td', {}, actions));
  });
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Import'), h('th', {}, 'Status'), h('th', {}, 'Received'),
      h('th', {}, 'Report'), h('th', {}, ''))),
    h('tbody', {}, rows));
}

function where(l) {
  const parts = [];
  if (l.record) parts.push(`record ${l.record}`);
  if (l.row) parts.push(`row ${l.row}`);
  if (l.line) parts.push(`line ${l.line}`);
  if (l.path) parts.push(l.path);
  return parts.join(', ') || 'document';
}

async function download(dataset, i) {
  const res = await api(`/v1/datasets/${enc(dataset)}/imports/${enc(i.id)}/document`, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: `${dataset}-${i.id}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function reprocess(button, dataset, id) {
  button.disabled = true;
  try {
    await api(`/v1/datasets/${enc(dataset)}/imports/${enc(id)}/reprocess`, { method: 'POST', body: {} });
    button.textContent = 'Queued';
  } catch (e) {
    button.replaceWith(failure(e));
  }
}

// What the current contract would make of a stored document, written nowhere.
async function dryRun(button, dataset, id, contract) {
  button.disabled = true;
  try {
    const { body } = await api(`/v1/datasets/${enc(dataset)}/contracts/dry-run`, {
      method: 'POST', body: { import_id: id, contract } });
    const r = body.report;
    button.replaceWith(h('span', { class: 'dry-run' },
      `dry run: ${body.verdict}, ${fmt(body.records_total, 0)} records, ${fmt(r.invalid, 0)} invalid, ${fmt(r.conflicts, 0)} conflicts`));
  } catch (e) {
    button.replaceWith(failure(e));
  }
}

// A line diff of two contracts' pretty JSON: `+` added, `-` removed.
function diff(a, b) {
  const left = JSON.stringify(a, null, 2).split('\n');
  const right = JSON.stringify(b, null, 2).split('\n');
  const n = left.length;
  const m = right.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = left[i] === right[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && left[i] === right[j]) out.push(`  ${left[i++]}`), j++;
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(`+ ${right[j++]}`);
    else out.push(`- ${left[i++]}`);
  }
  return h('pre', { class: 'diff' }, out.join('\n'));
}

// ---- charts (SVG) ----

const W = 480;
const H = 260;
const PAD = { left: 48, right: 12, top: 16, bottom: 48 };

function frame(title, id) {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, id },
    s('title', {}, title),
    s('text', { x: PAD.left, y: 12 }, title));
}

function histogram(groups, measure) {
  const svg = frame(`Records per group (${measure})`, 'histogram');
  const most = Math.max(1, ...groups.map((g) => g.count));
  const width = (W - PAD.left - PAD.right) / Math.max(1, groups.length);
  groups.forEach((g, i) => {
    const height = ((H - PAD.top - PAD.bottom) * g.count) / most;
    const x = PAD.left + i * width;
    svg.append(
      s('rect', { class: 'bar', x: x + 2, y: H - PAD.bottom - height, width: Math.max(1, width - 4), height,
        'data-group': g.group ?? '', 'data-count': g.count }, s('title', {}, `${g.group ?? 'all'}: ${g.count}`)),
      s('text', { x: x + width / 2, y: H - PAD.bottom + 14, 'text-anchor': 'middle' }, label(g.group)));
  });
  axis(svg, 0, most);
  return svg;
}

function boxPlot(groups, measure) {
  const svg = frame(`${measure}: min, quartiles, max`, 'boxplot');
  const shown = groups.filter((g) => g.min !== null && g.min !== undefined);
  const lo = Math.min(...shown.map((g) => g.min), 0);
  const hi = Math.max(...shown.map((g) => g.max), 1);
  const y = (v) => H - PAD.bottom - ((H - PAD.top - PAD.bottom) * (v - lo)) / (hi - lo || 1);
  const width = (W - PAD.left - PAD.right) / Math.max(1, shown.length);
  shown.forEach((g, i) => {
    const cx = PAD.left + i * width + width / 2;
    const half = Math.min(18, width / 3);
    svg.append(s('g', { class: 'group', 'data-group': g.group ?? '' },
      s('title', {}, `${g.group ?? 'all'}: min ${fmt(g.min)}, p25 ${fmt(g.p25)}, median ${fmt(g.p50)}, p75 ${fmt(g.p75)}, max ${fmt(g.max)}`),
      s('line', { x1: cx, x2: cx, y1: y(g.max), y2: y(g.p75) }),
      s('line', { x1: cx, x2: cx, y1: y(g.p25), y2: y(g.min) }),
      s('rect', { class: 'box', x: cx - half, width: 2 * half, y: y(g.p75), height: Math.max(1, y(g.p25) - y(g.p75)) }),
      s('line', { x1: cx - half, x2: cx + half, y1: y(g.p50), y2: y(g.p50) }),
      s('line', { x1: cx - half / 2, x2: cx + half / 2, y1: y(g.min), y2: y(g.min) }),
      s('line', { x1: cx - half / 2, x2: cx + half / 2, y1: y(g.max), y2: y(g.max) }),
      s('text', { x: cx, y: H - PAD.bottom + 14, 'text-anchor': 'middle' }, label(g.group))));
  });
  axis(svg, lo, hi);
  return svg;
}

function label(group) {
  const text = group === null || group === undefined ? 'all' : String(group);
  return text.length > 10 ? `${text.slice(0, 9)}…` : text;
}

function axis(svg, lo, hi) {
  svg.append(s('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom }),
    s('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }),
    s('text', { x: PAD.left - 4, y: H - PAD.bottom, 'text-anchor': 'end' }, fmt(lo)),
    s('text', { x: PAD.left - 4, y: PAD.top + 4, 'text-anchor': 'end' }, fmt(hi)));
}

// ---- imports ----

const PAGE = 25;

// Every import of the datasets, newest first, a page at a time (`#/imports/<page>`).
async function importsPage(pageNumber = '1') {
  const n = Math.max(1, Number.parseInt(pageNumber, 10) || 1);
  const datasets = (await api('/v1/datasets')).body.datasets;
  const contracts = new Map();
  const lists = await Promise.all(datasets.map(async (d) => {
    const base = `/v1/datasets/${enc(d.name)}`;
    contracts.set(d.name, (await api(`${base}/contracts/${d.current_contract}`)).body.contract);
    // Enough of each to fill the page asked for.
    return (await api(`${base}/imports?limit=${Math.min(n * PAGE, 1000)}`)).body.imports;
  }));
  const all = lists.flat().sort((a, b) => b.received_at.localeCompare(a.received_at));
  const shown = all.slice((n - 1) * PAGE, n * PAGE);
  const byDataset = shown.map((i) => ({ ...i }));
  const table = byDataset.length
    ? h('table', { id: 'all-imports' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Dataset'), h('th', {}, 'Import'), h('th', {}, 'Status'),
          h('th', {}, 'Received'), h('th', {}, 'Report'), h('th', {}, ''))),
        h('tbody', {}, byDataset.map((i) => {
          const row = importTable(i.dataset, [i], contracts.get(i.dataset)).querySelector('tbody tr');
          row.prepend(h('td', {}, h('a', { href: `#/datasets/${enc(i.dataset)}` }, i.dataset)));
          return row;
        })))
    : h('p', { class: 'muted' }, 'No import yet.');
  const nav = h('p', { class: 'controls' },
    n > 1 ? h('a', { href: `#/imports/${n - 1}` }, 'Newer') : null,
    all.length > n * PAGE ? h('a', { href: `#/imports/${n + 1}` }, 'Older') : null);
  main().replaceChildren(h('h1', {}, 'Imports'), h('div', { class: 'card' }, table, nav));
  const unfinished = () => shown.some((i) => i.status === 'received' || i.status === 'processing');
  let newest = all[0]?.id;
  every(async () => {
    const latest = await Promise.all(datasets.map(async (d) =>
      (await api(`/v1/datasets/${enc(d.name)}/imports?limit=1`)).body.imports[0]));
    const top = latest.filter(Boolean).sort((a, b) => b.received_at.localeCompare(a.received_at))[0];
    if (top?.id !== newest || unfinished()) {
      newest = top?.id;
      if (!main().contains(document.activeElement)) await importsPage(String(n));
    }
  });
}

// ---- deliveries ----

async function deliveriesPage(again = false) {
  if (!again) replayed.clear();
  const datasets = (await api('/v1/datasets')).body.datasets;
  const sections = await Promise.all(datasets.map(async (d) => {
    const listed = (await api(`/v1/datasets/${enc(d.name)}/subscriptions`)).body.subscriptions;
    if (!listed.length) return null;
    // One by one: each answer carries its delivery counts.
    const subs = await Promise.all(listed.map(async (sub) =>
      (await api(`/v1/datasets/${enc(d.name)}/subscriptions/${enc(sub.id)}`)).body));
    return h('div', { class: 'card' }, h('h2', {}, d.name), h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Subscription'), h('th', {}, 'Status'), h('th', { class: 'n' }, 'Pending'),
        h('th', { class: 'n' }, 'Dead'), h('th', { class: 'n' }, 'Delivered'), h('th', {}, 'Last failure'), h('th', {}, ''))),
      h('tbody', {}, subs.map((sub) => {
        const c = sub.deliveries || {};
        return h('tr', { 'data-subscription': sub.id },
          h('td', {}, sub.url, h('br'), h('span', { class: 'muted' }, (sub.events || ['every event']).join(', '))),
          h('td', {}, sub.status),
          h('td', { class: 'n pending' }, fmt(c.pending, 0)),
          h('td', { class: 'n dead' }, fmt(c.dead, 0)),
          h('td', { class: 'n' }, fmt(c.delivered, 0)),
          h('td', {}, c.last_failure_at ? `${when(c.last_failure_at)} (${c.last_failure_status ?? 'no answer'})` : '—'),
          h('td', {}, replayed.has(sub.id)
            ? h('span', { class: 'replayed' }, `${replayed.get(sub.id)} replayed`)
            : null,
          can('admin') && c.dead
            ? h('button', { type: 'button', onclick: (ev) => replay(ev.target, d.name, sub.id) }, `Replay ${c.dead} dead`)
            : null));
      }))));
  }));
  const shown = sections.filter(Boolean);
  main().replaceChildren(h('h1', {}, 'Deliveries'),
    ...(shown.length ? shown : [h('p', { class: 'muted' }, 'No subscription yet.')]));
  every(async () => {
    // Not under a control the user is on.
    if (!main().contains(document.activeElement)) await deliveriesPage(true);
  });
}

// What the last replay of each subscription sent again, shown until the page is left.
const replayed = new Map();

async function replay(button, dataset, id) {
  button.disabled = true;
  try {
    const { body } = await api(`/v1/datasets/${enc(dataset)}/subscriptions/${enc(id)}/replay`, {
      method: 'POST', body: { status: 'dead' } });
    replayed.set(id, body.replayed);
    button.replaceWith(h('span', { class: 'replayed' }, `${body.replayed} replayed`));
  } catch (e) {
    button.replaceWith(failure(e));
  }
}

// ---- operations ----

async function operationsPage() {
  const { body } = await api('/admin/state');
  const datasets = (await api('/v1/datasets')).body.datasets;
  const workers = h('table', { id: 'workers' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Work'), h('th', {}, 'Status'), h('th', { class: 'n' }, 'Workers'), h('th', {}, ''))),
    h('tbody', {}, body.workers.map((w) => h('tr', { 'data-kind': w.kind },
      h('td', {}, w.kind),
      h('td', { class: 'status' }, w.status, w.paused_since ? ` since ${when(w.paused_since)}` : ''),
      h('td', { class: 'n' }, w.count),
      h('td', {}, h('button', { type: 'button', onclick: (ev) => pause(ev.target, w) },
        w.status === 'paused' ? `Resume ${w.kind}` : `Pause ${w.kind}`))))));
  const q = body.queues || {};
  main().replaceChildren(
    h('h1', {}, 'Operations'),
    h('div', { class: 'card' }, h('p', {}, `Instance ${body.instance} · version ${body.version} (${body.build}) · up ${fmt(body.uptime_seconds, 0)} s · log filter `, h('code', {}, body.log_filter))),
    h('div', { class: 'card' }, h('h2', {}, 'Workers'), workers),
    h('div', { class: 'card' }, h('h2', {}, 'Queues'),
      h('p', {}, `${fmt(q.imports_waiting, 0)} imports waiting · ${fmt(q.callbacks_pending, 0)} callbacks pending`)),
    h('div', { class: 'card' }, h('h2', {}, 'Adapters'), h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Adapter'), h('th', {}, 'Status'), h('th', {}, 'Required'),
        h('th', { class: 'n' }, 'Check (ms)'), h('th', {}, 'Error'))),
      h('tbody', {}, (body.adapters || []).map((a) => h('tr', {},
        h('td', {}, a.name), h('td', {}, a.status), h('td', {}, a.required ? 'yes' : 'no'),
        h('td', { class: 'n' }, fmt(a.latency_ms, 1)), h('td', { class: 'error' }, a.error ?? '')))))),
    h('div', { class: 'card' }, h('h2', {}, 'Log level'), logLevel(body.log_filter)),
    h('div', { class: 'card' }, h('h2', {}, 'Jobs'), await jobsTable(datasets)),
    h('div', { class: 'card' }, h('h2', {}, 'Pull sources'), await sourcesTable(datasets)),
    h('div', { class: 'card' }, h('h2', {}, 'Backups'), body.backups
      ? await backupsTable()
      : h('p', { class: 'muted' }, 'The service backs up SQLite databases; back PostgreSQL up with intake backup (pg_dump).')),
    h('div', { class: 'card' }, h('h2', {}, 'Recent errors'),
      h('pre', {}, JSON.stringify(body.recent_errors || [], null, 2))));
}

function logLevel(filter) {
  const input = h('input', { id: 'log-filter', value: filter, 'aria-label': 'Log filter', size: 40 });
  const note = h('span', { class: 'muted', role: 'status' });
  const form = h('form', { class: 'controls' }, input, h('button', { type: 'submit' }, 'Set'), note);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const { body } = await api('/admin/log-level', { method: 'PUT', body: { filter: input.value } });
      note.textContent = `now ${body.filter}`;
    } catch (e) {
      note.textContent = e.message;
    }
  });
  return form;
}

async function jobsTable(datasets) {
  const rows = [];
  for (const d of datasets) {
    const jobs = (await api(`/v1/datasets/${enc(d.name)}/jobs`)).body.jobs;
    for (const j of jobs) {
      const p = j.progress || {};
      const bar = p.total ? h('progress', { max: p.total, value: p.done }) : null;
      const act = (action) => h('button', { type: 'button', onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api(`/v1/datasets/${enc(d.name)}/jobs/${enc(j.id)}/${action}`, { method: 'POST' });
          await operationsPage();
        } catch (e) {
          ev.target.replaceWith(failure(e));
        }
      } }, `${action[0].toUpperCase()}${action.slice(1)}`);
      const open = !['completed', 'failed', 'cancelled'].includes(j.status);
      rows.push(h('tr', { 'data-job': j.id },
        h('td', {}, d.name), h('td', {}, j.kind), h('td', {}, j.status, j.error ? [h('br'), h('span', { class: 'error' }, j.error)] : null),
        h('td', {}, bar, ` ${fmt(p.done, 0)}${p.total ? ` of ${fmt(p.total, 0)}` : ''}`),
        h('td', {}, open && j.status !== 'paused' ? act('pause') : null, j.status === 'paused' ? act('resume') : null, open ? act('cancel') : null)));
    }
  }
  return rows.length
    ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Dataset'), h('th', {}, 'Kind'), h('th', {}, 'Status'), h('th', {}, 'Progress'), h('th', {}, ''))), h('tbody', {}, rows))
    : h('p', { class: 'muted' }, 'No job.');
}

async function sourcesTable(datasets) {
  const rows = [];
  for (const d of datasets) {
    const sources = (await api(`/v1/datasets/${enc(d.name)}/sources`)).body.sources;
    for (const src of sources) {
      const st = src.state || {};
      rows.push(h('tr', {},
        h('td', {}, d.name), h('td', {}, src.name), h('td', {}, src.kind),
        h('td', {}, src.status, src.reason ? [h('br'), h('span', { class: 'error' }, src.reason)] : null),
        h('td', {}, when(st.last_success_at)), h('td', {}, when(st.next_run_at)),
        h('td', {}, can('admin') ? h('button', { type: 'button', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api(`/v1/datasets/${enc(d.name)}/sources/${enc(src.name)}/run`, { method: 'POST' });
            ev.target.textContent = 'Running';
          } catch (e) {
            ev.target.replaceWith(failure(e));
          }
        } }, 'Run now') : null)));
    }
  }
  return rows.length
    ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Dataset'), h('th', {}, 'Source'), h('th', {}, 'Kind'), h('th', {}, 'Health'), h('th', {}, 'Last success'), h('th', {}, 'Next run'), h('th', {}, ''))), h('tbody', {}, rows))
    : h('p', { class: 'muted' }, 'No pull source.');
}

async function backupsTable() {
  let items;
  try {
    items = (await api('/admin/backups')).body.items;
  } catch (e) {
    return h('p', { class: 'muted' }, e.message);
  }
  const make = h('button', { type: 'button', onclick: async (ev) => {
    ev.target.disabled = true;
    try {
      await api('/admin/backups', { method: 'POST' });
      await operationsPage();
    } catch (e) {
      ev.target.replaceWith(failure(e));
    }
  } }, 'Back up now');
  return h('div', {}, make, items.length
    ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Backup'), h('th', {}, 'Made'), h('th', { class: 'n' }, 'Bytes'), h('th', {}, 'Verified'))),
        h('tbody', {}, items.map((b) => h('tr', {}, h('td', {}, b.name), h('td', {}, when(b.made_at)), h('td', { class: 'n' }, fmt(b.bytes, 0)), h('td', {}, String(b.verified))))))
    : h('p', { class: 'muted' }, 'No backup yet.'));
}

async function pause(button, worker) {
  button.disabled = true;
  const action = worker.status === 'paused' ? 'resume' : 'pause';
  try {
    await api(`/admin/workers/${enc(worker.kind)}/${action}`, { method: 'POST' });
    await operationsPage();
  } catch (e) {
    button.replaceWith(failure(e));
  }
}

// ---- start ----

document.getElementById('sign-in').addEventListener('submit', signIn);
// With authentication off the server answers without a token: no sign-in then.
api('/v1/session')
  .then(({ body }) => {
    if (!body.authentication) {
      session.scopes = body.scopes;
      start();
    }
  })
  .catch(() => document.getElementById('token').focus());
document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', go);
