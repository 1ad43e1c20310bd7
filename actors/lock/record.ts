/**
 * What the lock stores under `<prefix>.<name>.holder` (a lease, or a release marker) and under
 * `<prefix>.<name>.q.<leaseId>` (a place in the wait queue), as JSON.
 */

/** What is stored under `holder` and `q.<leaseId>`. */
export interface StoredRecord {
  owner: string;
  leaseId: string;
  /** The fencing token (holder) or queue position (queue entry), once known to the writer. */
  token?: number;
  /** A release marker: the lock is free; written by the release of lease `leaseId`. */
  free?: true;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const encodeRecord = (r: StoredRecord): Uint8Array => encoder.encode(JSON.stringify(r));
export const decodeRecord = (bytes: Uint8Array): StoredRecord | undefined => {
  try {
    const r = JSON.parse(decoder.decode(bytes)) as StoredRecord;
    return typeof r === 'object' && r !== null && typeof r.leaseId === 'string' ? r : undefined;
  } catch {
    return undefined; // not written by a lock client: treated as someone else's lease
  }
};
