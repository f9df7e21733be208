/**
 * The files next to OutputPath: candidates (temp files renamed over it, so haproxy.cfg is never
 * half-written), `.last-good` (and `.last-good-rules`, the rules in force), `.last-failed`, and what a
 * killed worker left behind.
 */
import { open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../common/log.js';

/** A file next to OutputPath could not be written or renamed (ENOSPC, EROFS, EACCES, ...). */
export class WriteError extends Error {
  override name = 'WriteError';
  readonly code: string | undefined;
  constructor(readonly path: string, cause: Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(`cannot write ${path}: ${code ?? cause.message}`);
    this.code = code;
  }
}

export class ConfigFiles {
  private tempSeq = 0;
  /** The `.last-good-rules` text this process wrote last (a write only when it changes). */
  private rulesWritten: string | null = null;

  /** `log`: where a failed write of `.last-good` or `.last-failed` is reported (they never throw). */
  constructor(readonly outputPath: string, private readonly log: Logger) {}

  get lastGoodPath(): string {
    return `${this.outputPath}.last-good`;
  }
  get lastFailedPath(): string {
    return `${this.outputPath}.last-failed`;
  }

  /**
   * Writes a temp file next to OutputPath (same file system, so the rename is atomic), synced.
   * Throws WriteError (disk full, read-only, ...) after removing whatever part of it was written.
   */
  async writeTemp(text: string): Promise<string> {
    const path = this.tempPath();
    try {
      const fh = await open(path, 'w', 0o640);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await removeQuietly(path);
      throw new WriteError(path, err as Error);
    }
    return path;
  }

  /** Renames the temp file over OutputPath; on failure removes it and throws WriteError. */
  async install(tempPath: string): Promise<void> {
    try {
      await rename(tempPath, this.outputPath);
    } catch (err) {
      await removeQuietly(tempPath);
      throw new WriteError(this.outputPath, err as Error);
    }
    await syncDir(dirname(this.outputPath));
  }

  /** Temp file + rename to any path; never leaves the temp file behind (throws WriteError). */
  async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = this.tempPath();
    try {
      await writeFile(tmp, text, { mode: 0o640 });
      await rename(tmp, path);
    } catch (err) {
      await removeQuietly(tmp);
      throw new WriteError(path, err as Error);
    }
  }

  /** Keeps a failed candidate with why it failed as a comment header; a failure is only logged. */
  async keepLastFailed(text: string, why: string): Promise<void> {
    const header = why
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, 40)
      .map((l) => `# ${l}`)
      .join('\n');
    await this.writeAtomic(this.lastFailedPath, `${header}\n${text}`).catch((err: Error) =>
      this.log.warn({ err }, 'could not write the last failed config'),
    );
  }

  /** The rules in force beside the last good config (worker/last-good.ts): a restarted worker's last good rules. */
  get lastGoodRulesPath(): string {
    return `${this.outputPath}.last-good-rules`;
  }

  /** Keeps the rules now in force as `.last-good-rules` when they changed since the last write; a failure is only logged. */
  async keepLastGoodRules(text: string): Promise<void> {
    if (text === this.rulesWritten) return;
    await this.writeAtomic(this.lastGoodRulesPath, text).then(
      () => (this.rulesWritten = text),
      (err: Error) => this.log.warn({ err }, 'could not write the last good rules'),
    );
  }

  /** Keeps the config now in force as `.last-good`; a failure is only logged. */
  async keepLastGood(text: string): Promise<void> {
    await this.writeAtomic(this.lastGoodPath, text).catch((err: Error) => this.log.warn({ err }, 'could not write the last good config'));
  }

  /** Removes a candidate that will not be installed; never throws. */
  async discard(tempPath: string): Promise<void> {
    await removeQuietly(tempPath);
  }

  private tempPath(): string {
    return `${this.outputPath}.tmp-${process.pid}-${++this.tempSeq}`;
  }
}

/**
 * Puts `.last-good` back over OutputPath when they differ (temp file + rename); resolves whether it
 * did. For a start that HAProxy refused: a worker killed between installing a candidate the master
 * then refused (managed mode reloads candidates unvalidated) and putting the last good file back
 * leaves one on disk. Never throws.
 */
export async function restoreLastGood(outputPath: string): Promise<boolean> {
  const lastGood = `${outputPath}.last-good`;
  try {
    const good = await readFile(lastGood, 'utf8');
    const current = await readFile(outputPath, 'utf8').catch(() => null);
    if (current === good) return false;
    const tmp = `${outputPath}.tmp-${process.pid}-restore`;
    await writeFile(tmp, good, { mode: 0o640 });
    await rename(tmp, outputPath);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp files a previous (killed) worker left next to OutputPath; resolves how many. */
export async function removeStaleTemps(outputPath: string): Promise<number> {
  const dir = dirname(outputPath);
  const prefix = `${basename(outputPath)}.tmp-`;
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) {
      await removeQuietly(join(dir, name));
      removed++;
    }
  }
  return removed;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* not supported everywhere; the rename is atomic regardless */
  }
}
