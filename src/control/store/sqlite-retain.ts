/**
 * better-sqlite3 12's objects must never be garbage collected while Node.js runs. Built
 * with Node 24's headers, `node::ObjectWrap` removes an environment cleanup hook in its
 * destructor; when V8 collects a `Statement` or `Database` at a point where no context is
 * entered (e.g. a GC in a microtask checkpoint), Node aborts the process
 * (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook). Seen in this
 * suite on Node 24.21. So every database and statement this module creates is kept here
 * for the life of the process (a closed store leaves a few KiB); Node's cleanup hooks free
 * them at exit. Remove with better-sqlite3 13 (node-addon-api), once Node 20 is dropped.
 */
const retainedNativeObjects: object[] = [];

/** Keeps a better-sqlite3 object reachable for the life of the process (see above). */
export function retainNative<T extends object>(value: T): T {
  retainedNativeObjects.push(value);
  return value;
}
