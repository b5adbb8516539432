#if canImport(Glibc)
import CMalloc
import Glibc
#endif

/// The allocator settings Cohort's executables (`cohortd`, and `cohort` for its load generators)
/// apply at start, for a process that moves many large buffers.
///
/// glibc's defaults return the free top of a heap to the system as soon as it exceeds 128 KiB
/// and serve larger allocations by `mmap`, raising that threshold as it sees them freed. Under
/// load a daemon's heap then grows and shrinks many times a second: the growth page-faults
/// fresh memory in (a profile of the sender's daemon at 1 KiB: 4.8 % of its time in page
/// faults, nearly all of them under `sysmalloc` of a thread arena) and the shrink gives it back
/// (`madvise`). These settings keep freed memory for reuse instead: the trim threshold is
/// 256 MiB and the mmap threshold 32 MiB (glibc's maximum on 64-bit systems). The cost is
/// memory: a process keeps the heap of its peak load, up to 256 MiB free per malloc arena,
/// rather than returning it at once. See docs/daemon.md, "Heap", and the README's Performance
/// section for the figures.
///
/// A user who sets any `glibc.malloc.` tunable in `GLIBC_TUNABLES` keeps the allocator as
/// configured there: these settings are skipped (`GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072`
/// restores glibc's behaviour).
public enum HeapTuning {
    /// Free heap kept for reuse, per arena, before it is returned to the system.
    public static let trimThresholdBytes = 256 << 20
    /// Allocations from this size on are mapped on their own (glibc's maximum on 64-bit).
    public static let mmapThresholdBytes = 32 << 20

    /// What ``apply()`` did.
    public enum Outcome: Equatable, Sendable {
        /// Both thresholds are set.
        case applied
        /// `GLIBC_TUNABLES` configures the allocator; nothing was changed.
        case leftToEnvironment
        /// Not glibc, or glibc refused a value (then the trim threshold may be set, the mmap
        /// threshold is glibc's); with these constants glibc refuses neither.
        case unavailable
    }

    /// Sets the thresholds, unless the process's `GLIBC_TUNABLES` sets a `glibc.malloc.`
    /// tunable. Call once, at the start of `main`.
    @discardableResult
    public static func apply() -> Outcome {
        #if canImport(Glibc)
        return apply(glibcTunables: getenv("GLIBC_TUNABLES").map { String(cString: $0) })
        #else
        return .unavailable
        #endif
    }

    /// Sets the thresholds, unless `glibcTunables` (the value of `GLIBC_TUNABLES`) sets a
    /// `glibc.malloc.` tunable.
    @discardableResult
    public static func apply(glibcTunables: String?) -> Outcome {
        if let glibcTunables, glibcTunables.contains("glibc.malloc.") { return .leftToEnvironment }
        #if canImport(Glibc)
        guard cohort_malloc_set_trim_threshold(Int32(trimThresholdBytes)) == 1,
              cohort_malloc_set_mmap_threshold(Int32(mmapThresholdBytes)) == 1
        else { return .unavailable }
        return .applied
        #else
        return .unavailable
        #endif
    }
}
