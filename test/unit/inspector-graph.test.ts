import { fromPromise, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { breakerMachine } from '../../actors/circuit-breaker/machine.ts';
import { raftMachine } from '../../actors/raft/machine.ts';
import { layoutChart, toMermaid, toSvg } from '../../framework/inspector/diagram.ts';
import { activeStates, allStates, isMachineLike, machineGraph, transitionLabel } from '../../framework/inspector/graph.ts';

/** A machine with every shape the converter must handle. */
const door = setup({
  guards: { isAdmin: () => true },
  delays: { lockDelay: 250, dynamic: () => 10 },
}).createMachine({
  id: 'door',
  initial: 'closed',
  on: { RESET: '.closed' },
  states: {
    closed: {
      on: {
        OPEN: [{ guard: 'isAdmin', target: 'opened' }, { guard: () => false, target: 'alarm' }, { target: 'closed', reenter: true }],
        KNOCK: { actions: () => undefined },
      },
      after: { lockDelay: 'locked' },
    },
    locked: { after: { 1000: 'closed', dynamic: 'alarm' } },
    opened: {
      type: 'parallel',
      states: {
        light: { initial: 'off', states: { off: { on: { TOGGLE: 'on' } }, on: { on: { TOGGLE: 'off' } } } },
        fan: { initial: 'idle', states: { idle: { always: { guard: 'isAdmin', target: 'spinning' } }, spinning: {} } },
      },
      on: { CLOSE: 'closed' },
    },
    alarm: { type: 'final' },
  },
});

describe('machineGraph', () => {
  const g = machineGraph(door);
  const byPath = new Map(allStates(g).map((s) => [s.path, s]));

  it('keeps nesting, state types and initial states', () => {
    expect(g.id).toBe('door');
    expect(g.root.key).toBe('door');
    expect(g.root.initial).toBe('closed');
    expect(byPath.get('opened')?.type).toBe('parallel');
    expect(byPath.get('opened')?.children.map((c) => c.key)).toEqual(['light', 'fan']);
    expect(byPath.get('opened.light')?.type).toBe('compound');
    expect(byPath.get('opened.light')?.initial).toBe('opened.light.off');
    expect(byPath.get('opened.light.on')?.type).toBe('atomic');
    expect(byPath.get('alarm')?.type).toBe('final');
    expect(byPath.get('opened')?.initial).toBeUndefined();
  });

  it('names guards, and marks inline ones', () => {
    const open = g.transitions.filter((t) => t.source === 'closed' && t.trigger.kind === 'event' && t.trigger.event === 'OPEN');
    expect(open.map((t) => [t.guard, t.targets])).toEqual([['isAdmin', ['opened']], ['inline', ['alarm']], [undefined, ['closed']]]);
    expect(open[2]!.reenter).toBe(true);
    expect(transitionLabel(open[0]!)).toBe('OPEN [isAdmin]');
  });

  it('resolves after delays: literal ms, named constants, named functions', () => {
    const afters = g.transitions.filter((t) => t.trigger.kind === 'after');
    expect(afters.map((t) => [t.source, t.trigger, t.targets])).toEqual([
      ['closed', { kind: 'after', delay: 'lockDelay', delayMs: 250 }, ['locked']],
      ['locked', { kind: 'after', delay: 1000, delayMs: 1000 }, ['closed']],
      ['locked', { kind: 'after', delay: 'dynamic' }, ['alarm']],
    ]);
    expect(afters.map(transitionLabel)).toEqual(['after 250 ms', 'after 1000 ms', 'after dynamic']);
  });

  it('keeps eventless, targetless and machine-wide transitions', () => {
    const always = g.transitions.find((t) => t.trigger.kind === 'always');
    expect(always).toMatchObject({ source: 'opened.fan.idle', targets: ['opened.fan.spinning'], guard: 'isAdmin' });
    const knock = g.transitions.find((t) => t.trigger.kind === 'event' && t.trigger.event === 'KNOCK');
    expect(knock).toMatchObject({ source: 'closed', targets: [], actions: ['inline'] });
    expect(g.transitions.find((t) => t.source === '')).toMatchObject({ trigger: { kind: 'event', event: 'RESET' }, targets: ['closed'] });
  });

  it('gives every transition a unique, stable id and survives JSON', () => {
    const ids = g.transitions.map((t) => t.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(JSON.parse(JSON.stringify(g))).toEqual(g);
    expect(machineGraph(door)).toEqual(g);
  });

  it('maps snapshot values to active state paths (nested, parallel)', () => {
    expect(activeStates(g, 'locked')).toEqual(['', 'locked']);
    expect(activeStates(g, { opened: { light: 'on', fan: 'idle' } })).toEqual(['', 'opened', 'opened.light', 'opened.light.on', 'opened.fan', 'opened.fan.idle']);
    expect(activeStates(g, { nope: 'x' })).toEqual(['']);
  });

  it("labels an invoke's done and error events by the invoked state, not XState's internal event name", () => {
    const m = setup({ actors: { load: fromPromise(async () => 1) } }).createMachine({
      id: 'loader', initial: 'fetch',
      states: { fetch: { invoke: { src: 'load', onDone: 'ok', onError: 'failed' } }, ok: {}, failed: {} },
    });
    const labels = machineGraph(m).transitions.map(transitionLabel).sort();
    expect(labels).toEqual(['done: fetch', 'error: fetch']);
  });

  it('recognises machines and nothing else', () => {
    expect(isMachineLike(door)).toBe(true);
    expect(isMachineLike({ id: 'x', root: {} })).toBe(false);
    expect(isMachineLike(door.toJSON())).toBe(false);
  });
});

describe('real charts', () => {
  it('the circuit breaker: closed → open → halfOpen → closed, the open period as an after delay', () => {
    const g = machineGraph(breakerMachine);
    expect(g.root.children.map((c) => c.key)).toEqual(['closed', 'open', 'halfOpen', 'isolated', 'disabled']);
    const edge = (from: string, to: string) => g.transitions.filter((t) => t.source === from && t.targets.includes(to));
    expect(edge('closed', 'open').map(transitionLabel)).toContain('TRIP');
    expect(edge('open', 'halfOpen')[0]!.trigger).toEqual({ kind: 'after', delay: 'openRemaining' });
    expect(edge('halfOpen', 'closed').map(transitionLabel)).toContain('TRIAL_SUCCEEDED [inline]');
  });

  it('raft: parallel role and clock regions, eventless role changes, a re-entering tick', () => {
    const g = machineGraph(raftMachine);
    expect(g.root.type).toBe('parallel');
    expect(g.root.children.map((c) => c.key)).toEqual(['role', 'clock']);
    const role = g.root.children[0]!;
    expect(role.children.map((c) => c.key)).toEqual(['follower', 'preCandidate', 'candidate', 'leader']);
    const toLeader = g.transitions.filter((t) => t.targets.includes('role.leader'));
    expect(toLeader).toHaveLength(3);
    expect(toLeader.every((t) => t.trigger.kind === 'always' && t.guard === 'inline')).toBe(true);
    const tick = g.transitions.find((t) => t.source === 'clock.ticking');
    expect(tick).toMatchObject({ trigger: { kind: 'after', delay: 'tick' }, targets: ['clock.ticking'], reenter: true });
    expect(activeStates(g, { role: 'leader', clock: 'ticking' })).toEqual(['', 'role', 'role.leader', 'clock', 'clock.ticking']);
  });
});

describe('diagrams', () => {
  it('mermaid: composite states, parallel regions, labelled transitions, no edge on a composite', () => {
    const g = machineGraph(door);
    const m = toMermaid(g);
    expect(m.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(m).toContain('state s_opened {');
    expect(m).toMatch(/state s_opened \{[\s\S]*\n\s+--\n[\s\S]*\}/);
    expect(m).toContain('s_closed --> s_locked : after 250 ms');
    expect(m).toContain('s_alarm --> [*]');
    expect(m).toContain('[*] --> s_opened_light_off');
    // Mermaid cannot route an edge to or from a composite state: such ends move to its initial leaf
    expect(m).toContain('s_closed --> s_opened_light_off : OPEN [isAdmin] (into opened)');
    expect(m).toContain('s_opened_light_off --> s_closed : CLOSE (from opened)');
    expect(m).toContain('s_closed --> s_closed : RESET (from any state)');
    const composites = allStates(g).filter((s) => s.children.length > 0 && s.path !== '').map((s) => `s_${s.path.replace(/\./g, '_')}`);
    const ends = [...m.matchAll(/^\s*(\S+) --> (\S+)/gm)].flatMap((x) => [x[1], x[2]]);
    expect(ends.length).toBeGreaterThan(10);
    for (const c of composites) expect(ends).not.toContain(c);
  });

  it('ELK layout: nested boxes contain their children; every transition has a routed edge', async () => {
    const g = machineGraph(door);
    const layout = await layoutChart(g);
    const box = new Map(layout.states.map((s) => [s.state.path, s]));
    expect(box.size).toBe(allStates(g).length);
    for (const s of allStates(g)) {
      const outer = box.get(s.path)!;
      for (const c of s.children) {
        const inner = box.get(c.path)!;
        expect(inner.x).toBeGreaterThanOrEqual(outer.x);
        expect(inner.y).toBeGreaterThanOrEqual(outer.y);
        expect(inner.x + inner.width).toBeLessThanOrEqual(outer.x + outer.width + 0.01);
        expect(inner.y + inner.height).toBeLessThanOrEqual(outer.y + outer.height + 0.01);
      }
    }
    const routed = g.transitions.filter((t) => t.targets.length > 0).reduce((n, t) => n + t.targets.length, 0);
    expect(layout.edges).toHaveLength(routed);
    expect(layout.edges.every((e) => e.points.length >= 2)).toBe(true);
    expect(layout.states.find((s) => s.state.path === 'closed')!.internal.map(transitionLabel)).toEqual(['KNOCK']);
  });

  it('SVG: one group per state, active states marked, after labels tagged for countdowns', async () => {
    const g = machineGraph(breakerMachine);
    const svg = toSvg(g, await layoutChart(g), { active: ['', 'open'] });
    expect(svg.startsWith('<svg')).toBe(true);
    for (const s of allStates(g)) expect(svg).toContain(`data-state="${s.path}"`);
    expect(svg).toMatch(/<g class="state atomic depth-1 active" data-state="open">/);
    expect(svg).not.toMatch(/class="[^"]*active[^"]*" data-state="closed"/);
    expect(svg).toContain('data-after="open#1"');
    expect(svg).toContain('after openRemaining');
  });
});
