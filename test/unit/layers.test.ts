/**
 * The rules `npm test` enforces on the tree's shape, run in-process on scratch trees: the pure core
 * imports only itself and liquidjs (scripts/check-layers.js, whose command line the integration
 * test/integration/standalone.test.ts runs), and unit tests start no service.
 */
import { expect } from 'chai';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../../common/config.js';
import { tempDir } from '../../harness/tmp.js';
import { PURE_CORE, checkLayers, importsOf } from '../../scripts/check-layers.js';

const PURE = ['common/a.ts', 'common/b.ts'];

/** A scratch tree: each entry is a file path and its text. */
function tree(files: Record<string, string>): string {
  const root = tempDir('bamboo-purity-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** A pure module common/a.ts with the given imports, beside a pure common/b.ts and an impure common/io.ts. */
function pureTree(imports: string): string {
  return tree({
    'common/a.ts': `${imports}\nexport const a = 1;\n`,
    'common/b.ts': 'export const b = 2;\n',
    'common/io.ts': "import { readFileSync } from 'node:fs';\nexport const io = readFileSync;\n",
  });
}

describe('layer check: the pure core', () => {
  it('passes on this repository, whose core folder holds the pure modules', () => {
    expect(checkLayers(PROJECT_ROOT)).to.deep.equal([]);
    const core = readdirSync(join(PROJECT_ROOT, PURE_CORE)).filter((f) => f.endsWith('.ts'));
    expect(core).to.include.members(['template-data.ts', 'render.ts', 'model.ts', 'acl.ts']);
  });

  it('checks every file of the core folder without a list: a new impure module there is refused', () => {
    const root = tree({
      'common/core/new.ts': "import { readFileSync } from 'node:fs';\nexport const n = readFileSync;\n",
      'common/adapters/x.ts': "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
    });
    const bad = checkLayers(root);
    expect(bad).to.have.length(1);
    expect(bad[0]).to.match(/^common\/core\/new\.ts imports/);
  });

  const allowed: Array<[string, string]> = [
    ['another pure module', "import { b } from './b.js';"],
    ['a type from another pure module', "import type { B } from './b.js';"],
    ['liquidjs', "import { Liquid } from 'liquidjs';"],
    ['createHash from node:crypto', "import { createHash } from 'node:crypto';"],
    ['nothing at all', ''],
  ];
  for (const [what, line] of allowed) {
    it(`allows a pure module to import ${what}`, () => {
      expect(checkLayers(pureTree(line), { pure: PURE })).to.deep.equal([]);
    });
  }

  const refused: Array<[string, string]> = [
    ['an impure module of common/', "import { io } from './io.js';"],
    ['only a type from an impure module', "import type { Io } from './io.js';"],
    ['a re-export of an impure module', "export { io } from './io.js';"],
    ['an import spread over lines', "import {\n  io,\n} from './io.js';"],
    ['node:fs', "import { readFileSync } from 'node:fs';"],
    ['fs without the node: prefix', "import * as fs from 'fs';"],
    ['randomness from node:crypto', "import { randomBytes } from 'node:crypto';"],
    ['all of node:crypto', "import * as crypto from 'node:crypto';"],
    ['createHash renamed beside randomUUID', "import { createHash as h, randomUUID } from 'node:crypto';"],
    ['a package other than liquidjs', "import pino from 'pino';"],
    ['a module for its side effects', "import './io.js';"],
    ['a module loaded at run time', "export const load = () => import('./b.js');"],
    ['a module through require', "const zk = require('node-zookeeper-client');"],
  ];
  for (const [what, line] of refused) {
    it(`refuses a pure module importing ${what}`, () => {
      const bad = checkLayers(pureTree(line), { pure: PURE });
      expect(bad).to.have.length(1);
      expect(bad[0]).to.match(/^common\/a\.ts (imports|loads) .*the pure core imports only itself/);
    });
  }

  it('lets an impure module import anything the layer rules allow', () => {
    expect(checkLayers(pureTree(''), { pure: PURE })).to.deep.equal([]);
  });

  it('still applies the layer rules to pure modules', () => {
    const root = tree({ 'common/a.ts': "import { t } from '../test/t.js';\n", 'test/t.ts': 'export const t = 1;\n' });
    const bad = checkLayers(root, { pure: PURE });
    expect(bad).to.include("common/a.ts imports ../test/t.js (common must not depend on test)");
  });
});

/** Test files under a folder of test/, relative to test/. */
function testFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(PROJECT_ROOT, 'test', rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.test.ts')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe('test folders', () => {
  it('keeps every test file in unit/, integration/ or faults/, the folders npm test runs', () => {
    const scripts = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    const stray = testFiles('').filter((f) => !/^(unit|integration|faults)\//.test(f));
    expect(stray).to.deep.equal([]);
    for (const folder of ['unit', 'integration', 'faults']) {
      expect(scripts.test).to.include(`'test/${folder}/**/*.test.ts'`);
      expect(scripts[`test:${folder}`]).to.include(`'test/${folder}/**/*.test.ts'`);
    }
  });

  // What a unit test may not reach for: real services, sockets, child processes and browsers.
  const SERVICES = [
    /^(node:)?(child_process|net|http|https|http2|dgram|tls|worker_threads|cluster)$/,
    /^(zeromq|node-zookeeper-client|playwright-core|hot-shots|statsd|axios)$/,
    /\/harness\/(zookeeper|marathon-sim\/index|http|ports)\.js$/,
    /\/support\/(haproxy|statsd|faults|wrk|corpus)\.js$/,
    /\/(api|worker)\/main\.js$/,
    /\/cli\//,
  ];
  for (const file of testFiles('unit')) {
    it(`${file} imports no service, socket, child process or browser`, () => {
      const src = readFileSync(join(PROJECT_ROOT, 'test', file), 'utf8');
      const hits = importsOf(src).map((i) => i.spec).filter((spec) => SERVICES.some((re) => re.test(spec)));
      expect(hits).to.deep.equal([]);
    });
  }
});
