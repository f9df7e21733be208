/**
 * An app's history: the audit entries of its rule (`GET /api/audit?app=`), newest first, each with
 * who, when, from where and the rule before and after, and a Revert button.
 *
 * A revert is the normal write (docs/api.md, "Revert"): it reads the record's current version, then
 * puts back the entry's `before` with `If-Match` of that version and `Bamboo-Revert-Of: <entry id>`
 * (a DELETE when the entry created the rule, `If-None-Match: *` when the rule is gone), so it passes
 * the same checks as any save and a change made meanwhile is a 409, never overwritten.
 */
import { byId, h, replace } from './dom.js';
import { servicePath, versionFromEtag } from './client.js';
import { ago } from './model.js';

const PAGE = 50;

function describeError(res) {
  const b = res.body ?? {};
  return `${b.message ?? `the server answered ${res.status}`}${b.code ? ` (${b.code})` : ''}`;
}

const OP_LABEL = { create: 'created', update: 'changed', delete: 'deleted', revert: 'reverted' };

/** The ACL of a record, or what applies without one. */
function ruleText(record) {
  return record ? h('code', { class: 'rule', text: record.Acl ?? '' }) : h('em', {}, 'no rule (the default rule applies)');
}

/** `Config` keys other than the ACL whose values differ between before and after. */
function configChanges(before, after) {
  const a = before?.Config ?? {};
  const b = after?.Config ?? {};
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k.toLowerCase() !== 'acl' && a[k] !== b[k]).sort();
  return keys.map((k) => ({ key: k, before: a[k] ?? null, after: b[k] ?? null }));
}

function entryItem(e, now) {
  const d = new Date(e.at);
  const from = e.forwardedFor ? `${e.forwardedFor} (via ${e.from})` : e.from;
  const configs = configChanges(e.before, e.after);
  return h('li', { class: 'audit-entry', dataset: { entry: e.id } },
    h('div', { class: 'audit-head' },
      h('strong', {}, OP_LABEL[e.op] ?? e.op), ' by ', h('span', { class: 'audit-who', text: e.who }),
      ' from ', h('code', { class: 'audit-from', text: from }), ' ',
      h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, ago(e.at, now)),
      h('span', { class: 'muted' }, ` · version ${e.versionBefore ?? '–'} → ${e.versionAfter ?? '–'}`),
      e.revertOf ? h('span', { class: 'muted' }, ` · reverts ${e.revertOf}`) : null),
    h('dl', { class: 'audit-diff' },
      h('dt', {}, 'Before'), h('dd', { class: 'audit-before' }, ruleText(e.before)),
      h('dt', {}, 'After'), h('dd', { class: 'audit-after' }, ruleText(e.after)),
      configs.map((c) => [h('dt', {}, h('code', { text: c.key })), h('dd', {}, `${c.before ?? '(none)'} → ${c.after ?? '(none)'}`)])),
    e.truncated
      ? h('p', { class: 'muted' }, 'Only the rules were kept of this change (its records were too large), so it cannot be reverted here.')
      : h('div', { class: 'buttons' },
        h('button', { type: 'button', class: 'revert', dataset: { revert: e.id }, 'aria-label': `Revert the change made ${d.toLocaleString()} by ${e.who}` },
          e.before ? 'Revert to the rule before' : 'Revert: delete the rule')),
  );
}

export function createHistory({ client, onDone }) {
  const dialog = byId('history');
  const list = byId('history-list');
  const errorBox = byId('history-error');
  const status = byId('history-status');

  /** { id, entries, busy, returnFocus, changed } */
  let s = null;

  function showError(text) {
    errorBox.hidden = !text;
    errorBox.textContent = text ?? '';
  }

  async function load() {
    status.textContent = 'Loading…';
    let res;
    try {
      res = await client.request('GET', `/api/audit?app=${encodeURIComponent(s.id)}&limit=${PAGE}`, { auth: true });
    } catch (err) {
      status.textContent = '';
      showError(`Cannot read the history: the API cannot be reached (${err.message}).`);
      return;
    }
    if (!s) return;
    if (!res.ok) {
      status.textContent = '';
      showError(`Cannot read the history: ${describeError(res)}`);
      return;
    }
    s.entries = res.body.entries ?? [];
    const now = Date.now();
    replace(list, s.entries.map((e) => entryItem(e, now)));
    status.textContent = s.entries.length === 0
      ? 'No change of this rule is recorded (within the audit retention).'
      : `${s.entries.length} change${s.entries.length === 1 ? '' : 's'}, newest first${res.body.next ? ` (the latest ${PAGE})` : ''}.`;
  }

  async function revert(entryId, button) {
    const e = s?.entries.find((x) => x.id === entryId);
    if (!e || s.busy) return;
    s.busy = true;
    button.disabled = true;
    showError(null);
    try {
      const current = await client.request('GET', servicePath(s.id));
      if (current.status !== 200 && current.status !== 404) {
        showError(`Not reverted: cannot read the rule (${describeError(current)}).`);
        return;
      }
      const version = current.status === 200 ? versionFromEtag(current.headers.get('ETag')) : null;
      const headers = { 'Bamboo-Revert-Of': e.id, ...(version === null ? { 'If-None-Match': '*' } : { 'If-Match': `"${version}"` }) };
      let res;
      if (e.before === null) {
        if (version === null) {
          showError('Nothing to revert: no rule is stored for this app any more.');
          return;
        }
        res = await client.request('DELETE', servicePath(s.id), { headers, auth: true });
      } else {
        res = await client.request('PUT', servicePath(s.id), { body: { acl: e.before.Acl, config: e.before.Config ?? {} }, headers, auth: true });
      }
      if (res.ok) {
        s.changed = true;
        await load();
        if (s) status.textContent = e.before ? `Reverted: the rule is ${e.before.Acl} again.` : 'Reverted: the rule was deleted; the default rule applies.';
      } else if (res.status === 409) {
        showError('Not reverted: the rule changed meanwhile. The history below is read again; check it and revert again if you still want to.');
        await load();
      } else {
        showError(`Not reverted: ${describeError(res)}`);
      }
    } catch (err) {
      showError(`Not reverted: the API cannot be reached (${err.message}).`);
    } finally {
      if (s) s.busy = false;
      if (button.isConnected) button.disabled = false;
    }
  }

  function close() {
    const back = s?.returnFocus;
    const changed = s?.changed ?? false;
    if (dialog.open) dialog.close();
    s = null;
    onDone({ changed, message: changed ? 'The rule was reverted.' : '' }, back);
  }

  list.addEventListener('click', (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest('button[data-revert]') : null;
    if (button) void revert(button.dataset.revert, button);
  });
  byId('history-close').addEventListener('click', () => close());
  dialog.addEventListener('cancel', (ev) => {
    ev.preventDefault();
    close();
  });

  /** Opens the history of app `id`; `returnFocus` goes back to onDone. */
  async function open(id, returnFocus) {
    s = { id, entries: [], busy: false, returnFocus, changed: false };
    byId('history-title').textContent = `History of ${id}`;
    showError(null);
    list.replaceChildren();
    dialog.showModal();
    byId('history-close').focus();
    await load();
  }

  return { open };
}
