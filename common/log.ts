/**
 * Structured logging (pino): constant messages, fields for the variable parts, secrets stripped.
 *
 * Every configured secret value is replaced by `***` in each line before it is written, whatever field
 * or message it hides in, so a secret can never reach a log line by accident.
 */
import { createWriteStream } from 'node:fs';
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  /** Log file path (Bamboo's -log flag); default stderr. */
  file?: string;
  /** Values that must never be written (passwords, tokens, digests). */
  secrets?: readonly string[];
  /** Process role, added to every line. */
  role?: string;
  /** Custom destination (tests capture logs with this). */
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const secrets = (opts.secrets ?? []).filter((s) => s.length >= 1);
  const dest: DestinationStream =
    opts.destination ?? (opts.file ? createWriteStream(opts.file, { flags: 'a' }) : pino.destination({ fd: 2, sync: true }));
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.role ? { role: opts.role } : {},
      redact: { paths: ['password', '*.password', 'Password', '*.Password', 'authorization', '*.authorization', 'token', '*.token'], censor: '***' },
      hooks: {
        streamWrite(line: string): string {
          let out = line;
          for (const s of secrets) out = out.split(s).join('***');
          // Also catch secrets JSON-escaped inside the line.
          for (const s of secrets) {
            const escaped = JSON.stringify(s).slice(1, -1);
            if (escaped !== s) out = out.split(escaped).join('***');
          }
          return out;
        },
      },
    },
    dest,
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
