import { expect } from 'chai';
import { Drainer } from '../../common/adapters/haproxy/haproxy-runtime.js';
import { dropServerStateLines, filterServerState, parseServersState, planRuntime, verifyRuntime, type ServerState } from '../../common/core/server-state.js';
import { diffConfigs, parseServerLine, type ConfigDiff, type ServerChange } from '../../common/core/config-diff.js';
import { assignSlots, slotCapacity } from '../../common/core/slots.js';
import { buildTemplateData, slotTable } from '../../common/core/template-data.js';
import { createRenderer } from '../../common/core/render.js';
import { defaultTemplate, settings } from '../builders.js';
import { marathonApp } from '../worker-fixtures.js';

// The pure parts of runtime changes: slot assignment, the server-only diff of two rendered
// configs, the commands it turns into, and reading HAProxy's answers.

describe('server slots', () => {
  it('sizes a backend as tasks + headroom, with at least 2 free slots', () => {
    const cases: Array<[number, number, number]> = [
      // tasks, headroom %, slots
      [0, 50, 2],
      [1, 50, 3],
      [3, 50, 5],
      [4, 50, 6],
      [5, 50, 8],
      [12, 50, 18],
      [100, 50, 150],
      [3, 300, 12],
      [10, 0, 12],
    ];
    for (const [tasks, pct, slots] of cases) expect(slotCapacity(tasks, pct), `${tasks} tasks, ${pct} %`).to.equal(slots);
  });

  it('fills slots in task order without a previous layout', () => {
    expect(assignSlots(['a', 'b'], undefined)).to.deep.equal(['a', 'b', null, null]);
  });

  it('keeps every task in its slot, gives a new task a slot that was already free, and frees a removed task\'s slot', () => {
    const previous = ['a', null, 'c', 'd', null, null, null, null];
    expect(assignSlots(['a', 'b', 'd'], previous)).to.deep.equal(['a', 'b', null, 'd', null, null, null, null]);
  });

  it('reuses a slot freed by the same change only when no other is free', () => {
    const previous = ['a', 'b', 'c', 'd'];
    expect(assignSlots(['a', 'c', 'd', 'e'], previous, 0)).to.deep.equal(['a', 'e', 'c', 'd']);
  });

  it('grows (a new layout) only when the tasks no longer fit, and shrinks only after a large scale-down', () => {
    const eight = ['a', 'b', 'c', null, null, null, null, null];
    const nine = Array.from({ length: 9 }, (_, i) => `t${i}`);
    expect(assignSlots(nine, eight)).to.have.length(14);
    expect(assignSlots(['a'], eight)).to.have.length(8);
    const big: Array<string | null> = Array.from({ length: 64 }, (_, i) => (i < 40 ? `t${i}` : null));
    // 64 slots for 2 tasks (which would get 4): shrunk to 4, tasks within them stay where they were.
    expect(assignSlots(['t1', 't2'], big)).to.deep.equal([null, 't1', 't2', null]);
    expect(assignSlots(['t1', 't50'], big)).to.deep.equal(['t50', 't1', null, null]);
  });

  it('is carried through the template data: the same tasks in another slot order render another, equally valid file', () => {
    const app = (ports: number[]) => marathonApp('/web', ports.map((port) => ({ port, id: `web.${port}` })));
    const first = buildTemplateData({ apps: [app([1001, 1002, 1003])], services: {}, now: 0 }).data;
    expect(first.Apps[0].Slots.map((s) => s.Task?.Port ?? null).slice(0, 3)).to.deep.equal([1001, 1002, 1003]);
    const next = buildTemplateData({ apps: [app([1001, 1003, 1004])], services: {}, now: 0, slots: { previous: slotTable(first) } }).data;
    expect(next.Apps[0].Slots.map((s) => s.Task?.Port ?? null).slice(0, 4)).to.deep.equal([1001, null, 1003, 1004]);
    const fresh = buildTemplateData({ apps: [app([1001, 1003, 1004])], services: {}, now: 0 }).data;
    expect(fresh.Apps[0].Slots.map((s) => s.Task?.Port ?? null).slice(0, 4)).to.deep.equal([1001, 1003, 1004, null]);
  });
});

describe('diffConfigs (what the Runtime API can apply)', () => {
  const renderer = createRenderer(defaultTemplate());
  const S = settings({ AdminSocket: '', ServerStateFile: '/run/haproxy/state' });
  function render(apps: unknown[], previous: ReturnType<typeof slotTable> | null = null, acl?: string) {
    const services: Record<string, { Id: string; Acl: string; Config: Record<string, string> }> = acl ? { '/web': { Id: '/web', Acl: acl, Config: {} } } : {};
    const { data } = buildTemplateData({ apps, services, now: 0, slots: { previous } });
    return { text: renderer.render(data, S).text, slots: slotTable(data) };
  }
  const web = (ports: number[], extra: Record<string, unknown> = {}) => marathonApp('/web', ports.map((port) => ({ port, id: `web.${port}` })), extra);

  it('sees a scale within the slots as server changes only', () => {
    const a = render([web([1001, 1002])]);
    const b = render([web([1001, 1002, 1003])], a.slots);
    const d = diffConfigs(a.text, b.text);
    expect(d.runtime).to.equal(true);
    if (!d.runtime) return;
    expect(d.changes.map((c) => `${c.backend}/${c.server}`)).to.deep.equal(['::web-cluster/slot-3']);
    expect(d.changes[0].from).to.include({ host: '127.0.0.1', port: 1, disabled: true });
    expect(d.changes[0].to).to.include({ host: '127.0.0.1', port: 1003, disabled: false });
  });

  it('sees a task replaced and a health flip as server changes, in every listener of the app', () => {
    const tcp = { env: { BAMBOO_TCP_PORT: '5000' } };
    const a = render([web([1001, 1002], tcp)]);
    const app = web([1001, 1003], tcp) as { tasks: Array<Record<string, unknown>>; healthChecks: unknown[] };
    app.healthChecks = [];
    app.tasks[0].state = 'TASK_KILLING';
    const b = render([app], a.slots);
    const d = diffConfigs(a.text, b.text);
    expect(d.runtime).to.equal(true);
    if (!d.runtime) return;
    expect(d.changes.map((c) => `${c.backend}/${c.server}:${c.to.disabled ? 'off' : 'on'}`)).to.deep.equal([
      '::web-cluster/slot-1:off', '::web-cluster/slot-2:off', '::web-cluster/slot-3:on',
      '::web-cluster-tcp/slot-1:off', '::web-cluster-tcp/slot-2:off', '::web-cluster-tcp/slot-3:on',
    ]);
  });

  it('needs a reload for a rule edit, a new app, more tasks than slots, or other server options', () => {
    const a = render([web([1001])]);
    expect(diffConfigs(a.text, render([web([1001])], a.slots, 'path_beg -i /x').text)).to.deep.include({ runtime: false });
    expect(diffConfigs(a.text, render([web([1001]), marathonApp('/other', [{ port: 2001 }])], a.slots).text)).to.deep.include({ runtime: false });
    const many = render([web([1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009])], a.slots);
    const d = diffConfigs(a.text, many.text);
    expect(d.runtime).to.equal(false);
    if (!d.runtime) expect(d.reason).to.match(/structure changed/);
    const ssl = a.text.replace('server slot-1 127.0.0.1:1001', 'server slot-1 127.0.0.1:1001 ssl verify none');
    expect(diffConfigs(a.text, ssl)).to.deep.include({ runtime: false });
    const renamed = a.text.replace('server slot-1 ', 'server first ');
    expect(diffConfigs(a.text, renamed)).to.deep.include({ runtime: false });
  });

  it('reads the runtime-changeable words of a server line and keeps the rest as is', () => {
    expect(parseServerLine('    server slot-2 10.0.0.5:31002 check port 31003 ssl verify none weight 10 disabled')).to.deep.equal({
      name: 'slot-2', host: '10.0.0.5', port: 31002, disabled: true, weight: 10, checkPort: 31003, check: true, rest: 'check ssl verify none',
    });
    expect(parseServerLine('    server s [::1]:80')).to.include({ host: '::1', port: 80 });
    expect(parseServerLine('    balance roundrobin')).to.equal(null);
  });
});

describe('runtime commands and verification', () => {
  const spec = (over: Partial<ReturnType<typeof parseServerLine> & object>) => ({
    name: 's', host: '10.0.0.1', port: 80, disabled: false, weight: null, checkPort: null, check: false, rest: '', ...over,
  });
  const change = (from: object, to: object): ServerChange => ({ backend: 'be', server: 's', from: spec(from), to: spec(to) });
  const resolve = async (h: string) => (h === 'agent-1' ? '10.1.1.1' : h);

  it('sets address, check port, then ready for a server entering rotation; drains one leaving it', async () => {
    const p = await planRuntime([
      change({ host: '127.0.0.1', port: 1, disabled: true, check: true }, { host: 'agent-1', port: 31000, checkPort: 31001, check: true }),
      { ...change({}, { disabled: true }), server: 't' },
      { ...change({ disabled: true }, { disabled: true, host: '10.0.0.9' }), server: 'u' },
    ], resolve);
    expect(p.commands).to.deep.equal([
      'set server be/s addr 10.1.1.1 port 31000',
      'set server be/s check-port 31001',
      'set server be/s state ready',
      'set server be/t state drain',
    ]);
    expect(p.drains).to.deep.equal(['be/t']);
    expect(p.enabled).to.deep.equal(['be/s']);
  });

  it('changes only the weight of a server whose address stays, leaving its state alone', async () => {
    const p = await planRuntime([change({ weight: 10 }, { weight: 20 })], resolve);
    expect(p.commands).to.deep.equal(['set server be/s weight 20']);
    expect(p.expect.get('be/s')?.rotation).to.equal(undefined);
  });

  it('rejects a host that does not resolve', async () => {
    const failing = async () => {
      throw new Error('ENOTFOUND');
    };
    let err: Error | null = null;
    await planRuntime([change({ disabled: true }, { host: 'nowhere.invalid' })], failing).catch((e: Error) => (err = e));
    expect(err).to.not.equal(null);
  });

  const state = (over: Partial<ServerState>): ServerState => ({
    backend: 'be', server: 's', addr: '10.1.1.1', port: 31000, opState: 2, adminState: 0, weight: 1, checkPort: 31001, ...over,
  });

  it('verifies address, port, check port and rotation of every changed server', async () => {
    const p = await planRuntime([change({ disabled: true }, { host: 'agent-1', port: 31000, checkPort: 31001, check: true })], resolve);
    expect(verifyRuntime(p, new Map([['be/s', state({})]]))).to.deep.equal([]);
    expect(verifyRuntime(p, new Map([['be/s', state({ adminState: 0x04 })]])), 'CMAINT alone is only a memory of the config').to.deep.equal([]);
    expect(verifyRuntime(p, new Map([['be/s', state({ adminState: 0x01 })]]))).to.have.length(1);
    expect(verifyRuntime(p, new Map([['be/s', state({ port: 1 })]]))[0]).to.match(/port 1, not 31000/);
    expect(verifyRuntime(p, new Map())[0]).to.match(/missing/);
    const off = await planRuntime([change({}, { disabled: true })], resolve);
    expect(verifyRuntime(off, new Map([['be/s', state({ adminState: 0x08 })]]))).to.deep.equal([]);
    expect(verifyRuntime(off, new Map([['be/s', state({ adminState: 0 })]]))[0]).to.match(/still in rotation/);
  });

  const DUMP = [
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    '3 be 1 s1 127.0.0.1 2 0 1 1 10 15 3 4 6 0 0 0 - 18556 - 0 18556 - - 0',
    '3 be 2 s2 10.0.0.2 0 5 1 1 10 1 0 0 14 0 0 0 - 1 - 0 1 - - 0',
    '',
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    '4 other 1 s1 10.0.0.3 2 8 7 1 10 15 3 4 6 0 0 0 - 80 - 0 81 - - 0',
    '',
  ].join('\n');

  it('reads show servers state by its column names, also several concatenated', () => {
    const m = parseServersState(DUMP);
    expect([...m.keys()]).to.deep.equal(['be/s1', 'be/s2', 'other/s1']);
    expect(m.get('other/s1')).to.deep.equal({ backend: 'other', server: 's1', addr: '10.0.0.3', port: 80, opState: 2, adminState: 8, weight: 7, checkPort: 81 });
  });

  it('writes a server-state-file with only the servers asked for', () => {
    const out = filterServerState(DUMP, (k) => k !== 'be/s2');
    expect(out.split('\n').filter(Boolean).map((l) => l.split(' ').slice(0, 4).join(' '))).to.deep.equal([
      '1', '# be_id be_name srv_id', '3 be 1 s1', '4 other 1 s1',
    ]);
    expect(filterServerState(DUMP, () => false)).to.match(/^1\n# be_id [^\n]+\n$/);
  });
});

/**
 * The plain line-by-line walk diffConfigs was before it skipped equal text: the reference its
 * answers (changes and reasons) must equal.
 */
function referenceDiff(running: string, next: string): ConfigDiff {
  if (running === next) return { runtime: true, changes: [] };
  const SECTION = /^(backend|listen|frontend|defaults|global|peers|resolvers|userlist|program|cache|ring|http-errors|mailers)\b\s*(\S*)/;
  const a = running.split('\n');
  const b = next.split('\n');
  if (a.length !== b.length) return { runtime: false, reason: `the config's structure changed (${a.length} -> ${b.length} lines)` };
  const changes: ServerChange[] = [];
  let kind = '';
  let section = '';
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) {
      if (x.length > 0 && x.charCodeAt(0) !== 0x20 && x.charCodeAt(0) !== 0x09 && x.charCodeAt(0) !== 0x23) {
        const m = SECTION.exec(x);
        kind = m ? m[1] : '';
        section = m ? m[2] : '';
      }
      continue;
    }
    const where = `line ${i + 1}`;
    if (kind !== 'backend' && kind !== 'listen') return { runtime: false, reason: `a line outside any backend changed (${where})` };
    const from = parseServerLine(x);
    const to = parseServerLine(y);
    if (!from || !to) return { runtime: false, reason: `a line other than a server changed in ${section} (${where})` };
    if (from.name !== to.name) return { runtime: false, reason: `server ${from.name} became ${to.name} in ${section}` };
    if (from.rest !== to.rest || from.check !== to.check) return { runtime: false, reason: `options of ${section}/${to.name} changed` };
    if (to.port === null || from.port === null) return { runtime: false, reason: `${section}/${to.name} has no port` };
    changes.push({ backend: section, server: to.name, from, to });
  }
  return { runtime: true, changes };
}

function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe('diffConfigs skipping equal text', () => {
  const renderer = createRenderer(defaultTemplate());
  const S = settings({ AdminSocket: '', ServerStateFile: '/run/haproxy/state' });
  const apps = (n: number, portOf: (i: number, t: number) => number, tasksOf: (i: number) => number) =>
    Array.from({ length: n }, (_, i) => marathonApp(`/g${i % 3}/app-${i}`, Array.from({ length: tasksOf(i) }, (_, t) => ({ port: portOf(i, t), id: `app-${i}.${t}` })), i % 4 === 0 ? { env: { BAMBOO_TCP_PORT: String(5000 + i) } } : {}));

  it('finds the same changes and reasons as a line-by-line walk, for random task churn across many apps', () => {
    const rnd = prng(7);
    const base = apps(60, (i, t) => 1000 + i * 10 + t, () => 2);
    const first = buildTemplateData({ apps: base, services: {}, now: 0 });
    const a = renderer.render(first.data, S).text;
    for (let round = 0; round < 40; round++) {
      const bump = new Map<number, number>();
      const changed = 1 + Math.floor(rnd() * 6);
      for (let c = 0; c < changed; c++) bump.set(Math.floor(rnd() * 60), Math.floor(rnd() * 7));
      // Port changes of different digit counts shift every later character: the walk must realign.
      const next = apps(60, (i, t) => (bump.has(i) ? 1000 + i * 10 + t + bump.get(i)! * 9137 : 1000 + i * 10 + t), (i) => (bump.get(i) === 6 ? 3 : 2));
      const b = renderer.render(buildTemplateData({ apps: next, services: {}, now: 0, slots: { previous: slotTable(first.data) } }).data, S).text;
      expect(diffConfigs(a, b), `round ${round}`).to.deep.equal(referenceDiff(a, b));
      expect(diffConfigs(b, a), `round ${round} reversed`).to.deep.equal(referenceDiff(b, a));
    }
  });

  it('gives the same answer as a line-by-line walk for edits anywhere in the text', () => {
    const rnd = prng(11);
    const a = renderer.render(buildTemplateData({ apps: apps(8, (i, t) => 2000 + i * 10 + t, () => 2), services: {}, now: 0 }).data, S).text;
    const lines = a.split('\n');
    const edits: Array<(l: string[], i: number) => void> = [
      (l, i) => { l[i] = l[i] + ' x'; },
      (l, i) => { l[i] = ''; },
      (l, i) => { l[i] = l[i].replace(/:\d+/, ':9'); },
      (l, i) => { l[i] = l[i].replace(' disabled', ''); },
      (l, i) => { l.splice(i, 1); },
      (l, i) => { l.splice(i, 0, '    server extra 127.0.0.1:1'); },
      (l, i) => { l[i] = l[i].replace(/^(\S+)/, '$1x'); },
    ];
    for (let round = 0; round < 300; round++) {
      const l = [...lines];
      const n = 1 + Math.floor(rnd() * 3);
      for (let e = 0; e < n; e++) edits[Math.floor(rnd() * edits.length)](l, Math.floor(rnd() * l.length));
      const b = l.join('\n');
      expect(diffConfigs(a, b), `round ${round}`).to.deep.equal(referenceDiff(a, b));
      expect(diffConfigs(b, a), `round ${round} reversed`).to.deep.equal(referenceDiff(b, a));
    }
    for (const [x, y] of [['', 'a'], ['a\n', 'a'], ['a', 'a\n'], ['backend b\n  server s 1.1.1.1:1', 'backend b\n  server s 1.1.1.1:2\n'], ['\n\n', '\n']]) {
      expect(diffConfigs(x, y), JSON.stringify([x, y])).to.deep.equal(referenceDiff(x, y));
    }
  });
});

describe('dropServerStateLines (after a runtime change)', () => {
  it('drops exactly the servers filterServerState would, and keeps every other line byte for byte', () => {
    const header = '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port';
    const rows: string[] = [];
    const backends = ['::a-cluster', '::a1-cluster', '::a-cluster-tcp', '::g/x-cluster', 'be'];
    backends.forEach((be, b) => {
      for (let s = 1; s <= 4; s++) rows.push(`${b + 3} ${be} ${s} slot-${s} 10.0.0.${s} 2 0 1 1 10 15 3 4 6 0 0 0 - ${31000 + s} - 0 0 - - 0`);
    });
    const file = filterServerState(['1', header, ...rows, ''].join('\n'), () => true);
    const cases: string[][] = [[], ['::a-cluster/slot-1'], ['::a-cluster/slot-2', '::a1-cluster/slot-2', 'be/slot-4'], ['::g/x-cluster/slot-3', 'missing/slot-1', '::a-cluster-tcp/slot-9'], rows.map((r) => `${r.split(' ')[1]}/${r.split(' ')[3]}`)];
    for (const keys of cases) {
      expect(dropServerStateLines(file, keys), keys.join(',')).to.equal(filterServerState(file, (k) => !keys.includes(k)));
    }
  });
});

describe('Drainer', () => {
  it('counts a server as draining until its maint command has completed, not just until it was sent', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const sent: string[] = [];
    const api = {
      currentSessions: async (backends: string[]) => new Map(backends.map((b) => [`${b}/slot-2`, 0])),
      serial: <T>(fn: () => Promise<T>) => fn(),
      setServers: async (cmds: string[]) => {
        sent.push(...cmds);
        await held;
      },
    };
    const d = new Drainer(api as never, 5000, (err) => { throw err; }, 5);
    d.add(['::web-cluster/slot-2']);
    expect(d.size).to.equal(1);
    const deadline = Date.now() + 5000;
    while (sent.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(sent).to.deep.equal(['set server ::web-cluster/slot-2 state maint']);
    expect(d.size, 'still draining while the command is on its way').to.equal(1);
    release();
    while (d.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(d.size).to.equal(0);
    expect(d.finished).to.equal(1);
    d.close();
  });
});
