/**
 * Address blocks and a per-block quota on DHT records (issue 12, Sybil side). Keys are free, address blocks are
 * not: a flood of fresh keys from a few hosting subnets is bounded by how many records of one block a node accepts.
 *
 * A multiaddr's block is its IPv4 /24 (`ip4 203.0.113`), its IPv6 /48 (`ip6 2001:db8:1`; an IPv4-mapped one,
 * ::ffff:a.b.c.d, is its IPv4 /24) or, for a DNS address,
 * the name without its first label (`dns example.org` for `node1.example.org`). A record's block is that of its
 * first address that has one (a relayed address `/ip4/R/…/p2p-circuit` is the relay's: holders behind one relay
 * share its quota). Records with no such address share one block (`none`).
 */

/** The block of one multiaddr string, or undefined (no IP or DNS component first). */
export function addressBlock(addr: string): string | undefined {
  const parts = addr.split('/');
  // "/ip4/1.2.3.4/tcp/1" splits into ['', 'ip4', '1.2.3.4', 'tcp', '1']
  const proto = parts[1];
  const value = parts[2];
  if (proto === undefined || value === undefined || value === '') return undefined;
  if (proto === 'ip4') {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/.exec(value);
    return m === null ? undefined : `ip4 ${Number(m[1])}.${Number(m[2])}.${Number(m[3])}`;
  }
  if (proto === 'ip6') {
    const groups = expandIp6(value);
    if (groups === undefined) return undefined;
    // an IPv4-mapped address (::ffff:a.b.c.d: how a node listening on /ip6/:: sees an IPv4 caller; multiaddr writes
    // it ::ffff:XXXX:YYYY) is its IPv4 address's block: as a /48 every IPv4 peer of such a node was 'ip6 0:0:0', one
    // block for all of them (review2, session 27)
    if (groups.slice(0, 6).join(':') === '0:0:0:0:0:ffff') {
      const hi = parseInt(groups[6]!, 16);
      return `ip4 ${hi >> 8}.${hi & 0xff}.${parseInt(groups[7]!, 16) >> 8}`;
    }
    return `ip6 ${groups.slice(0, 3).join(':')}`;
  }
  if (proto === 'dns' || proto === 'dns4' || proto === 'dns6' || proto === 'dnsaddr') {
    const labels = value.toLowerCase().split('.').filter((x) => x !== '');
    return labels.length === 0 ? undefined : `dns ${(labels.length > 2 ? labels.slice(1) : labels).join('.')}`;
  }
  return undefined;
}

/** The eight groups of an IPv6 address (lower case, no leading zeros), or undefined. */
function expandIp6(s: string): string[] | undefined {
  const zone = s.indexOf('%');
  const a = (zone >= 0 ? s.slice(0, zone) : s).toLowerCase();
  if (!/^[0-9a-f:.]+$/.test(a) || a.length > 45) return undefined;
  // a dotted IPv4 tail (only an IPv4-mapped one, ::ffff:a.b.c.d) as its two groups
  const dotted = /^(.*:ffff:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (dotted !== null) {
    const o = dotted.slice(2).map(Number);
    if (o.some((x) => x > 255)) return undefined;
    const groups = expandIp6(`${dotted[1]}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`);
    return groups !== undefined && groups.slice(0, 6).join(':') === '0:0:0:0:0:ffff' ? groups : undefined;
  }
  const halves = a.split('::');
  if (halves.length > 2) return undefined;
  const side = (x: string): string[] => (x === '' ? [] : x.split(':'));
  const head = side(halves[0]!);
  const tail = halves.length === 2 ? side(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined; // any other dotted tail is refused
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}

/** The block of a record's addresses: the first one that has a block, else 'none'. */
export function recordBlock(multiaddrs: readonly string[]): string {
  for (const a of multiaddrs) {
    const b = addressBlock(a);
    if (b !== undefined) return b;
  }
  return 'none';
}

export interface BlockQuotaOptions {
  /** Distinct peers whose records one block may have accepted at once. */
  perBlock: number;
  /** Peers tracked in all (the table's memory bound); past it the oldest blocks are forgotten (never a refusal). */
  maxEntries: number;
}

/**
 * Distinct peers per block, each until its record expires. `admit` is true for a peer already counted in its
 * block (a refreshed record) and for a new one while the block has room; false when the block is full of other
 * peers' live records. Forgetting (expiry, the memory bound) only ever lets more in, so an attacker churning
 * blocks can make the quota forget, never make it refuse an honest record of another block.
 */
export class BlockQuota {
  private readonly blocks = new Map<string, Map<string, number>>();
  private entries = 0;

  constructor(private readonly o: BlockQuotaOptions) {}

  admit(block: string, peerId: string, untilMs: number, nowMs: number): boolean {
    let peers = this.blocks.get(block);
    if (peers !== undefined) {
      for (const [p, until] of peers) {
        if (until <= nowMs) {
          peers.delete(p);
          this.entries--;
        }
      }
      const had = peers.get(peerId);
      if (had !== undefined) {
        peers.set(peerId, Math.max(had, untilMs));
        return true;
      }
      if (peers.size >= this.o.perBlock) return false;
    } else {
      peers = new Map();
      this.blocks.set(block, peers);
    }
    peers.set(peerId, untilMs);
    this.entries++;
    // the memory bound: forget whole blocks, oldest first (Map order), never the one just admitted to
    for (const [b, ps] of this.blocks) {
      if (this.entries <= this.o.maxEntries) break;
      if (b === block) continue;
      this.entries -= ps.size;
      this.blocks.delete(b);
    }
    return true;
  }

  /** Peers counted in `block` now (for tests and status). */
  count(block: string): number {
    return this.blocks.get(block)?.size ?? 0;
  }

  get size(): number {
    return this.entries;
  }
}

/** One live connection as the transport sees it (for `connectedBlocks`). */
export interface ObservedConnection {
  peer: string;
  /** The address the connection runs over: the peer's source address (inbound) or the one we reached it at. */
  remoteAddr: string;
  /** A relayed (limited) connection: its block is the relay's. */
  limited: boolean;
}

/**
 * The address block each connected peer is observed at (a direct connection's block before a relayed one's; among
 * equals, the first listed). Route choice's exploration draws per block (router/route.ts `HolderView.block`): the
 * block comes from the address the connection runs over, not from what the peer's record claims, so a flood of
 * keys from one subnet shares that subnet's block however its records are written. Peers with no connection or no
 * IP/DNS address are left out (route choice then counts the peer as a block of its own).
 */
export function connectedBlocks(conns: readonly ObservedConnection[]): Map<string, string> {
  const out = new Map<string, { block: string; limited: boolean }>();
  for (const c of conns) {
    const block = addressBlock(c.remoteAddr);
    if (block === undefined) continue;
    const had = out.get(c.peer);
    if (had === undefined || (had.limited && !c.limited)) out.set(c.peer, { block, limited: c.limited });
  }
  return new Map([...out].map(([p, x]) => [p, x.block]));
}
