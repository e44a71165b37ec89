/** The size of a sector and of a logical block in every image written here: 2048 bytes. */
export const SECTOR = 2048;
