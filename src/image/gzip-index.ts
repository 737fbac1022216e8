// The seek index of a gzip layer: checkpoints at deflate block boundaries (inflate.ts). Work in progress.
import { EodError } from "../errors.ts";
import type { LayerIndex, LayerIndexer } from "./layer-indexer.ts";

export class GzipIndexer implements LayerIndexer {
  readonly spanSize: number;
  constructor(spanSize: number) {
    this.spanSize = spanSize;
  }
  push(_compressed: Uint8Array): Uint8Array[] {
    throw new EodError("SOURCE_UNSUPPORTED", "gzip layers cannot be indexed yet");
  }
  finish(): LayerIndex {
    throw new EodError("SOURCE_UNSUPPORTED", "gzip layers cannot be indexed yet");
  }
}
