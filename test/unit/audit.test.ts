import { expect } from 'chai';
import type { FastifyRequest } from 'fastify';
import { AUDIT_ID, AuditLog, MAX_ENTRY_BYTES, appKey, type WriteOrigin } from '../../api/audit.js';
import { ClientAddress } from '../../api/client-address.js';
import { parseAuditQuery } from '../../api/routes/audit.js';
import { ConfigError } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { ApiError } from '../../common/core/errors.js';
import { silentLogger } from '../../common/log.js';
import type { StoredRecord } from '../../common/adapters/zookeeper/rules.js';

// The pure parts of the audit trail: who a request came from, the query's parameters, and the entry
// a write carries. The ZooKeeper side is in test/integration/audit.test.ts.
describe('audit trail (pure parts)', () => {
  const req = (peer: string, xff?: string | string[]) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as FastifyRequest;

  it('believes X-Forwarded-For only from a trusted peer, from its right end, past further trusted proxies', () => {
    const trusting = new ClientAddress('10.0.0.0/8, 192.0.2.1, fd00::/8');
    const cases: Array<[peer: string, xff: string | string[] | undefined, from: string, forwardedFor: string | null]> = [
      ['203.0.113.5', '198.51.100.7', '203.0.113.5', null], // untrusted peer: header ignored
      ['10.1.2.3', '198.51.100.7', '10.1.2.3', '198.51.100.7'],
      ['::ffff:10.1.2.3', '198.51.100.7', '10.1.2.3', '198.51.100.7'], // IPv4-mapped peer
      ['192.0.2.1', '1.1.1.1, 198.51.100.7, 10.9.9.9', '192.0.2.1', '198.51.100.7'], // a client-made prefix is ignored
      ['192.0.2.1', ['1.1.1.1', '198.51.100.7'], '192.0.2.1', '198.51.100.7'], // the header given twice
      ['192.0.2.1', 'not-an-ip, 198.51.100.7', '192.0.2.1', '198.51.100.7'],
      ['192.0.2.1', '198.51.100.7, not-an-ip', '192.0.2.1', null], // garbage where the proxy writes: nothing believed
      ['192.0.2.1', undefined, '192.0.2.1', null],
      ['fd00::1', '2001:db8::7', 'fd00::1', '2001:db8::7'],
      ['192.0.2.2', '198.51.100.7', '192.0.2.2', null],
    ];
    for (const [peer, xff, from, forwardedFor] of cases) {
      expect(trusting.of(req(peer, xff)), `${peer} ${String(xff)}`).to.deep.equal({ from, forwardedFor });
    }
    expect(new ClientAddress('').of(req('127.0.0.1', '198.51.100.7'))).to.deep.equal({ from: '127.0.0.1', forwardedFor: null });
  });

  it('refuses a Bamboo.TrustedProxies entry that is not an address or CIDR block', () => {
    for (const bad of ['10.0.0.0/33', 'proxy.example.com', '10.0.0.1/8/8', '::1/129', '10.0.0.0/x']) {
      expect(() => loadConfig({ env: { BAMBOO_TRUSTED_PROXIES: bad } }), bad).to.throw(ConfigError, /Bamboo\.TrustedProxies must list IP addresses or CIDR blocks/);
    }
    expect(loadConfig({ env: { BAMBOO_TRUSTED_PROXIES: '10.0.0.0/8, ::1, 192.0.2.1' } }).Bamboo.TrustedProxies).to.equal('10.0.0.0/8, ::1, 192.0.2.1');
  });

  it('reads the query parameters, and answers a bad one with a coded 400', () => {
    expect(parseAuditQuery({})).to.deep.equal({ limit: 50, since: undefined, until: undefined });
    expect(parseAuditQuery({ app: 'team/app', credential: 'deploy', since: '2026-12-07T12:00:00Z', until: '1765108800000', limit: '500' })).to.deep.equal({
      app: '/team/app', credential: 'deploy', since: Date.parse('2026-12-07T12:00:00Z'), until: 1765108800000, limit: 500,
    });
    for (const bad of [{ limit: '0' }, { limit: '501' }, { limit: '1.5' }, { since: 'yesterday' }, { until: '2026-13-45' }, { cursor: '42' }, { app: '/bad id' }]) {
      expect(() => parseAuditQuery(bad), JSON.stringify(bad)).to.throw(ApiError).with.property('status', 400);
    }
  });

  it('builds the entry a write carries: its op from before and after, named by time, credential and app, bounded in size', () => {
    let now = 1765108800000;
    const log = new AuditLog({} as never, '/control', { maxEntries: 10, maxAgeMs: 3600000, now: () => now, log: silentLogger() });
    const rec = (acl: string, version: number, config: Record<string, string> = {}): StoredRecord => ({ record: { Id: '/team/app', Acl: acl, Config: { ...config, Acl: acl } }, version, format: 2 });
    const origin: WriteOrigin = { who: 'deploy', from: '10.0.0.5', forwardedFor: null, revertOf: null };
    const write = (before: StoredRecord | null, after: StoredRecord | null, o = origin) => {
      const op = log.note(o)(before, after);
      if (op.op !== 'create') throw new Error('the note must create a node');
      return { path: op.path, sequential: op.sequential, entry: JSON.parse(op.data.toString()) };
    };
    const created = write(null, rec('path_beg -i /a', 0));
    expect(created.path).to.equal(`/control/audit/1765108800000-deploy-${appKey('/team/app')}-`);
    expect(created.sequential).to.equal(true);
    expect(AUDIT_ID.test(`${created.path.split('/').pop()}0000000001`)).to.equal(true);
    expect(created.entry).to.deep.include({ op: 'create', appId: '/team/app', who: 'deploy', from: '10.0.0.5', versionBefore: null, versionAfter: 0, before: null, at: now });
    now += 1000;
    expect(write(rec('a', 0), rec('b', 1)).entry).to.deep.include({ op: 'update', versionBefore: 0, versionAfter: 1, at: now });
    expect(write(rec('a', 1), null).entry).to.deep.include({ op: 'delete', versionAfter: null, after: null });
    expect(write(rec('b', 1), rec('a', 2), { ...origin, revertOf: 'x' }).entry).to.deep.include({ op: 'revert', revertOf: 'x' });
    // A record an older Bamboo stored, too large for an entry: its ACL is kept, its Config is not.
    const huge: Record<string, string> = {};
    for (let i = 0; i < 64; i++) huge[`K${i}`] = 'v'.repeat(1024);
    const big = write(rec('path_beg -i /big', 3, huge), rec('path_beg -i /small', 4));
    expect(big.entry.truncated).to.equal(true);
    expect(big.entry.before).to.deep.equal({ Id: '/team/app', Acl: 'path_beg -i /big', Config: {} });
    // The largest records the api accepts (64 Config values of 1,024 characters, a 1,024-character
    // ACL in three-byte characters) still give an entry within the bound.
    const widest = '€'.repeat(1024);
    const bound = write(rec(widest, 5, huge), rec(widest, 6, huge), { ...origin, forwardedFor: '2001:db8::1234:5678:9abc:def0' });
    expect(Buffer.byteLength(JSON.stringify(bound.entry))).to.be.at.most(MAX_ENTRY_BYTES);
  });
});
