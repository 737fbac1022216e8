// Which daemon serves a mount, found from the mount itself (`eod umount <mnt>` with no --cache-dir, for a
// mount made with another cache directory). A fanotify mount's source is its bootstrap in
// <cache-dir>/bootstraps/; an fscache mount's source is "none", so the daemons listening on a
// <cache-dir>/daemon.sock (/proc/net/unix) are asked which of them has the mount point.
import fs from "node:fs";
import path from "node:path";
import { callDaemon, daemonAlive, socketPathOf } from "./client.ts";
import { mountAt } from "./mountinfo.ts";
import type { MountRecord } from "./state.ts";

/** SO_ACCEPTCON in /proc/net/unix's Flags column: a listening socket. */
const UNIX_LISTENING = 0x10000;

/** The control socket of the daemon whose mount table has `mountPoint`, or null if no running daemon has it. */
export async function daemonServing(mountPoint: string): Promise<string | null> {
  const abs = path.resolve(mountPoint);
  const candidates = new Set<string>();
  const source = mountAt(abs)?.source;
  if (source && path.basename(path.dirname(source)) === "bootstraps") candidates.add(socketPathOf(path.dirname(path.dirname(source))));
  for (const sock of listeningDaemonSockets()) candidates.add(sock);
  for (const sock of candidates) {
    if (!(await daemonAlive(sock))) continue;
    const s = await callDaemon<{ mounts?: MountRecord[] }>(sock, "GET", "/status", undefined, 5000).catch(() => null);
    if (s?.mounts?.some((m) => m.mountPoint === abs)) return sock;
  }
  return null;
}

/** Paths of listening Unix sockets named daemon.sock (eod control sockets, and maybe others: callers ask). */
function listeningDaemonSockets(): string[] {
  let text: string;
  try {
    text = fs.readFileSync("/proc/net/unix", "utf8");
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !(parseInt(f[3], 16) & UNIX_LISTENING)) continue;
    const p = f.slice(7).join(" ");
    if (p.startsWith("/") && path.basename(p) === "daemon.sock") out.push(p);
  }
  return out;
}
