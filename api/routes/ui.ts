/** The web UI: `/` and its static files under `/ui/`, read once at start. */
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PROJECT_ROOT } from '../../common/config.js';
import { ApiError } from '../../common/core/errors.js';

function loadUi(): string {
  try {
    return readFileSync(join(PROJECT_ROOT, 'api', 'ui', 'index.html'), 'utf8');
  } catch {
    return '<!doctype html><title>Bamboo</title><p>The web UI file is missing; the REST API is under <a href="/api/services">/api/services</a>.</p>';
  }
}

/** Content types of the UI's static files; any other file in api/ui is not served. */
const UI_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The UI's static files (api/ui/*.js, *.css, *.svg), read once like index.html, keyed by file name. */
function loadUiFiles(): Map<string, { type: string; body: Buffer }> {
  const dir = join(PROJECT_ROOT, 'api', 'ui');
  const files = new Map<string, { type: string; body: Buffer }>();
  try {
    for (const name of readdirSync(dir)) {
      const type = UI_TYPES[extname(name)];
      if (type && /^[A-Za-z0-9_-]+\.[a-z]+$/.test(name)) files.set(name, { type, body: readFileSync(join(dir, name)) });
    }
  } catch {
    /* no UI directory: only the API is served */
  }
  return files;
}

export async function uiRoutes(app: FastifyInstance): Promise<void> {
  const page = loadUi();
  // The URL only selects a key of this map (never a path), so no request can read outside api/ui.
  const uiFiles = loadUiFiles();
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-cache').send(page));
  app.get('/ui/*', async (req, reply) => {
    const name = (req.params as Record<string, string>)['*'];
    const file = uiFiles.get(name);
    if (!file) throw new ApiError('BAMBOO_NOT_FOUND', `no UI file ${JSON.stringify(name.slice(0, 100))}; the UI is served at /`);
    return reply.type(file.type).header('Cache-Control', 'no-cache').header('X-Content-Type-Options', 'nosniff').send(file.body);
  });
}
