// `http.listen`: its form, its parts, and whether it is reachable from this host only.
// The config checks it, the server binds it, and `stevedore status` connects to it.

/** host:port, the host a name, an IPv4 address, or an IPv6 address in brackets. */
export const LISTEN_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export function parseListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  return { host: listen.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(listen.slice(colon + 1)) };
}

export function isLoopback(listen: string): boolean {
  const { host } = parseListen(listen);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
