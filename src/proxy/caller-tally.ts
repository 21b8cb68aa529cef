/**
 * Who calls this service, for the migration report: per caller (its SPIFFE ID for mTLS,
 * its source address for plaintext) the requests, connections and what strict mTLS would
 * refuse, as deltas the reporter takes and, when a report fails, gives back.
 */

/** One caller's counts since the last `take`. */
export interface CallerReport {
  /** The caller's SPIFFE ID (mTLS), or null (plaintext, and the `other` aggregate). */
  identity: string | null;
  /** The plaintext caller's source IP (IPv4-mapped IPv6 as IPv4), `other` for the aggregate, null for mTLS callers. */
  address: string | null;
  tls: boolean;
  requests: number;
  connections: number;
  /** Requests (HTTP) or connections (TCP) a strict dry run let through that strict mode would refuse. */
  wouldReject: number;
}

/** The counters of one caller, resolved once per connection; the connection increments them. */
export interface CallerCounter {
  /** Incremented per HTTP request. */
  requests: number;
  /** Incremented per request (HTTP) or connection (TCP) strict mode would refuse. */
  wouldReject: number;
}

/** A caller's entry: its counters plus what the tally needs to report and forget it. */
class Entry implements CallerCounter, CallerReport {
  requests = 0;
  connections = 0;
  wouldReject = 0;
  /** Open connections holding this entry: it is kept while any is open. */
  open = 0;

  constructor(
    readonly key: string,
    readonly identity: string | null,
    readonly address: string | null,
    readonly tls: boolean,
  ) {}

  get idle(): boolean {
    return this.requests === 0 && this.connections === 0 && this.wouldReject === 0;
  }
}

const OTHER_KEY = 'other';

/**
 * Per-caller counts with a bounded number of callers: past `maxEntries` (default 999, so that with the "other" entry a report stays within the server's 1000),
 * new callers share one entry reported as `{ identity: null, address: 'other' }`. An
 * entry is forgotten at a `take` that finds it idle with no connection open.
 */
export class CallerTally {
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: { maxEntries?: number } = {}) {
    // 999 named callers and the "other" entry: a report stays within the server's 1000.
    this.#max = options.maxEntries ?? 999;
  }

  /**
   * The counter object for one inbound connection, resolved once when it opens (by
   * identity, or by plaintext source address); counts the connection. Call `closed` with
   * it when the connection closes.
   */
  connection(identity: string | null, address: string | null, tls: boolean): CallerCounter {
    // A caller with neither identity nor address (a socket already gone) counts as "other".
    const entry = identity === null && address === null ? this.#other() : this.#entry(identity, identity === null ? plainAddress(address) : null, tls);
    entry.connections++;
    entry.open++;
    return entry;
  }

  /** The connection that got `counter` closed: its caller may be forgotten once idle. */
  closed(counter: CallerCounter): void {
    if (counter instanceof Entry && counter.open > 0) counter.open--;
  }

  /** Deltas since the last take (callers with any), then resets them. */
  take(): CallerReport[] {
    const reports: CallerReport[] = [];
    for (const [key, e] of this.#entries) {
      if (e.idle) {
        if (e.open === 0) this.#entries.delete(key);
        continue;
      }
      reports.push({ identity: e.identity, address: e.address, tls: e.tls, requests: e.requests, connections: e.connections, wouldReject: e.wouldReject });
      e.requests = 0;
      e.connections = 0;
      e.wouldReject = 0;
    }
    return reports;
  }

  /** Puts back deltas a failed report could not deliver (merged with the counts since). */
  giveBack(reports: readonly CallerReport[]): void {
    for (const r of reports) {
      const entry = r.identity === null && r.address === OTHER_KEY ? this.#other() : this.#entry(r.identity, r.identity === null ? r.address : null, r.tls);
      entry.requests += r.requests;
      entry.connections += r.connections;
      entry.wouldReject += r.wouldReject;
    }
  }

  #entry(identity: string | null, address: string | null, tls: boolean): Entry {
    const key = identity !== null ? `id ${identity}` : `${tls ? 'tls' : 'plain'} ${address ?? 'unknown'}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= this.#max) return this.#other();
      entry = new Entry(key, identity, identity === null ? address : null, tls);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** The aggregate of callers past the bound (one entry beyond it). */
  #other(): Entry {
    let other = this.#entries.get(OTHER_KEY);
    if (other === undefined) {
      other = new Entry(OTHER_KEY, null, OTHER_KEY, false);
      this.#entries.set(OTHER_KEY, other);
    }
    return other;
  }
}

/** `::ffff:10.0.0.1` → `10.0.0.1`. */
function plainAddress(address: string | null): string | null {
  return address !== null && address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
