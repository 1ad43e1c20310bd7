/**
 * The quorum example's table tells the truth: W + R > N never reads stale, the side of a split
 * without a quorum is unavailable, W + R ≤ N and a sloppy quorum stay available and read stale.
 */
import { describe, expect, it } from 'vitest';
import { main, type QuorumRow } from '../../examples/quorum.ts';

describe('examples/quorum.ts', () => {
  it('shows the CAP trade-off in its table', async () => {
    const lines: string[] = [];
    const rows = await main({ say: (l) => lines.push(l) });
    const row = (setting: string, partitioned: boolean): QuorumRow => rows.find((r) => r.setting === setting && r.partitioned === partitioned)!;
    expect(rows).toHaveLength(10);
    for (const r of rows.filter((x) => !x.partitioned)) {
      expect(r).toMatchObject({ writesUnavailable: 0, readsUnavailable: 0, staleReads: 0 });
      expect(r.writesOk).toBeGreaterThan(10);
    }
    for (const s of ['W=2 R=2', 'W=3 R=1', 'W=1 R=3']) expect(row(s, true).staleReads).toBe(0);
    expect(row('W=2 R=2', true)).toMatchObject({ writesOk: 0, readsUnavailable: 0 });
    expect(row('W=2 R=2', true).writesUnavailable).toBeGreaterThan(0);
    expect(row('W=1 R=3', true).readsUnavailable).toBeGreaterThan(0);
    expect(row('W=1 R=1', true)).toMatchObject({ writesUnavailable: 0, readsUnavailable: 0 });
    expect(row('W=1 R=1', true).staleReads).toBeGreaterThan(0);
    expect(row('W=2 R=2 sloppy', true).writesOk).toBeGreaterThan(0);
    expect(row('W=2 R=2 sloppy', true).staleReads).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith('setting'))).toBe(true);
  });
});
