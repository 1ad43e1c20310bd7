/**
 * supervised-workers — OTP-style supervision. A `workers` supervisor runs a worker whose action
 * throws on some jobs. Each crash is a failure reported to the supervisor's state chart, which
 * restarts the worker with exponential backoff while it stays within its restart intensity
 * (3 restarts in 10 s); the fourth crash in the window exceeds it, so the supervisor escalates and
 * the root stops the whole subtree. Every step is printed from the system's inspection stream.
 *
 * Run: npx tsx framework/cli.ts run supervised-workers
 */
import { assign, setup } from 'xstate';
import {
  createLogger, createSystem, defineActor, defineSupervisor, reply, type InspectionEvent, type Logger, type LogLevel,
} from '../framework/index.ts';
import { messages, type JobDone, type Message } from './workers.pb.ts';

export const workerMachine = setup({
  types: { events: {} as Message, context: {} as { done: number } },
  actions: {
    work: ({ event }) => {
      if (event.type === 'Job' && event.crash) throw new Error(`job ${event.id} hit a bug`);
    },
  },
}).createMachine({
  id: 'worker',
  context: { done: 0 },
  on: {
    Job: {
      actions: [
        'work',
        assign({ done: ({ context }) => context.done + 1 }),
        reply(({ event, context }) => ({ type: 'JobDone', id: event.id, doneSinceStart: context.done })),
      ],
    },
  },
});

export const Worker = defineActor({ type: 'worker', machine: workerMachine, messages });

export const Workers = defineSupervisor({
  type: 'workers',
  strategy: 'one-for-one',
  children: [
    { def: Worker, name: 'worker', supervision: { maxRestarts: 3, withinMs: 10_000, backoff: { minMs: 50, maxMs: 1_000, factor: 2 } } },
  ],
});

function narrate(say: (line: string) => void): (ev: InspectionEvent) => void {
  return (ev) => {
    switch (ev.kind) {
      case 'actor.failed':
        say(`  ✗ ${ev.actor} failed: ${ev.error}`);
        break;
      case 'supervision.directive':
        say(`  ↻ supervisor ${ev.supervisor.endsWith('/_sys') ? '(root)' : ev.supervisor} decided: ${ev.directive} ${ev.child}${ev.delayMs ? ` after ${ev.delayMs} ms` : ''} — ${ev.reason}`);
        break;
      case 'actor.stopped':
        say(`  ■ ${ev.actor} stopped (${ev.reason})`);
        break;
      default:
    }
  };
}

export async function main(options: { say?: (line: string) => void; logger?: Logger } = {}): Promise<{ results: string[] }> {
  const say = options.say ?? ((line: string) => console.log(line));
  // the log would repeat the narration; keep it to errors unless LOG_LEVEL asks for more
  const logger = options.logger ?? createLogger({ level: (process.env['LOG_LEVEL'] as LogLevel | undefined) ?? 'fatal' });
  const system = createSystem({ cluster: 'demo', node: 'local', inspect: narrate(say), logger });
  const results: string[] = [];
  try {
    system.spawn(Workers, { name: 'workers', supervision: { maxRestarts: 0 } });
    const worker = system.ref(`${system.node}/workers/worker`);
    const gone = system.watch(`${system.node}/workers`);
    say(`spawned supervisor ${system.node}/workers with child ${worker.address} (one-for-one, max 3 restarts in 10 s, backoff 50 ms ×2)`);
    const jobs = [
      { id: 1, crash: false }, { id: 2, crash: false }, { id: 3, crash: true }, { id: 4, crash: false },
      { id: 5, crash: true }, { id: 6, crash: true }, { id: 7, crash: false }, { id: 8, crash: true }, { id: 9, crash: false },
    ];
    for (const job of jobs) {
      say(`job ${job.id}${job.crash ? ' (will crash)' : ''} →`);
      try {
        const done = await system.ask<JobDone>(worker, { type: 'Job', ...job }, { timeoutMs: 2_000 });
        const line = `job ${done.id} done (jobs done since this worker started: ${done.doneSinceStart})`;
        results.push(line);
        say(`  ✓ ${line}`);
      } catch (err) {
        const line = `job ${job.id} failed: ${(err as Error).name}`;
        results.push(line);
        say(`  ✗ ${line}`);
      }
    }
    const end = await gone;
    say(`supervisor ${end.actor} is gone (${end.reason}): the fourth crash within 10 s exceeded the restart intensity and was escalated`);
    return { results };
  } finally {
    await system.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
