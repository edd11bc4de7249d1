/**
 * Bounds on a payload's JSON structure, checked on its text before JSON.parse. The size cap alone
 * does not bound what parsing costs: 4 MiB of `[[[[…` (two million levels) or of `{},{},…` (1.4
 * million objects) took 1.3 s of blocked event loop and left the process ~550 MB larger, before
 * any record was looked at. No upstream's real payload comes near either bound (a few levels;
 * one object or array per record, at most ~25,000 records): upstream payloads are checked with
 * jsonSizeProblem, request bodies with jsonBoundsProblem (a POST /refresh body nested 5,000 deep
 * overflowed the stack in class-transformer: a 500).
 */

/** Deepest nesting of objects and arrays accepted. */
export const MAX_JSON_DEPTH = 16;

/** Most objects and arrays accepted in one payload. */
export const MAX_JSON_CONTAINERS = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Why `text` must not be parsed (too deep, too many objects and arrays), or undefined. One pass
 * over the characters, skipping strings; malformed JSON is left for JSON.parse to refuse.
 */
export function jsonBoundsProblem(text: string, maxDepth = MAX_JSON_DEPTH, maxContainers = MAX_JSON_CONTAINERS): string | undefined {
  let depth = 0;
  let containers = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return `nested more than ${maxDepth} levels deep`;
      if (++containers > maxContainers) return `more than ${maxContainers} objects and arrays`;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return undefined;
}

/**
 * jsonBoundsProblem's container limit alone, counted by the opening characters (those inside
 * strings too: an upper bound), with indexOf: for upstream payloads of megabytes, where the
 * character loop above cost 2-8 ms a poll of the v1 feed (as much as parsing it). Depth needs no
 * check there: V8's JSON.parse does not recurse, nothing that reads a payload does, and a depth
 * takes as many containers. Request bodies (at most 64 KiB) get the full check.
 */
export function jsonSizeProblem(text: string, maxContainers = MAX_JSON_CONTAINERS): string | undefined {
  let containers = 0;
  for (const open of ['{', '[']) {
    for (let i = text.indexOf(open); i !== -1; i = text.indexOf(open, i + 1)) {
      if (++containers > maxContainers) return `more than ${maxContainers} objects and arrays`;
    }
  }
  return undefined;
}

