import { expect } from 'chai';
import { CERT_NAME, httpsLabels, redirectToHttps, sslCert } from '../../common/core/tls-labels.js';

describe('HTTPS labels (HAPROXY_{n}_REDIRECT_TO_HTTPS, HAPROXY_{n}_SSL_CERT)', () => {
  const cases: Array<[string, Record<string, unknown>, number, { redirectToHttps: boolean; sslCert: string | null; invalidSslCert: string | null }]> = [
    ['no labels', {}, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: null }],
    ['redirect true', { HAPROXY_0_REDIRECT_TO_HTTPS: 'true' }, 0, { redirectToHttps: true, sslCert: null, invalidSslCert: null }],
    ['redirect TRUE with blanks', { HAPROXY_0_REDIRECT_TO_HTTPS: ' TRUE ' }, 0, { redirectToHttps: true, sslCert: null, invalidSslCert: null }],
    ['redirect false', { HAPROXY_0_REDIRECT_TO_HTTPS: 'false' }, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: null }],
    ['redirect of another port', { HAPROXY_1_REDIRECT_TO_HTTPS: 'true' }, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: null }],
    ['redirect of port 1 asked for port 1', { HAPROXY_1_REDIRECT_TO_HTTPS: '1' }, 1, { redirectToHttps: true, sslCert: null, invalidSslCert: null }],
    ['a certificate name', { HAPROXY_0_SSL_CERT: 'shop.example.com' }, 0, { redirectToHttps: false, sslCert: 'shop.example.com', invalidSslCert: null }],
    ['a path is refused', { HAPROXY_0_SSL_CERT: '/etc/ssl/private/key.pem' }, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: '/etc/ssl/private/key.pem' }],
    ['a parent directory is refused', { HAPROXY_0_SSL_CERT: '..' }, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: '..' }],
    ['a non-string value is ignored', { HAPROXY_0_REDIRECT_TO_HTTPS: true, HAPROXY_0_SSL_CERT: 5 }, 0, { redirectToHttps: false, sslCert: null, invalidSslCert: null }],
  ];
  for (const [name, labels, port, want] of cases) {
    it(`reads ${name}`, () => expect(httpsLabels(labels, port)).to.deep.equal(want));
  }

  it('never takes an inherited key (labels are untrusted maps)', () => {
    const labels = Object.create({ HAPROXY_0_REDIRECT_TO_HTTPS: 'true' }) as Record<string, string>;
    expect(httpsLabels(labels).redirectToHttps).to.equal(false);
  });

  it('gives the template filters the first service port of an app, and nothing for odd input', () => {
    expect(redirectToHttps({ Labels: { HAPROXY_0_REDIRECT_TO_HTTPS: 'true' } })).to.equal(true);
    expect(sslCert({ Labels: { HAPROXY_0_SSL_CERT: 'shop' } })).to.equal('shop');
    expect(redirectToHttps(null)).to.equal(false);
    expect(sslCert('x')).to.equal(null);
  });

  it('accepts bare certificate names only', () => {
    for (const ok of ['shop', 'shop.example.com', 'a_b-c.1']) expect(CERT_NAME.test(ok), ok).to.equal(true);
    for (const bad of ['', '.', '..', '.hidden', 'a/b', 'a b', 'a\nb', 'x'.repeat(201)]) expect(CERT_NAME.test(bad), bad).to.equal(false);
  });
});
