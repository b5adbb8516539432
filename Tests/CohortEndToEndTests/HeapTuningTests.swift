import CMalloc
import CohortTransport
import Testing

@Suite("Heap tuning: the executables' allocator thresholds")
struct HeapTuningTests {
    @Test("a glibc.malloc tunable in GLIBC_TUNABLES leaves the allocator alone")
    func environmentWins() {
        #expect(HeapTuning.apply(glibcTunables: "glibc.malloc.trim_threshold=131072") == .leftToEnvironment)
        #expect(HeapTuning.apply(glibcTunables: "glibc.pthread.rseq=0:glibc.malloc.arena_max=2") == .leftToEnvironment)
    }

    @Test("applied, a 16 MiB block comes from the heap, not a mapping of its own")
    func applied() {
        #expect(HeapTuning.apply(glibcTunables: "glibc.pthread.rseq=0") == .applied)
        let before = cohort_malloc_mapped_blocks()
        let block = UnsafeMutableRawPointer.allocate(byteCount: 16 << 20, alignment: 16)
        let during = cohort_malloc_mapped_blocks()
        block.deallocate()
        // Other tests' threads may free blocks mapped before meanwhile, never map one this size.
        #expect(during <= before)
    }
}
