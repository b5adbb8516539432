// Cohort's view of glibc's allocator settings (<malloc.h>). Swift's Glibc module does not
// import mallopt, and the M_* parameters are negative-literal macros that Swift does not import:
// these inline wrappers name the two settings Cohort's executables change.
#ifndef COHORT_CMALLOC_SHIM_H
#define COHORT_CMALLOC_SHIM_H

#include <malloc.h>

/// mallopt(M_TRIM_THRESHOLD, bytes): free memory at the top of a heap is returned to the
/// system only above this size. Returns 1 on success, 0 on error.
static inline int cohort_malloc_set_trim_threshold(int bytes) { return mallopt(M_TRIM_THRESHOLD, bytes); }

/// mallopt(M_MMAP_THRESHOLD, bytes): allocations from this size on get a mapping of their own.
/// Setting it also turns off glibc's dynamic adjustment of the threshold. Returns 1 on success,
/// 0 on error (glibc refuses values above 32 MiB on 64-bit systems).
static inline int cohort_malloc_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

/// Blocks the allocator has mapped on their own (mallinfo2's hblks): for tests.
static inline size_t cohort_malloc_mapped_blocks(void) { return mallinfo2().hblks; }

#endif
