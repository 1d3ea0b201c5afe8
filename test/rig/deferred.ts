// A promise with its resolve handed out: tests use it to hold a reconcile (or a start) open.
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(v: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
