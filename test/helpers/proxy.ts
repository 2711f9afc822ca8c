// A TCP proxy in front of an agent that counts the bytes clients send and can cut every
// connection once a number of them went through: a connection lost mid-upload, for real.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface CuttingProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Bytes clients sent through it so far. */
  readonly sent: number;
  /** Cuts every connection (once) when `sent` reaches `bytes`. */
  cutAt(bytes: number): void;
  /** Resolves once the cut happened. */
  readonly cut: Promise<void>;
  close(): Promise<void>;
}

export async function cuttingProxy(target: string): Promise<CuttingProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let sent = 0;
  let cutAt = Infinity;
  let onCut = () => {};
  const cut = new Promise<void>((resolve) => (onCut = resolve));
  const cutAll = () => {
    cutAt = Infinity;
    sockets.forEach((socket) => socket.destroy());
    onCut();
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined).once('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (upstream.write(chunk) === false) client.pause();
      if (sent >= cutAt) cutAll();
    });
    upstream.on('drain', () => client.resume());
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    get sent() {
      return sent;
    },
    cutAt: (bytes) => (cutAt = bytes),
    cut,
    close: async () => {
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
