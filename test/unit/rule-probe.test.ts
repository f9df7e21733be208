/**
 * The pure parts of the api's HAProxy rule check (common/core/rule-probe.ts): the form the default
 * template gives a rule (checked against the real template), the shape keys that decide which rules
 * share one `haproxy -c` probe, and HAProxy's alerts mapped back to the rule.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRenderer } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { probeConfig, probeRefusal, ruleForm, ruleReasons, ruleShapeKey } from '../../common/core/rule-probe.js';
import { app, NOW, REPO_ROOT, service, services, settings, task, withTasks } from '../builders.js';

describe('rule probe (pure)', () => {
  describe('ruleForm mirrors templates/haproxy.cfg.liquid', () => {
    const long = Array.from({ length: 49 }, (_, i) => `/p${i}`).join(' ');
    const exactly48 = `path_beg ${Array.from({ length: 47 }, (_, i) => `/p${i}`).join(' ')}`;
    const cases: Array<[string, string]> = [
      ['hdr(host) -i a.example.com', 'anonymous'],
      ['path_reg ^/x{2}$', 'named'],
      ['path_beg -i /a#b', 'named'],
      ['path_beg /a } || { path_beg /b', 'named'],
      [`path_beg ${long}`, 'named'],
      [exactly48, 'anonymous'],
    ];
    const template = readFileSync(join(REPO_ROOT, 'templates', 'haproxy.cfg.liquid'), 'utf8');
    for (const [acl, form] of cases) {
      it(`gives ${JSON.stringify(acl.slice(0, 40))} the ${form} form, as the template renders it`, () => {
        expect(ruleForm(acl)).to.equal(form);
        const { data } = buildTemplateData({ apps: [app('/r', withTasks(task('r.1')))], services: services(service('/r', acl)), now: NOW });
        const out = createRenderer(template).render(data, settings({ AdminSocket: '' })).text;
        const rendered = out.includes(`acl ::r-aclrule ${acl}\n`) ? 'named' : out.includes(`use_backend ::r-cluster if { ${acl} }\n`) ? 'anonymous' : 'missing';
        expect(rendered).to.equal(form);
        // The probe holds the rule in the same line shape.
        const probe = probeConfig(acl).text;
        expect(probe).to.contain(form === 'named' ? `-aclrule ${acl}\n` : `if { ${acl} }\n`);
      });
    }
  });

  describe('ruleShapeKey', () => {
    const same: Array<[string, string]> = [
      ['hdr(host) -i a.example.com', 'hdr(host) -i b.example.com'],
      ['hdr_dom(host) -i a.example.com', 'hdr_dom(host) -i b.example.org'],
      ['path_beg -i /a', 'path_beg -i /b/c'],
      ['path_beg /a', 'path_beg  /b'],
      ['hdr(host),lower a.example.com', 'hdr(host),lower b.example.com'],
      ['req.hdr(host) -m beg a', 'req.hdr(host) -m beg b'],
      ['src,ipmask(8) -m str 1', 'src,ipmask(8) -m str 2'],
    ];
    for (const [a, b] of same) {
      it(`gives ${JSON.stringify(a)} and ${JSON.stringify(b)} one key (patterns HAProxy does not parse)`, () => {
        expect(ruleShapeKey(a)).to.equal(ruleShapeKey(b));
      });
    }
    const different: Array<[string, string, string]> = [
      ['path_reg ^/a(', 'path_reg ^/b(', 'regexes are compiled at config time'],
      ['hdr(host) -m reg ^a', 'hdr(host) -m reg ^b(', 'a -m reg pattern is a regex'],
      ['hdr_reg(host) a', 'hdr_reg(host) a(', '_reg keywords compile their patterns'],
      ['src 10.0.0.0/8', 'src 10.0.0.300/8', 'addresses are parsed'],
      ['hdr_ip(x-forwarded-for) 10.0.0.1', 'hdr_ip(x-forwarded-for) nope', '_ip keywords parse addresses'],
      ['path -m ip 10.0.0.1', 'path -m ip nope', '-m ip parses addresses'],
      ['hdr_cnt(host) 1', 'hdr_cnt(host) abc', 'counts are integers'],
      ['path_len 3', 'path_len x', 'lengths are integers'],
      ['path -m int 3', 'path -m int x', '-m int parses integers'],
      ['dst_port 80', 'dst_port eighty', 'ports are integers'],
      ['method GET', 'method G@T', 'methods are parsed'],
      ['hdr(host),length 3', 'hdr(host),length x', 'a converter may change the type'],
      ['hdr(host) -i a', 'hdr(host) -i "a', 'quotes are read by the line parser'],
      ['hdr(host) -i a', 'hdr(host) -i a\\x', 'escapes are read by the line parser'],
      ['hdr(host) -i a', 'hdr(host) -i "${SECRET}"', 'variables are expanded by the line parser'],
      ['hdr(host) -i a', 'hdr(host) -i a#b', '# is a comment outside braces'],
      ['hdr(host) -i a', 'hdr(Host) -i a', 'fetch arguments stay literal'],
      ['hdr(host) -i a', 'hdr(host) a', 'flags stay literal'],
      ['hdr(host),lower a', 'hdr(host),lowerr a', 'converters stay literal'],
      ['path_beg /a', 'path_beg', 'no pattern is not some patterns'],
      ['hdr(host) -i a.example.com', 'hdr(host) -i a.example.com b.example.com', 'the number of patterns counts'],
      [`path_beg ${Array.from({ length: 50 }, (_, i) => `/p${i}`).join(' ')}`, `path_beg ${Array.from({ length: 70 }, (_, i) => `/p${i}`).join(' ')}`, 'HAProxy reads at most 64 words on a line'],
      ['path_beg /a', `path_beg ${Array.from({ length: 48 }, (_, i) => `/p${i}`).join(' ')}`, 'the form the template picks is part of the key'],
      ['path_beg -u 1 /a', 'path_beg -u 2 /a', 'flag arguments stay literal'],
      ['path_beg -f /a', 'path_beg -f /b', 'files are never shared'],
    ];
    for (const [a, b, why] of different) {
      it(`keeps ${JSON.stringify(a)} and ${JSON.stringify(b.slice(0, 40))} apart: ${why}`, () => {
        expect(ruleShapeKey(a)).to.not.equal(ruleShapeKey(b));
      });
    }
  });

  describe('probeRefusal: rules that would make the probe read a file', () => {
    const refused = [
      'src -f /etc/bamboo/api.env',
      'path_beg -i -f /etc/bamboo/api.env',
      'path_beg "-f" /etc/bamboo/api.env',
      "path_beg \\-f /x",
      'path_beg -m str -f /x',
      'hdr(host) -M -f /x',
      'hdr(host),map(/etc/bamboo/api.env) -m found',
      'hdr(host),lower,map_str(/x,default) -m found',
      'hdr(host),"map_ip"(/x) x',
      'req.hdr(host),MAP_BEG(/x) x',
    ];
    for (const acl of refused) {
      it(`refuses ${JSON.stringify(acl)}`, () => expect(probeRefusal(acl)).to.match(/reads a file/));
    }
    const allowed = ['path_beg /a -f', 'path_beg -- -f /x', 'hdr(host) -i maps.example.com', 'path_beg /map(x)', 'hdr(x-map) -i a', 'path_beg -u 1 /x'];
    for (const acl of allowed) {
      it(`lets ${JSON.stringify(acl)} be probed (-f is a pattern there, or nothing reads a file)`, () => expect(probeRefusal(acl)).to.equal(null));
    }
  });

  describe('ruleReasons', () => {
    const anon = probeConfig('hdrr(host) -i x');
    const named = probeConfig('path_beg /a } { hdrr(host)');
    const alert = (line: number, text: string) => `[ALERT]    (4242) : config : parsing [/tmp/bamboo-rule-x/probe.cfg:${line}] : ${text}`;
    const tail = '[ALERT]    (4242) : config : Error(s) found in configuration file : /tmp/bamboo-rule-x/probe.cfg\n[ALERT]    (4242) : config : Fatal errors found in configuration.';
    const cases: Array<[string, string, typeof anon, string[]]> = [
      [
        'an unknown fetch on the anonymous form',
        `[NOTICE]   (4242) : haproxy version is 2.6.12\n${alert(anon.ruleLines[0], "error detected while parsing switching rule : unknown fetch method 'hdrr' in ACL expression 'hdrr(host)'.")}\n${tail}`,
        anon,
        ["unknown fetch method 'hdrr' in ACL expression 'hdrr(host)'"],
      ],
      [
        'the named form: once, without the probe ACL name or the follow-up "no such ACL"',
        [
          alert(named.ruleLines[0], "error detected while parsing ACL 'bamboo-rule-probe-aclrule' : ACL keyword 'hdr' : unknown converter 'lowerr'.."),
          alert(named.ruleLines[1], "error detected while parsing switching rule : no such ACL : 'bamboo-rule-probe-aclrule'."),
          tail,
        ].join('\n'),
        named,
        ["ACL keyword 'hdr' : unknown converter 'lowerr'"],
      ],
      [
        "a line parser error's position, counted in the rule",
        `${alert(anon.ruleLines[0], '').replace('] : ', ']: ')}unmatched quote at position ${anon.ruleOffset + 10}:\n  use_backend ...\n   ^\n${tail}`,
        anon,
        ['unmatched quote at character 10 of the rule'],
      ],
      [
        'the 64-word limit, counted in the rule',
        `${alert(named.ruleLines[0], '').replace('] : ', ']: ')}too many words, truncating after word 64, position ${named.ruleOffset + 300}: </p61>.\n${tail}`,
        named,
        ['too many words, truncating after word 64, at character 300 of the rule: </p61>'],
      ],
      [
        'an alert elsewhere when none points at the rule',
        `${alert(1, "unknown keyword 'x' in 'global' section")}\n${tail}`,
        anon,
        ["unknown keyword 'x' in 'global' section"],
      ],
      ['no alert at all', 'Segmentation fault', anon, []],
    ];
    for (const [name, output, probe, want] of cases) {
      it(`maps ${name}`, () => {
        expect(ruleReasons(output, probe)).to.deep.equal(want);
      });
    }
  });
});
