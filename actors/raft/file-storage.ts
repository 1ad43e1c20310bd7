/**
 * File-backed Raft storage: one append-only file of records, each `[length u32][crc32 u32][JSON]`.
 * A record holds one `raft.persist` change (term, vote, truncation, appended entries). On open the
 * file is replayed; a torn or corrupt tail (a crash mid-write) is cut off at the last whole record.
 *
 * A change that carries a snapshot compacts the file: the whole hard state after it (snapshot and
 * the entries after it) is written to a new file, synced, and renamed over the old one — so the
 * file stays about as large as the snapshot plus the log since.
 *
 * Durability: with `fsync: true` (the default) every change is flushed to disk before `persist`
 * returns, so what a node answered survives a machine crash. With `fsync: false` a process crash is
 * still safe (the OS has the bytes) but a machine crash may lose the latest changes — and with them
 * Raft's guarantees for this node.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, writeSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import type { HardState } from './core.ts';
import { applyPersist, type PersistChange, type RaftStorage } from './node.ts';
import type { Entry } from './types.ts';

interface EntryJson { term: number; index: number; data: string; voters?: string[] }
interface RecordJson {
  term: number;
  votedFor: string | null;
  snapshot?: { index: number; term: number; voters: string[]; data: string };
  truncateFrom: number | null;
  append: EntryJson[];
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const entryJson = (e: Entry): EntryJson => ({ term: e.term, index: e.index, data: b64(e.data), ...(e.membership ? { voters: [...e.membership.voters] } : {}) });
const entryOf = (e: EntryJson): Entry => ({ term: e.term, index: e.index, data: unb64(e.data), ...(e.voters ? { membership: { voters: e.voters } } : {}) });

function recordOf(change: Omit<PersistChange, 'type'>): RecordJson {
  const snap = change.snapshot;
  return {
    term: change.term, votedFor: change.votedFor ?? null,
    ...(snap ? { snapshot: { index: snap.index, term: snap.term, voters: [...snap.voters], data: b64(snap.data) } } : {}),
    truncateFrom: change.truncateFrom ?? null, append: change.append.map(entryJson),
  };
}

function changeOf(r: RecordJson): Omit<PersistChange, 'type'> {
  const snap = r.snapshot;
  return {
    term: r.term, votedFor: r.votedFor ?? undefined,
    ...(snap ? { snapshot: { index: snap.index, term: snap.term, voters: snap.voters, data: unb64(snap.data) } } : {}),
    truncateFrom: r.truncateFrom ?? undefined, append: r.append.map(entryOf),
  };
}

function frame(record: RecordJson): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([header, payload]);
}

export interface FileRaftStorage extends RaftStorage {
  /** Bytes of a torn or corrupt tail cut off when the file was opened (0 when clean). */
  readonly repairedBytes: number;
  close(): void;
}

const HEADER = 8;

/** Make a rename in `dir` durable. */
function syncDir(dir: string): void {
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Open (or create) the log at `path`. */
export function openFileRaftStorage(path: string, options: { fsync?: boolean } = {}): FileRaftStorage {
  const fsync = options.fsync ?? true;
  let hard: HardState = { term: 0, votedFor: undefined, log: [] };
  let good = 0;
  let repairedBytes = 0;
  const applyRecord = (r: RecordJson): void => {
    hard = applyPersist(hard, changeOf(r));
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
  let fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
  if (repairedBytes > 0) {
    ftruncateSync(fd, good);
    if (fsync) fsyncSync(fd);
  }
  let offset = good;
  return {
    repairedBytes,
    load: (): HardState => ({ ...hard, log: [...hard.log] }),
    persist(change: PersistChange) {
      if (change.snapshot) {
        // compact: the state after this change, alone in a new file that replaces the old one
        hard = applyPersist(hard, change);
        const bytes = frame(recordOf({ term: hard.term, votedFor: hard.votedFor, snapshot: hard.snapshot, truncateFrom: undefined, append: hard.log }));
        const tmp = `${path}.compacting`;
        const tfd = openSync(tmp, 'w');
        writeSync(tfd, bytes, 0, bytes.length, 0);
        if (fsync) fsyncSync(tfd);
        closeSync(tfd);
        renameSync(tmp, path);
        closeSync(fd);
        fd = openSync(path, 'r+');
        if (fsync) syncDir(dirname(path));
        offset = bytes.length;
        return;
      }
      const record = recordOf(change);
      const bytes = frame(record);
      writeSync(fd, bytes, 0, bytes.length, offset);
      offset += bytes.length;
      if (fsync) fsyncSync(fd);
      applyRecord(record);
    },
    close: () => closeSync(fd),
  };
}
