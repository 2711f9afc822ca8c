// SPEC §9: a page of another site must not use the agent through the visitor's browser.
// Two checks run on every request before routing. Host must name this listener: a page
// of evil.example whose name was rebound to 127.0.0.1 (DNS rebinding) still sends
// "Host: evil.example", and only names the operator listed pass. An Origin, when one is
// sent, must be the listener's own or listed: a cross-site form post or fetch carries
// the page's origin. A request without Origin (curl, scripts) is not a browser's.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { StevedoreError } from '../errors.js';
import { singleHeader } from './headers.js';

export interface BrowserRules {
  /** http.listen: its host is one of the listener's names. */
  listen: string;
  /** http.allowed_hosts: names (".example.com": it and every name under it). */
  allowedHosts: readonly string[];
  /** http.allowed_origins: origins like https://app.example.com. */
  allowedOrigins: readonly string[];
}

interface Authority {
  /** Lowercase, without a trailing dot; an IPv6 literal keeps its brackets. */
  hostname: string;
  port?: number;
}

/** Throws 400 (a malformed Host), 421 UNKNOWN_HOST or 403 FORBIDDEN_ORIGIN. */
export function createBrowserCheck({ listen, allowedHosts, allowedOrigins }: BrowserRules): (req: IncomingMessage) => void {
  const listenHost = listen.slice(0, listen.lastIndexOf(':')).toLowerCase();
  const hosts = allowedHosts.map((host) => host.toLowerCase().replace(/\.$/, ''));
  const origins = new Set(allowedOrigins.map((origin) => new URL(origin).origin));
  const named = ({ hostname }: Authority) =>
    isIP(hostname.replace(/^\[|\]$/g, '')) !== 0 || hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === listenHost ||
    hosts.some((host) => (host.startsWith('.') ? hostname === host.slice(1) || hostname.endsWith(host) : hostname === host));
  return (req) => {
    const host = singleHeader(req, 'host');
    const authorities = [host, absoluteAuthority(req.url ?? '')].flatMap((text) => (text === undefined ? [] : [parseAuthority(text)]));
    const unknown = authorities.find((authority) => !named(authority));
    if (unknown) {
      throw new StevedoreError('UNKNOWN_HOST', `Host ${unknown.hostname} does not name this listener: IP addresses, localhost and the http.listen host do; list other names in http.allowed_hosts`);
    }
    const origin = singleHeader(req, 'origin');
    if (origin === undefined || (authorities[0] && isOwnOrigin(origin, authorities[0])) || origins.has(originOf(origin))) return;
    throw new StevedoreError('FORBIDDEN_ORIGIN', `Origin ${origin.slice(0, 200)} is neither this listener's own (http://${host ?? '…'}) nor in http.allowed_origins`);
  };
}

// RFC 9112 §3.2.2: an absolute-form target ("PUT http://host/drop/x") names the host itself.
const absoluteAuthority = (target: string) => /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(target)?.[1];

function parseAuthority(text: string): Authority {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?$/i.exec(text.trim());
  if (!match?.[1] || Number(match[2] ?? 0) > 65535) throw new StevedoreError('BAD_REQUEST', `Host "${text.slice(0, 200)}" is malformed: expected a name or IP address, and an optional port`);
  const hostname = match[1].toLowerCase().replace(/\.$/, '');
  return match[2] === undefined ? { hostname } : { hostname, port: Number(match[2]) };
}

// Same scheme-less host and port as the Host the request came with. Either scheme: in
// front of the agent a TLS proxy may serve it as https, and nothing else can answer
// on the host and port that Host names.
function isOwnOrigin(origin: string, host: Authority): boolean {
  const url = parseOrigin(origin);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false;
  const defaultPort = url.protocol === 'https:' ? 443 : 80;
  const port = url.port === '' ? defaultPort : Number(url.port);
  return url.hostname.replace(/\.$/, '') === host.hostname && port === (host.port ?? defaultPort);
}

// An Origin is scheme://host[:port]; "null" (a sandboxed or file: page) and anything
// with a path is nobody's.
function parseOrigin(origin: string): URL | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#@]+$/i.test(origin)) return undefined;
  return URL.canParse(origin) ? new URL(origin) : undefined;
}

const originOf = (origin: string) => parseOrigin(origin)?.origin ?? '';
