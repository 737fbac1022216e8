// The gRPC server of `containerd.services.snapshots.v1.Snapshots` on a unix socket: containerd's proxy plugin
// (`[proxy_plugins.eod] type = "snapshot"`) calls it. Each call is translated to the Snapshotter and its
// refusals to the gRPC statuses containerd's errdefs maps back (NOT_FOUND, ALREADY_EXISTS, ...).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { EodError } from "../errors.ts";
import type { Log } from "../util/log.ts";
import { SnapshotError } from "./errors.ts";
import type { Info, Snapshotter } from "./snapshotter.ts";

/** The vendored protos at the package root (beside src/ and dist/). */
export const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../proto");
export const SNAPSHOTS_PROTO = "containerd/api/services/snapshots/v1/snapshots.proto";
/** The options both the server and the tests' clients load the protos with (snake_case fields as in the .proto). */
export const PROTO_OPTIONS: protoLoader.Options = { includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, enums: String, defaults: true };
/** containerd's snapshots service sends List answers in blocks of this many. */
const LIST_BATCH = 100;

export function snapshotsService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(SNAPSHOTS_PROTO, PROTO_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

type Labels = Record<string, string>;
interface Timestamp { seconds: number; nanos: number }
interface InfoMessage { name: string; parent: string; kind: string; created_at: Timestamp; updated_at: Timestamp; labels: Labels }

export interface RunningService {
  address: string;
  /** Stops accepting calls and waits (at most `graceMs`) for those in progress. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves `snapshotter` on the unix socket `address` (mode 0660). A stale socket file is replaced; one another
 * process answers on is an error.
 */
export async function serveSnapshots(snapshotter: Snapshotter, address: string, log: Log): Promise<RunningService> {
  await claimSocket(address);
  const server = new grpc.Server();
  const unary = <Req, Res>(name: string, fn: (req: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> => (call, callback) => {
    Promise.resolve().then(() => fn(call.request)).then((res) => callback(null, res), (err: unknown) => callback(toStatus(name, err, log)));
  };
  server.addService(snapshotsService(), {
    Prepare: unary("Prepare", async (r: { key: string; parent: string; labels: Labels }) => ({ mounts: await snapshotter.prepare(r.key, r.parent, r.labels) })),
    View: unary("View", async (r: { key: string; parent: string; labels: Labels }) => ({ mounts: await snapshotter.view(r.key, r.parent, r.labels) })),
    Mounts: unary("Mounts", async (r: { key: string }) => ({ mounts: await snapshotter.mounts(r.key) })),
    Commit: unary("Commit", async (r: { name: string; key: string; labels: Labels }) => { await snapshotter.commit(r.name, r.key, r.labels); return {}; }),
    Remove: unary("Remove", async (r: { key: string }) => { await snapshotter.remove(r.key); return {}; }),
    Stat: unary("Stat", (r: { key: string }) => ({ info: toMessage(snapshotter.stat(r.key)) })),
    Update: unary("Update", (r: { info: InfoMessage | null; update_mask: { paths: string[] } | null }) => {
      if (r.info === null) throw new SnapshotError("INVALID_ARGUMENT", "Update needs the snapshot's info");
      return { info: toMessage(snapshotter.update({ name: r.info.name, labels: r.info.labels }, r.update_mask?.paths ?? [])) };
    }),
    Usage: unary("Usage", (r: { key: string }) => snapshotter.usage(r.key)),
    Cleanup: unary("Cleanup", async () => { await snapshotter.cleanup(); return {}; }),
    List: (call: grpc.ServerWritableStream<{ filters: string[] }, { info: InfoMessage[] }>) => {
      try {
        const infos = snapshotter.list(call.request.filters).map(toMessage);
        for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH) });
        call.end();
      } catch (err) {
        call.emit("error", toStatus("List", err, log));
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  fs.chmodSync(address, 0o660);
  return {
    address,
    async close(graceMs = 5000) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
      fs.rmSync(address, { force: true });
    },
  };
}

/** Makes the socket's directory; removes a socket file nobody answers on. */
async function claimSocket(address: string): Promise<void> {
  fs.mkdirSync(path.dirname(address), { recursive: true, mode: 0o755 });
  if (!fs.existsSync(address)) return;
  const answered = await new Promise<boolean>((resolve) => {
    const s = net.connect(address, () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
  });
  if (answered) throw new EodError("USAGE", `Cannot serve on ${address}: another process is listening there (a snapshotter already running?)`);
  fs.rmSync(address, { force: true });
}

function toMessage(info: Info): InfoMessage {
  const ts = (ms: number): Timestamp => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
  return { name: info.name, parent: info.parent, kind: info.kind.toUpperCase(), created_at: ts(info.createdMs), updated_at: ts(info.updatedMs), labels: info.labels };
}

function toStatus(method: string, err: unknown, log: Log): Partial<grpc.StatusObject> {
  if (err instanceof SnapshotError) {
    log("debug", `${method} refused`, { status: err.status, err });
    return { code: grpc.status[err.status], details: err.message };
  }
  log("error", `${method} failed`, { err: err instanceof Error ? err : new Error(String(err)) });
  return { code: grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}
