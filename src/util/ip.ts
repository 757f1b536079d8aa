/**
 * IP address classes, for deciding which announced addresses a peer may be sent to dial: a public address is one
 * anyone on the internet can reach; everything else (loopback, private, link-local, shared CGN, documentation,
 * multicast, reserved) only makes sense inside one host or site. Used by the tracker (an announcer may name only its
 * own public address) and by the tracker client (private addresses from a public tracker are dropped: they would
 * make us dial into our own LAN for a stranger).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The 8 groups of an IPv6 address (zone and embedded IPv4 handled), or undefined. */
export function ipv6Groups(ip: string): number[] | undefined {
  const zone = ip.indexOf('%');
  let a = (zone >= 0 ? ip.slice(0, zone) : ip).toLowerCase();
  if (!isIPv6(a)) return undefined;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4 !== null) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    a = a.slice(0, v4.index) + ((b0 << 8) | b1).toString(16) + ':' + ((b2 << 8) | b3).toString(16);
  }
  const [l, r] = a.split('::') as [string, string | undefined];
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  const groups = r === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => parseInt(g, 16));
}

function v4Octets(ip: string): number[] | undefined {
  if (!isIPv4(ip)) return undefined;
  return ip.split('.').map(Number);
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), or the address itself. */
export function unmapIp(ip: string): string {
  const g = ipv6Groups(ip);
  if (g !== undefined && g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  return ip;
}

function publicV4([a, b, c]: number[]): boolean {
  if (a === 0 || a === 10 || a === 127 || a! >= 224) return false; // this net, private, loopback, multicast, reserved
  if (a === 100 && b! >= 64 && b! < 128) return false; // shared address space (CGN)
  if (a === 169 && b === 254) return false; // link-local
  if (a === 172 && b! >= 16 && b! < 32) return false;
  if (a === 192 && b === 168) return false;
  if (a === 192 && b === 0 && (c === 0 || c === 2)) return false; // IETF protocol assignments, TEST-NET-1
  if (a === 198 && (b === 18 || b === 19)) return false; // benchmarking
  if (a === 198 && b === 51 && c === 100) return false; // TEST-NET-2
  if (a === 203 && b === 0 && c === 113) return false; // TEST-NET-3
  return true;
}

/** True when `ip` (IPv4 or IPv6 text) is a globally reachable unicast address; false for anything else. */
export function isPublicIp(ip: string): boolean {
  const u = unmapIp(ip);
  const o = v4Octets(u);
  if (o !== undefined) return publicV4(o);
  const g = ipv6Groups(u);
  if (g === undefined) return false;
  if ((g[0]! & 0xe000) !== 0x2000) return false; // only 2000::/3 is global unicast
  if (g[0] === 0x2001 && g[1] === 0x0db8) return false; // documentation
  if (g[0] === 0x2001 && g[1]! < 0x200) return false; // 2001::/23 IETF protocol assignments (Teredo, ORCHID, …)
  if (g[0] === 0x2002) return false; // 6to4 names another (IPv4) host
  return true;
}

/**
 * True when `a` and `b` are the same host for address checks: equal IPv4 addresses (mapped or not), or IPv6
 * addresses in the same /64 (one host is routinely given a whole /64 and picks outbound addresses from it).
 */
export function sameHost(a: string, b: string): boolean {
  const ua = unmapIp(a);
  const ub = unmapIp(b);
  if (isIPv4(ua) || isIPv4(ub)) return ua === ub;
  const ga = ipv6Groups(ua);
  const gb = ipv6Groups(ub);
  return ga !== undefined && gb !== undefined && ga.slice(0, 4).every((x, i) => x === gb[i]);
}

/** The host part of a multiaddr string: its ip4/ip6/dns* value and kind, or undefined for other first protocols. */
export function multiaddrHost(addr: string): { kind: 'ip' | 'dns'; host: string; relayed: boolean } | undefined {
  const parts = addr.split('/');
  const proto = parts[1];
  const host = parts[2];
  if (host === undefined) return undefined;
  const relayed = parts.includes('p2p-circuit');
  if (proto === 'ip4' || proto === 'ip6') return { kind: 'ip', host, relayed };
  if (proto === 'dns' || proto === 'dns4' || proto === 'dns6' || proto === 'dnsaddr') return { kind: 'dns', host, relayed };
  return undefined;
}
