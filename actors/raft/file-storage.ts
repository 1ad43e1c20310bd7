/**
 * File-backed Raft storage: one append-only file of records, each `[length u32][crc32 u32][JSON]`.
 * A record holds one `raft.persist` change (term, vote, truncation, appended entries). On open the
 * file is replayed; a torn or corrupt tail (a crash mid-write) is cut off at the last whole record.
 *
 * Durability: with `fsync: true` (the default) every change is flushed to disk before `persist`
 * returns, so what a node answered survives a machine crash. With `fsync: false` a process crash is
 * still safe (the OS has the bytes) but a machine crash may lose the latest changes — and with them
 * Raft's guarantees for this node.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync, existsSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { HardState } from './core.ts';
import type { RaftStorage } from './node.ts';
import type { Entry, RaftEffect } from './types.ts';

interface RecordJson {
  term: number;
  votedFor: string | null;
  truncateFrom: number | null;
  append: Array<{ term: number; index: number; data: string }>;
}

export interface FileRaftStorage extends RaftStorage {
  /** Bytes of a torn or corrupt tail cut off when the file was opened (0 when clean). */
  readonly repairedBytes: number;
  close(): void;
}

const HEADER = 8;

/** Open (or create) the log at `path`. */
export function openFileRaftStorage(path: string, options: { fsync?: boolean } = {}): FileRaftStorage {
  const fsync = options.fsync ?? true;
  let hard: { term: number; votedFor: string | undefined; log: Entry[] } = { term: 0, votedFor: undefined, log: [] };
  let good = 0;
  let repairedBytes = 0;
  const applyRecord = (r: RecordJson): void => {
    const log = r.truncateFrom !== null ? hard.log.slice(0, r.truncateFrom - 1) : hard.log;
    hard = {
      term: r.term, votedFor: r.votedFor ?? undefined,
      log: [...log, ...r.append.map((e) => ({ term: e.term, index: e.index, data: new Uint8Array(Buffer.from(e.data, 'base64')) }))],
    };
  };
  if (existsSync(path)) {
    const buf = readFileSync(path);
    while (good + HEADER <= buf.length) {
      const len = buf.readUInt32LE(good);
      const sum = buf.readUInt32LE(good + 4);
      if (good + HEADER + len > buf.length) break; // torn: the write did not finish
      const payload = buf.subarray(good + HEADER, good + HEADER + len);
      if (crc32(payload) !== sum) break; // corrupt
      let record: RecordJson;
      try {
        record = JSON.parse(payload.toString('utf8')) as RecordJson;
      } catch {
        break;
      }
      applyRecord(record);
      good += HEADER + len;
    }
    repairedBytes = buf.length - good;
  }
  const fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
  if (repairedBytes > 0) {
    ftruncateSync(fd, good);
    if (fsync) fsyncSync(fd);
  }
  let offset = good;
  return {
    repairedBytes,
    load: (): HardState => ({ term: hard.term, votedFor: hard.votedFor, log: [...hard.log] }),
    persist(change: Extract<RaftEffect, { type: 'raft.persist' }>) {
      const record: RecordJson = {
        term: change.term, votedFor: change.votedFor ?? null, truncateFrom: change.truncateFrom ?? null,
        append: change.append.map((e) => ({ term: e.term, index: e.index, data: Buffer.from(e.data).toString('base64') })),
      };
      const payload = Buffer.from(JSON.stringify(record), 'utf8');
      const header = Buffer.alloc(HEADER);
      header.writeUInt32LE(payload.length, 0);
      header.writeUInt32LE(crc32(payload), 4);
      const bytes = Buffer.concat([header, payload]);
      writeSync(fd, bytes, 0, bytes.length, offset);
      offset += bytes.length;
      if (fsync) fsyncSync(fd);
      applyRecord(record);
    },
    close: () => closeSync(fd),
  };
}
