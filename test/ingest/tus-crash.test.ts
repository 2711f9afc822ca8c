// A `stevedore run` process SIGKILLed in the middle of a resumable upload's PATCH, then
// started again: HEAD reports an offset at least as far as every PATCH that was answered,
// the bytes up to it are the ones sent, and the upload resumes there and lands whole.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testConfigYaml } from '../helpers/agent.js';
import { start, useBuiltCli } from '../helpers/cli.js';
import { freePort } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { headUpload, tusUpload } from '../helpers/tus.js';
import { waitFor } from '../helpers/wait.js';

useBuiltCli();

const MiB = 2 ** 20;
const TOKEN = 's3cret-token';
const auth = { authorization: `Bearer ${TOKEN}` };

async function runAgent(file: string, url: string) {
  const agent = start(['run', '-c', file]);
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 15_000, what: 'the agent to listen' });
  return agent;
}

describe('a resumable upload across a SIGKILL', () => {
  it('resumes from the offset reported after the restart and lands byte-identical', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const file = path.join(dir, 'stevedore.yaml');
    await writeFile(file, testConfigYaml(dir, { listen: `127.0.0.1:${port}` }).replace('level: debug', 'level: warn'));
    const data = randomBytes(64 * MiB);

    const first = await runAgent(file, url);
    const killed = new Promise((resolve) => first.once('exit', resolve));
    let acknowledged = 0;
    let uploadUrl = '';
    // Killed while a PATCH is under way: past 40 MiB sent, in the middle of the 8 MiB chunk.
    const cut = await tusUpload({
      endpoint: `${url}/drop/secret`, token: TOKEN, data, name: 'killed.bin', chunkSize: 8 * MiB, retryDelays: null,
      started: (upload) => void waitFor(() => upload.url).then((u) => (uploadUrl = u)),
      onChunk: (accepted) => (acknowledged = accepted),
      onProgress: (sent) => sent >= 44 * MiB && first.kill('SIGKILL'),
    }).then(() => 'finished', () => 'cut');
    expect(cut).toBe('cut');
    await killed;
    expect(acknowledged).toBeGreaterThanOrEqual(40 * MiB);

    await runAgent(file, url);
    const location = new URL(uploadUrl).pathname;
    const { offset } = await headUpload(url, location, auth);
    expect(offset).toBeGreaterThanOrEqual(acknowledged);
    const part = await readFile(path.join(dir, 'state/uploads', `${location.split('/').pop()}.part`));
    expect(part.subarray(0, offset).equals(data.subarray(0, offset))).toBe(true);

    const resumed = await tusUpload({ endpoint: `${url}/drop/secret`, uploadUrl, token: TOKEN, data, name: 'killed.bin', chunkSize: 8 * MiB });
    expect(resumed.patchOffsets[0]).toBe(offset);
    const target = path.join(dir, 'box/srv/secret/killed.bin');
    await waitFor(async () => (await readFile(target).catch(() => undefined))?.equals(data), { timeoutMs: 15_000, what: 'the file to land' });
  }, 60_000);
});
