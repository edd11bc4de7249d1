import { fileURLToPath } from 'node:url';
import { ValidateBy, type ValidationOptions } from 'class-validator';

/**
 * What is wrong with an upstream URL setting, or undefined when it is fine. A regex let through
 * URLs no client can fetch (`http://127.0.0.1:99999`, `http://[::1`), so every run failed as a
 * transient TypeError instead of startup naming the setting.
 * - `base`: an http(s) URL the sources append paths to, so a ?query or #fragment would end up
 *   before the path.
 * - `feed`: a full http(s) URL (query allowed), or file:// with an absolute path (a replay).
 */
export function upstreamUrlProblem(value: unknown, kind: 'base' | 'feed'): string | undefined {
  const schemes = kind === 'feed' ? 'an http://, https:// or file://' : 'an http:// or https://';
  if (typeof value !== 'string' || /\s/.test(value) || !URL.canParse(value)) return `must be ${schemes} URL (a valid host, a port 1-65535, no blanks)`;
  const url = new URL(value);
  const file = kind === 'feed' && url.protocol === 'file:';
  if (!file && url.protocol !== 'http:' && url.protocol !== 'https:') return `must be ${schemes} URL`;
  if (kind === 'base' && /[?#]/.test(value)) return 'is a base URL the paths are appended to: no ?query or #fragment';
  if (file) {
    try {
      fileURLToPath(url); // what the replay reader does: a host part (file://data/x.json) is refused
    } catch {
      return 'must name an absolute path after file:// (file:///data/replay.json): file://data/… reads "data" as a host';
    }
  }
  return undefined;
}

/** Validates an upstream URL setting (upstreamUrlProblem), the message naming the variable. */
export function IsUpstreamUrl(kind: 'base' | 'feed', options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isUpstreamUrl',
      validator: {
        validate: (value: unknown) => upstreamUrlProblem(value, kind) === undefined,
        defaultMessage: (args) => `${args?.property} ${upstreamUrlProblem(args?.value, kind)}`,
      },
    },
    options,
  );
}
