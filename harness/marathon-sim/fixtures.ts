/**
 * Reading the Marathon fixtures (harness/fixtures/marathon: real Marathon payloads, with their sources
 * in its README.md and PROVENANCE.md) and turning every response shape they contain into a plain list
 * of app objects.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JsonObject } from './types.js';

/** The directory holding package.json, found upwards from this file (works from sources and dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('marathon-sim: no package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/**
 * The Marathon fixture folder, inside the repository (a checkout needs nothing beside it). Resolved
 * from the repository root, so it is the same from sources and from dist/. Installed packages do not
 * ship the fixtures: only tests and `loadFixture` callers read them, never `bamboo demo`.
 */
export function fixturesDir(): string {
  return resolve(repoRoot(), 'harness', 'fixtures', 'marathon');
}

/** Every file under `dir` (recursively), sorted, as paths relative to `dir`. */
export function listFixtureFiles(dir: string): string[] {
  const walk = (rel: string): string[] =>
    readdirSync(join(dir, rel), { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(join(rel, e.name)) : [join(rel, e.name)]))
      .sort();
  return walk('');
}

/** Reads and parses one JSON fixture. */
export function readJsonFixture(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function flattenGroup(group: JsonObject): JsonObject[] {
  const apps = Array.isArray(group['apps']) ? (group['apps'] as JsonObject[]) : [];
  const groups = Array.isArray(group['groups']) ? (group['groups'] as JsonObject[]) : [];
  return [...apps, ...groups.flatMap(flattenGroup)];
}

/**
 * The apps in any fixture shape (README "How to read the file names"): `{"apps": [...]}` (GET
 * /v2/apps), `{"app": {...}}` (GET /v2/apps/{id}), a bare array (F5 stores only the value of the
 * "apps" key), a group tree (GET /v2/groups, flattened depth first), or a single app definition.
 * Throws on anything else, so a new fixture shape is noticed rather than silently ignored.
 */
export function appsFromFixture(json: unknown): JsonObject[] {
  if (Array.isArray(json)) return json as JsonObject[];
  if (!isObject(json)) throw new TypeError('marathon-sim: a fixture must be a JSON object or array');
  if (Array.isArray(json['groups'])) return flattenGroup(json);
  if (Array.isArray(json['apps'])) return json['apps'] as JsonObject[];
  if (isObject(json['app'])) return [json['app']];
  if (typeof json['id'] === 'string') return [json];
  throw new TypeError('marathon-sim: unrecognised fixture shape (keys: ' + Object.keys(json).join(', ') + ')');
}
