// eod as a user installs it: `npm pack`, the tarball installed into another directory, then run from a third
// one with an old `node` first on PATH — through node_modules/.bin, and through a symlink as the systemd unit's
// /usr/local/bin/eod. The install is offline: the consumer's lock pins what this checkout's lock pins, so npm
// takes every tarball from its cache (filled by `npm ci`) and asks no registry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { haveTool, REPO } from "../helpers/cli.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveTool("npm") ? "needs npm" : !haveTool("mkfs.erofs") && "needs mkfs.erofs (erofs-utils)");
/** What a checkout holds that `npm pack` does not need (tests, benchmarks) or makes itself (dist/). */
const NOT_PACKED = new Set(["node_modules", ".git", "dist", "test", "bench"]);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

function ok(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = run(cmd, args, cwd, env);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} exited ${r.status}:\n${r.out}`);
  return r.out;
}

/** This environment without the npm_* variables of an `npm test` around us (they would configure the inner npm). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_")));
}

/** A project that depends on `tarball`, with a lock made from this checkout's (its production part). */
function consumerProject(dir: string, tarball: string): void {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, "package-lock.json"), "utf8"));
  const root = lock.packages[""];
  const spec = `file:${path.basename(tarball)}`;
  const pick = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
  const packages: Record<string, unknown> = {
    "": { name: "consumer", version: "1.0.0", dependencies: { [root.name]: spec } },
    [`node_modules/${root.name}`]: {
      resolved: spec, integrity: `sha512-${createHash("sha512").update(fs.readFileSync(tarball)).digest("base64")}`,
      ...pick(root, ["version", "license", "dependencies", "bin", "os", "cpu"]),
    },
  };
  for (const [at, entry] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (at && !entry.dev) packages[at] = entry;
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, dependencies: { [root.name]: spec } }));
  fs.writeFileSync(path.join(dir, "package-lock.json"), JSON.stringify({ name: "consumer", version: "1.0.0", lockfileVersion: 3, requires: true, packages }));
}

test("npm pack gives a package that installs offline and runs eod on its own Node from anywhere", { skip, timeout: 300_000 }, (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-install-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // Packed from a copy, so prepack's dist/ never appears in the checkout.
  const checkout = path.join(tmp, "checkout");
  fs.cpSync(REPO, checkout, { recursive: true, filter: (src) => !NOT_PACKED.has(path.relative(REPO, src)) });
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(checkout, "node_modules"));
  const packed = ok("npm", ["pack", "--silent", "--pack-destination", tmp], checkout).trim().split("\n").at(-1)!;
  const tarball = path.join(tmp, packed);
  const listing = ok("tar", ["-tzf", tarball], tmp).split("\n");
  assert.ok(listing.includes("package/dist/cli/main.js") && listing.includes("package/bin/eod"), listing.join("\n"));
  assert.ok(!listing.some((f) => f.startsWith("package/src/") || f.startsWith("package/test/")), "sources and tests stay out");

  const consumer = path.join(tmp, "consumer");
  fs.mkdirSync(consumer);
  fs.copyFileSync(tarball, path.join(consumer, packed));
  consumerProject(consumer, path.join(consumer, packed));
  ok("npm", ["ci", "--offline", "--no-audit", "--no-fund", "--loglevel=error"], consumer);

  // An old `node` first on PATH must not matter: this one fails loudly if anything runs it.
  const fake = path.join(tmp, "old-node");
  fs.mkdirSync(fake);
  fs.writeFileSync(path.join(fake, "node"), "#!/bin/sh\necho 'the old node on PATH ran' >&2\nexit 99\n", { mode: 0o755 });
  const bin = path.join(consumer, "node_modules/.bin");
  const env = { ...cleanEnv(), PATH: `${fake}:${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
  const link = path.join(tmp, "usr-local-bin");
  fs.mkdirSync(link);
  fs.symlinkSync(path.join(consumer, "node_modules/erofs-ondemand/bin/eod"), path.join(link, "eod"));
  const elsewhere = path.join(tmp, "elsewhere");
  fs.mkdirSync(path.join(elsewhere, "tree"), { recursive: true });
  fs.writeFileSync(path.join(elsewhere, "tree/hello.txt"), "hello\n");

  const version = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).version;
  for (const eod of ["eod", path.join(link, "eod")]) {
    assert.match(ok(eod, ["--version"], elsewhere, env), new RegExp(`^eod ${version.replaceAll(".", "\\.")} \\(node v24\\.`));
  }
  ok("mkfs.erofs", ["-T0", "ref.erofs", "tree"], elsewhere);
  assert.match(ok(path.join(link, "eod"), ["inspect", "ref.erofs"], elsewhere, env), /hello\.txt/);
  ok("eod", ["build", "tree", "-o", "img"], elsewhere, env); // chunk workers: a worker entry of the package's own
  assert.match(ok("eod", ["check", "img"], elsewhere, env), /OK/);

  // bin/eod.mjs itself under an old Node (the old systemd instructions linked it): a clear error, not a stack.
  const oldNode = ["/usr/bin/node", "/usr/local/bin/node"].find((n) => fs.existsSync(n) && Number(run(n, ["-p", "process.versions.node.split('.')[0]"], tmp).out) < 24);
  if (oldNode) {
    const r = run(oldNode, [path.join(consumer, "node_modules/erofs-ondemand/bin/eod.mjs"), "--version"], elsewhere, env);
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /eod needs Node 24\. Run \/.*\/bin\/eod/);
  }
});
