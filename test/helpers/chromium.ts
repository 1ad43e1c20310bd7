/**
 * Finding a Chromium for the browser tests (Debian's `chromium` package, driven by playwright-core,
 * which downloads no browser of its own).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM_MISSING =
  'Chromium is not installed: `sudo apt-get install -y chromium` (Debian), or set CHROMIUM_PATH to a Chromium/Chrome binary';

/** Path of a Chromium binary, or undefined. */
export function findChromium(): string | undefined {
  const fromEnv = process.env['CHROMIUM_PATH'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium']) if (existsSync(p)) return p;
  try {
    const found = execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
    return found || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gate for browser suites: `describe.skipIf(!requireChromium())(…)`. Under CI (`CI=true`) a missing
 * Chromium throws, so the file FAILS; elsewhere it warns loudly and the suite is skipped.
 */
export function requireChromium(): string | undefined {
  const path = findChromium();
  if (path) return path;
  if (process.env['CI'] === 'true') throw new Error(`${CHROMIUM_MISSING} (required because CI=true)`);
  console.warn(`\n!!! SKIPPING INSPECTOR BROWSER TESTS — ${CHROMIUM_MISSING}\n`);
  return undefined;
}
