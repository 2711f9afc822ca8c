// A real browser for the drop page: Debian's chromium (never a downloaded one) driven by
// playwright-core, and a drop of real files and folders through Chromium's own drag
// and drop (CDP Input.dispatchDragEvent), so that the page walks real directory entries.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { onTestFinished } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);

// For this machine and CI: headless, no sandbox (root), nothing that calls out.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A page in a browser with an empty profile of its own (--user-data-dir), closed when the test ends. */
export async function launchPage(): Promise<Page> {
  const profile = await mkdtemp(path.join(tmpdir(), 'stevedore-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: FLAGS });
  onTestFinished(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  return context.pages()[0] ?? (await context.newPage());
}

/** Drops host files and folders on the middle of `selector`, as a user dragging them from a file manager. */
export async function dropPaths(page: Page, selector: string, paths: string[]): Promise<void> {
  const box = await page.locator(selector).boundingBox();
  if (!box) throw new Error(`${selector} is not visible`);
  const cdp = await page.context().newCDPSession(page);
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const data = { items: [], files: paths, dragOperationsMask: 1 };
  for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
  await cdp.detach();
}

/** Limits the page's upload rate (bytes per second), so that a test can act mid-upload. */
export async function throttleUploads(page: Page, bytesPerSecond: number): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
}
