// Security defaults: private state on the host, and secrets that never reach the logs.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from './helpers/agent.js';
import { send } from './helpers/http.js';

const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe('security defaults', () => {
  it('keeps state_dir, the spool and the dead-letter store private (0700) and staged files 0600', async () => {
    const t = await startAgent();
    for (const dir of ['', 'spool', 'dead-letter']) expect(await mode(path.join(t.stateDir, dir)), dir || 'state_dir').toBe(0o700);
    expect(await mode(path.join(t.stateDir, 'journal.log'))).toBe(0o600);
  });

  it('never writes a route token, the admin token or an Authorization header into its logs', async () => {
    const t = await startAgent({ http: '  admin_token: admin-secret-7f3a' });
    const tries = [
      { path: '/drop/secret/a.txt', token: 's3cret-token' },
      { path: '/drop/secret/b.txt', token: 'wrong-token-91c2' },
      { path: '/status', token: 'admin-secret-7f3a' },
      { path: '/metrics', token: 'wrong-admin-5d1e' },
    ];
    for (const { path: urlPath, token } of tries) {
      await send(t.url, urlPath, { method: urlPath.startsWith('/drop') ? 'PUT' : 'GET', headers: { authorization: `Bearer ${token}` }, body: urlPath.startsWith('/drop') ? 'x' : undefined });
    }
    const logged = JSON.stringify(t.logs);
    expect(t.logs.length).toBeGreaterThan(0);
    for (const secret of ['s3cret-token', 'wrong-token-91c2', 'admin-secret-7f3a', 'wrong-admin-5d1e']) expect(logged).not.toContain(secret);
  });
});
