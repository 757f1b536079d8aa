/**
 * Yamux window updates only when half the receive window is used (issue 8 §5, the per-message cost of our RPC).
 *
 * @chainsafe/libp2p-yamux 8 answers every data frame it receives with a WINDOW_UPDATE frame (`handleData` calls
 * `sendWindowUpdate`, which sends whenever the window is not full). On a request/response stream that doubles the
 * frames: each 3 KiB hop step costs a data frame and a window update in each direction, and every frame is its own
 * noise message (encrypt, decrypt, a length prefix) and two socket writes. Profiled on loopback
 * (scripts/experiments/rpcprobe.mjs, `--cpu-prof`), `sendWindowUpdate` alone was 6–9 % of the CPU of a hop's round
 * trip, and the frames it sends cost as much again on the other side.
 *
 * The yamux spec leaves the timing of updates to the receiver; go-yamux and rust-yamux (libp2p/rust-yamux#109) send
 * one once at least half the window has been consumed. This does the same: an established stream holds its update
 * until its free receive window falls to half or less, then restores it in one frame. Flow control is unchanged (a
 * sender still never has more than a window in flight); the first update of a stream (SYN / ACK flags), paused
 * streams and the window's auto-tuning still go through the library's own method. Process-wide once installed.
 *
 * Installed by every node (`createLibp2pNetwork`; NEUROSHARD_YAMUX_LAZY_WINDOW=0 keeps the library's own). It was
 * held back on 2026-12-02 after test/integration/p2p/network.test.ts failed 4 of its 5 cases in 2 of 2 runs with it
 * at load 13-22 (3 of 5 once without it at the same load); on 2026-12-03 the same suite passed with it (docs/LIMITS.md,
 * "Tenth session"). Paired A/B in one process (scripts/experiments/rpcprobe.mjs --ab window, [1, 768] fp32 hop):
 * 314 -> 246 us of CPU per round trip, p50 0.223 -> 0.167 ms.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';

interface WindowFields {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

let installed = false;
let restore: (() => void) | undefined;

/** True once the lazy window update is installed (tests). */
export function yamuxLazyWindowInstalled(): boolean {
  return installed;
}

export function installYamuxLazyWindow(): void {
  if (installed) return;
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate(this: WindowFields): void };
  const original = proto.sendWindowUpdate;
  // The library's private fields, checked once: if a new yamux renames them, keep its own behaviour.
  if (typeof original !== 'function') return;
  proto.sendWindowUpdate = function (this: WindowFields): void {
    if (
      this.state === StreamState.Established &&
      typeof this.recvWindow === 'number' &&
      typeof this.recvWindowCapacity === 'number' &&
      this.recvWindowCapacity > this.recvWindow / 2
    ) {
      return; // more than half the window is still free: the sender is not close to blocking
    }
    original.call(this);
  };
  installed = true;
  restore = () => {
    proto.sendWindowUpdate = original;
  };
}

/** Puts the library's own method back (A/B measurements: scripts/experiments/rpcprobe.mjs --eager-window). */
export function uninstallYamuxLazyWindow(): void {
  restore?.();
  restore = undefined;
  installed = false;
}
