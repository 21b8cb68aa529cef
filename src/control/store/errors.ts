import { WeftError } from '../../errors.js';
import type { ResourceKey } from './store.js';

function keyText(key: ResourceKey): string {
  return `${key.kind} ${key.namespace}/${key.name}`;
}

/**
 * A write's `expectedRevision` did not match the resource's current revision
 * (`currentRevision` is 0 when it does not exist). Nothing was written.
 */
export class StoreConflictError extends WeftError {
  readonly currentRevision: number;
  readonly expectedRevision: number;

  constructor(key: ResourceKey, expectedRevision: number, currentRevision: number) {
    const expected = expectedRevision === 0 ? 'expected it not to exist' : `expected revision ${expectedRevision}`;
    const current = currentRevision === 0 ? 'it does not exist' : `it is at revision ${currentRevision}`;
    super(
      'WEFT_E_CONFLICT',
      `${keyText(key)} changed: ${expected}, but ${current}. ` +
        'Read it again, re-apply your change to the current value and retry with its revision.',
    );
    this.name = 'StoreConflictError';
    this.currentRevision = currentRevision;
    this.expectedRevision = expectedRevision;
  }
}

/** A watch needed changes that compaction removed from the history. */
export class StoreCompactedError extends WeftError {
  /** The lowest revision a watch can start from now. */
  readonly oldestWatchableRevision: number;

  constructor(fromRevision: number, oldestWatchableRevision: number) {
    super(
      'WEFT_E_COMPACTED',
      `cannot watch from revision ${fromRevision}: the change history before revision ` +
        `${oldestWatchableRevision + 1} was compacted. List the resources again and watch ` +
        'from the revision the list was read at.',
    );
    this.name = 'StoreCompactedError';
    this.oldestWatchableRevision = oldestWatchableRevision;
  }
}

/** The store was closed: before a call, or while a watch was running. */
export class StoreClosedError extends WeftError {
  constructor() {
    super('WEFT_E_STORE_CLOSED', 'the store is closed; open it again to use it');
    this.name = 'StoreClosedError';
  }
}

/** A key, spec or revision argument is not valid. */
export class StoreInvalidError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_STORE_INVALID', message);
    this.name = 'StoreInvalidError';
  }
}

/** A watch listener threw or rejected; the watch has ended. The listener's error is `cause`. */
export class StoreWatchError extends WeftError {
  constructor(revision: number, cause: unknown) {
    super(
      'WEFT_E_WATCH_LISTENER',
      `the watch listener failed on the event at revision ${revision} (${String(cause)}); ` +
        `the watch has ended: watch again from revision ${revision - 1} once it is fixed`,
      { cause },
    );
    this.name = 'StoreWatchError';
  }
}

/** The database was written by a newer weft (its schema version is unknown here). */
export class StoreSchemaError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_STORE_SCHEMA', message);
    this.name = 'StoreSchemaError';
  }
}

/**
 * The database cannot be used now: unreachable, refusing, the connection was lost, or it
 * did not answer in time (PostgreSQL). Retry later; the message says what to check.
 */
export class StoreUnavailableError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_E_STORE', message, options);
    this.name = 'StoreUnavailableError';
  }
}
