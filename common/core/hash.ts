/** The content hash used for configs, snapshots and rules: sha256, hex. */
import { createHash } from 'node:crypto';

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}
