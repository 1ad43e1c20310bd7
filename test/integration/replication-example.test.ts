/**
 * The replication example end to end (embedded bus, real clock): the primary is killed under
 * load, a backup takes over, the killed node returns empty and catches up.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../examples/replication.ts';

describe('examples/replication.ts', () => {
  it('fails over after the primary is killed, loses no acknowledged write, and converges', async () => {
    const lines: string[] = [];
    const r = await main({ say: (l) => lines.push(l) });
    expect(r.newPrimary).not.toBe(r.killed);
    expect(r.lost).toBe(0);
    expect(r.converged).toBe(true);
    expect(r.acknowledged).toBeGreaterThan(100);
    expect(r.failoverMs).toBeLessThan(3_000); // lease TTL 600 ms + retry + recovery
    const text = lines.join('\n');
    expect(text).toMatch(new RegExp(`KILL ${r.killed} \\(the primary\\)`));
    expect(text).toMatch(new RegExp(`${r.newPrimary} → primary \\(epoch \\d+\\): recovered`));
    expect(lines.at(-1)).toMatch(/0 lost; replicas identical/);
  }, 30_000);
});
