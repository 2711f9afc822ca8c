// Requests that race each other, or the agent's own shutdown.
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, json, queuedCount, send } from '../helpers/http.js';
import { gatedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

describe('races', () => {
  it('two concurrent uploads with one Idempotency-Key queue one task', async () => {
    const t = await startAgent();
    const headers = { 'idempotency-key': 'twin' };
    const answers = await Promise.all([
      send(t.url, '/drop/files/twin.txt', { headers, body: 'one' }),
      send(t.url, '/drop/files/twin.txt', { headers, body: 'one' }),
    ]);
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    for (const answer of answers) if (answer.status !== 202) expectError(answer, 409, 'IDEMPOTENCY_CONFLICT');
    expect(new Set(accepted.map((a) => json(a).id)).size).toBe(1);
    expect(queuedCount(t)).toBe(1);
  });

  it('an empty segment right after the route is refused', async () => {
    const t = await startAgent();
    expectError(await send(t.url, '/drop/files//a.txt', { body: 'x' }), 400, 'BAD_PATH');
  });

  it('a request waiting with Prefer: wait does not hold up shutdown', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget });
    const waiting = send(t.url, '/drop/files/held.txt', { headers: { prefer: 'wait=60' }, body: 'held' });
    // Waiting on its push, not still being read (a fixed 200 ms was not enough beside two CPU hogs).
    await waitFor(() => gate.started > 0, { what: 'the upload\'s push to start' });
    // Held for the wait, close() would outlast the test's own timeout (20 s).
    await t.close();
    expect((await waiting).status).toBe(202);
  });
});
