// The drop page's files as the agent serves them (http.ui), without a browser: the
// policy every answer carries, the routes it names without their tokens, and nothing
// at all with http.ui off.
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, json, send } from '../helpers/http.js';

const get = (url: string, path: string) => send(url, path, { method: 'GET' });

describe('the drop page (http.ui)', () => {
  it('serves its files from the agent under a strict Content-Security-Policy', async () => {
    const t = await startAgent({ http: '  ui: true' });
    for (const [path, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/tus.min.js', 'text/javascript'], ['/ui/app.css', 'text/css'], ['/ui/icon.svg', 'image/svg+xml']]) {
      const answer = await get(t.url, path as string);
      expect(answer.status, path).toBe(200);
      expect(answer.headers['content-type']).toContain(type);
      expect(answer.headers['content-security-policy']).toBe("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
    }
    const html = (await get(t.url, '/')).text;
    expect(html).not.toMatch(/https?:\/\//); // no asset from another site
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=/i); // nothing inline for the policy to refuse
    expectError(await get(t.url, '/ui/nope.js'), 404, 'NOT_FOUND');
    expectError(await send(t.url, '/', { method: 'POST' }), 405, 'METHOD_NOT_ALLOWED');
  });

  it('lists the routes and whether they want a token, never the token', async () => {
    const t = await startAgent({ http: '  ui: true' });
    const answer = await get(t.url, '/ui/routes');
    expect(json(answer)).toEqual({ routes: [{ name: 'secret', path: '/drop/secret', token: true }, { name: 'files', path: '/drop/files', token: false }] });
    expect(answer.text).not.toContain('s3cret-token');
  });

  it('is not there unless http.ui is true', async () => {
    const t = await startAgent();
    expectError(await get(t.url, '/'), 404, 'NOT_FOUND');
    expectError(await get(t.url, '/ui/app.js'), 404, 'NOT_FOUND');
  });
});
