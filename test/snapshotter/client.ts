// A grpc-js client of containerd's Snapshots service built from the vendored protos, as containerd's proxy
// plugin speaks to the snapshotter; each call returns a promise, and a refusal rejects with its gRPC status.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_OPTIONS, SNAPSHOTS_PROTO } from "../../src/snapshotter/service.ts";

export interface MountMsg { type: string; source: string; target: string; options: string[] }
export interface InfoMsg { name: string; parent: string; kind: string; created_at: { seconds: number; nanos: number }; updated_at: { seconds: number; nanos: number }; labels: Record<string, string> }

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
type Raw = grpc.Client & Record<string, (req: unknown, cb: Callback<unknown>) => void> & { List(req: unknown): grpc.ClientReadableStream<{ info: InfoMsg[] }> };

export interface SnapshotsClient {
  prepare(key: string, parent?: string, labels?: Record<string, string>): Promise<MountMsg[]>;
  view(key: string, parent?: string, labels?: Record<string, string>): Promise<MountMsg[]>;
  mounts(key: string): Promise<MountMsg[]>;
  commit(name: string, key: string, labels?: Record<string, string>): Promise<void>;
  remove(key: string): Promise<void>;
  stat(key: string): Promise<InfoMsg>;
  update(info: { name: string; labels: Record<string, string> }, paths?: string[]): Promise<InfoMsg>;
  usage(key: string): Promise<{ size: number; inodes: number }>;
  /** Every block the stream sent (to check the batching) and their infos. */
  listBlocks(filters?: string[]): Promise<InfoMsg[][]>;
  list(filters?: string[]): Promise<InfoMsg[]>;
  cleanup(): Promise<void>;
  close(): void;
}

/** The gRPC status code of a rejection (`grpc.status.NOT_FOUND`, …). */
export function codeOf(err: unknown): number | undefined {
  return (err as grpc.ServiceError | undefined)?.code;
}

export function snapshotsClient(address: string): SnapshotsClient {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(SNAPSHOTS_PROTO, PROTO_OPTIONS)) as unknown as
    { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  const raw = new pkg.containerd.services.snapshots.v1.Snapshots(`unix:${address}`, grpc.credentials.createInsecure()) as unknown as Raw;
  const call = <T>(method: string, req: object) => new Promise<T>((resolve, reject) => {
    raw[method]({ snapshotter: "eod", ...req }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
  const listBlocks = (filters: string[] = []) => new Promise<InfoMsg[][]>((resolve, reject) => {
    const blocks: InfoMsg[][] = [];
    const stream = raw.List({ snapshotter: "eod", filters });
    stream.on("data", (m: { info: InfoMsg[] }) => blocks.push(m.info));
    stream.on("error", reject);
    stream.on("end", () => resolve(blocks));
  });
  return {
    prepare: async (key, parent = "", labels = {}) => (await call<{ mounts: MountMsg[] }>("Prepare", { key, parent, labels })).mounts,
    view: async (key, parent = "", labels = {}) => (await call<{ mounts: MountMsg[] }>("View", { key, parent, labels })).mounts,
    mounts: async (key) => (await call<{ mounts: MountMsg[] }>("Mounts", { key })).mounts,
    commit: async (name, key, labels = {}) => { await call("Commit", { name, key, labels }); },
    remove: async (key) => { await call("Remove", { key }); },
    stat: async (key) => (await call<{ info: InfoMsg }>("Stat", { key })).info,
    update: async (info, paths) => (await call<{ info: InfoMsg }>("Update", { info, update_mask: paths === undefined ? null : { paths } })).info,
    usage: (key) => call("Usage", { key }),
    listBlocks,
    list: async (filters) => (await listBlocks(filters)).flat(),
    cleanup: async () => { await call("Cleanup", {}); },
    close: () => raw.close(),
  };
}
