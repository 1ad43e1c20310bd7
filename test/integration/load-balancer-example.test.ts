/**
 * The load-balancer example runs end to end (real clock, in-process bus) and shows what it says:
 * a slow worker avoided, a failing one ejected and let back, a leaving one dropped.
 */
import { expect, it } from 'vitest';
import { main } from '../../examples/load-balancer.ts';

it('load-balancer example: slow avoided, failing ejected and back, leaver dropped', async () => {
  const lines: string[] = [];
  await main({ say: (l) => lines.push(l), rounds: 400 });
  const text = lines.join('\n');
  expect(text).toMatch(/pool: w1\/worker, w2\/worker, w3\/worker, w4\/worker/);
  const slow = /w1 slow \(40 ms\)\s*: w1=(\d+)/.exec(text);
  expect(Number(slow?.[1] ?? 0)).toBeLessThan(60); // of 400; a fair share would be 100
  expect(text).toMatch(/w2's breaker: open/);
  expect(text).toMatch(/w2 recovered\s*: w1=\d+ w2=\d+/);
  expect(text).toMatch(/w2's breaker: closed/);
  expect(text).toMatch(/w4 left\s*: w1=\d+ w2=\d+ w3=\d+$/m);
}, 30_000);
