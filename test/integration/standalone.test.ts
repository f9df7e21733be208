/**
 * The repository stands alone: a clone with nothing beside it has every file the tests, the demo and
 * the docs read, and shipped code never depends on test code. Each check here failed on the tree that
 * read its fixtures and benchmark notes from a folder beside the repository and let `bamboo demo`
 * import test/.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../common/config.js';
import { fixturesDir, listFixtureFiles } from '../../harness/marathon-sim/fixtures.js';
import { tempDir } from '../../harness/tmp.js';

const pexec = promisify(execFile);
const ROOT = PROJECT_ROOT;

/** Folders that are not part of the repository (installs, builds, caches; all in .gitignore). */
const NOT_REPOSITORY = new Set(['.git', 'node_modules', 'dist', 'build', 'scratch', '.bench-results', 'tmp']);

function isFile(rel: string): boolean {
  try {
    return lstatSync(join(ROOT, rel)).isFile();
  } catch {
    return false; // deleted in the work tree but still in the index
  }
}

/** The repository's files: what git tracks, or (no git, e.g. an unpacked archive) the tree minus installs and builds. */
async function repositoryFiles(): Promise<string[]> {
  try {
    const { stdout } = await pexec('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
    // Regular files only: untracked entries may include a node_modules symlink (a worktree sharing an install).
    const files = stdout.split('\0').filter((f) => f && !NOT_REPOSITORY.has(f.split('/')[0]) && isFile(f));
    if (files.length) return files;
  } catch {
    // Not a git checkout: walk the tree instead.
  }
  const walk = (rel: string): string[] =>
    readdirSync(join(ROOT, rel), { withFileTypes: true }).flatMap((e) => {
      if (NOT_REPOSITORY.has(e.name) && rel === '') return [];
      const p = rel ? `${rel}/${e.name}` : e.name;
      return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
    });
  return walk('');
}

/** Runs scripts/check-layers.js on a tree. */
async function checkLayers(root?: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await pexec(process.execPath, [join(ROOT, 'scripts', 'check-layers.js'), ...(root ? [root] : [])], { timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

describe('the repository stands alone', function () {
  this.timeout(120_000);

  it('has no file that points outside the repository (no sibling shared folder, no notes kept beside it)', async () => {
    // Built from pieces so that this file does not match itself.
    const outside = [['..', 'shared'].join('/'), ['shared', 'fixtures'].join('/'), ['BENCHMARKING', 'md'].join('.')];
    const files = await repositoryFiles();
    expect(files.length, 'files found').to.be.greaterThan(100);
    const hits: string[] = [];
    for (const f of files) {
      const text = readFileSync(join(ROOT, f), 'latin1');
      text.split('\n').forEach((line, i) => {
        for (const needle of outside) if (line.includes(needle)) hits.push(`${f}:${i + 1}: ${line.trim().slice(0, 160)}`);
      });
    }
    expect(hits, hits.join('\n')).to.deep.equal([]);
  });

  it('keeps the Marathon fixtures in the repository, each file described in their README, with a provenance note', () => {
    const dir = fixturesDir();
    expect(relative(ROOT, dir)).to.equal(join('harness', 'fixtures', 'marathon'));
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readFileSync(join(dir, 'PROVENANCE.md'), 'utf8')).to.match(/Where they come from/);
    // Entries are "- **`name`**" under "## <folder>/ — ..." headings; names are relative to the folder.
    const described: string[] = [];
    let folder = '';
    for (const line of readme.split('\n')) {
      const heading = /^## ([a-z]+)\/ /.exec(line);
      if (heading) folder = heading[1];
      else if (line.startsWith('## ')) folder = '';
      const entry = /^- \*\*`([^`]+)`\*\*/.exec(line);
      if (entry && folder) described.push(`${folder}/${entry[1]}`);
    }
    const present = listFixtureFiles(dir).filter((f) => !['README.md', 'PROVENANCE.md', '.gitattributes'].includes(f));
    expect(present.length, 'fixture files').to.equal(132);
    expect([...described].sort()).to.deep.equal(present);
  });

  describe('layer check (scripts/check-layers.js)', () => {
    /** A tree with one file in `from` importing one file in `to`. */
    function tree(from: string, to: string): string {
      const root = tempDir('bamboo-layers-');
      mkdirSync(join(root, from), { recursive: true });
      mkdirSync(join(root, to), { recursive: true });
      writeFileSync(join(root, to, 'target.ts'), 'export const x = 1;\n');
      writeFileSync(join(root, from, 'source.ts'), `import { x } from '../${to}/target.js';\nexport const y = x;\n`);
      return root;
    }

    it('passes on this repository', async () => {
      const r = await checkLayers();
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.include('layers ok');
    });

    const forbidden: Array<[string, string]> = [
      ['cli', 'test'],
      ['api', 'test'],
      ['worker', 'test'],
      ['common', 'test'],
      ['harness', 'test'],
      ['bench', 'test'],
      ['common', 'harness'],
      ['api', 'harness'],
      ['worker', 'harness'],
      ['harness', 'cli'],
    ];
    for (const [from, to] of forbidden) {
      it(`rejects ${from}/ importing ${to}/`, async () => {
        const r = await checkLayers(tree(from, to));
        expect(r.code, r.out).to.equal(1);
        expect(r.out).to.include(`${from}/source.ts imports ../${to}/target.js`);
      });
    }

    for (const [from, to] of [['cli', 'harness'], ['bench', 'harness'], ['test', 'harness'], ['harness', 'common']] as Array<[string, string]>) {
      it(`allows ${from}/ importing ${to}/`, async () => {
        const r = await checkLayers(tree(from, to));
        expect(r.code, r.out).to.equal(0);
      });
    }

    it('sees dynamic imports too (a lazy import of test code is still shipped code depending on it)', async () => {
      const root = tree('cli', 'test');
      writeFileSync(join(root, 'cli', 'source.ts'), "export async function demo() { return import('../test/target.js'); }\n");
      const r = await checkLayers(root);
      expect(r.code, r.out).to.equal(1);
      expect(r.out).to.include("cli/source.ts imports ../test/target.js");
    });
  });
});
