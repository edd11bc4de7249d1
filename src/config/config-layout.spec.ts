import { readdirSync, readFileSync } from 'node:fs';

/**
 * Config sits below the features: they read settings from it, it reads nothing from them (the
 * source ids PRICE_SOURCE accepts live here, and src/sources takes them from here).
 */
describe('src/config layout', () => {
  const dir = new URL('./', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'));

  it('imports only packages and its own folder', () => {
    expect(files).toEqual(expect.arrayContaining(['env.validation.ts', 'source-ids.ts', 'user-agent.ts']));
    const outside = files.flatMap((file) => {
      const text = readFileSync(new URL(file, dir), 'utf8');
      const specifiers = [...text.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
      return specifiers.filter((s) => s.startsWith('.') && !s.startsWith('./')).map((s) => `${file} imports ${s}`);
    });
    expect(outside).toEqual([]);
  });
});
