// jQuery Deferred's promise interface on a native promise, as dynamodb-atomic-counter returned it.
import type { CounterError } from "../core/errors.js";

/** What `state()` reports, as in jQuery. */
export type DeferredState = "pending" | "resolved" | "rejected";

/** jQuery's `done`/`fail`/`always` take functions or arrays of them. */
type Callbacks<F> = ReadonlyArray<F | null | undefined | ReadonlyArray<F | null | undefined>>;

/**
 * A native promise with jQuery Deferred's promise interface, the one `dynamodb-atomic-counter` returned
 * (it used underscore.deferred): `done`, `fail`, `always`, `progress` (chainable, return the same promise),
 * `then`/`pipe` (filters: return a new promise of what the callback returns, jQuery 3 / Promises/A+ style),
 * `state()` and `promise()`. `this` in every callback is the call's `context`. `_.when(...)`/`$.when(...)`
 * wait for it, and `await` works as on any promise. Like jQuery's, a rejected one never reports an unhandled
 * rejection: attach `fail` (or `catch`) where the error matters.
 *
 * @typeParam T - `this` inside the callbacks (the `context` option).
 * @typeParam V - the value: a number for `increment` and `getLastValue`.
 * @typeParam E - the error: a `CounterError` for `increment` and `getLastValue`; whatever a `then` filter threw after one.
 *
 * @example
 * ```ts
 * const p = increment("users");
 * p.state(); // "pending"
 * p.done((id) => console.log(id)).fail((e) => console.error(e.code));
 * const label = await p.then((id) => `user-${id}`);
 * _.when(increment("a"), increment("b")).done((a, b) => console.log(a, b)); // underscore.deferred / jQuery
 * ```
 */
export interface CompatPromise<T = unknown, V = number, E = CounterError> extends Promise<V> {
  /** Calls each callback with the value once resolved. */
  done(...callbacks: Callbacks<(this: T, value: V) => void>): this;
  /** Calls each callback with the error once rejected. */
  fail(...callbacks: Callbacks<(this: T, error: E) => void>): this;
  /** Calls each callback with the value or the error once settled. */
  always(...callbacks: Callbacks<(this: T, valueOrError: V | E) => void>): this;
  /** Accepted for jQuery compatibility; never called (an increment reports no progress). */
  progress(...callbacks: Callbacks<(this: T, ...values: unknown[]) => void>): this;
  /** A new promise of what `onDone` or `onFail` returns (or throws); awaitable. */
  then<R1 = V, R2 = never>(
    onDone?: ((this: T, value: V) => R1 | PromiseLike<R1>) | null,
    onFail?: ((this: T, error: E) => R2 | PromiseLike<R2>) | null,
    onProgress?: unknown,
  ): CompatPromise<T, R1 | R2, unknown>;
  /** jQuery's older name for `then`. */
  pipe<R1 = V, R2 = never>(
    onDone?: ((this: T, value: V) => R1 | PromiseLike<R1>) | null,
    onFail?: ((this: T, error: E) => R2 | PromiseLike<R2>) | null,
  ): CompatPromise<T, R1 | R2, unknown>;
  /** `"pending"` until settled, then `"resolved"` or `"rejected"`. */
  state(): DeferredState;
  /** This promise; given an object, copies the promise methods onto it and returns it (jQuery's `promise(target)`). */
  promise(): this;
  promise<O extends object>(target: O): O & CompatPromise<T, V, E>;
}

const nativeThen = Promise.prototype.then;
const METHODS = ["done", "fail", "always", "progress", "then", "pipe", "state", "promise"] as const;

/** Gives `promise` the jQuery promise interface, with `context` as `this` in callbacks. */
export function deferred<T, V, E = CounterError>(promise: Promise<V>, context: T): CompatPromise<T, V, E> {
  const p = promise as CompatPromise<T, V, E>;
  let state: DeferredState = "pending";
  // Registered first, so `state()` is already final inside every callback; handling the rejection here is
  // what keeps a callback-only caller's failure from becoming an unhandled rejection, as with jQuery.
  nativeThen.call(
    p,
    () => void (state = "resolved"),
    () => void (state = "rejected"),
  );

  const each = <F extends (...args: never[]) => unknown>(callbacks: Callbacks<F>, add: (f: F) => void) => {
    for (const c of callbacks.flat()) if (typeof c === "function") add(c as F);
    return p;
  };
  // A callback that throws rejects a promise nobody holds: reported as unhandled, as jQuery let it escape.
  const on = (onDone?: (value: V) => unknown, onFail?: (error: E) => unknown) => void nativeThen.call(p, onDone, onFail ?? noop);

  p.done = (...callbacks) => each(callbacks, (f) => on((v) => f.call(context, v)));
  p.fail = (...callbacks) => each(callbacks, (f) => on(undefined, (e) => f.call(context, e)));
  p.always = (...callbacks) =>
    each(callbacks, (f) =>
      on(
        (v) => f.call(context, v),
        (e) => f.call(context, e),
      ),
    );
  p.progress = () => p;
  p.then = ((onDone?: unknown, onFail?: unknown) =>
    deferred(
      nativeThen.call(
        p,
        typeof onDone === "function" ? (v) => onDone.call(context, v) : undefined,
        typeof onFail === "function" ? (e) => onFail.call(context, e) : undefined,
      ),
      context,
    )) as CompatPromise<T, V, E>["then"];
  p.pipe = p.then;
  p.state = () => state;
  p.promise = ((target?: object) => {
    if (target == null) return p;
    for (const name of METHODS) (target as Record<string, unknown>)[name] = p[name];
    return target;
  }) as CompatPromise<T, V, E>["promise"];
  return p;
}

const noop = () => undefined;
