/**
 * The sharding example end to end (embedded bus, real clock): a node joins and one leaves while
 * clients tell; the example itself checks every counter and throws on a lost, duplicated or
 * reordered message.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../examples/sharding.ts';

describe('examples/sharding.ts', () => {
  it('moves about K/N keys on join and on leave, hands shards off, and applies every message once', async () => {
    const lines: string[] = [];
    const result = await main({ say: (l) => lines.push(l), rounds: 10 });
    expect(result.moved.join).toBeGreaterThan(0);
    expect(result.moved.join).toBeLessThanOrEqual(1.1 * 2_000 / 4);
    expect(result.moved.leave).toBeLessThanOrEqual(1.1 * 2_000 / 4);
    expect(result.handOffs).toBeGreaterThan(0);
    expect(result.applied).toBe(10 * 50 * 3 + 10 * 50 * 4 + 10 * 50 * 3);
    expect(lines.at(-1)).toMatch(/applied once each/);
  }, 60_000);
});
