// The shapes the layout hands to the structures written from it; this module imports nothing.

/** A file of the image and the sector its data starts at (the empty files' shared zero sector for an empty one). */
export interface PlacedFile {
  name: string;
  data: Uint8Array;
  extent: number;
}

/** One set of names (the primary level-1 names or the Joliet ones) and where its own structures lie. */
export interface Namespace {
  kind: 'primary' | 'joliet';
  /** Identifiers in the directory's order, with the file each one names. */
  records: { id: Buffer; file: PlacedFile }[];
  /** Where, from the root directory's first byte, each record starts: ".", "..", then `records`. */
  recordOffsets: number[];
  rootSectors: number;
  lPathSector: number;
  mPathSector: number;
  rootSector: number;
}
