// The mounts of an active or view snapshot, from the directories of its chain: what containerd's overlay
// snapshotter (1.6.20 `mounts()`) returns, with a lazy image's mountpoint as the lowest layer when the chain
// reaches one (the whole image tree is that one EROFS mount, so a view of just the image is a read-only bind of it). Pure: paths in, containerd.types.Mount out.

/** containerd.types.Mount. */
export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface SnapshotDirs {
  kind: "active" | "view";
  /** `<root>/snapshots/<id>/fs`: the upper dir of an active snapshot, the (empty) tree of a view without parents. */
  fs: string;
  /** `<root>/snapshots/<id>/work` (active only). */
  work: string;
  /** The fs dirs of the ordinary parents, nearest first, then the mountpoint of the lazy image the chain ends in, if it does. */
  lowers: readonly string[];
  /** Add `index=off` (containerd does when the overlay module has the `index` parameter). */
  indexOff: boolean;
}

export function snapshotMounts(s: SnapshotDirs): Mount[] {
  const { lowers } = s;
  // overlay needs a lower layer: with no parent the snapshot is its own directory
  if (lowers.length === 0) return [bind(s.fs, s.kind === "view" ? "ro" : "rw")];
  // a read-only overlay needs two lower layers: a view of one layer is that layer
  if (s.kind === "view" && lowers.length === 1) return [bind(lowers[0], "ro")];
  const options = s.indexOff ? ["index=off"] : [];
  if (s.kind === "active") options.push(`workdir=${s.work}`, `upperdir=${s.fs}`);
  options.push(`lowerdir=${lowers.join(":")}`);
  return [{ type: "overlay", source: "overlay", target: "", options }];
}

function bind(source: string, mode: "ro" | "rw"): Mount {
  return { type: "bind", source, target: "", options: [mode, "rbind"] };
}
