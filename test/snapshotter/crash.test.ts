// kill -9 of the snapshotter process in the middle of Prepares, Commits and Removes, then a restart: the
// database is intact, every snapshot has its directories and no directory is left that nothing refers to,
// and work goes on.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { snapshotsClient, type SnapshotsClient } from "./client.ts";
import { skip, useSnapshotterProcess } from "./process.ts";

const running = useSnapshotterProcess("eod-snap-crash-");

/** Workers that build chains (prepare, write, commit, prepare a child, remove some) until the process dies; `commits` counts. */
function churn(c: SnapshotsClient, round: number, progress: { commits: number }): Promise<unknown> {
  const worker = async (w: number) => {
    let parent = "";
    for (let i = 0; ; i++) {
      const key = `r${round}/w${w}/active-${i}`;
      await c.prepare(key, parent, { round: String(round) });
      if (i % 3 === 2) { await c.remove(key); continue; }
      if (parent && i % 4 === 1) {
        await c.view(`${key}-view`, parent);
        await c.update({ name: parent, labels: { seen: String(i) } }, ["labels.seen"]);
      }
      const name = `r${round}/w${w}/layer-${i}`;
      await c.commit(name, key);
      progress.commits++;
      parent = name;
    }
  };
  return Promise.allSettled(Array.from({ length: 6 }, (_, w) => worker(w)));
}

function checkConsistent(root: string, infos: { name: string; kind: string }[]): void {
  const db = new DatabaseSync(path.join(root, "metadata.db"), { readOnly: true });
  try {
    assert.deepEqual(db.prepare("PRAGMA integrity_check").all().map((r) => r.integrity_check), ["ok"]);
    const rows = db.prepare("SELECT id, kind FROM snapshots").all();
    assert.equal(rows.length, infos.length);
    const entries = fs.readdirSync(path.join(root, "snapshots")).sort();
    assert.deepEqual(entries, rows.map((r) => String(r.id)).sort(), "one directory per snapshot, no orphan");
    for (const r of rows) {
      assert.ok(fs.statSync(path.join(root, "snapshots", String(r.id), "fs")).isDirectory());
      if (r.kind === "active") assert.ok(fs.statSync(path.join(root, "snapshots", String(r.id), "work")).isDirectory());
    }
  } finally {
    db.close();
  }
}

test("kill -9 in the middle of work, restart: the database and the directories agree, and work goes on", { skip }, async () => {
  const { root, address, sn } = running();
  for (const [round, delayMs] of [[1, 150], [2, 400], [3, 900]]) {
    const c = snapshotsClient(address);
    await c.list(); // connected: the delay counts work, not the connection (slow on a loaded machine)
    const progress = { commits: 0 };
    const work = churn(c, round, progress);
    // some layers committed whatever the machine's load, then the kill lands in the middle of more work
    for (let i = 0; i < 600 && progress.commits < 3; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, delayMs));
    await sn.kill("SIGKILL");
    await work;
    c.close();
    await sn.restart();
    const after = snapshotsClient(address);
    try {
      const infos = await after.list();
      assert.ok(infos.length > 0, `round ${round}: some work was done`);
      checkConsistent(root, infos);
      // every committed layer can take a child, every active snapshot still has mounts
      for (const i of infos.filter((x) => x.kind === "ACTIVE")) assert.equal((await after.mounts(i.name)).length, 1);
      const top = infos.filter((x) => x.kind === "COMMITTED").at(-1)!;
      await after.prepare(`after-${round}`, top.name);
      await after.commit(`after-${round}-C`, `after-${round}`);
    } finally {
      after.close();
    }
  }
  // everything removes, leaves first
  const c = snapshotsClient(address);
  try {
    for (let infos = await c.list(); infos.length > 0; infos = await c.list()) {
      const parents = new Set(infos.map((i) => i.parent));
      await Promise.all(infos.filter((i) => !parents.has(i.name)).map((i) => c.remove(i.name)));
    }
    assert.deepEqual(fs.readdirSync(path.join(root, "snapshots")), []);
  } finally {
    c.close();
  }
});
