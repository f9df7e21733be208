/**
 * The rule editor: create, edit and delete one app's rule with the record's version.
 *
 * Opening reads the record (`GET /api/services/:id`) and keeps its ETag; a save sends
 * `If-Match: "<version>"` (or `If-None-Match: *` to create), so a change made meanwhile by someone
 * else answers 409 instead of being overwritten. The 409 carries the current value: the editor shows
 * it next to the operator's and lets them save over it (with the new version) or take it.
 *
 * A save sends the whole `Config` back with the new rule: Bamboo's UI sent only the ACL and wiped
 * every other key.
 */
import { byId, h, replace } from './dom.js';
import { servicePath, versionFromEtag } from './client.js';
import { isRoutingKey } from './model.js';
import { checkAcl, checkAppId } from './validate.js';

/** `Config` without its ACL (any letter case) and routing keys: what a save keeps as it is. */
function otherConfig(record) {
  const out = {};
  for (const [k, v] of Object.entries(record?.Config ?? {})) if (k.toLowerCase() !== 'acl' && !isRoutingKey(k)) out[k] = v;
  return out;
}

/** The routing keys of a record's `Config` as the editor's lines, `KEY=value`, sorted. */
function routingLines(record) {
  return Object.entries(record?.Config ?? {}).filter(([k]) => isRoutingKey(k)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('\n');
}

/** The editor's routing lines -> `{ keys }`, or `{ problem }` naming the first line that is not `KEY=value` with a routing key. */
export function parseRoutingLines(text) {
  const keys = {};
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  for (const [i, line] of lines.entries()) {
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!isRoutingKey(key)) {
      return { problem: { message: `Line ${i + 1} is not KEY=value with a routing key such as HAPROXY_0_VHOST (HAPROXY_GROUP, HAPROXY_{n}_VHOST, _PATH, _ENABLED, _MODE, _PORT, _BALANCE, _STICKY, _REDIRECT_TO_HTTPS, _SSL_CERT, _BACKEND_WEIGHT, _BACKEND_HEALTHCHECK_PORT_INDEX).` } };
    }
    keys[key] = line.slice(eq + 1).trim();
  }
  return { keys };
}

function describeError(res) {
  const b = res.body ?? {};
  return `${b.message ?? `the server answered ${res.status}`}${b.code ? ` (${b.code})` : ''}`;
}

export function createEditor({ client, onDone }) {
  const dialog = byId('editor');
  const form = byId('editor-form');
  const idInput = byId('editor-id');
  const aclInput = byId('editor-acl');
  const routingInput = byId('editor-routing');
  const saveButton = byId('editor-save');
  const deleteButton = byId('editor-delete');
  const conflictBox = byId('editor-conflict');
  const errorBox = byId('editor-error');

  /** { id, fixedId, version: number|null, current: record|null, confirmDelete, busy, returnFocus } */
  let s = null;

  function setFieldError(input, box, problem) {
    box.hidden = !problem;
    box.textContent = problem ? problem.message : '';
    if (problem) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function checkFields() {
    setFieldError(aclInput, byId('editor-acl-error'), aclInput.value === '' ? null : checkAcl(aclInput.value));
    setFieldError(routingInput, byId('editor-routing-error'), parseRoutingLines(routingInput.value).problem ?? null);
    if (!s.fixedId) setFieldError(idInput, byId('editor-id-error'), idInput.value.trim() === '' ? null : checkAppId(idInput.value.trim()));
  }

  function showError(text) {
    errorBox.hidden = !text;
    errorBox.textContent = text ?? '';
  }

  function setBusy(busy) {
    s.busy = busy;
    saveButton.disabled = busy;
    deleteButton.disabled = busy;
    form.setAttribute('aria-busy', String(busy));
  }

  function renderHeader() {
    const exists = s.version !== null;
    byId('editor-title').textContent = exists ? 'Edit rule' : 'New rule';
    byId('editor-version').textContent = exists
      ? `Stored rule, version ${s.version}.`
      : s.fixedId
        ? 'No rule is stored for this app: the default rule applies until you save one.'
        : 'A rule for any app id, also one Marathon does not run yet.';
    deleteButton.hidden = !exists;
    deleteButton.textContent = 'Delete rule…';
    s.confirmDelete = false;
    const others = Object.entries(otherConfig(s.current)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    byId('editor-config').hidden = others.length === 0;
    replace(
      byId('editor-config').querySelector('tbody'),
      others.map(([k, v]) => h('tr', {}, h('td', {}, h('code', { text: k })), h('td', {}, h('code', { text: v })))),
    );
  }

  function hideConflict() {
    conflictBox.hidden = true;
    conflictBox.replaceChildren();
  }

  /** The 409 answer: what is stored now, next to what the operator wanted, and the two ways on. */
  function showConflict(action, res) {
    const current = res.body?.current ?? null;
    const version = typeof res.body?.version === 'number' ? res.body.version : versionFromEtag(res.headers.get('ETag'));
    const mine = aclInput.value;
    const what = current === null
      ? 'Someone else deleted this rule while you were editing.'
      : s.version === null
        ? s.fixedId ? 'Someone else created a rule for this app while you were editing.' : 'A rule for this app exists already.'
        : 'Someone else changed this rule while you were editing.';
    const retry = h('button', { type: 'button', class: action === 'delete' ? 'danger' : 'primary', id: 'conflict-retry' },
      action === 'delete' ? 'Delete it anyway' : current === null ? 'Save mine as a new rule' : 'Save mine over it');
    const take = h('button', { type: 'button', id: 'conflict-take' }, current === null ? 'Close' : action === 'delete' ? 'Keep it' : 'Use the current value');
    retry.addEventListener('click', () => {
      s.version = current === null ? null : version;
      s.current = current;
      hideConflict();
      renderHeader();
      if (action === 'delete') {
        if (current === null) close({ message: `The rule for ${s.id} was already deleted.` });
        else void remove();
      } else {
        aclInput.value = mine;
        void save();
      }
    });
    take.addEventListener('click', () => {
      if (current === null) {
        close({ message: `The rule for ${s.id} was deleted by someone else.` });
        return;
      }
      s.version = version;
      s.current = current;
      aclInput.value = current.Acl ?? '';
      routingInput.value = routingLines(current);
      hideConflict();
      renderHeader();
      checkFields();
      aclInput.focus();
    });
    replace(
      conflictBox,
      h('h3', { id: 'conflict-title' }, 'Conflict: not ' + (action === 'delete' ? 'deleted' : 'saved')),
      h('p', {}, what, ' ', res.body?.message ? h('span', { class: 'muted', text: `(${res.body.message})` }) : null),
      h('dl', {},
        h('dt', {}, current === null ? 'Current value' : `Current value (version ${version})`),
        h('dd', {}, current === null ? h('em', {}, 'no rule stored (the default rule applies)') : h('code', { class: 'rule', id: 'conflict-current', text: current.Acl ?? '' })),
        action === 'save' ? [h('dt', {}, 'Your value'), h('dd', {}, h('code', { class: 'rule', id: 'conflict-mine', text: mine }))] : null,
      ),
      h('div', { class: 'buttons' }, retry, take),
    );
    conflictBox.hidden = false;
    retry.focus();
  }

  async function save() {
    if (s.busy) return;
    const id = s.fixedId ?? idInput.value.trim();
    const acl = aclInput.value;
    checkFields();
    hideConflict();
    showError(null);
    const idProblem = checkAppId(id);
    if (idProblem) {
      // Without a usable id there is no URL to send to; the id field already says why.
      setFieldError(idInput, byId('editor-id-error'), idProblem);
      idInput.focus();
      return;
    }
    s.id = id;
    // The ACL is sent even when the check above found a problem: the server is the judge and its
    // message is the one shown (this copy of its rules could be out of date).
    const routing = parseRoutingLines(routingInput.value);
    if (routing.problem) {
      routingInput.focus();
      return;
    }
    const headers = s.version === null ? { 'If-None-Match': '*' } : { 'If-Match': `"${s.version}"` };
    setBusy(true);
    let res;
    try {
      res = await client.request('PUT', servicePath(id), { body: { acl, config: { ...otherConfig(s.current), ...routing.keys } }, headers, auth: true });
    } catch (err) {
      setBusy(false);
      showError(`Not saved: the API cannot be reached (${err.message}).`);
      return;
    }
    setBusy(false);
    if (res.ok) {
      const v = versionFromEtag(res.headers.get('ETag'));
      close({ message: `Saved the rule for ${id}${v === null ? '' : ` (version ${v})`}.`, changed: true });
    } else if (res.status === 409) {
      showConflict('save', res);
    } else {
      showError(`Not saved: ${describeError(res)}`);
      aclInput.focus();
    }
  }

  async function remove() {
    if (s.busy || s.version === null) return;
    hideConflict();
    showError(null);
    setBusy(true);
    let res;
    try {
      res = await client.request('DELETE', servicePath(s.id), { headers: { 'If-Match': `"${s.version}"` }, auth: true });
    } catch (err) {
      setBusy(false);
      showError(`Not deleted: the API cannot be reached (${err.message}).`);
      return;
    }
    setBusy(false);
    if (res.status === 204) close({ message: `Deleted the rule for ${s.id}; the default rule applies.`, changed: true });
    else if (res.status === 404) close({ message: `The rule for ${s.id} was already deleted.`, changed: true });
    else if (res.status === 409) showConflict('delete', res);
    else showError(`Not deleted: ${describeError(res)}`);
  }

  function close(result = {}) {
    const back = s?.returnFocus;
    if (dialog.open) dialog.close();
    s = null;
    onDone(result, back);
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void save();
  });
  // A rule is one line: Enter saves. Pasted line breaks stay visible, and the check flags them.
  aclInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  aclInput.addEventListener('input', () => s && checkFields());
  idInput.addEventListener('input', () => s && checkFields());
  routingInput.addEventListener('input', () => s && checkFields());
  byId('editor-cancel').addEventListener('click', () => close());
  dialog.addEventListener('cancel', (ev) => {
    ev.preventDefault();
    close();
  });
  deleteButton.addEventListener('click', () => {
    if (!s.confirmDelete) {
      s.confirmDelete = true;
      deleteButton.textContent = 'Confirm: delete this rule';
      showError(null);
      return;
    }
    void remove();
  });

  /**
   * Opens the editor for `id` (null: a new rule for an id the operator types). `returnFocus` is
   * handed back to onDone, to put the focus back where it was.
   */
  async function open(id, returnFocus) {
    s = { id, fixedId: id, version: null, current: null, confirmDelete: false, busy: false, returnFocus };
    hideConflict();
    showError(null);
    idInput.value = id ?? '';
    idInput.readOnly = id !== null;
    aclInput.value = '';
    routingInput.value = '';
    setFieldError(aclInput, byId('editor-acl-error'), null);
    setFieldError(routingInput, byId('editor-routing-error'), null);
    setFieldError(idInput, byId('editor-id-error'), null);
    renderHeader();
    dialog.showModal();
    if (id !== null) {
      setBusy(true);
      aclInput.disabled = true;
      try {
        const res = await client.request('GET', servicePath(id));
        if (res.status === 200) {
          s.current = res.body;
          s.version = versionFromEtag(res.headers.get('ETag'));
          aclInput.value = res.body.Acl ?? '';
          routingInput.value = routingLines(res.body);
        } else if (res.status !== 404) {
          showError(`Cannot read the rule: ${describeError(res)}`);
        }
      } catch (err) {
        showError(`Cannot read the rule: the API cannot be reached (${err.message}).`);
      } finally {
        aclInput.disabled = false;
        if (s) setBusy(false);
      }
      if (!s) return;
      renderHeader();
      checkFields();
      aclInput.focus();
      aclInput.select();
    } else {
      idInput.focus();
    }
  }

  return { open, get isOpen() { return dialog.open; } };
}
