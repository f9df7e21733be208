import { expect } from 'chai';
import { ValidationPolicy } from '../../worker/validation-policy.js';

const RUNNING = [
  'global',
  '    server-state-file /run/haproxy.state',
  'frontend http-in',
  '    use_backend ::web-cluster if { path_beg /web/ }',
  'backend ::web-cluster',
  '    server slot-1 10.0.0.1:31000',
  '',
].join('\n');
const running = { hash: 'h1', text: RUNNING, confirmed: true };
const withLine = (line: string) => RUNNING.replace('frontend http-in\n', `frontend http-in\n    ${line}\n`);

describe('validation policy: which candidates get haproxy -c before the reload', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a new app (backend and rule)', withLine('use_backend ::api-cluster if { hdr(host) -i api.example.com }'), false],
    ['a line the config in force already has (the server-state-file)', RUNNING + 'backend ::x\n', false],
    ['app ids that merely contain the letters', withLine('use_backend ::team-frontend::maps-evaluator-cluster if { path_beg /team-frontend/ }'), false],
    ['a pattern file in a new rule', withLine('acl x path_beg -f /dev/zero'), true],
    ['a map converter', withLine('http-request set-var(txn.x) req.hdr(host),map(/etc/x.map)'), true],
    ['a map file flag', withLine("acl x hdr(host) -M '/etc/x.map'"), true],
    ['a quoted pattern file flag', withLine("acl x path_beg '-f' /dev/zero"), true],
    ['an error file', withLine('errorfile 503 /etc/haproxy/503.http'), true],
    ['a certificate', withLine('bind :443 ssl crt /etc/ssl/x.pem'), true],
    ['Lua', withLine('http-request lua.x'), true],
    ['an escape that may hide a flag', withLine('acl x path_beg "-\\x66" /dev/zero'), true],
  ];
  for (const [what, candidate, validated] of cases) {
    it(`${validated ? 'validates' : 'does not validate'} first: ${what}`, () => {
      const why = new ValidationPolicy(false).validateFirst(candidate, running);
      if (validated) expect(why).to.be.a('string').and.contain('may load a file');
      else expect(why).to.equal(null);
    });
  }

  it('validates every candidate first when HAProxy.ValidateBeforeReload is on', () => {
    expect(new ValidationPolicy(true).validateFirst(RUNNING + 'backend ::x\n', running)).to.equal('HAProxy.ValidateBeforeReload');
  });

  it('validates first without a confirmed config in force to fall back on', () => {
    const p = new ValidationPolicy(false);
    expect(p.validateFirst(RUNNING, null)).to.equal('no confirmed config in force');
    expect(p.validateFirst(RUNNING, { ...running, confirmed: false })).to.equal('no confirmed config in force');
  });
});
