// One rule for every test that needs something a machine may lack (root, a tool, a kernel feature, the
// kernel-lab VM): outside CI it skips, naming what is missing; with CI=true it fails instead. CI's machine is
// set up to have all of it (scripts/setup.sh), so a skip there would hide a missing install step or a broken probe.
import { test, type TestContext } from "node:test";

/** CI=true (or any value but "false"/"0"), as CI services and .ci/run set it. */
const IN_CI = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
const failed = new Set<string>();

/**
 * The `skip` option of tests that need something: `false` when `missing` is falsy (they run), else `missing`
 * (they skip). With CI=true a reason also adds one failing test that names it (once per reason and file).
 * @example
 * const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("fsck.erofs") && "needs fsck.erofs");
 * test("…", { skip }, async () => { … });
 */
export function unavailable(missing: string | false | null | undefined): string | false {
  if (!missing) return false;
  if (IN_CI && !failed.has(missing)) {
    failed.add(missing);
    test(`[CI] required here, but missing: ${missing}`, () => {
      throw new Error(`${missing} (CI=true: a test that needs it fails instead of skipping)`);
    });
  }
  return missing;
}

/** Inside a running test that finds it cannot run here: skips it, or with CI=true fails it. */
export function skipTest(t: TestContext, missing: string): void {
  if (IN_CI) throw new Error(`${missing} (CI=true: a test that needs it fails instead of skipping)`);
  t.skip(missing);
}
