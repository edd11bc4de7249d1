import { ConfigModule } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { FakeSources, PATHS } from '../../test/support/fake-sources.js';
import { validateEnv } from '../config/env.validation.js';
import { SourceRegistry } from './source.registry.js';
import { SourceHttpClient } from './source-http.service.js';
import { SourcesModule } from './sources.module.js';

async function boot(env: Record<string, string>) {
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, validate: (raw) => validateEnv({ ...raw, ...env }) }), SourcesModule],
  }).compile();
  return moduleRef;
}

describe('SourcesModule', () => {
  let fake: FakeSources;
  // ConfigModule writes every validated value (defaults included) into process.env, where the
  // next boot in this process would read it as if set: restore it between boots.
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });
  beforeAll(async () => {
    fake = await new FakeSources().start();
  });
  afterAll(() => fake.stop());

  it('wires the configured providers to the shared client, with UPSTREAM_* settings and the User-Agent', async () => {
    const moduleRef = await boot({ ...fake.env(), UPSTREAM_USER_AGENT: 'my-deploy/1.0 (+ops@example.org)', SENTIMENT_API_RETRIES: '0' });
    expect(moduleRef.get(SourceHttpClient).options).toMatchObject({ retries: 0, timeoutMs: 10000, userAgent: 'my-deploy/1.0 (+ops@example.org)', maxRedirects: 3 });
    const registry = moduleRef.get(SourceRegistry);
    const batch = await registry.forMetric('price')[0].provider.poll({ since: null });
    expect(batch.samples.price).toEqual([{ timestamp: 1781887413016, value: 63212.97 }]);
    expect(fake.calls(PATHS.coinbaseTicker).at(-1)?.headers['user-agent']).toBe('my-deploy/1.0 (+ops@example.org)');
    await moduleRef.close();
  });

  it('SENTIMENT_API_URL alone: senticrypt-v1 for both, one provider', async () => {
    const moduleRef = await boot({ SENTIMENT_API_URL: fake.env().SENTIMENT_API_URL });
    const registry = moduleRef.get(SourceRegistry);
    expect(registry.active().map((p) => p.id)).toEqual(['senticrypt-v1']);
    const batch = await registry.active()[0].poll({ since: null });
    expect(batch.fetched).toBe(2474);
    await moduleRef.close();
  });
});
