// `http.listen`: its form, its parts, and whether it is reachable from this host only.
// The config checks it, the server binds it, and `stevedore status` connects to it.
import { isIPv4, isIPv6 } from 'node:net';

/** host:port, the host a name, an IPv4 address, or an IPv6 address in brackets. */
export const LISTEN_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Why a listen value of the right form cannot be bound anywhere, or undefined. */
export function listenProblem(listen: string): string | undefined {
  const { host, port } = parseListen(listen);
  if (port > 65535) return `port ${port} is over 65535`;
  if (listen.startsWith('[') && !isIPv6(host)) return `${host} is not an IPv6 address`;
  if (/^[\d.]+$/.test(host) && !isIPv4(host)) return `${host} is not an IPv4 address`;
  return undefined;
}

export function parseListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  return { host: listen.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(listen.slice(colon + 1)) };
}

export function isLoopback(listen: string): boolean {
  const { host } = parseListen(listen);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
