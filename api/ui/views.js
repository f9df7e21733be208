/**
 * Rendering of the two views and the health line from the rows of model.js. Everything is built
 * with h() (text nodes only). State is shown with words and symbols, not colour alone.
 */
import { h, replace, byId } from './dom.js';
import { ago, pendingRules } from './model.js';

const VISIBLE_TASKS = 6;

function badge(kind, text, title) {
  return h('span', { class: `badge ${kind}`, title }, text);
}

function mark(symbol) {
  return h('span', { class: 'mark', 'aria-hidden': 'true' }, symbol);
}

function when(at, now) {
  if (!at) return h('span', { class: 'muted' }, 'never');
  const d = new Date(at);
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, ago(at, now));
}

function taskItem(t) {
  const kind = t.serving ? 'ok' : t.alive ? 'warn' : 'bad';
  return h('li', { class: `task ${kind}`, title: `${t.id}${t.state ? ` (${t.state})` : ''}` },
    mark(t.serving ? '✓' : t.alive ? '…' : '✗'), ' ', h('code', {}, t.address), ' ', h('span', { class: 'task-state' }, t.label));
}

function tasksCell(r) {
  if (!r.inMarathon) return h('td', { class: 'muted' }, 'not running in Marathon');
  if (r.tasks.length === 0) return h('td', {}, h('span', { class: 'warn-text' }, mark('✗'), ' no tasks'));
  const list = (tasks) => h('ul', { class: 'tasks' }, tasks.map(taskItem));
  const rest = r.tasks.slice(VISIBLE_TASKS);
  return h('td', {},
    h('div', { class: r.unhealthy ? 'summary-line warn-text' : 'summary-line' }, `${r.serving} of ${r.tasks.length} serving`),
    list(r.tasks.slice(0, VISIBLE_TASKS)),
    rest.length > 0 ? h('details', { dataset: { key: `tasks:${r.id}` } }, h('summary', {}, `${rest.length} more`), list(rest)) : null,
  );
}

const SOURCE_TITLES = {
  rule: 'Routed by the rule stored in ZooKeeper (it wins over labels)',
  labels: "Routed by the app's marathon-lb labels (HAPROXY_0_VHOST, ...); a rule would win over them",
  default: "Routed by the template's default rule for the app id",
};

function ruleCell(r, now) {
  return h('td', {},
    h('code', { class: r.custom || r.source === 'labels' ? 'rule' : 'rule default' }, r.rule),
    ' ',
    r.custom
      ? badge('custom', `custom · v${r.record.Version ?? '?'}`, 'A rule stored in ZooKeeper for this app')
      : r.source === 'labels'
        ? badge('labels', 'labels', "No rule is stored: the app's marathon-lb labels route it")
        : badge('default', 'default', "No rule is stored: the template's default rule for the app id applies"),
    quarantineNotes(r.rollout.quarantine, now),
    h('span', { class: 'routing-source', dataset: { source: r.source }, title: SOURCE_TITLES[r.source] ?? '' }, `routing: ${r.source}`),
    r.groups.length ? h('div', { class: 'muted' }, `group ${r.groups.join(', ')}`) : null,
    r.conflicts.map((c) => h('div', { class: 'bad-text conflict-line' }, mark('⚠'), ` ${c.reason}`)),
    r.problems.map((p) => h('div', { class: 'warn-text problem-line' }, mark('▲'), ` ${p.key} ignored: ${p.reason}`)),
  );
}

/** Next to the rule: each worker that quarantines it, HAProxy's reason, since when, and what routes the app now. */
function quarantineNotes(list, now) {
  if (list.length === 0) return null;
  return h('ul', { class: 'plain quarantine' }, list.map((q) => h('li', { class: 'bad-text', dataset: { quarantinedOn: q.worker } },
    mark('⚠'), ` ${q.ruleVersion === null ? 'quarantined' : `v${q.ruleVersion} quarantined`} on ${q.worker}`,
    q.since ? [' since ', when(q.since, now)] : null, ': ',
    h('span', { class: 'reason' }, q.error), ` · ${q.routesBy}`)));
}

function fleetCell(r) {
  const { applied, pending, quarantined, workers } = r.rollout;
  if (workers === 0) return h('td', { class: 'muted' }, 'no workers');
  const parts = [];
  if (pending.length === 0 && quarantined.length === 0) {
    parts.push(h('div', { class: 'ok-text' }, mark('✓'), ` applied on all ${workers}`));
  }
  if (pending.length > 0) {
    parts.push(h('div', { class: 'warn-text pending' }, mark('○'), ` not yet applied on ${pending.length} of ${workers}: `, pending.join(', ')));
    if (applied.length > 0) parts.push(h('div', { class: 'muted' }, `applied on ${applied.join(', ')}`));
  }
  if (quarantined.length > 0) {
    parts.push(h('div', { class: 'bad-text' }, mark('⚠'), ' quarantined on ', quarantined.join(', ')));
  }
  return h('td', {}, parts);
}

/** The apps table (already filtered rows), or an empty-state line. */
export function renderApps(rows, total, { snapshotMissing, filtered, now }) {
  const tbody = byId('apps').querySelector('tbody');
  replace(tbody, rows.map((r) => {
    const action = r.record ? 'Edit rule' : 'Add rule';
    return h('tr', { dataset: { app: r.id } },
      h('th', { scope: 'row' }, h('code', { class: 'app-id' }, r.id), r.inMarathon ? null : h('div', {}, badge('orphan', 'not in Marathon', 'A stored rule whose app Marathon does not run'))),
      tasksCell(r),
      ruleCell(r, now),
      fleetCell(r),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'edit', 'aria-label': `${action} for ${r.id}`, dataset: { edit: r.id, focusKey: `edit:${r.id}` } }, action),
        ' ',
        h('button', { type: 'button', class: 'history', 'aria-label': `History of the rule for ${r.id}`, dataset: { history: r.id, focusKey: `history:${r.id}` } }, 'History')),
    );
  }));
  byId('count').textContent = filtered ? `${rows.length} of ${total} apps` : `${total} apps`;
  const empty = byId('apps-empty');
  empty.hidden = rows.length > 0;
  empty.textContent = total === 0
    ? snapshotMissing ? 'No Marathon snapshot yet, and no rule is stored.' : 'Marathon runs no app and no rule is stored.'
    : 'No app matches the search and filter.';
  byId('apps').hidden = rows.length === 0;
}

function outcomeBadge(outcome) {
  const good = outcome === 'noop' || outcome === 'reloaded' || outcome === 'runtime';
  return badge(good ? 'ok' : outcome ? 'bad' : 'default', outcome || 'none');
}

/** A duration for people: `24 h`, `30 min`, `45 s`. */
function span(ms) {
  if (!ms) return '';
  if (ms >= 3_600_000) return `${Math.round(ms / 3_600_000)} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** A worker that stopped (GET /api/workers `gone`): when it was last seen and what it last ran. */
function goneRow(g, now) {
  const last = g.last ?? {};
  return h('tr', { class: 'gone', dataset: { worker: g.name, state: 'gone' } },
    h('th', { scope: 'row' },
      h('div', { class: 'worker-name' }, g.name),
      h('div', { class: 'muted' }, `${last.host ?? ''}${last.mode ? ` · ${last.mode}` : ''}`),
      badge('bad', 'gone', g.how === 'stopped' ? 'It stopped cleanly' : 'Its ZooKeeper session ended without a goodbye (crash, kill, or cut off for longer than its session timeout)'),
      h('div', { class: 'last-seen' }, 'last seen ', when(g.lastSeen, now), g.how === 'stopped' ? ' · stopped' : ' · lost')),
    h('td', {},
      h('div', {}, `version ${last.snapshotVersion ?? '?'}`),
      last.configHash ? h('div', { class: 'muted' }, 'config ', h('code', { title: last.configHash }, String(last.configHash).slice(0, 12))) : null),
    h('td', { class: 'outcome' },
      h('div', {}, outcomeBadge(last.lastOutcome), ' ', when(last.lastOutcomeAt, now)),
      last.lastReason ? h('div', { class: 'reason' }, last.lastReason) : null),
    h('td', {}, last.quarantined ? h('span', { class: 'bad-text' }, mark('⚠'), ` ${last.quarantined} app${last.quarantined === 1 ? '' : 's'}`) : h('span', { class: 'muted' }, 'none')),
    h('td', { class: 'muted' }, 'not running'),
  );
}

/** The fleet view from /api/workers and the app rows (for the rule rollout table). */
export function renderFleet(answer, rows, now) {
  const workers = answer?.workers ?? [];
  const gone = answer?.gone ?? [];
  const upToDate = workers.filter((w) => w.upToDate).length;
  const stale = workers.filter((w) => w.state === 'stale').length;
  byId('fleet-summary').textContent = answer
    ? `Latest snapshot version ${answer.snapshotVersion} · ${answer.rules} rules stored · ${workers.length} workers, ${upToDate} up to date`
      + (stale > 0 ? ` · ${stale} stale` : '')
      + (gone.length > 0 ? ` · ${gone.length} gone in the last ${span(answer.goneRetentionMs)}` : '')
    : 'The worker list cannot be read right now.';
  const tbody = byId('workers').querySelector('tbody');
  replace(tbody, workers.map((w) => {
    const stale = w.staleRules ?? [];
    const quarantined = w.quarantined ?? [];
    return h('tr', { dataset: { worker: w.name } },
      h('th', { scope: 'row' },
        h('div', { class: 'worker-name' }, w.name),
        h('div', { class: 'muted' }, `${w.host}${w.mode ? ` · ${w.mode}` : ''}`),
        h('div', { class: 'muted worker-groups' }, w.groups?.length ? `groups ${w.groups.join(', ')}` : 'every group'),
        w.upToDate ? badge('ok', 'up to date') : badge('warn', 'behind'),
        w.state === 'stale' ? [' ', badge('warn', 'stale', 'Its ZooKeeper session lasts but it has stopped reporting: frozen, or cut off from ZooKeeper'), h('div', { class: 'warn-text' }, 'no report since ', when(w.lastSeen, now))] : null),
      h('td', {},
        h('div', {}, `version ${w.snapshotVersion} `, w.snapshotUpToDate ? badge('ok', 'latest') : badge('warn', `latest is ${answer.snapshotVersion}`)),
        w.configHash ? h('div', { class: 'muted' }, 'config ', h('code', { title: w.configHash }, String(w.configHash).slice(0, 12))) : null),
      h('td', { class: 'outcome' },
        h('div', {}, outcomeBadge(w.lastOutcome), ' ', when(w.lastOutcomeAt, now)),
        w.lastReason ? h('div', { class: 'reason' }, w.lastReason) : null),
      h('td', {}, quarantined.length === 0
        ? h('span', { class: 'muted' }, 'none')
        : h('ul', { class: 'plain' }, quarantined.map((id) => h('li', {}, mark('⚠'), ' ', h('code', {}, id))))),
      h('td', {}, stale.length === 0
        ? h('span', { class: 'ok-text' }, mark('✓'), ' all applied')
        : [h('div', { class: 'warn-text' }, mark('○'), ` ${stale.length} not yet applied:`), h('ul', { class: 'plain' }, stale.map((id) => h('li', {}, h('code', {}, id))))]),
    );
  }).concat(gone.map((g) => goneRow(g, now))));
  byId('workers').hidden = workers.length + gone.length === 0;
  byId('workers-empty').hidden = workers.length + gone.length > 0;

  const pending = pendingRules(rows);
  const box = byId('rollout');
  if (workers.length === 0) {
    replace(box, h('p', { class: 'muted' }, 'No worker to compare with.'));
  } else if (pending.length === 0) {
    replace(box, h('p', { class: 'ok-text' }, mark('✓'), ' Every rule is applied on every worker.'));
  } else {
    replace(box, h('table', { class: 'grid', id: 'rollout-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'App'), h('th', { scope: 'col' }, 'Rule'), h('th', { scope: 'col' }, 'Not yet applied on'))),
      h('tbody', {}, pending.map((p) => h('tr', { dataset: { app: p.id } },
        h('th', { scope: 'row' }, h('code', { class: 'app-id' }, p.id)),
        h('td', {}, h('code', { class: p.custom ? 'rule' : 'rule default' }, p.rule), ' ', p.version === null ? badge('default', 'default (rule deleted)') : badge('custom', `v${p.version}`)),
        h('td', {}, p.pending.join(', ')),
      ))),
    ));
  }
}

/** The health line in the header, from GET /status (null: the API is unreachable). */
export function renderHealth(status, now) {
  const el = byId('health');
  if (!status) {
    el.className = 'health bad';
    replace(el, mark('✗'), ' API unreachable');
    return;
  }
  const parts = [`API ${status.status}`];
  parts.push(status.zookeeper?.connected ? 'ZooKeeper connected' : 'ZooKeeper lost');
  const lf = status.marathon?.lastFetch;
  parts.push(lf ? `Marathon ${lf.ok ? 'fetched' : 'fetch failed'} ${ago(lf.at, now)}` : 'Marathon not fetched yet');
  if (status.snapshot) parts.push(`snapshot v${status.snapshot.version} (${status.snapshot.apps} apps)`);
  el.className = `health ${status.status === 'ok' ? 'ok' : status.status === 'degraded' ? 'warn' : 'bad'}`;
  replace(el, mark(status.status === 'ok' ? '●' : '▲'), ' ', parts.join(' · '));
  if (lf && !lf.ok && lf.error) el.title = String(lf.error);
  else el.removeAttribute('title');
}

function clock(at) {
  return new Date(at).toLocaleTimeString();
}

function size(c) {
  return `${c.apps} app${c.apps === 1 ? '' : 's'} / ${c.tasks} task${c.tasks === 1 ? '' : 's'}`;
}

/**
 * The banner of the Marathon answer the shrink guard holds back (`marathon.held` of /status), or
 * nothing. `armed`: the confirm button was clicked once for this answer (the second click confirms).
 */
export function renderHeld(held, now, armed) {
  const section = byId('held');
  const button = byId('held-confirm');
  section.hidden = !held;
  if (!held) {
    button.dataset.heldId = '';
    return;
  }
  const what = held.reason === 'empty' ? 'an empty app list' : `far fewer ${held.reason}`;
  const parts = [
    `Marathon answers ${what} (${size(held.before)} → ${size(held.after)}) since ${clock(held.since)} (${ago(held.since, now)}).`,
    ' HAProxy keeps serving the previous snapshot.',
    held.confirmed
      ? ` Confirmed by an operator at ${clock(held.confirmed.at)}: it applies with the next fetch from Marathon.`
      : ` It applies by itself at ${clock(held.appliesAt)} unless Marathon answers normally again before.`,
  ];
  replace(byId('held-text'), parts.join(''));
  button.dataset.heldId = held.id;
  button.hidden = Boolean(held.confirmed);
  button.textContent = armed ? `Confirm: apply ${size(held.after)} now` : 'Apply it now…';
}
