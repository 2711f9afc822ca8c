import { describe, expect, it } from 'vitest';
import { createProbe, createTestTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import type { Task } from '../../src/task.js';
import { harness, isOver, makeTask, settleDown } from './harness.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('scheduler limits', () => {
  it.each([
    { targets: 2, concurrency: 3, perTarget: 2, expected: 3 },
    { targets: 3, concurrency: 8, perTarget: 2, expected: 6 },
  ])('never exceeds concurrency $concurrency / per_target $perTarget over $targets targets', async ({ targets: n, concurrency, perTarget, expected }) => {
    const all = createProbe();
    const targets = range(n).map((i) => createTestTarget({ name: `t${i}`, held: true, probes: [all] }));
    const h = harness(targets, { concurrency, perTarget, batchFiles: 1 });
    const tasks = targets.flatMap((t) => range(6).map((i) => makeTask(`/f${i}`, { target: t.name })));
    tasks.forEach((task) => h.scheduler.enqueue(task));
    await waitFor(() => all.active === expected, { what: 'the pool to fill up' });
    expect(h.scheduler.inFlight).toBe(expected);
    // One push at a time is let through, so the scheduler refills the freed slot again and again.
    while (!tasks.every(isOver)) {
      await waitFor(() => targets.some((t) => t.waiting > 0) || tasks.every(isOver));
      targets.find((t) => t.waiting > 0)?.release(1);
    }
    expect(all.max).toBe(expected);
    targets.forEach((t) => expect(t.probe.max).toBeLessThanOrEqual(perTarget));
    expect(tasks.map((t) => t.status)).toEqual(tasks.map(() => 'done'));
  });

  it('cuts batches at batch_files and batch_bytes; an oversized file travels alone', async () => {
    const target = createTestTarget({ held: true });
    const h = harness([target], { perTarget: 1, batchFiles: 4, batchBytes: 100 });
    const first = makeTask('/first');
    h.scheduler.enqueue(first);
    await waitFor(() => target.waiting === 1);
    const small = range(10).map((i) => makeTask(`/small${i}`, { bytes: 10 }));
    const big = range(3).map((i) => makeTask(`/big${i}`, { bytes: 60 }));
    const huge = makeTask('/huge', { bytes: 500 });
    [...small, ...big, huge].forEach((task) => h.scheduler.enqueue(task));
    target.release();
    await waitFor(() => [first, ...small, ...big, huge].every(isOver));

    expect(target.batches.map((b) => b.length)).toEqual([1, 4, 4, 3, 1, 1, 1]);
    expect(target.batches.map((b) => b.reduce((sum, item) => sum + (item.op === 'put' ? item.bytes : 0), 0))).toEqual([1, 40, 40, 80, 60, 60, 500]);
    const pushed = target.batches.flat().map((item) => item.id);
    expect(new Set(pushed).size).toBe(pushed.length);
  });

  it('while other targets push, a batch that is not full gathers a while (files that come meanwhile leave with it); with nothing else pushing it leaves at once', async () => {
    const busy = createTestTarget({ name: 'a', held: true });
    const other = createTestTarget({ name: 'b' });
    const h = harness([busy, other]);
    const pushing = makeTask('/a', { target: 'a' });
    h.scheduler.enqueue(pushing);
    await waitFor(() => busy.waiting === 1);
    const gathered = [makeTask('/b1', { target: 'b' }), makeTask('/b2', { target: 'b' })];
    h.scheduler.enqueue(gathered[0] as Task);
    await sleep(50); // well inside the lane's wait (400 ms)
    h.scheduler.enqueue(gathered[1] as Task);
    await waitFor(() => gathered.every(isOver));
    expect(busy.waiting).toBe(1); // it left while the other push still ran
    busy.release();
    await waitFor(() => isOver(pushing));
    const alone = [makeTask('/b3', { target: 'b' }), makeTask('/b4', { target: 'b' })];
    h.scheduler.enqueue(alone[0] as Task);
    await sleep(50);
    h.scheduler.enqueue(alone[1] as Task);
    await waitFor(() => alone.every(isOver));
    expect(other.batches.map((batch) => batch.map((item) => item.dest))).toEqual([['/b1', '/b2'], ['/b3'], ['/b4']]);
  });

  it('reserve() holds room up to capacity; release() and settled tasks give it back', async () => {
    const target = createTestTarget({ held: true });
    const h = harness([target], { capacity: 3 });
    expect(h.scheduler.reserve(2)).toBe(true);
    expect(h.scheduler.reserve(2)).toBe(false);
    expect(h.scheduler.size).toBe(2);
    const [a, b] = [makeTask('/a'), makeTask('/b')];
    h.scheduler.enqueue(a, true);
    h.scheduler.enqueue(b, true);
    expect(h.scheduler.size).toBe(2);
    expect(h.scheduler.reserve(1)).toBe(true);
    expect(h.scheduler.reserve(1)).toBe(false);
    h.scheduler.release(1);
    expect(h.scheduler.size).toBe(2);
    expect(h.scheduler.reserve(1)).toBe(true);
    h.scheduler.release(1);
    target.release();
    await waitFor(() => h.scheduler.size === 0, { what: 'both tasks to settle' });
    expect(h.scheduler.reserve(3)).toBe(true);
    expect(h.scheduler.reserve(1)).toBe(false);
  });
});

describe('scheduler coalescing', () => {
  it('lets the in-flight push finish, then pushes only the newest of the tasks that piled up', async () => {
    const target = createTestTarget({ held: true });
    const h = harness([target]);
    const [v1, v2, v3, v4] = [makeTask('/etc/app.conf'), makeTask('/etc/app.conf'), makeTask('/etc/app.conf'), makeTask('/etc/app.conf')];
    h.scheduler.enqueue(v1);
    await waitFor(() => target.waiting === 1);
    [v2, v3, v4].forEach((task) => h.scheduler.enqueue(task));
    await settleDown();
    expect(target.batches).toHaveLength(1);
    expect(v2).toMatchObject({ status: 'done', supersededBy: v3.id });
    expect(v3).toMatchObject({ status: 'done', supersededBy: v4.id });

    target.release();
    await waitFor(() => v1.status === 'done' && v4.status === 'done');
    expect(target.batches.map((b) => b.map((item) => item.id))).toEqual([[v1.id], [v4.id]]);
    expect(target.maxPerDest).toBe(1);
    expect(v1.supersededBy).toBeUndefined();
    expect([...h.settled]).toEqual(expect.arrayContaining([[v2.id, 'superseded'], [v3.id, 'superseded'], [v1.id, 'done'], [v4.id, 'done']]));
  });

  it('does not retry an in-flight push that failed when a newer task already waits', async () => {
    const target = createTestTarget({ held: true, fail: { code: 'TARGET_IO', times: 1 } });
    const h = harness([target]);
    const [old, newer] = [makeTask('/x'), makeTask('/x')];
    h.scheduler.enqueue(old);
    await waitFor(() => target.waiting === 1);
    h.scheduler.enqueue(newer);
    target.release();
    await waitFor(() => isOver(old) && isOver(newer));
    expect(old).toMatchObject({ status: 'done', supersededBy: newer.id, attempts: 1 });
    expect(newer).toMatchObject({ status: 'done', attempts: 1 });
    expect(target.batches).toHaveLength(2);
    expect(h.settled.get(old.id)).toBe('superseded');
  });

  it('never pushes to one destination twice at once, and the newest version lands last', async () => {
    const target = createTestTarget();
    const h = harness([target], { concurrency: 4, perTarget: 4, batchFiles: 2 });
    const dests = ['/a', '/b', '/c'];
    const tasks = range(60).map((i) => makeTask(dests[i % 3] ?? '/a'));
    for (const task of tasks) {
      h.scheduler.enqueue(task);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => tasks.every(isOver));
    expect(target.maxPerDest).toBe(1);
    expect(tasks.every((t) => t.status === 'done')).toBe(true);
    for (const dest of dests) {
      const newest = tasks.filter((t) => t.dest === dest).at(-1);
      const lastPushed = target.batches.flat().filter((item) => item.dest === dest).at(-1);
      expect(lastPushed?.id).toBe(newest?.id);
      expect(newest).toMatchObject({ status: 'done' });
      expect(newest?.supersededBy).toBeUndefined();
    }
  });
});

describe('scheduler nested destinations', () => {
  it('pushes a delete of a directory only after an older put under it has landed, retries included', async () => {
    const fails = new Set(['/d/x']);
    let putFailures = 0;
    const target = createTestTarget({ failItem: (item) => (fails.has(item.dest) && putFailures++ < 2 ? 'TARGET_IO' : undefined) });
    const h = harness([target]);
    const now = Date.now();
    const put = makeTask('/d/x', { attempts: 5, createdAt: new Date(now) });
    const del = makeTask('/d', { kind: 'delete', createdAt: new Date(now + 1) });
    const elsewhere = makeTask('/e', { createdAt: new Date(now + 2) });
    h.scheduler.enqueue(put);
    h.scheduler.enqueue(del);
    h.scheduler.enqueue(elsewhere);
    await waitFor(() => [put, del, elsewhere].every(isOver));
    expect([put.status, del.status, elsewhere.status]).toEqual(['done', 'done', 'done']);
    const order = target.batches.flat().map((item) => item.dest);
    expect(order.filter((dest) => dest === '/d/x')).toHaveLength(3);
    expect(order.indexOf('/d')).toBeGreaterThan(order.lastIndexOf('/d/x'));
    // Unrelated destinations do not wait.
    expect(order.indexOf('/e')).toBeLessThan(order.lastIndexOf('/d/x'));
  });
});

describe('scheduler failures', () => {
  it('retries a transient failure with backoff, counting attempts, then lands', async () => {
    const target = createTestTarget({ fail: { code: 'TARGET_IO', times: 2 } });
    const h = harness([target]);
    const task = makeTask('/a', { attempts: 5 });
    h.scheduler.enqueue(task);
    await waitFor(() => isOver(task));
    expect(task).toMatchObject({ status: 'done', attempts: 3 });
    expect(task.error).toBeUndefined();
    expect(h.history.get(task.id)).toEqual(['queued', 'pushing', 'retrying:TARGET_IO', 'pushing', 'retrying:TARGET_IO', 'pushing', 'done']);
    expect(h.settled.get(task.id)).toBe('done');
  });

  it('fails a task that runs out of attempts, saying so', async () => {
    const target = createTestTarget({ fail: { code: 'TARGET_IO', message: 'disk on fire' } });
    const h = harness([target]);
    const task = makeTask('/a', { attempts: 3 });
    h.scheduler.enqueue(task);
    await waitFor(() => isOver(task));
    expect(task).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'TARGET_IO', message: 'gave up after 3 attempts: disk on fire' } });
    expect(target.batches).toHaveLength(3);
    expect(h.settled.get(task.id)).toBe('failed');
  });

  it('announces failed only once the failure is settled (dead-lettered)', async () => {
    let finishSettling: (value?: unknown) => void = () => undefined;
    const settling = new Promise((resolve) => (finishSettling = resolve));
    const seen: string[] = [];
    const h = harness([createTestTarget({ fail: { code: 'PERMISSION_DENIED' } })], {
      onSettle: async (task) => {
        seen.push(task.status);
        await settling;
      },
    });
    const task = makeTask('/a');
    h.scheduler.enqueue(task);
    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['pushing']);
    expect(task.error?.code).toBe('PERMISSION_DENIED');
    expect(await h.registry.waitFor(task.id, 0)).toMatchObject({ status: 'pushing' });
    finishSettling();
    expect(await h.registry.waitFor(task.id, 5000)).toMatchObject({ status: 'failed', error: { code: 'PERMISSION_DENIED' } });
  });

  it.each(['PERMISSION_DENIED', 'DEST_IS_DIR', 'DEST_UNSAFE'] as const)('fails a %s at once, after one attempt', async (code) => {
    const target = createTestTarget({ fail: { code } });
    const h = harness([target]);
    const task = makeTask('/a', { attempts: 5 });
    h.scheduler.enqueue(task);
    await waitFor(() => isOver(task));
    expect(task).toMatchObject({ status: 'failed', attempts: 1, error: { code } });
    expect(task.error?.message).not.toMatch(/gave up/);
    expect(target.batches).toHaveLength(1);
    expect(h.settled.get(task.id)).toBe('failed');
  });

  it('fails only the item that failed in a batch; the others land', async () => {
    const target = createTestTarget({ held: true, failItem: (item) => (item.dest === '/bad' ? 'DEST_IS_DIR' : undefined) });
    const h = harness([target], { perTarget: 1 });
    const tasks = ['/first', '/good1', '/bad', '/good2'].map((dest) => makeTask(dest));
    tasks.forEach((task) => h.scheduler.enqueue(task));
    target.release();
    await waitFor(() => tasks.every(isOver));
    expect(target.batches.map((b) => b.length)).toEqual([4]); // queued in one go: one batch
    expect(tasks.map((t) => t.status)).toEqual(['done', 'done', 'failed', 'done']);
  });

  it('holds tasks for a down target without spending attempts, and lands them when it is back', async () => {
    // attempts: 1, so a single spent attempt would fail the tasks for good.
    const target = createTestTarget({ held: true, fail: { code: 'TARGET_DOWN', times: 2 } });
    const h = harness([target], { perTarget: 1 });
    const tasks = range(5).map((i) => makeTask(`/f${i}`, { attempts: 1 }));
    tasks.forEach((task) => h.scheduler.enqueue(task));
    await waitFor(() => target.waiting === 1);
    target.release();
    await waitFor(() => h.scheduler.downTargets().includes('box'), { what: 'the target to be reported down' });
    // Two down pushes (the second carrying five files) must not pause the target for long.
    await waitFor(() => tasks.every(isOver), { timeoutMs: 10_000, what: 'the tasks to land' });
    expect(tasks.map((t) => [t.status, t.attempts])).toEqual(tasks.map(() => ['done', 1]));
    expect(target.batches.map((b) => b.length)).toEqual([5, 5, 5]);
    expect(h.scheduler.downTargets()).toEqual([]);
  });

  it('treats a target that is not configured (yet) as down, without counting attempts', async () => {
    const h = harness([]);
    const task = makeTask('/a', { target: 'later', attempts: 1 });
    h.scheduler.enqueue(task);
    await waitFor(() => task.status === 'retrying');
    expect(task.attempts).toBe(0);
    expect(h.scheduler.downTargets()).toEqual(['later']);
    h.targets.set('later', createTestTarget({ name: 'later' }));
    await waitFor(() => isOver(task), { timeoutMs: 10_000 });
    expect(task).toMatchObject({ status: 'done', attempts: 1 });
  });
});

describe('scheduler close', () => {
  it('waits for in-flight pushes within the grace period and starts nothing new', async () => {
    const target = createTestTarget({ held: true });
    const h = harness([target], { perTarget: 1 });
    const [running, waiting] = [makeTask('/a'), makeTask('/b')];
    h.scheduler.enqueue(running);
    await waitFor(() => target.waiting === 1);
    h.scheduler.enqueue(waiting); // the target is busy: it waits (a task queued with the first would share its batch)
    await settleDown();
    let closed = false;
    const closing = h.scheduler.close(60_000).then(() => (closed = true));
    await settleDown();
    expect(closed).toBe(false);
    expect(h.scheduler.reserve(1)).toBe(false);
    target.release();
    await closing;
    expect(running.status).toBe('done');
    expect(h.settled.get(running.id)).toBe('done');
    expect(waiting.status).toBe('queued');
    expect(h.settled.has(waiting.id)).toBe(false);
    expect(target.batches).toHaveLength(1);
  });

  it('cancels pushes still running when the grace period ends, keeping the tasks unsettled', async () => {
    const target = createTestTarget({ held: true });
    const h = harness([target]);
    const task = makeTask('/a');
    h.scheduler.enqueue(task);
    await waitFor(() => target.waiting === 1);
    await h.scheduler.close(20);
    expect(target.signals[0]?.aborted).toBe(true);
    expect(task).toMatchObject({ status: 'queued', attempts: 0, error: { code: 'PUSH_TIMEOUT' } });
    expect(h.settled.has(task.id)).toBe(false);
  });
});
