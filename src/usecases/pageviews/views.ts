// A page view as callers give it, and its validation before anything is stored or sent.
import { shown, validationError } from "../../core/errors.js";
import { checkTime, DAY_MS, dayOf } from "./buckets.js";

/** The longest visitor a view may carry (the tracker cuts longer ones to this, so one odd client never fails a batch). */
export const MAX_VISITOR = 4096;
/**
 * One page view: the page (a path such as `/pricing`, or any name), an optional visitor (hashed before storage,
 * never stored as given) and the time in epoch ms (default now).
 *
 * @example
 * ```ts
 * const view: PageView = { page: "/pricing", visitor: `${ip}\n${userAgent}`, at: Date.now() };
 * ```
 */
export interface PageView {
  page: string;
  visitor?: string;
  at?: number;
}

/** A checked view with its UTC day. */
export interface CheckedView {
  page: string;
  visitor: string | undefined;
  at: number;
  day: string;
}

/** Most views one `record` call takes. */
export const MAX_VIEWS = 10_000;
/** Longest page name, in UTF-8 bytes (item keys stay within DynamoDB's limits). */
export const MAX_PAGE_BYTES = 1024;

const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Validates a page name: a non-empty string of valid UTF-16 (no lone surrogate) up to {@link MAX_PAGE_BYTES}. */
export function checkPage(page: unknown, field = "page"): string {
  if (typeof page !== "string") throw validationError(`"${field}" must be a string, got ${page === null ? "null" : typeof page}`);
  if (page.length === 0) throw validationError(`"${field}" must not be empty`);
  if (LONE_SURROGATE.test(page)) throw validationError(`"${field}" contains a lone UTF-16 surrogate, which is not valid UTF-8`);
  const bytes = encoder.encode(page).length;
  if (bytes > MAX_PAGE_BYTES) throw validationError(`"${field}" is ${bytes} bytes of UTF-8; at most ${MAX_PAGE_BYTES}: ${shown(page, 60)}`);
  return page;
}

/** Validates `record`'s input (Validation errors name the view) and gives each view its time and day. */
export function checkViews(views: unknown, now: number): CheckedView[] {
  if (!Array.isArray(views))
    throw validationError(`views must be an array of { page, visitor?, at? }, got ${views === null ? "null" : typeof views}`);
  if (views.length > MAX_VIEWS) throw validationError(`record() takes at most ${MAX_VIEWS} views per call, got ${views.length}`);
  return views.map((view: unknown, i): CheckedView => {
    const field = `views[${i}]`;
    if (typeof view !== "object" || view === null) throw validationError(`${field} must be an object { page, visitor?, at? }`);
    for (const name in view) {
      if (name !== "page" && name !== "visitor" && name !== "at" && (view as Record<string, unknown>)[name] !== undefined) {
        throw validationError(`${field} has ${shown(name)}, which is not a field of a page view (page, visitor, at)`);
      }
    }
    const { page, visitor, at } = view as PageView;
    checkPage(page, `${field}.page`);
    if (visitor !== undefined && (typeof visitor !== "string" || visitor.length === 0 || visitor.length > MAX_VISITOR)) {
      throw validationError(`"${field}.visitor" must be a string of 1 to ${MAX_VISITOR} characters`);
    }
    const time = at === undefined ? now : checkTime(at, `${field}.at`);
    // A view from more than a day ahead is a clock or caller bug; it would write items for days to come.
    if (time > now + DAY_MS)
      throw validationError(`"${field}.at" is more than a day ahead of this clock (${new Date(time).toISOString()})`);
    return { page, visitor, at: time, day: dayOf(time) };
  });
}
