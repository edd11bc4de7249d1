/**
 * Redis Cluster key-slot rules, in one place. A key's slot is CRC16 of its hash tag (the text
 * between the first `{` and the first `}` after it, when not empty) or of the whole key.
 * Keys that one command, script, transaction or TS.CREATERULE touches together must share a
 * slot, or a cluster answers CROSSSLOT; `sameSlotKey` builds such companion names.
 */

/** The hash tag Redis hashes instead of the whole key, or null when the whole key is hashed. */
export function hashTag(key: string): string | null {
  const open = key.indexOf('{');
  if (open < 0) return null;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : null;
}

/**
 * A key named after `key` plus `suffix` that hashes to the same cluster slot as `key`:
 * - `key` without braces: `{key}:suffix` (the tag is the whole key, so CRC16 is the same);
 * - `key` with a hash tag (e.g. a `{tag}` prefix): `key:suffix`, same tag;
 * - braces without a usable tag (`a{}b`, `a}b`): refused, no name could share its slot reliably.
 * Without braces the result is the portable backend's historical `{key}:meta` layout.
 */
export function sameSlotKey(key: string, suffix: string): string {
  if (hashTag(key) !== null) return `${key}:${suffix}`;
  if (/[{}]/.test(key)) {
    throw new RangeError(`Key "${key}" has braces but no hash tag, so no companion key can share its cluster slot`);
  }
  return `{${key}}:${suffix}`;
}
