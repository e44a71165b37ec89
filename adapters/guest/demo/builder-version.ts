/** Bump when the build changes in a way the inputs' hash cannot see (layout, cpio writer, kernel handling). */
export const DEMO_GUEST_BUILDER_VERSION = 1;
