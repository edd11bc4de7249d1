/** CORS_ORIGINS as a list of origins, `*` standing for any; empty when CORS is off. */
export function corsOrigins(setting: string): string[] {
  return setting
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
}
