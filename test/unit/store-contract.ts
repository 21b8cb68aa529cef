/**
 * The `Store` and `Coordination` contract suite. Every implementation registers it once:
 *
 *   runStoreContract('SqliteStore', async () => ({ open: ..., cleanup: ... }));
 *
 * Each test gets a fresh harness (empty backing storage); `open()` may be called several
 * times on it to simulate a restart (persistence tests) or a second server on the same data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../../src/errors.js';
import {
  StoreClosedError,
  StoreCompactedError,
  StoreConflictError,
  StoreInvalidError,
  StoreWatchError,
} from '../../src/control/store/errors.js';
import type {
  Coordination,
  JsonValue,
  ResourceInput,
  Store,
  StoreChangeEvent,
  StoredResource,
  StoreWatchEvent,
} from '../../src/control/store/store.js';

/** Backing storage for one test: `open` (re)opens a store on it; `cleanup` removes it. */
export interface StoreHarness {
  open(): Promise<Store & Coordination>;
  cleanup(): Promise<void>;
}

const WAIT_MS = 5000;

function res(kind: string, namespace: string, name: string, spec: JsonValue): ResourceInput {
  return { kind, namespace, name, spec };
}

/** Lets queued deliveries run (several turns of the event loop). */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A watch that records its events. */
class Recorder {
  readonly events: StoreWatchEvent[] = [];
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  readonly listener = (event: StoreWatchEvent): void => {
    this.events.push(event);
    this.#waiters = this.#waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
  };

  get changes(): StoreChangeEvent[] {
    return this.events.filter((e): e is StoreChangeEvent => e.type !== 'error');
  }

  get revisions(): number[] {
    return this.changes.map((e) => e.revision);
  }

  /** Resolves once `check` holds; fails the test after WAIT_MS with what was seen. */
  async until(check: () => boolean, what: string): Promise<void> {
    if (check()) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ check, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.events.map(summary))}`)),
            WAIT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  untilRevision(revision: number): Promise<void> {
    return this.until(() => this.revisions.includes(revision) || this.events.some((e) => e.type === 'error'), `revision ${revision}`);
  }

  untilError(): Promise<void> {
    return this.until(() => this.events.some((e) => e.type === 'error'), 'an error event');
  }

  get error(): Error | undefined {
    const last = this.events.find((e) => e.type === 'error');
    return last?.type === 'error' ? last.error : undefined;
  }
}

function summary(e: StoreWatchEvent): string {
  return e.type === 'error' ? `error:${(e.error as { code?: string }).code ?? e.error.message}` : `${e.type}@${e.revision}`;
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let r = from; r <= to; r++) out.push(r);
  return out;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<Error> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    assert.ok(isWeftError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
  return caught as Error;
}

/** Registers the contract tests for one Store implementation. */
export function runStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  /** A test with a fresh harness and an open store; everything is closed and removed after. */
  function storeTest(title: string, fn: (store: Store & Coordination, harness: StoreHarness) => Promise<void>): void {
    test(`${name}: ${title}`, async (t) => {
      const harness = await makeHarness();
      const opened: Store[] = [];
      const tracked: StoreHarness = {
        open: async () => {
          const store = await harness.open();
          opened.push(store);
          return store;
        },
        cleanup: () => harness.cleanup(),
      };
      t.after(async () => {
        for (const store of opened) await store.close();
        await harness.cleanup();
      });
      await fn(await tracked.open(), tracked);
    });
  }

  storeTest('create, get, list, update and delete a resource', async (store) => {
    assert.equal(await store.revision(), 0);
    assert.equal(await store.get('Service', 'default', 'web'), undefined);

    const created = await store.put(res('Service', 'default', 'web', { port: 8080 }));
    assert.deepEqual(created, {
      kind: 'Service',
      namespace: 'default',
      name: 'web',
      spec: { port: 8080 },
      revision: 1,
      createdRevision: 1,
    });
    assert.deepEqual(await store.get('Service', 'default', 'web'), created);
    assert.deepEqual(await store.list('Service'), [created]);

    const updated = await store.put(res('Service', 'default', 'web', { port: 9090 }));
    assert.equal(updated.revision, 2);
    assert.equal(updated.createdRevision, 1, 'an update keeps createdRevision');
    assert.deepEqual((await store.get('Service', 'default', 'web'))?.spec, { port: 9090 });

    assert.equal(await store.delete('Service', 'default', 'web'), true);
    assert.equal(await store.revision(), 3);
    assert.equal(await store.get('Service', 'default', 'web'), undefined);
    assert.deepEqual(await store.list('Service'), []);
    assert.equal(await store.delete('Service', 'default', 'web'), false, 'deleting a missing resource');
    assert.equal(await store.revision(), 3, 'a delete that deleted nothing takes no revision');

    const again = await store.put(res('Service', 'default', 'web', { port: 1 }));
    assert.equal(again.revision, 4);
    assert.equal(again.createdRevision, 4, 'a resource created again after a delete starts a new life');
  });

  storeTest('keys are (kind, namespace, name): same name in other kinds and namespaces is another resource', async (store) => {
    await store.put(res('Service', 'default', 'web', 'a'));
    await store.put(res('Service', 'prod', 'web', 'b'));
    await store.put(res('HTTPRoute', 'default', 'web', 'c'));
    assert.equal((await store.get('Service', 'default', 'web'))?.spec, 'a');
    assert.equal((await store.get('Service', 'prod', 'web'))?.spec, 'b');
    assert.equal((await store.get('HTTPRoute', 'default', 'web'))?.spec, 'c');
    assert.equal(await store.get('HTTPRoute', 'prod', 'web'), undefined);
    await store.delete('Service', 'prod', 'web');
    assert.equal((await store.get('Service', 'default', 'web'))?.spec, 'a');
    assert.equal((await store.get('HTTPRoute', 'default', 'web'))?.spec, 'c');
  });

  storeTest('list is per kind, optionally per namespace, sorted by namespace then name', async (store) => {
    const keys: [string, string][] = [
      ['prod', 'b'],
      ['default', 'z'],
      ['prod', 'a'],
      ['default', 'a.b'],
      ['default', 'a'],
      ['a-team', 'm'],
    ];
    for (const [namespace, n] of keys) await store.put(res('Service', namespace, n, `${namespace}/${n}`));
    await store.put(res('Other', 'default', 'a', 'x'));

    const all = await store.list('Service');
    assert.deepEqual(
      all.map((r) => `${r.namespace}/${r.name}`),
      ['a-team/m', 'default/a', 'default/a.b', 'default/z', 'prod/a', 'prod/b'],
    );
    for (const r of all) assert.equal(r.spec, `${r.namespace}/${r.name}`);
    assert.deepEqual((await store.list('Service', 'prod')).map((r) => r.name), ['a', 'b']);
    assert.deepEqual(await store.list('Service', 'nowhere'), []);
    assert.deepEqual((await store.list('Other')).map((r) => r.name), ['a']);
    assert.deepEqual(await store.list('Missing'), []);
  });

  storeTest('revisions strictly increase by one per change, across kinds and namespaces', async (store) => {
    const seen: number[] = [];
    seen.push((await store.put(res('Service', 'default', 'a', 1))).revision);
    seen.push((await store.put(res('HTTPRoute', 'default', 'a', 1))).revision);
    seen.push((await store.put(res('Service', 'other', 'a', 1))).revision);
    await store.delete('HTTPRoute', 'default', 'a');
    seen.push(await store.revision());
    seen.push((await store.put(res('Service', 'default', 'a', 2))).revision);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.equal(await store.revision(), 5);
    const a = await store.get('Service', 'default', 'a');
    assert.equal(a?.revision, 5);
    assert.equal(a?.createdRevision, 1);
    assert.equal((await store.get('Service', 'other', 'a'))?.revision, 3, 'other resources keep their revision');
  });

  storeTest('expectedRevision 0 creates only if absent', async (store) => {
    const first = await store.put(res('Service', 'default', 'web', 'first'), { expectedRevision: 0 });
    assert.equal(first.revision, 1);
    const err = await rejectsWith(
      store.put(res('Service', 'default', 'web', 'second'), { expectedRevision: 0 }),
      'WEFT_E_CONFLICT',
      /Service default\/web.*expected it not to exist.*revision 1/,
    );
    assert.ok(err instanceof StoreConflictError);
    assert.equal(err.currentRevision, 1);
    assert.equal(err.expectedRevision, 0);
    assert.equal((await store.get('Service', 'default', 'web'))?.spec, 'first', 'nothing changed');
    assert.equal(await store.revision(), 1, 'a conflict takes no revision');
  });

  storeTest('expectedRevision n updates only if unchanged', async (store) => {
    const v1 = await store.put(res('Service', 'default', 'web', 'v1'));
    const v2 = await store.put(res('Service', 'default', 'web', 'v2'), { expectedRevision: v1.revision });
    assert.equal(v2.revision, 2);
    const err = await rejectsWith(
      store.put(res('Service', 'default', 'web', 'stale'), { expectedRevision: v1.revision }),
      'WEFT_E_CONFLICT',
      /expected revision 1, but it is at revision 2.*retry/,
    );
    assert.ok(err instanceof StoreConflictError);
    assert.equal(err.currentRevision, 2);
    assert.deepEqual(await store.get('Service', 'default', 'web'), v2, 'nothing changed');
    assert.equal(await store.revision(), 2);

    // A resource that does not exist is not "at revision 5".
    const missing = await rejectsWith(
      store.put(res('Service', 'default', 'nope', 'x'), { expectedRevision: 5 }),
      'WEFT_E_CONFLICT',
      /expected revision 5, but it does not exist/,
    );
    assert.equal((missing as StoreConflictError).currentRevision, 0);
    assert.equal(await store.get('Service', 'default', 'nope'), undefined);
    assert.equal(await store.revision(), 2);
  });

  storeTest('expectedRevision on delete: deletes only if unchanged', async (store) => {
    const v1 = await store.put(res('Service', 'default', 'web', 'v1'));
    const v2 = await store.put(res('Service', 'default', 'web', 'v2'));
    await rejectsWith(
      store.delete('Service', 'default', 'web', { expectedRevision: v1.revision }),
      'WEFT_E_CONFLICT',
      /expected revision 1, but it is at revision 2/,
    );
    await rejectsWith(store.delete('Service', 'default', 'web', { expectedRevision: 0 }), 'WEFT_E_CONFLICT');
    assert.deepEqual(await store.get('Service', 'default', 'web'), v2, 'nothing deleted');
    assert.equal(await store.revision(), 2);

    assert.equal(await store.delete('Service', 'default', 'web', { expectedRevision: v2.revision }), true);
    assert.equal(await store.get('Service', 'default', 'web'), undefined);
    assert.equal(await store.revision(), 3);

    await rejectsWith(
      store.delete('Service', 'default', 'web', { expectedRevision: v2.revision }),
      'WEFT_E_CONFLICT',
      /does not exist/,
    );
    assert.equal(await store.delete('Service', 'default', 'web', { expectedRevision: 0 }), false);
    assert.equal(await store.revision(), 3);
  });

  storeTest('conflicting concurrent writes: exactly one wins', async (store) => {
    const base = await store.put(res('Service', 'default', 'web', { writer: 'base' }));
    const writers = range(1, 8);
    const results = await Promise.allSettled(
      writers.map((w) => store.put(res('Service', 'default', 'web', { writer: w }), { expectedRevision: base.revision })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1, 'one update wins');
    for (const r of lost) assert.ok(r.reason instanceof StoreConflictError, String(r.reason));
    const winner = (won[0] as PromiseFulfilledResult<StoredResource>).value;
    assert.deepEqual(await store.get('Service', 'default', 'web'), winner);
    assert.equal(await store.revision(), base.revision + 1, 'the losers took no revision');

    // Concurrent creates of the same new resource.
    const creates = await Promise.allSettled(
      writers.map((w) => store.put(res('Service', 'default', 'new', w), { expectedRevision: 0 })),
    );
    assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal(await store.revision(), base.revision + 2);

    // Concurrent conditional deletes.
    const current = (await store.get('Service', 'default', 'new'))!;
    const deletes = await Promise.allSettled(
      writers.map(() => store.delete('Service', 'default', 'new', { expectedRevision: current.revision })),
    );
    assert.deepEqual(
      deletes.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).name)).sort(),
      [...Array<string>(7).fill('StoreConflictError'), true].sort(),
    );
  });

  storeTest('concurrent unconditional writes all succeed with distinct revisions', async (store) => {
    const written = await Promise.all(range(1, 20).map((i) => store.put(res('Service', 'default', `s${i % 5}`, i))));
    assert.deepEqual(
      written.map((r) => r.revision).sort((a, b) => a - b),
      range(1, 20),
    );
    assert.equal(await store.revision(), 20);
    for (const r of await store.list('Service')) {
      const last = written.filter((w) => w.name === r.name).sort((a, b) => b.revision - a.revision)[0];
      assert.deepEqual(r, last, 'the highest revision is the stored value');
    }
  });

  storeTest('watch from 0 replays every change in order, deletes with their last value', async (store) => {
    const a1 = await store.put(res('Service', 'default', 'a', { v: 1 }));
    const b1 = await store.put(res('HTTPRoute', 'default', 'b', { v: 1 }));
    const a2 = await store.put(res('Service', 'default', 'a', { v: 2 }));
    await store.delete('Service', 'default', 'a');
    const rec = new Recorder();
    const dispose = await store.watch(0, rec.listener);
    await rec.untilRevision(4);
    dispose();
    assert.deepEqual(rec.events, [
      { type: 'put', revision: 1, resource: a1 },
      { type: 'put', revision: 2, resource: b1 },
      { type: 'put', revision: 3, resource: a2 },
      { type: 'delete', revision: 4, resource: a2 },
    ]);
  });

  storeTest('watch delivers catch-up then live changes with no gap or duplicate', async (store) => {
    for (let i = 1; i <= 5; i++) await store.put(res('Service', 'default', `s${i}`, i));
    const rec = new Recorder();
    // Writes race the watch's set-up: they are issued before it resolves.
    const watching = store.watch(2, rec.listener);
    const racing = Promise.all(range(6, 10).map((i) => store.put(res('Service', 'default', `s${i}`, i))));
    const dispose = await watching;
    await racing;
    for (let i = 11; i <= 15; i++) {
      await store.put(res('Service', 'default', `s${i}`, i));
      if (i === 13) await store.delete('Service', 'default', 's1');
    }
    const last = await store.revision();
    assert.equal(last, 16);
    await rec.untilRevision(last);
    await settle();
    dispose();
    assert.deepEqual(rec.revisions, range(3, 16));
    assert.equal(rec.error, undefined);
    for (const e of rec.changes) {
      assert.equal(e.type === 'delete' ? e.revision === 14 : e.resource.revision === e.revision, true);
    }
    // The events carry what was written.
    const byRevision = new Map(rec.changes.map((e) => [e.revision, e]));
    assert.equal(byRevision.get(14)?.type, 'delete');
    assert.equal(byRevision.get(14)?.resource.name, 's1');
    assert.equal(byRevision.get(16)?.resource.spec, 15);
  });

  storeTest('watch from the current revision delivers only new changes', async (store) => {
    await store.put(res('Service', 'default', 'old', 1));
    const rec = new Recorder();
    const dispose = await store.watch(await store.revision(), rec.listener);
    await settle();
    assert.deepEqual(rec.events, []);
    const next = await store.put(res('Service', 'default', 'new', 2));
    await rec.untilRevision(next.revision);
    dispose();
    assert.deepEqual(rec.events, [{ type: 'put', revision: 2, resource: next }]);
  });

  storeTest('two watchers see the same changes', async (store) => {
    await store.put(res('Service', 'default', 'a', 1));
    const one = new Recorder();
    const two = new Recorder();
    const d1 = await store.watch(0, one.listener);
    await store.put(res('Service', 'default', 'b', 2));
    const d2 = await store.watch(1, two.listener);
    await store.put(res('Service', 'default', 'a', 3));
    await store.delete('Service', 'default', 'b');
    await one.untilRevision(4);
    await two.untilRevision(4);
    d1();
    d2();
    assert.deepEqual(one.revisions, [1, 2, 3, 4]);
    assert.deepEqual(two.events, one.events.slice(1));
  });

  storeTest('dispose stops delivery, also of changes already committed and not yet delivered', async (store) => {
    for (let i = 1; i <= 5; i++) await store.put(res('Service', 'default', 'a', i));
    const seen: number[] = [];
    const other = new Recorder();
    const otherDispose = await store.watch(0, other.listener);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const dispose = await store.watch(0, async (event) => {
      if (event.type === 'error') return;
      seen.push(event.revision);
      if (event.revision === 1) await gate;
    });
    await other.untilRevision(5);
    for (let i = 0; i < 1000 && seen.length === 0; i++) await settle(1);
    dispose(); // while the listener holds revision 1 and 2..5 are committed
    release();
    await settle();
    assert.deepEqual(seen, [1]);
    const stopAt = seen.length;
    dispose();
    dispose(); // idempotent
    await store.put(res('Service', 'default', 'a', 6));
    await other.untilRevision(6);
    await settle();
    assert.equal(seen.length, stopAt, 'nothing after dispose');
    assert.deepEqual(other.revisions, range(1, 6));
    otherDispose();
  });

  storeTest('an async listener gets one event at a time, in order', async (store) => {
    let active = 0;
    let maxActive = 0;
    const seen: number[] = [];
    const dispose = await store.watch(0, async (event) => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (event.type !== 'error') seen.push(event.revision);
      active--;
    });
    await Promise.all(range(1, 10).map((i) => store.put(res('Service', 'default', `s${i}`, i))));
    const deadline = Date.now() + WAIT_MS;
    while (seen.length < 10 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    dispose();
    assert.deepEqual(seen, range(1, 10));
    assert.equal(maxActive, 1);
  });

  storeTest('a listener that throws ends its watch with a StoreWatchError event', async (store) => {
    const events: StoreWatchEvent[] = [];
    let failed!: () => void;
    const ended = new Promise<void>((resolve) => (failed = resolve));
    await store.watch(0, (event) => {
      events.push(event);
      if (event.type === 'error') failed();
      else if (event.revision === 2) throw new Error('listener bug');
    });
    for (let i = 1; i <= 4; i++) await store.put(res('Service', 'default', 'a', i));
    await ended;
    await settle();
    assert.deepEqual(events.map(summary), ['put@1', 'put@2', 'error:WEFT_E_WATCH_LISTENER']);
    const last = events[2];
    assert.ok(last?.type === 'error' && last.error instanceof StoreWatchError);
    assert.match(last.error.message, /revision 2.*listener bug.*watch again from revision 1/);
    assert.equal(((last.error as Error).cause as Error).message, 'listener bug');
  });

  storeTest('compaction: watching from before it fails with StoreCompactedError, after it works', async (store) => {
    for (let i = 1; i <= 6; i++) await store.put(res('Service', 'default', 'a', i));
    assert.equal(await store.compact(4), 3, 'watchable from revision 3 (changes 4.. kept)');
    const err = await rejectsWith(store.watch(2, () => {}), 'WEFT_E_COMPACTED', /revision 2.*compacted.*List the resources again/);
    assert.ok(err instanceof StoreCompactedError);
    assert.equal(err.oldestWatchableRevision, 3);
    await rejectsWith(store.watch(0, () => {}), 'WEFT_E_COMPACTED');

    const rec = new Recorder();
    const dispose = await store.watch(3, rec.listener);
    await rec.untilRevision(6);
    dispose();
    assert.deepEqual(rec.revisions, [4, 5, 6]);

    // Resources are untouched by compaction.
    assert.equal((await store.get('Service', 'default', 'a'))?.spec, 6);
    assert.equal(await store.revision(), 6);

    // Compacting to an earlier point does nothing; up to revision + 1 is allowed.
    assert.equal(await store.compact(2), 3);
    await store.watch(3, () => {}).then((d) => d());
    await rejectsWith(store.compact(8), 'WEFT_E_STORE_INVALID', /store is at revision 6/);
    assert.equal(await store.compact(7), 6);
    await rejectsWith(store.watch(5, () => {}), 'WEFT_E_COMPACTED');

    // The recovery the error asks for: list, then watch from the list's revision.
    const at = await store.revision();
    const listed = await store.list('Service');
    assert.equal(listed.length, 1);
    const after = new Recorder();
    const d2 = await store.watch(at, after.listener);
    await store.put(res('Service', 'default', 'a', 7));
    await after.untilRevision(7);
    d2();
    assert.deepEqual(after.revisions, [7]);
  });

  storeTest('a watch that falls behind a compaction ends with a StoreCompactedError event, never with a gap', async (store) => {
    const total = 600;
    for (let i = 1; i <= total; i++) await store.put(res('Service', 'default', `s${i % 7}`, i));
    const rec = new Recorder();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const dispose = await store.watch(0, async (event) => {
      rec.listener(event);
      if (event.type !== 'error' && event.revision === 1) await gate;
    });
    await rec.untilRevision(1);
    await store.compact(total + 1);
    release();
    await rec.until(() => rec.error !== undefined || rec.revisions.length === total, 'the end of the stream');
    await settle();
    dispose();
    const revisions = rec.revisions;
    assert.deepEqual(revisions, range(1, revisions.length), 'a prefix of the history, in order');
    if (rec.error !== undefined) {
      assert.ok(rec.error instanceof StoreCompactedError, String(rec.error));
      assert.equal(rec.events.at(-1)?.type, 'error', 'nothing after the error');
    } else {
      assert.equal(revisions.length, total);
    }
  });

  storeTest('close ends watches with StoreClosedError and later calls reject', async (store) => {
    const rec = new Recorder();
    await store.watch(0, rec.listener);
    await store.put(res('Service', 'default', 'a', 1));
    await rec.untilRevision(1);
    await store.close();
    await rec.untilError();
    assert.ok(rec.error instanceof StoreClosedError);
    assert.deepEqual(rec.events.map(summary), ['put@1', 'error:WEFT_E_STORE_CLOSED']);
    await store.close(); // idempotent
    await rejectsWith(store.get('Service', 'default', 'a'), 'WEFT_E_STORE_CLOSED');
    await rejectsWith(store.put(res('Service', 'default', 'a', 2)), 'WEFT_E_STORE_CLOSED');
    await rejectsWith(store.list('Service'), 'WEFT_E_STORE_CLOSED');
    await rejectsWith(store.watch(0, () => {}), 'WEFT_E_STORE_CLOSED');
  });

  storeTest('reopening keeps resources, the revision counter, the history and its compaction', async (first, harness) => {
    await first.put(res('Service', 'default', 'a', { v: 1 }));
    await first.put(res('Service', 'default', 'b', { v: 1 }));
    await first.put(res('Service', 'default', 'a', { v: 2 }));
    await first.delete('Service', 'default', 'b');
    await first.compact(2);
    const before = await first.list('Service');
    await first.close();

    const second = await harness.open();
    assert.equal(await second.revision(), 4);
    assert.deepEqual(await second.list('Service'), before);
    const next = await second.put(res('Service', 'default', 'c', 'new'));
    assert.equal(next.revision, 5, 'the counter continues');
    await rejectsWith(second.watch(0, () => {}), 'WEFT_E_COMPACTED');
    const rec = new Recorder();
    const dispose = await second.watch(1, rec.listener);
    await rec.untilRevision(5);
    dispose();
    assert.deepEqual(rec.events.map(summary), ['put@2', 'put@3', 'delete@4', 'put@5']);
  });

  storeTest('two stores open on the same data share resources and revisions', async (one, harness) => {
    const two = await harness.open();
    await one.put(res('Service', 'default', 'a', 1));
    const b = await two.put(res('Service', 'default', 'b', 2));
    assert.equal(b.revision, 2);
    assert.equal((await one.get('Service', 'default', 'b'))?.spec, 2);
    await rejectsWith(one.put(res('Service', 'default', 'b', 3), { expectedRevision: 0 }), 'WEFT_E_CONFLICT');
    assert.equal(await one.revision(), 2);
  });

  storeTest('JSON specs round-trip exactly; returned values are frozen copies', async (store) => {
    const specs: JsonValue[] = [
      null,
      true,
      false,
      0,
      -1.5,
      0.1 + 0.2,
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
      1e300,
      5e-324,
      '',
      'plain',
      'quotes " and \\ and \n newlines \t tabs \u0000 nul',
      'unicode: é 中文 🚀 \u{10FFFF} lone surrogate \ud800',
      [],
      {},
      [1, 'two', null, [3, [4, {}]], { five: 5 }],
      {
        z: 1,
        a: { nested: { deeper: [true, false, null] } },
        '': 'empty key',
        'with space': 'ok',
        '🔑': 'emoji key',
        '10': 'numeric-looking key',
        list: Array.from({ length: 100 }, (_, i) => i * 1.25),
      },
      JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c"}') as JsonValue,
    ];
    for (const [i, spec] of specs.entries()) {
      const name = `spec-${i}`;
      const written = await store.put(res('Config', 'default', name, spec));
      const read = await store.get('Config', 'default', name);
      assert.deepStrictEqual(read?.spec, spec, `spec ${i} read back`);
      assert.deepStrictEqual(written.spec, spec, `spec ${i} returned by put`);
      assert.equal(JSON.stringify(read?.spec), JSON.stringify(spec), `spec ${i} serialises the same (key order)`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');

    const input = { nested: { value: 1 }, list: [1] };
    await store.put(res('Config', 'default', 'mutable', input));
    input.nested.value = 2;
    input.list.push(2);
    const read = (await store.get('Config', 'default', 'mutable'))!;
    assert.deepEqual(read.spec, { nested: { value: 1 }, list: [1] }, 'the store kept its own copy');
    assert.ok(Object.isFrozen(read));
    assert.ok(Object.isFrozen(read.spec));
    assert.ok(Object.isFrozen((read.spec as { nested: object }).nested));
    assert.throws(() => {
      (read.spec as { nested: { value: number } }).nested.value = 3;
    }, TypeError);

    // -0 has no JSON form: it reads back as 0.
    await store.put(res('Config', 'default', 'minus-zero', { n: -0 }));
    const minusZero = (await store.get('Config', 'default', 'minus-zero'))!.spec as { n: number };
    assert.ok(Object.is(minusZero.n, 0));
  });

  storeTest('invalid input is refused with a clear StoreInvalidError and nothing is written', async (store) => {
    const bad: [string, () => Promise<unknown>, RegExp][] = [
      ['empty name', () => store.put(res('Service', 'default', '', 1)), /resource name is empty: a name is lower case/],
      ['upper-case name', () => store.put(res('Service', 'default', 'Web', 1)), /resource name is "Web"/],
      ['name with slash', () => store.put(res('Service', 'default', 'a/b', 1)), /resource name is "a\/b"/],
      ['name ending with a dot', () => store.put(res('Service', 'default', 'a.', 1)), /resource name/],
      ['name too long', () => store.put(res('Service', 'default', 'a'.repeat(254), 1)), /at most 253/],
      ['lower-case kind', () => store.put(res('service', 'default', 'web', 1)), /resource kind is "service": a kind is a PascalCase/],
      ['kind with a dash', () => store.put(res('My-Kind', 'default', 'web', 1)), /resource kind is "My-Kind"/],
      ['empty kind', () => store.put(res('', 'default', 'web', 1)), /resource kind is empty/],
      ['empty namespace', () => store.put(res('Service', '', 'web', 1)), /resource namespace is empty: a namespace is a DNS label/],
      ['namespace with a dot', () => store.put(res('Service', 'a.b', 'web', 1)), /resource namespace is "a.b"/],
      ['name not a string', () => store.put({ kind: 'Service', namespace: 'default', name: 7 as unknown as string, spec: 1 }), /name is not a string \(number\)/],
      ['undefined in spec', () => store.put(res('Service', 'default', 'web', { a: undefined } as unknown as JsonValue)), /spec\.a is undefined/],
      ['function in spec', () => store.put(res('Service', 'default', 'web', { f: () => 1 } as unknown as JsonValue)), /spec\.f is a function/],
      ['NaN in spec', () => store.put(res('Service', 'default', 'web', [1, NaN])), /spec\[1\] is NaN/],
      ['Infinity in spec', () => store.put(res('Service', 'default', 'web', { x: { y: Infinity } })), /spec\.x\.y is Infinity/],
      ['Date in spec', () => store.put(res('Service', 'default', 'web', { d: new Date(0) } as unknown as JsonValue)), /spec\.d is a Date/],
      ['Map in spec', () => store.put(res('Service', 'default', 'web', new Map() as unknown as JsonValue)), /spec is a Map/],
      ['bigint in spec', () => store.put(res('Service', 'default', 'web', { n: 1n } as unknown as JsonValue)), /spec\.n is a bigint/],
      ['undefined spec', () => store.put(res('Service', 'default', 'web', undefined as unknown as JsonValue)), /spec is undefined/],
      [
        'cyclic spec',
        () => {
          const cyclic: Record<string, unknown> = {};
          cyclic.self = cyclic;
          return store.put(res('Service', 'default', 'web', cyclic as JsonValue));
        },
        /spec\.self refers back to itself/,
      ],
      ['spec over 1 MiB', () => store.put(res('Service', 'default', 'web', 'x'.repeat(1024 * 1024))), /limit is 1048576/],
      ['negative expectedRevision', () => store.put(res('Service', 'default', 'web', 1), { expectedRevision: -1 }), /expectedRevision is -1/],
      ['fractional expectedRevision', () => store.put(res('Service', 'default', 'web', 1), { expectedRevision: 1.5 }), /expectedRevision is 1.5/],
      ['string expectedRevision', () => store.put(res('Service', 'default', 'web', 1), { expectedRevision: '1' as unknown as number }), /expectedRevision is "1": a revision is a whole number/],
      ['bad key on get', () => store.get('Service', 'default', ''), /resource name is empty/],
      ['bad kind on list', () => store.list('services'), /resource kind is "services"/],
      ['bad namespace on list', () => store.list('Service', 'Prod'), /resource namespace is "Prod"/],
      ['bad key on delete', () => store.delete('Service', '', 'web'), /resource namespace is empty/],
      ['negative watch revision', () => store.watch(-1, () => {}), /fromRevision is -1/],
      ['watch from the future', () => store.watch(99, () => {}), /cannot watch from revision 99: the store is at revision 0/],
      ['negative compaction', () => store.compact(-5), /beforeRevision is -5/],
    ];
    for (const [what, call, message] of bad) {
      const err = await rejectsWith(call(), 'WEFT_E_STORE_INVALID', message).catch((e: unknown) => {
        throw new Error(`${what}: ${String(e)}`);
      });
      assert.ok(err instanceof StoreInvalidError, what);
    }
    assert.equal(await store.revision(), 0, 'nothing was written');
    assert.deepEqual(await store.list('Service'), []);

    // The longest valid forms are accepted.
    await store.put(res(`K${'a'.repeat(62)}`, 'n'.repeat(63), `${'a'.repeat(251)}.b`, 1));
    assert.equal(await store.revision(), 1);
  });
  storeTest('coordination: beat records a heartbeat by the store clock, beats ages them, forget drops one', async (store) => {
    assert.deepEqual(await store.beats(), new Map());
    await store.beat('instance-a');
    await new Promise((resolve) => setTimeout(resolve, 120));
    await store.beat('instance-b');
    const first = await store.beats();
    assert.deepEqual([...first.keys()].sort(), ['instance-a', 'instance-b']);
    const a = first.get('instance-a')!;
    const b = first.get('instance-b')!;
    assert.ok(a >= 100 && a < 5000, `instance-a beat ${a} ms ago`);
    assert.ok(b >= 0 && b < a, `instance-b beat ${b} ms ago, after instance-a (${a})`);

    await new Promise((resolve) => setTimeout(resolve, 50));
    const later = await store.beats();
    assert.ok(later.get('instance-b')! >= b + 40, 'ages grow');
    await store.beat('instance-a');
    assert.ok((await store.beats()).get('instance-a')! < a, 'a new beat resets the age');

    await store.forget('instance-a');
    assert.deepEqual([...(await store.beats()).keys()], ['instance-b']);
    await store.forget('never-beat'); // nothing to forget is fine
    assert.equal(await store.revision(), 0, 'heartbeats take no revision');
  });

  storeTest('coordination: a single store leads every role, answers pings, and refuses after close', async (store) => {
    assert.equal(await store.lead('expiry'), true);
    assert.equal(await store.lead('expiry'), true, 'keeps the role');
    assert.equal(await store.lead('compaction'), true, 'several roles at once');
    assert.equal(await store.ping(2000), true);
    await store.close();
    assert.equal(await store.ping(2000), false);
    await rejectsWith(store.lead('expiry'), 'WEFT_E_STORE_CLOSED');
    await rejectsWith(store.beat('instance-a'), 'WEFT_E_STORE_CLOSED');
    await rejectsWith(store.beats(), 'WEFT_E_STORE_CLOSED');
  });
}
