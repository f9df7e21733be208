import { expect } from 'chai';
import { diffConfigs } from '../../common/core/config-diff.js';
import { addContext, addServerOptions, dynamicBalance, growsAtRuntime } from '../../common/core/dynamic-servers.js';
import { planRuntime, verifyRuntime, type ServerState } from '../../common/core/server-state.js';
import { assignSlots, slotCapacity } from '../../common/core/slots.js';
import { buildTemplateData, slotTable } from '../../common/core/template-data.js';
import { TemplateDataMemo } from '../../common/core/template-memo.js';
import { createRenderer } from '../../common/core/render.js';
import { defaultTemplate, settings } from '../builders.js';
import { marathonApp } from '../worker-fixtures.js';

// HAProxy.DynamicServers: backends without spare slots that grow through `add server`. The pure
// parts here; the real HAProxy (reload, restart, traffic) in test/integration/dynamic-servers.test.ts.

const web = (ports: number[], extra: Record<string, unknown> = {}) =>
  marathonApp('/web', ports.map((port) => ({ port, id: `web.${port}` })), extra);
const checked = { healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0 }] };

describe('dynamic servers: slot sizing', () => {
  it('gives a dynamic backend one slot per task and grows it by exactly the new tasks', () => {
    expect(slotCapacity(3, { dynamic: true })).to.equal(3);
    expect(slotCapacity(0, { dynamic: true })).to.equal(0);
    expect(assignSlots(['a', 'b', 'c'], undefined, { dynamic: true })).to.deep.equal(['a', 'b', 'c']);
    // A rolling deployment: the new task comes first (a fourth slot), the old one leaves a free slot.
    expect(assignSlots(['a', 'b', 'c', 'd'], ['a', 'b', 'c'], { dynamic: true })).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(assignSlots(['b', 'c', 'd'], ['a', 'b', 'c', 'd'], { dynamic: true })).to.deep.equal([null, 'b', 'c', 'd']);
    // ... and the next new task takes that free slot instead of a fifth.
    expect(assignSlots(['b', 'c', 'd', 'e'], [null, 'b', 'c', 'd'], { dynamic: true })).to.deep.equal(['e', 'b', 'c', 'd']);
  });

  it('keeps free slots after a scale-down as a sized backend would, and shrinks after a large one', () => {
    const six = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(assignSlots([], six, { dynamic: true })).to.deep.equal([null, null, null, null, null, null]);
    const big: Array<string | null> = Array.from({ length: 20 }, (_, i) => `t${i}`);
    expect(assignSlots(['t3', 't7'], big, { dynamic: true })).to.deep.equal(['t3', 't7']);
  });

  it('sizes by the app\'s labels: sticky or a static balance algorithm keeps the headroom', () => {
    expect(growsAtRuntime([{ sticky: false, balance: '' }, { sticky: false, balance: 'leastconn' }])).to.equal(true);
    expect(growsAtRuntime([{ sticky: true, balance: '' }])).to.equal(false);
    expect(growsAtRuntime([{ sticky: false, balance: '' }, { sticky: false, balance: 'source' }])).to.equal(false);
    expect(['roundrobin', 'leastconn', 'first', 'random', 'random(3)', ''].every(dynamicBalance)).to.equal(true);
    expect(['source', 'uri', 'static-rr', 'hdr(host)'].some(dynamicBalance)).to.equal(false);
    const slots = (extra: Record<string, unknown>) =>
      buildTemplateData({ apps: [web([1001, 1002, 1003], extra)], services: {}, now: 0, slots: { dynamic: true } }).data.Apps[0].Slots.length;
    expect(slots({})).to.equal(3);
    expect(slots({ labels: { HAPROXY_0_STICKY: 'true' } })).to.equal(5);
    expect(slots({ labels: { HAPROXY_0_BALANCE: 'source' } })).to.equal(5);
    // Without DynamicServers every backend keeps its spare slots.
    expect(buildTemplateData({ apps: [web([1001, 1002, 1003])], services: {}, now: 0 }).data.Apps[0].Slots.length).to.equal(5);
  });

  it('does not reuse a memoised app across a change of the setting', () => {
    const memo = new TemplateDataMemo();
    const apps = [web([1001, 1002, 1003])];
    expect(buildTemplateData({ apps, services: {}, now: 0, memo, slots: { dynamic: true } }).data.Apps[0].Slots).to.have.length(3);
    expect(buildTemplateData({ apps, services: {}, now: 0, memo, slots: { dynamic: false } }).data.Apps[0].Slots).to.have.length(5);
  });
});

describe('dynamic servers: add options', () => {
  it('takes the default-server words in force, drops init-addr and disabled, and names a refused option', () => {
    expect(addServerOptions(['init-addr', 'libc,none', 'inter', '30s', 'check'], ['port', '8080', 'disabled'])).to.deep.equal({
      options: ['inter', '30s', 'check', 'port', '8080'],
    });
    expect(addServerOptions([], ['cookie', 'slot-1'])).to.deep.equal({ error: 'option "cookie" cannot be given to a server added at runtime' });
    expect(addServerOptions(['resolvers', 'dns'], [])).to.have.property('error').that.includes('resolvers');
    expect(addServerOptions([], ['weight'])).to.deep.equal({ error: 'option "weight" has no value' });
  });

  it('never passes a word that could end the command or run another on the CLI (the runtime path skips haproxy -c)', () => {
    for (const bad of ['1;shutdown', '1#x', "'1'", '1\\x', '"x"']) {
      expect(addServerOptions([], ['weight', bad]), bad).to.deep.equal({ error: 'option "weight" has a value the Runtime API cannot pass safely' });
    }
    expect(addServerOptions([], ['ciphers', 'ECDHE+AES:!aNULL'])).to.deep.equal({ options: ['ciphers', 'ECDHE+AES:!aNULL'] });
    // A custom template putting a tenant's label on an added line: a reload (validated), not a CLI command.
    const text = (line: string) => ['backend b', ...(line ? [line] : []), '    server s1 10.0.0.1:80', ''].join('\n');
    const d = diffConfigs(text(''), text('').replace('    server s1 10.0.0.1:80\n', '    server s1 10.0.0.1:80\n    server s2 10.0.0.2:80 weight 1;shutdown\n'), { dynamic: true });
    expect(d).to.deep.equal({ runtime: false, reason: 'b/s2 was added, but its option "weight" has a value the Runtime API cannot pass safely' });
    const named = diffConfigs(text(''), text('').replace('10.0.0.1:80\n', '10.0.0.1:80\n    server s2;x 10.0.0.2:80\n'), { dynamic: true });
    expect(named).to.deep.equal({ runtime: false, reason: 'a server added to b has a name the Runtime API cannot pass safely' });
  });

  it('reads the defaults section a backend inherits, by name or by position, and the backend\'s own default-server', () => {
    const text = [
      'defaults a', '    default-server inter 5s', '    balance source',
      'defaults b', '    default-server inter 9s rise 1',
      'backend x from a', '    default-server check', '    server s1 10.0.0.1:80', '    default-server weight 3', '    server s2 10.0.0.2:80',
      'backend y', '    balance first', '    server s1 10.0.0.1:80',
      '',
    ].join('\n');
    const at = (needle: string, from = 0) => text.indexOf(needle, from);
    const x = addContext(text, at('    server s1', at('backend x')))!;
    expect(x.defaultServer).to.deep.equal(['inter', '5s', 'check']);
    expect(x.balance).to.equal('source');
    expect([...x.serverNames]).to.deep.equal(['s1', 's2']);
    expect(addContext(text, at('    server s2'))!.defaultServer).to.deep.equal(['inter', '5s', 'check', 'weight', '3']);
    const y = addContext(text, at('    server s1', at('backend y')))!;
    expect(y.defaultServer).to.deep.equal(['inter', '9s', 'rise', '1']);
    expect(y.balance).to.equal('first');
    expect(addContext(text, at('    default-server inter 9s'))).to.equal(null);
  });
});

describe('dynamic servers: the difference of two rendered configs', () => {
  const renderer = createRenderer(defaultTemplate());
  const S = settings({ AdminSocket: '', ServerStateFile: '/run/haproxy/state' });
  function render(apps: unknown[], previous: ReturnType<typeof slotTable> | null = null) {
    const { data } = buildTemplateData({ apps, services: {}, now: 0, slots: { previous, dynamic: true } });
    return { text: renderer.render(data, S).text, slots: slotTable(data) };
  }

  it('takes a task beyond the slots as an added server with the options the file gives it', () => {
    const a = render([web([1001, 1002, 1003], checked)]);
    const b = render([web([1001, 1002, 1003, 1004], checked)], a.slots);
    expect(b.text).to.include('server slot-4 127.0.0.1:1004');
    const d = diffConfigs(a.text, b.text, { dynamic: true });
    if (!d.runtime) throw new Error(d.reason);
    expect(d.changes).to.have.length(1);
    const [c] = d.changes;
    expect(c).to.include({ backend: '::web-cluster', server: 'slot-4', from: null });
    // The defaults' default-server (without init-addr), the backend's `check`, the line's check port.
    expect(c.add).to.deep.equal(['inter', '30s', 'fastinter', '2s', 'downinter', '10s', 'rise', '2', 'fall', '3', 'check', 'port', '1004']);
    // Off: a reload, as before.
    expect(diffConfigs(a.text, b.text)).to.deep.include({ runtime: false });
  });

  it('mixes added servers with changed ones, in several backends', () => {
    const other = (ports: number[]) => marathonApp('/api', ports.map((port) => ({ port, id: `api.${port}` })));
    const a = render([web([1001, 1002]), other([2001])]);
    const b = render([web([1001, 1003, 1004]), other([2001, 2002, 2003])], a.slots);
    const d = diffConfigs(a.text, b.text, { dynamic: true });
    if (!d.runtime) throw new Error(d.reason);
    expect(d.changes.map((c) => `${c.backend}/${c.server}:${c.from === null ? 'add' : 'set'}`)).to.deep.equal([
      '::api-cluster/slot-2:add', '::api-cluster/slot-3:add', '::web-cluster/slot-2:set', '::web-cluster/slot-3:add',
    ]);
  });

  it('reloads for a server removed or a sticky backend grown beyond its slots', () => {
    const a = render([web([1001, 1002, 1003])]);
    // A large scale-down shrinks the backend: servers removed.
    const big = render([web(Array.from({ length: 20 }, (_, i) => 1001 + i))], a.slots);
    expect(diffConfigs(big.text, render([web([1001])], big.slots).text, { dynamic: true })).to.deep.include({ runtime: false });
    // Sticky: spare slots, and beyond them `cookie` cannot be given to an added server.
    const sticky = { labels: { HAPROXY_0_STICKY: 'true' } };
    const s3 = render([web([1001, 1002, 1003], sticky)]);
    expect(diffConfigs(s3.text, render([web([1001, 1002, 1003, 1004, 1005], sticky)], s3.slots).text, { dynamic: true })).to.deep.include({ runtime: true });
    const s6 = diffConfigs(s3.text, render([web([1001, 1002, 1003, 1004, 1005, 1006], sticky)], s3.slots).text, { dynamic: true });
    expect(s6).to.deep.include({ runtime: false });
    expect((s6 as { reason: string }).reason).to.equal('::web-cluster/slot-6 was added, but its option "cookie" cannot be given to a server added at runtime');
  });

  it('refuses a backend whose balance algorithm is static, with the reason', () => {
    const text = (servers: number) =>
      ['defaults', '    default-server inter 30s', 'backend b', '    balance source', ...Array.from({ length: servers }, (_, i) => `    server slot-${i + 1} 10.0.0.${i + 1}:80`), ''].join('\n');
    expect(diffConfigs(text(2), text(3), { dynamic: true })).to.deep.equal({
      runtime: false, reason: 'servers were added to b, whose balance source cannot take servers at runtime',
    });
    expect(diffConfigs(text(2).replace('balance source', 'balance roundrobin'), text(3).replace('balance source', 'balance roundrobin'), { dynamic: true })).to.deep.include({ runtime: true });
  });

  it('turns an added server into add, enable health and ready commands, and verifies what HAProxy reports', async () => {
    const a = render([web([1001], checked)]);
    const b = render([web([1001, 1002], checked)], a.slots);
    const d = diffConfigs(a.text, b.text, { dynamic: true });
    if (!d.runtime) throw new Error(d.reason);
    const plan = await planRuntime(d.changes, async (h) => (h === '127.0.0.1' ? h : '10.0.0.9'));
    expect(plan.commands).to.deep.equal([
      'add server ::web-cluster/slot-2 127.0.0.1:1002 inter 30s fastinter 2s downinter 10s rise 2 fall 3 check port 1002',
      'enable health ::web-cluster/slot-2',
      'set server ::web-cluster/slot-2 state ready',
    ]);
    expect(plan.added).to.deep.equal(['::web-cluster/slot-2']);
    const state = (adminState: number, addr = '127.0.0.1'): ServerState => ({
      backend: '::web-cluster', server: 'slot-2', addr, port: 1002, opState: 2, adminState, weight: 1, checkPort: 1002,
    });
    expect(verifyRuntime(plan, new Map([['::web-cluster/slot-2', state(0)]]))).to.deep.equal([]);
    expect(verifyRuntime(plan, new Map([['::web-cluster/slot-2', state(1)]]))).to.have.length(1);
    expect(verifyRuntime(plan, new Map())).to.deep.equal(['::web-cluster/slot-2 missing']);
  });

  it('adds a task that is not ready in maintenance, and an IPv6 address in brackets', async () => {
    const a = render([web([1001])]);
    const b = render([web([1001, 1002])], a.slots);
    const d = diffConfigs(a.text, b.text, { dynamic: true });
    if (!d.runtime) throw new Error(d.reason);
    const change = { ...d.changes[0], to: { ...d.changes[0].to, disabled: true } };
    const plan = await planRuntime([change], async () => '2001:db8::7');
    expect(plan.commands).to.deep.equal(['add server ::web-cluster/slot-2 [2001:db8::7]:1002 inter 30s fastinter 2s downinter 10s rise 2 fall 3']);
    expect(plan.expect.get('::web-cluster/slot-2')).to.include({ rotation: false });
  });
});
