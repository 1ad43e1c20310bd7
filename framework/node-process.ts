/**
 * Start a TypeScript entry point as its own OS process (node + tsx's loader, ONE process, so a
 * SIGKILL really kills it) and wait until it prints `ready` on stdout. Used by the multi-process
 * examples, the integration tests and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface NodeProcessOptions {
  /** Absolute path of the `.ts` entry point. */
  entry: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Every other line it prints on stdout. */
  onLine?: (line: string) => void;
  /** `'ignore'` to keep its stdin closed; `'pipe'` to write to it. @default 'ignore' */
  stdin?: 'ignore' | 'pipe';
}

/** Resolves with the child once it printed `ready`; rejects if it exits first. */
export function startNodeProcess(options: NodeProcessOptions): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), options.entry], {
    env: { ...process.env, ...options.env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let ready = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!ready && line === 'ready') {
        ready = true;
        resolve(child);
      } else {
        options.onLine?.(line);
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`${options.entry} exited before it was ready (code ${code}, signal ${signal})`));
    });
    child.once('error', reject);
  });
}
