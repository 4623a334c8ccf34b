//go:build !linux

package plumbing

// gpipe is Linux-only: it needs memfd_create with seals (Linux 3.17) for
// its shm rings and helper instructions, pipe2, F_SETPIPE_SZ, mremap of
// shared mappings, and a parent-death signal. On any other system the
// build stops here, with this message, rather than at an undefined name.
const _ int = "gpipe builds and runs on Linux only (3.17 or later)"
