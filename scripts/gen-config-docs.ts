/**
 * Regenerates the reference table in docs/configuration.md from the config schema
 * (npx tsx scripts/gen-config-docs.ts). test/unit/config.test.ts fails when the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, configReferenceTable } from '../common/config.js';

export const BEGIN = '<!-- BEGIN GENERATED TABLE (npx tsx scripts/gen-config-docs.ts) -->';
export const END = '<!-- END GENERATED TABLE -->';

export function withTable(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < 0) throw new Error('docs/configuration.md lacks the generated-table markers');
  return doc.slice(0, start + BEGIN.length) + '\n' + configReferenceTable() + '\n' + doc.slice(end);
}

if (process.argv[1] && process.argv[1].endsWith('gen-config-docs.ts')) {
  const path = join(PROJECT_ROOT, 'docs', 'configuration.md');
  writeFileSync(path, withTable(readFileSync(path, 'utf8')));
}
