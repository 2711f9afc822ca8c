// The drop page in a real browser (Debian's chromium through playwright-core): files
// and a whole folder dropped on it reach 100% and land, tasks turn done in the live
// list; a reload and an agent restart in the middle of an upload both resume it.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { launchAgent, startAgent, type TestAgent } from '../helpers/agent.js';
import { dropPaths, hasChromium, launchPage, throttleUploads } from '../helpers/browser.js';
import { freePort, send } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 2 ** 20;
const TOKEN = 's3cret-token';
const BROWSER_TIMEOUT = 90_000;

interface Row {
  path: string;
  state?: string;
  task?: string;
  taskStatus?: string;
  resumedFrom?: string;
  progress: number;
  text: string;
}

// The DOM as the page sees it (this project's types have no DOM library).
interface RowElement {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  querySelector(selector: string): { value: number };
}

const rows = (page: Page): Promise<Row[]> =>
  page.locator('#uploads li').evaluateAll((items) =>
    (items as unknown as RowElement[]).map((li) => {
      const { path = '', state, task, taskStatus, resumedFrom } = li.dataset;
      return { path, state, task, taskStatus, resumedFrom, progress: li.querySelector('progress').value, text: li.textContent ?? '' };
    }),
  );

async function openPage(t: TestAgent): Promise<{ page: Page; requests: string[]; problems: string[] }> {
  const page = await launchPage();
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('dialog', (dialog) => void dialog.accept()); // "leave the page?" while uploads run
  await page.goto(t.url);
  await page.selectOption('#route', '/drop/secret');
  await page.fill('#token', TOKEN);
  return { page, requests, problems };
}

async function files(dir: string, contents: Record<string, Buffer>): Promise<void> {
  for (const [name, data] of Object.entries(contents)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), data);
  }
}

const landed = (t: TestAgent, rel: string) => readFile(path.join(t.root, 'srv/secret', rel)).catch(() => undefined);

describe.runIf(hasChromium || process.env.CI === 'true')('the drop page in chromium', () => {
  it('takes three files and a folder: every bar reaches 100%, the tasks turn done, the files land', async () => {
    const t = await startAgent({ http: '  ui: true' });
    const dir = await tempDir();
    const contents = {
      'one.txt': Buffer.from('one'),
      'two.bin': randomBytes(10 * MiB), // two PATCHes of 8 MiB
      'three.txt': Buffer.alloc(0),
      'album/cover.jpg': randomBytes(300_000),
      'album/disc 1/track 01.flac': randomBytes(2 * MiB),
      'album/disc 1/notes.txt': Buffer.from('liner notes'),
    };
    await files(dir, contents);
    const { page, requests, problems } = await openPage(t);
    await dropPaths(page, '#drop', ['one.txt', 'two.bin', 'three.txt', 'album'].map((name) => path.join(dir, name)));

    const names = Object.keys(contents).sort();
    await waitFor(async () => {
      const now = await rows(page);
      return now.length === names.length && now.every((row) => row.progress === 100 && row.taskStatus === 'done');
    }, { timeoutMs: 60_000, what: 'every upload at 100% and its task done' }).catch(async (error: unknown) => {
      console.error(JSON.stringify(await rows(page), null, 1), problems);
      throw error;
    });
    expect((await rows(page)).map((row) => row.path).sort()).toEqual(names);
    for (const [name, data] of Object.entries(contents)) expect((await landed(t, name))?.equals(data), name).toBe(true);
    const listed = await page.locator('#tasks li[data-status="done"]').allTextContents();
    for (const name of names) expect(listed.some((text) => text.includes(`/srv/secret/${name}`)), name).toBe(true);

    // Nothing from another site, no script or style the policy refused, the token in this tab only.
    expect(requests.filter((url) => !url.startsWith(t.url))).toEqual([]);
    expect(problems).toEqual([]);
    expect(await page.evaluate('Object.values(sessionStorage)')).toContain(TOKEN);
    expect(await page.evaluate('JSON.stringify(localStorage)')).not.toContain(TOKEN);
    const home = await send(t.url, '/', { method: 'GET' });
    expect(home.headers['content-security-policy']).toContain("script-src 'self'");
    expect(home.headers['content-security-policy']).toContain("default-src 'none'");
    if (process.env.UPDATE_SCREENSHOTS) await page.screenshot({ path: 'docs/drop-page.png', fullPage: true });
  }, BROWSER_TIMEOUT);

  it('goes on where it stopped after a reload of the page, once the same file is dropped again', async () => {
    const t = await startAgent({ http: '  ui: true' });
    const dir = await tempDir();
    const data = randomBytes(24 * MiB);
    await files(dir, { 'big.bin': data });
    const { page } = await openPage(t);
    await throttleUploads(page, 8 * MiB);
    await dropPaths(page, '#drop', [path.join(dir, 'big.bin')]);
    await waitFor(async () => ((await rows(page))[0]?.progress ?? 0) >= 45, { timeoutMs: 30_000, what: 'the upload to pass 45%' });

    await page.reload();
    await page.locator('#unfinished').waitFor({ state: 'visible' });
    // sessionStorage outlives a reload of the tab; the page puts the token back once its routes are in (the note may show first).
    await waitFor(async () => (await page.inputValue('#token')) === TOKEN, { what: 'the token put back after the reload' });
    await throttleUploads(page, 64 * MiB);
    await dropPaths(page, '#drop', [path.join(dir, 'big.bin')]);
    await waitFor(async () => (await rows(page))[0]?.taskStatus === 'done', { timeoutMs: 60_000, what: 'the resumed upload to be done' });
    const [row] = await rows(page);
    expect(Number(row?.resumedFrom)).toBeGreaterThanOrEqual(8 * MiB);
    expect(row?.text).toContain('landed at /srv/secret/big.bin');
    expect((await landed(t, 'big.bin'))?.equals(data)).toBe(true);
    // Resent on resume: at most what the cut PATCH had not yet handed over.
    const metrics = (await send(t.url, '/metrics', { method: 'GET' })).text;
    const received = Number(/^stevedore_upload_bytes_received_total (\d+)$/m.exec(metrics)?.[1]);
    expect(received).toBeLessThanOrEqual(data.length + 8 * MiB);
  }, BROWSER_TIMEOUT);

  it('pauses and resumes a file from its row', async () => {
    const t = await startAgent({ http: '  ui: true' });
    const dir = await tempDir();
    const data = randomBytes(16 * MiB);
    await files(dir, { 'paused.bin': data });
    const { page } = await openPage(t);
    await throttleUploads(page, 8 * MiB);
    await dropPaths(page, '#drop', [path.join(dir, 'paused.bin')]);
    await waitFor(async () => ((await rows(page))[0]?.progress ?? 0) >= 20, { timeoutMs: 30_000, what: 'the upload to pass 20%' });
    await page.click('#uploads li button');
    await waitFor(async () => (await rows(page))[0]?.state === 'paused', { what: 'the row to say paused' });
    expect(await page.textContent('#uploads li button')).toBe('Resume');
    expect((await landed(t, 'paused.bin'))).toBeUndefined();
    await throttleUploads(page, 64 * MiB);
    await page.click('#uploads li button');
    await waitFor(async () => (await rows(page))[0]?.taskStatus === 'done', { timeoutMs: 60_000, what: 'the resumed upload to be done' });
    expect((await landed(t, 'paused.bin'))?.equals(data)).toBe(true);
  }, BROWSER_TIMEOUT);

  it('rides out a restart of the agent in the middle of an upload', async () => {
    const port = await freePort();
    const dir = await tempDir();
    const options = { http: '  ui: true', listen: `127.0.0.1:${port}`, dir };
    const first = await launchAgent(options);
    const data = randomBytes(24 * MiB);
    const source = await tempDir();
    await files(source, { 'restart.bin': data });
    const { page } = await openPage(first);
    await throttleUploads(page, 8 * MiB);
    await dropPaths(page, '#drop', [path.join(source, 'restart.bin')]);
    await waitFor(async () => ((await rows(page))[0]?.progress ?? 0) >= 40, { timeoutMs: 30_000, what: 'the upload to pass 40%' });
    await first.close();
    const second = await startAgent(options);
    await throttleUploads(page, 64 * MiB);
    await waitFor(async () => (await rows(page))[0]?.taskStatus === 'done', { timeoutMs: 60_000, what: 'the upload to finish on the new agent' });
    expect((await landed(second, 'restart.bin'))?.equals(data)).toBe(true);
    const received = Number(/^stevedore_upload_bytes_received_total (\d+)$/m.exec((await send(second.url, '/metrics', { method: 'GET' })).text)?.[1]);
    expect(received).toBeLessThan(data.length); // the second agent took only what the first did not have
  }, BROWSER_TIMEOUT);
});
