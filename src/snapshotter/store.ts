// The snapshotter's metadata: `<root>/metadata.db` (node:sqlite, WAL, synchronous=FULL), the only state it keeps
// besides the kernel's mounts. Every change is one synchronous transaction (never spanning an await), so a kill -9
// at any point leaves either the old or the new state. Rows are the snapshots as containerd's overlay snapshotter
// keeps them (one name space for active keys and committed names; ids never reused, they name the directories
// `<root>/snapshots/<id>`), plus the images their lazy layers belong to: converted by eod, or ordinary images an
// eod index refers to (indexed).
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { LazyImage } from "./image-mounts.ts";

export type Kind = "active" | "view" | "committed";

export interface SnapshotRow {
  id: number;
  /** The active key, or the committed name (containerd's backend names: opaque strings). */
  name: string;
  parentId: number | null;
  /** The parent's name, "" when none. */
  parent: string;
  kind: Kind;
  createdMs: number;
  updatedMs: number;
  labels: Record<string, string>;
  /** Bytes and inodes of the fs directory, stored at commit (committed rows only). */
  size: number;
  inodes: number;
  /** Committed rows: the manifest digest of the converted image this lazy layer belongs to (no directory). */
  layerOf: string | null;
  /** Active and view rows: the manifest digest of the image whose mount they are over. */
  uses: string | null;
}

/** Version 1 → 2: the pull's hold of an image mount. */
const MIGRATE_1_TO_2 = "ALTER TABLE images ADD COLUMN held_until INTEGER;";
/** Version 2 → 3: indexed images, and the top layer of each. */
const MIGRATE_2_TO_3 = "ALTER TABLE images ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0; ALTER TABLE images ADD COLUMN top TEXT;";

/** A converted image as the database records it. */
export interface ImageRow extends LazyImage {
  mountpoint: string | null;
  /** Mounted at its pull and taken by no container yet: unmounted at this time (ms since the epoch); else null. */
  heldUntil: number | null;
  /**
   * An indexed image: the name of its top layer's lazy snapshot once recorded (else null). Only that one stands
   * for the image's whole mount; its lower lazy layers have no content of their own.
   */
  top: string | null;
}

/** A converted image with the keys of the active and view snapshots over its mount. */
export interface ImageInUse {
  image: LazyImage;
  keys: string[];
}

const SCHEMA_VERSION = 3;
const SCHEMA = `
CREATE TABLE images (
  manifest TEXT PRIMARY KEY,  -- "sha256:<hex>" of manifest.json
  ref TEXT NOT NULL,          -- the reference its mount is made from
  mountpoint TEXT,            -- where ImageMounts.acquire last mounted it
  held_until INTEGER,         -- mounted at its pull (snapshotter.mount_on_pull), no container yet: kept until then (ms)
  indexed INTEGER NOT NULL DEFAULT 0,  -- 1: an ordinary image mounted through its eod index (manifest = its registry manifest digest)
  top TEXT                    -- indexed: the snapshot name (chain ID) of its top layer, once recorded
);
CREATE TABLE snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a removed snapshot's id (and directory name) never returns
  name TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id),
  kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  labels TEXT NOT NULL,        -- JSON object
  size INTEGER NOT NULL DEFAULT 0,
  inodes INTEGER NOT NULL DEFAULT 0,
  layer_of TEXT REFERENCES images(manifest),
  uses TEXT REFERENCES images(manifest)
);
CREATE INDEX snapshots_parent ON snapshots(parent_id);
CREATE INDEX snapshots_uses ON snapshots(uses);
CREATE INDEX snapshots_layer_of ON snapshots(layer_of);
`;

const SELECT = `SELECT s.id, s.name, s.parent_id, COALESCE(p.name, '') AS parent, s.kind, s.created_ms, s.updated_ms, s.labels,
  s.size, s.inodes, s.layer_of, s.uses FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/** The metadata database of one snapshotter root. */
export class SnapshotStore {
  readonly file: string;
  readonly #db: DatabaseSync;
  /** Compiled once: a snapshot's chain alone would compile one statement per parent. */
  readonly #statements = new Map<string, StatementSync>();

  /** The schema version: older ones only when opened read-only (the snapshotter of that version still runs). */
  readonly #version: number;

  private constructor(file: string, db: DatabaseSync, version = SCHEMA_VERSION) {
    this.file = file;
    this.#db = db;
    this.#version = version;
  }

  /** Opens (creating) `<root>/metadata.db` for the snapshotter. */
  static open(root: string): SnapshotStore {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const file = path.join(root, "metadata.db");
    const db = new DatabaseSync(file);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;");
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === 0) {
      db.exec(`BEGIN IMMEDIATE; ${SCHEMA} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
    } else if (version === 1 || version === 2) {
      db.exec(`BEGIN IMMEDIATE; ${version === 1 ? MIGRATE_1_TO_2 : ""} ${MIGRATE_2_TO_3} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
    } else if (version !== SCHEMA_VERSION) {
      db.close();
      throw new Error(`Cannot open ${file}: schema version ${version}, this eod knows ${SCHEMA_VERSION}`);
    }
    return new SnapshotStore(file, db);
  }

  /** Opens an existing database to read it while the snapshotter runs (`eod status`, metrics); null when there is none. */
  static openReadOnly(root: string): SnapshotStore | null {
    const file = path.join(root, "metadata.db");
    if (!fs.existsSync(file)) return null;
    const db = new DatabaseSync(file, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 5000;");
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    // A snapshotter of a version before still runs on it (it is migrated at the next start): no holds or indexes yet.
    return new SnapshotStore(file, db, version);
  }

  #sql(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (st === undefined) this.#statements.set(sql, st = this.#db.prepare(sql));
    return st;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  /** Runs `fn` as one transaction: committed when it returns, rolled back when it throws. `fn` must not await. */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      if (out instanceof Promise) throw new TypeError("A store transaction must not await: it would span other calls' changes");
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  get(name: string): SnapshotRow | undefined {
    const r = this.#sql(`${SELECT} WHERE s.name = ?`).get(name);
    return r === undefined ? undefined : toRow(r);
  }

  byId(id: number): SnapshotRow | undefined {
    const r = this.#sql(`${SELECT} WHERE s.id = ?`).get(id);
    return r === undefined ? undefined : toRow(r);
  }

  /** The parents of a snapshot, nearest first. */
  parents(row: SnapshotRow): SnapshotRow[] {
    const out = this.#sql(`WITH RECURSIVE chain(id, depth) AS (SELECT ?, 1 UNION ALL
      SELECT s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.id WHERE s.parent_id IS NOT NULL)
      ${SELECT} JOIN chain ON chain.id = s.id ORDER BY chain.depth`).all(row.parentId).map(toRow);
    const last = out.at(-1);
    if (row.parentId !== null && (last === undefined || last.parentId !== null)) throw new Error(`Snapshot ${JSON.stringify(row.name)} has a missing parent in ${this.file}`);
    return out;
  }

  all(): SnapshotRow[] {
    return this.#sql(`${SELECT} ORDER BY s.id`).all().map(toRow);
  }

  /** Every snapshot id (the directories that may exist under `<root>/snapshots`). */
  ids(): Set<number> {
    return new Set(this.#sql("SELECT id FROM snapshots").all().map((r) => Number(r.id)));
  }

  hasChildren(id: number): boolean {
    return this.#sql("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1").get(id) !== undefined;
  }

  insert(s: { name: string; parentId: number | null; kind: Kind; labels: Record<string, string>; layerOf?: string | null; uses?: string | null }): number {
    const now = Date.now();
    const r = this.#sql("INSERT INTO snapshots (name, parent_id, kind, created_ms, updated_ms, labels, layer_of, uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .run(s.name, s.parentId, s.kind, now, now, JSON.stringify(s.labels), s.layerOf ?? null, s.uses ?? null);
    return Number(r.lastInsertRowid);
  }

  /** An active snapshot becomes committed under `name`: labels replaced, usage stored, no longer using an image. */
  commit(id: number, name: string, labels: Record<string, string>, usage: { size: number; inodes: number }): void {
    const now = Date.now();
    this.#sql("UPDATE snapshots SET name = ?, kind = 'committed', created_ms = ?, updated_ms = ?, labels = ?, size = ?, inodes = ?, uses = NULL WHERE id = ?")
      .run(name, now, now, JSON.stringify(labels), usage.size, usage.inodes, id);
  }

  /** A lower lazy layer of an indexed image unpacked (materialize): an ordinary committed layer from now on. */
  materialize(id: number, usage: { size: number; inodes: number }): void {
    this.#sql("UPDATE snapshots SET layer_of = NULL, size = ?, inodes = ?, updated_ms = ? WHERE id = ?").run(usage.size, usage.inodes, Date.now(), id);
  }

  /** A lazy layer now belongs to another image (an indexed image's top taking over another's lower layer). */
  setLayerOf(id: number, manifest: string): void {
    this.#sql("UPDATE snapshots SET layer_of = ? WHERE id = ?").run(manifest, id);
  }

  setLabels(id: number, labels: Record<string, string>): void {
    this.#sql("UPDATE snapshots SET labels = ?, updated_ms = ? WHERE id = ?").run(JSON.stringify(labels), Date.now(), id);
  }

  delete(id: number): void {
    this.#sql("DELETE FROM snapshots WHERE id = ?").run(id);
  }

  /** Records a converted or indexed image (the first reference seen for a manifest stays). */
  putImage(image: LazyImage): void {
    this.#sql("INSERT INTO images (manifest, ref, indexed) VALUES (?, ?, ?) ON CONFLICT (manifest) DO NOTHING").run(image.manifest, image.ref, image.indexed ? 1 : 0);
  }

  image(manifest: string): ImageRow | undefined {
    const r = this.#sql(`SELECT ${this.#imageColumns} FROM images WHERE manifest = ?`).get(manifest);
    return r === undefined ? undefined : toImage(r);
  }

  /** An indexed image's top layer: the one lazy snapshot its mount stands for. */
  setTop(manifest: string, name: string): void {
    this.#sql("UPDATE images SET top = ? WHERE manifest = ?").run(name, manifest);
  }

  /** Marks the image's mount as the pull's until `untilMs` (a container takes it: null). */
  setHold(manifest: string, untilMs: number | null): void {
    this.#sql("UPDATE images SET held_until = ? WHERE manifest = ?").run(untilMs, manifest);
  }

  /** The images a pull's hold keeps mounted, soonest to run out first. */
  heldImages(): ImageRow[] {
    if (this.#version < 2) return [];
    return this.#sql(`SELECT ${this.#imageColumns} FROM images WHERE held_until IS NOT NULL ORDER BY held_until`).all().map(toImage);
  }

  /** The images table's columns, those an older schema lacks as NULL. */
  get #imageColumns(): string {
    const v = this.#version;
    return `manifest, ref, mountpoint, ${v >= 2 ? "held_until" : "NULL AS held_until"}, ${v >= 3 ? "indexed, top" : "0 AS indexed, NULL AS top"}`;
  }

  setMountpoint(manifest: string, mountpoint: string | null): void {
    this.#sql("UPDATE images SET mountpoint = ? WHERE manifest = ?").run(mountpoint, manifest);
  }

  /** How many active and view snapshots are over the image's mount. */
  usersOf(manifest: string): number {
    return Number(this.#sql("SELECT COUNT(*) AS n FROM snapshots WHERE uses = ?").get(manifest)?.n);
  }

  /** Forgets an image no snapshot names any more. */
  dropImageIfUnreferenced(manifest: string): void {
    this.#sql("DELETE FROM images WHERE manifest = ?1 AND NOT EXISTS (SELECT 1 FROM snapshots WHERE layer_of = ?1 OR uses = ?1)").run(manifest);
  }

  /** The images whose mounts some active or view snapshot is over, with those snapshots' keys. */
  imagesInUse(): ImageInUse[] {
    const indexed = this.#version >= 3 ? "i.indexed" : "0 AS indexed";
    const rows = this.#sql(`SELECT i.manifest, i.ref, ${indexed}, s.name FROM snapshots s JOIN images i ON i.manifest = s.uses ORDER BY i.manifest, s.id`).all();
    const out = new Map<string, ImageInUse>();
    for (const r of rows) {
      const manifest = String(r.manifest);
      let entry = out.get(manifest);
      if (entry === undefined) out.set(manifest, entry = { image: lazyImage(r), keys: [] });
      entry.keys.push(String(r.name));
    }
    return [...out.values()];
  }

  /** Snapshots by kind (every kind present, 0 when none). */
  countsByKind(): Record<Kind, number> {
    const out: Record<Kind, number> = { active: 0, view: 0, committed: 0 };
    for (const r of this.#sql("SELECT kind, COUNT(*) AS n FROM snapshots GROUP BY kind").all()) out[r.kind as Kind] = Number(r.n);
    return out;
  }

  /** Committed snapshots that are layers of a converted image. */
  lazyLayers(): number {
    return Number(this.#sql("SELECT COUNT(*) AS n FROM snapshots WHERE layer_of IS NOT NULL").get()?.n);
  }
}

function lazyImage(r: Record<string, SQLInputValue>): LazyImage {
  return { manifest: String(r.manifest), ref: String(r.ref), ...(Number(r.indexed) === 1 ? { indexed: true } : {}) };
}

function toImage(r: Record<string, SQLInputValue>): ImageRow {
  return {
    ...lazyImage(r), mountpoint: r.mountpoint === null ? null : String(r.mountpoint),
    heldUntil: r.held_until === null ? null : Number(r.held_until), top: r.top === null ? null : String(r.top),
  };
}

function toRow(r: Record<string, SQLInputValue>): SnapshotRow {
  return {
    id: Number(r.id), name: String(r.name), parentId: r.parent_id === null ? null : Number(r.parent_id), parent: String(r.parent),
    kind: r.kind as Kind, createdMs: Number(r.created_ms), updatedMs: Number(r.updated_ms), labels: JSON.parse(String(r.labels)) as Record<string, string>,
    size: Number(r.size), inodes: Number(r.inodes), layerOf: r.layer_of === null ? null : String(r.layer_of), uses: r.uses === null ? null : String(r.uses),
  };
}
