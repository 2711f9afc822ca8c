// GET /events: task changes as Server-Sent Events, for the drop page's live list and for
// any operator. A stream opens with the most recent tasks, then sends each change as it
// happens, one `task` event of task JSON each. Guarded like /status (endpoints.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../errors.js';
import type { Registry } from '../queue/registry.js';
import { taskJson, type Task } from '../task.js';

export interface EventStreams {
  /** Answers the request with a stream that lasts until the client goes or close(). */
  serve(req: IncomingMessage, res: ServerResponse): void;
  /** Ends every stream (the agent stops). */
  close(): void;
  readonly open: number;
}

export interface EventStreamOptions {
  registry: Registry;
  /** A comment this often keeps the connection from http.idle_timeout and proxies. */
  heartbeatMs: number;
  maxStreams?: number;
  /** Tasks a new stream starts with. */
  recent?: number;
}

// A client that reads slower than tasks change is cut rather than buffered for.
const MAX_BUFFERED = 2 ** 20;

export function createEventStreams({ registry, heartbeatMs, maxStreams = 32, recent = 100 }: EventStreamOptions): EventStreams {
  const streams = new Set<ServerResponse>();
  return {
    serve(req, res) {
      if (streams.size >= maxStreams) throw new StevedoreError('TOO_MANY_STREAMS', `${streams.size} event streams are open, the most at once; retry later`);
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      if (req.method === 'HEAD') return void res.end();
      streams.add(res);
      const send = (task: Task) => {
        if (res.writableLength > MAX_BUFFERED) return void res.destroy();
        res.write(`event: task\ndata: ${JSON.stringify(taskJson(task))}\n\n`);
      };
      res.write('retry: 2000\n\n');
      registry.recent(recent).forEach(send);
      const unsubscribe = registry.subscribe(send);
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs).unref();
      res.once('close', () => {
        streams.delete(res);
        unsubscribe();
        clearInterval(heartbeat);
      });
    },
    close() {
      streams.forEach((res) => res.end());
    },
    get open() {
      return streams.size;
    },
  };
}
