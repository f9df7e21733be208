import { expect } from 'chai';
import { labelledSni, sniFilters, type SniApp } from '../../common/core/tls-sni.js';

/** An app of the template data whose resolved routing gives port `index` these hosts and certificate. */
function app(Id: string, ...ports: Array<{ index?: number; vhosts: string[]; sslCert: string; mode?: string; enabled?: boolean }>): SniApp {
  return { Id, Routing: { ports: ports.map((p, i) => ({ index: p.index ?? i, enabled: p.enabled ?? true, mode: p.mode ?? 'http', vhosts: p.vhosts, sslCert: p.sslCert })) } };
}

describe('certificates chosen by HAPROXY_{n}_SSL_CERT (SNI filters of the crt-list)', () => {
  it('binds the hosts of each port to the certificate the port names, sorted by host', () => {
    const got = labelledSni([app('/shop', { vhosts: ['www.shop.test', 'shop.test'], sslCert: 'shop' }, { vhosts: ['admin.shop.test'], sslCert: 'admin' })]);
    expect([...got]).to.deep.equal([
      ['admin.shop.test', { cert: 'admin', appId: '/shop' }],
      ['shop.test', { cert: 'shop', appId: '/shop' }],
      ['www.shop.test', { cert: 'shop', appId: '/shop' }],
    ]);
  });

  it('leaves out ports without a certificate, disabled, TCP, and apps without routing', () => {
    const got = labelledSni([
      app('/a', { vhosts: ['a.test'], sslCert: '' }),
      app('/b', { vhosts: ['b.test'], sslCert: 'b', enabled: false }),
      app('/c', { vhosts: ['c.test'], sslCert: 'c', mode: 'tcp' }),
      { Id: '/d', Routing: null },
    ]);
    expect(got.size).to.equal(0);
  });

  it('decides a host shared by rules on different paths by the smaller app id, then the lower port', () => {
    const got = labelledSni([app('/z', { vhosts: ['s.test'], sslCert: 'z' }), app('/a', { index: 1, vhosts: ['s.test'], sslCert: 'a1' }, { index: 0, vhosts: ['s.test'], sslCert: 'a0' })]);
    expect(got.get('s.test')).to.deep.equal({ cert: 'a0', appId: '/a' });
  });

  const bound = new Map([
    ['shop.test', { cert: 'new', appId: '/shop' }],
    ['extra.test', { cert: 'new', appId: '/shop' }],
  ]);
  const cases: Array<[string, string, string[], boolean, string[]]> = [
    ['keeps its own names when no label chose', 'other', ['other.test'], false, ['other.test']],
    ['loses a host a label gave another certificate', 'old', ['shop.test', 'old.test'], false, ['old.test']],
    ['gets the hosts a label gave it, after its own names', 'new', ['shop.test', 'www.shop.test'], false, ['shop.test', 'www.shop.test', 'extra.test']],
    ['keeps out of every name it lost with negative filters when nothing is left', 'old', ['shop.test'], false, ['!shop.test']],
    ['leaves the default certificate as loaded (the Runtime API cannot change its entry)', 'default', ['shop.test'], true, []],
  ];
  for (const [name, cert, names, isDefault, want] of cases) {
    it(name, () => expect(sniFilters(cert, names, isDefault, bound)).to.deep.equal(want));
  }
});
