/**
 * File-backed Raft storage: round trip across reopen, truncation, and recovery from a torn or
 * corrupt tail (the crash-mid-write cases), compaction by snapshot, in a temp dir.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openFileRaftStorage } from '../../actors/raft/file-storage.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dirs: string[] = [];
const file = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'troupe-raft-'));
  dirs.push(d);
  return join(d, 'raft.log');
};
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('file-backed Raft storage', () => {
  it('keeps term, vote and log across reopen, with truncations applied', () => {
    const path = file();
    const s = openFileRaftStorage(path, { fsync: false });
    s.persist({ type: 'raft.persist', term: 1, votedFor: 'n1', truncateFrom: undefined, append: [{ term: 1, index: 1, data: enc('a') }, { term: 1, index: 2, data: enc('b') }] });
    s.persist({ type: 'raft.persist', term: 2, votedFor: undefined, truncateFrom: 2, append: [{ term: 2, index: 2, data: enc('c') }] });
    s.close();
    const again = openFileRaftStorage(path);
    expect(again.repairedBytes).toBe(0);
    const hard = again.load();
    expect(hard.term).toBe(2);
    expect(hard.votedFor).toBeUndefined();
    expect(hard.log.map((e) => [e.term, e.index, new TextDecoder().decode(e.data)])).toEqual([[1, 1, 'a'], [2, 2, 'c']]);
    again.close();
  });

  it('a torn tail (a crash mid-write) is cut off at the last whole record', () => {
    const path = file();
    const s = openFileRaftStorage(path, { fsync: false });
    s.persist({ type: 'raft.persist', term: 3, votedFor: 'n2', truncateFrom: undefined, append: [{ term: 3, index: 1, data: enc('x') }] });
    s.close();
    const whole = statSync(path).size;
    appendFileSync(path, Buffer.from([200, 0, 0, 0, 1, 2, 3])); // a header promising 200 bytes, then nothing
    const reopened = openFileRaftStorage(path);
    expect(reopened.repairedBytes).toBe(7);
    expect(statSync(path).size).toBe(whole);
    expect(reopened.load()).toMatchObject({ term: 3, votedFor: 'n2' });
    // and it appends cleanly after the repair
    reopened.persist({ type: 'raft.persist', term: 4, votedFor: undefined, truncateFrom: undefined, append: [] });
    reopened.close();
    expect(openFileRaftStorage(path).load().term).toBe(4);
  });

  it('a corrupt record (checksum mismatch) ends the log there', () => {
    const path = file();
    const s = openFileRaftStorage(path, { fsync: false });
    s.persist({ type: 'raft.persist', term: 1, votedFor: undefined, truncateFrom: undefined, append: [{ term: 1, index: 1, data: enc('keep') }] });
    s.persist({ type: 'raft.persist', term: 1, votedFor: undefined, truncateFrom: undefined, append: [{ term: 1, index: 2, data: enc('flip') }] });
    s.close();
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff; // flip a bit inside the second record
    writeFileSync(path, bytes);
    const reopened = openFileRaftStorage(path);
    expect(reopened.repairedBytes).toBeGreaterThan(0);
    expect(reopened.load().log.map((e) => new TextDecoder().decode(e.data))).toEqual(['keep']);
    reopened.close();
  });

  it('a snapshot compacts the file: reopening gives the snapshot and only the entries after it', () => {
    const path = file();
    const s = openFileRaftStorage(path, { fsync: true });
    for (let i = 1; i <= 200; i++) s.persist({ type: 'raft.persist', term: 1, votedFor: 'n1', truncateFrom: undefined, append: [{ term: 1, index: i, data: enc(`entry-${i}`) }] });
    s.persist({ type: 'raft.persist', term: 1, votedFor: 'n1', truncateFrom: undefined, append: [{ term: 1, index: 201, data: new Uint8Array(0), membership: { voters: ['n1', 'n2'] } }] });
    const big = statSync(path).size;
    const snapshot = { index: 195, term: 1, voters: ['n1', 'n2', 'n3'], data: enc('state@195') };
    s.persist({ type: 'raft.persist', term: 1, votedFor: 'n1', snapshot, truncateFrom: undefined, append: [] });
    expect(statSync(path).size).toBeLessThan(big / 10);
    expect(existsSync(`${path}.compacting`)).toBe(false);
    // appends go on after the compacted state
    s.persist({ type: 'raft.persist', term: 2, votedFor: undefined, truncateFrom: undefined, append: [{ term: 2, index: 202, data: enc('later') }] });
    s.close();
    const hard = openFileRaftStorage(path).load();
    expect(hard).toMatchObject({ term: 2, votedFor: undefined, snapshot: { index: 195, term: 1, voters: ['n1', 'n2', 'n3'] } });
    expect(new TextDecoder().decode(hard.snapshot!.data)).toBe('state@195');
    expect(hard.log.map((e) => e.index)).toEqual([196, 197, 198, 199, 200, 201, 202]);
    // configuration entries keep their voters across a reopen
    expect(hard.log.find((e) => e.index === 201)!.membership).toEqual({ voters: ['n1', 'n2'] });
  });

  it('a crash during compaction leaves the old file whole (the half-written new one is not used)', () => {
    const path = file();
    const s = openFileRaftStorage(path, { fsync: false });
    s.persist({ type: 'raft.persist', term: 1, votedFor: undefined, truncateFrom: undefined, append: [{ term: 1, index: 1, data: enc('a') }] });
    s.close();
    writeFileSync(`${path}.compacting`, Buffer.from([9, 9, 9])); // the crash hit before the rename
    const reopened = openFileRaftStorage(path);
    expect(reopened.load().log.map((e) => e.index)).toEqual([1]);
    // the next compaction overwrites the leftover
    reopened.persist({ type: 'raft.persist', term: 1, votedFor: undefined, snapshot: { index: 1, term: 1, voters: ['n1'], data: enc('s') }, truncateFrom: undefined, append: [] });
    reopened.close();
    expect(openFileRaftStorage(path).load()).toMatchObject({ snapshot: { index: 1 }, log: [] });
  });
});
