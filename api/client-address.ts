/**
 * Where a request came from, for the audit trail: its TCP peer, and the client a trusted proxy
 * (`Bamboo.TrustedProxies`) forwarded for.
 */
import { BlockList, isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { addressBlocks } from '../common/config-views.js';
/** `::ffff:10.0.0.1` -> `10.0.0.1`: one spelling per IPv4 client. */
function plainAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1] : address;
}

/**
 * Where a request came from: its TCP peer, and the client a trusted proxy forwarded for. The
 * `X-Forwarded-For` header is read only when the peer is in `Bamboo.TrustedProxies`, from its right
 * end (what the nearest proxy added), skipping further trusted proxies; anyone else can write
 * anything in it.
 */
export class ClientAddress {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  constructor(trustedProxies: string) {
    const blocks = addressBlocks(trustedProxies);
    for (const b of blocks) {
      if (b.prefix === null) this.trusted.addAddress(b.address, b.family);
      else this.trusted.addSubnet(b.address, b.prefix, b.family);
    }
    this.any = blocks.length > 0;
  }

  private isTrusted(address: string): boolean {
    const v = isIP(address);
    return v !== 0 && this.trusted.check(address, v === 4 ? 'ipv4' : 'ipv6');
  }

  of(req: FastifyRequest): { from: string; forwardedFor: string | null } {
    const from = plainAddress(req.socket.remoteAddress ?? 'unknown');
    if (!this.any || !this.isTrusted(from)) return { from, forwardedFor: null };
    const header = req.headers['x-forwarded-for'];
    const hops = [header ?? []].flat().join(',').split(',').map((s) => plainAddress(s.trim())).filter(Boolean);
    let client: string | null = null;
    for (let i = hops.length - 1; i >= 0; i--) {
      if (isIP(hops[i]) === 0) break; // garbage from beyond the trusted proxies: stop believing
      client = hops[i];
      if (!this.isTrusted(hops[i])) break;
    }
    return { from, forwardedFor: client };
  }
}
