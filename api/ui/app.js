/**
 * Bamboo's web UI: the apps and their rules, the rule editor, the worker fleet, and the banner of a
 * Marathon answer held back by the shrink guard. A plain client of
 * the public REST API (docs/api.md), loaded as ES modules without a build step.
 *
 * Data flow: refresh() reads /api/state, /api/services?versions=1, /api/workers and /status, keeps
 * the answers, and render() rebuilds the visible view from them (model.js -> views.js). The page
 * polls every few seconds while visible; a save or delete refreshes at once.
 */
import { askToken } from './auth.js';
import { createClient, storedToken, storeToken } from './client.js';
import { byId, h, replace } from './dom.js';
import { createEditor } from './editor.js';
import { createHistory } from './history.js';
import { buildRows, filterRows, FILTERS } from './model.js';
import { renderApps, renderFleet, renderHealth, renderHeld } from './views.js';

const POLL_MS = 5000;
/** The API's error code when ZooKeeper cannot be reached (docs/api.md). */
const ZK_UNAVAILABLE = 'BAMBOO_ZK_UNAVAILABLE';

const client = createClient({
  askToken: async (info) => {
    const token = await askToken(info);
    showTokenState();
    return token;
  },
});

const data = {
  state: null, // /api/state, or null before the first snapshot; kept through a ZooKeeper outage
  stateReadAt: 0, // when `state` was read
  stateError: null, // the error body when /api/state failed
  services: {},
  workers: null,
  status: null,
  loaded: false,
};

// --- refresh ---------------------------------------------------------------------------------

let inFlight = null;
let again = false;

/** Reads everything again; calls made while a refresh runs ride on one more refresh after it. */
function refresh() {
  if (inFlight) {
    again = true;
    return inFlight;
  }
  inFlight = (async () => {
    do {
      again = false;
      await load();
    } while (again);
    inFlight = null;
  })();
  return inFlight;
}

async function load() {
  const [state, services, workers, status] = await Promise.allSettled([
    client.request('GET', '/api/state'),
    client.request('GET', '/api/services?versions=1'),
    client.request('GET', '/api/workers'),
    client.request('GET', '/status'),
  ]);
  const problems = [];
  const unreachable = [state, services, workers, status].every((r) => r.status === 'rejected');
  const zkDown = [state, services].some((r) => r.status === 'fulfilled' && r.value.body?.code === ZK_UNAVAILABLE);
  if (state.status === 'fulfilled') {
    if (state.value.ok) {
      data.state = state.value.body;
      data.stateReadAt = Date.now();
    } else if (state.value.body?.code !== ZK_UNAVAILABLE) {
      // No snapshot at all (or another error): nothing to show. A ZooKeeper outage keeps the last apps.
      data.state = null;
    }
    data.stateError = state.value.ok ? null : state.value.body;
    if (!state.value.ok && state.value.body?.code !== ZK_UNAVAILABLE) problems.push(`Apps from Marathon are not available: ${state.value.body?.message ?? state.value.status}`);
  }
  if (services.status === 'fulfilled') {
    if (services.value.ok) data.services = services.value.body ?? {};
    else if (services.value.body?.code !== ZK_UNAVAILABLE) problems.push(`Rules cannot be read: ${services.value.body?.message ?? services.value.status}`);
  }
  if (zkDown) {
    const at = data.stateReadAt ? ` (read at ${new Date(data.stateReadAt).toLocaleTimeString()})` : '';
    problems.unshift(data.state
      ? `ZooKeeper is unreachable: showing the last known apps and rules${at}; changes cannot be saved until it is back. Retrying every few seconds.`
      : 'ZooKeeper is unreachable, and no apps were read before it went away. Retrying every few seconds.');
  }
  if (workers.status === 'fulfilled') data.workers = workers.value.ok ? workers.value.body : null;
  data.status = status.status === 'fulfilled' ? status.value.body : null;
  if (unreachable) problems.splice(0, problems.length, 'The API cannot be reached; showing the last data read. Retrying every few seconds.');
  data.loaded = true;
  showBanner(problems.join(' '));
  render();
}

function showBanner(text) {
  const banner = byId('banner');
  banner.hidden = !text;
  if (banner.textContent !== text) banner.textContent = text;
}

// --- render ----------------------------------------------------------------------------------

/** Rebuilding a table must not lose the keyboard focus or an opened "more tasks" list. */
function keepingFocus(fn) {
  const active = document.activeElement;
  const focusKey = active instanceof HTMLElement ? active.dataset.focusKey : undefined;
  const openKeys = new Set([...document.querySelectorAll('details[open]')].map((d) => d.dataset.key));
  fn();
  for (const d of document.querySelectorAll('details')) if (openKeys.has(d.dataset.key)) d.open = true;
  if (focusKey && !(document.activeElement instanceof HTMLElement && document.activeElement.dataset.focusKey === focusKey)) {
    const again = [...document.querySelectorAll('[data-focus-key]')].find((el) => el.dataset.focusKey === focusKey);
    if (again) again.focus();
  }
}

function render() {
  if (!data.loaded) return;
  const now = Date.now();
  const rows = buildRows(data.state, data.services, data.workers?.workers ?? []);
  const query = byId('search').value;
  const filter = byId('filter').value;
  keepingFocus(() => {
    renderHealth(data.status, now);
    const held = data.status?.marathon?.held ?? null;
    if (!held || held.id !== heldArmedFor) heldArmedFor = null;
    renderHeld(held, now, heldArmedFor !== null);
    renderApps(filterRows(rows, query, filter), rows.length, { snapshotMissing: data.state === null, filtered: query.trim() !== '' || filter !== 'all', now });
    renderFleet(data.workers, rows, now);
  });
}

// --- views and navigation --------------------------------------------------------------------

function showView(fromUser) {
  const fleet = location.hash === '#fleet';
  byId('view-apps').hidden = fleet;
  byId('view-fleet').hidden = !fleet;
  for (const [id, on] of [['nav-apps', !fleet], ['nav-fleet', fleet]]) {
    if (on) byId(id).setAttribute('aria-current', 'page');
    else byId(id).removeAttribute('aria-current');
  }
  document.title = fleet ? 'Worker fleet · Bamboo' : 'Apps and rules · Bamboo';
  if (fromUser) {
    const title = byId(fleet ? 'fleet-title' : 'apps-title');
    title.tabIndex = -1;
    title.focus();
  }
}

function showTokenState() {
  byId('token-state').hidden = !storedToken();
}

function notice(text) {
  const el = byId('notice');
  el.textContent = text;
}

// --- the held Marathon answer ----------------------------------------------------------------

/** The id of the held answer whose confirm button was clicked once (the second click confirms). */
let heldArmedFor = null;

function heldError(text) {
  const el = byId('held-error');
  el.hidden = !text;
  el.textContent = text ?? '';
}

async function confirmHeld(button) {
  const id = button.dataset.heldId;
  if (!id) return;
  if (heldArmedFor !== id) {
    heldArmedFor = id;
    heldError(null);
    render();
    return;
  }
  heldArmedFor = null;
  button.disabled = true;
  let res;
  try {
    res = await client.request('POST', '/api/marathon/held/confirm', { body: { id }, auth: true });
  } catch (err) {
    heldError(`Not confirmed: the API cannot be reached (${err.message}).`);
    return;
  } finally {
    button.disabled = false;
    showTokenState();
  }
  if (res.status === 202) {
    heldError(null);
    notice('The held Marathon answer was confirmed; it applies with the next fetch from Marathon.');
  } else if (res.body?.code === 'BAMBOO_HELD_CHANGED') {
    heldError("Not confirmed: Marathon's answer changed meanwhile. Check the new one below and confirm it if it is right.");
  } else if (res.body?.code === 'BAMBOO_NOTHING_HELD') {
    heldError(null);
    notice('Nothing is held any more: the answer applied, or Marathon answered normally again.');
  } else {
    heldError(`Not confirmed: ${res.body?.message ?? `HTTP ${res.status}`}`);
  }
  await refresh();
}

// --- wiring ----------------------------------------------------------------------------------

/** A dialog (editor, history) closed: say what happened, refresh after a change, give the focus back. */
function dialogDone(result, returnFocus) {
  if (result.message) notice(result.message);
  showTokenState();
  const focusKey = returnFocus instanceof HTMLElement ? returnFocus.dataset.focusKey : undefined;
  const done = result.changed ? refresh() : Promise.resolve();
  void done.then(() => {
    const target = returnFocus instanceof HTMLElement && returnFocus.isConnected
      ? returnFocus
      : [...document.querySelectorAll('[data-focus-key]')].find((el) => el.dataset.focusKey === focusKey) ?? byId('search');
    target.focus();
  });
}

const editor = createEditor({ client, onDone: dialogDone });

const history = createHistory({ client, onDone: dialogDone });

replace(byId('filter'), FILTERS.map((f) => h('option', { value: f.value }, f.label)));
byId('search').addEventListener('input', render);
byId('filter').addEventListener('change', render);
byId('refresh').addEventListener('click', () => void refresh());
byId('held-confirm').addEventListener('click', (ev) => void confirmHeld(ev.currentTarget));
byId('new-rule').addEventListener('click', (ev) => void editor.open(null, ev.currentTarget));
byId('apps').addEventListener('click', (ev) => {
  const button = ev.target instanceof Element ? ev.target.closest('button[data-edit]') : null;
  if (button) void editor.open(button.dataset.edit, button);
  const past = ev.target instanceof Element ? ev.target.closest('button[data-history]') : null;
  if (past) void history.open(past.dataset.history, past);
});
byId('forget-token').addEventListener('click', () => {
  storeToken(null);
  showTokenState();
  notice('The token was forgotten; the next change will ask for it.');
  byId('search').focus();
});
window.addEventListener('hashchange', () => showView(true));

showView(false);
showTokenState();
void refresh();
setInterval(() => {
  if (document.visibilityState === 'visible') void refresh();
}, POLL_MS);
