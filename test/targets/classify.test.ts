// The failure tables decide retry, wait or dead-letter from what a CLI said; these are
// the cases the real CLIs cannot be made to print on demand in test/runtimes.
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/targets/container/classify.js';
import { dockerFailures, podmanFailures } from '../../src/targets/container/docker.js';

const code = (rules: Parameters<typeof classify>[0], exitCode: number, stderr: string) => classify(rules, { command: 'docker', exitCode, stderr }).code;

describe('classify', () => {
  it('takes docker exec exiting 255 with nothing said as its daemon gone (docker/cli cannot ask the exit status)', () => {
    expect(code(dockerFailures, 255, '')).toBe('TARGET_DOWN');
    expect(code(dockerFailures, 255, '\n')).toBe('TARGET_DOWN');
    expect(classify(dockerFailures, { command: 'docker', exitCode: 255, stderr: '' }).message).toMatch(/^the daemon went away during the call/);
  });

  it('keeps a rule with an exit code to that code, and to stderr its pattern matches', () => {
    expect(code(dockerFailures, 1, '')).toBe('TARGET_IO');
    expect(code(dockerFailures, 255, 'sh: boom')).toBe('TARGET_IO');
    expect(code(podmanFailures, 255, '')).toBe('TARGET_IO');
  });

  it('lets the first matching rule decide, and names the command and exit code when none does', () => {
    expect(code(dockerFailures, 1, 'Error response from daemon: No such container: web')).toBe('TARGET_NOT_FOUND');
    const error = classify(dockerFailures, { command: 'docker', exitCode: 3, stderr: 'a\nb\nc\nd' });
    expect(error.message).toBe('docker failed with exit code 3: b c d');
    expect(error.details).toEqual({ exitCode: 3 });
  });
});
