//! Heap allocation counters for benchmarks: with the `count-allocations` cargo feature (off by
//! default: production builds use jemalloc, uncounted; see the gateway's `main.rs`), the
//! process's global allocator is `stats_alloc`'s counting wrapper of the system allocator (the
//! number and size of allocations do not depend on the allocator), and `/metrics` serves
//! its totals as `gateway_heap_allocations_total` and `gateway_heap_allocated_bytes_total`. The
//! bench scrapes them before and after a cell to report allocations and bytes per request.

/// The counting allocator, installed by the feature in every binary that links the gateway.
#[cfg(feature = "count-allocations")]
#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Allocations (allocations plus reallocations: each a call that may take memory) and bytes
/// allocated (new allocations plus what reallocations grew), as counted so far.
pub fn totals(stats: &HeapStats) -> (u64, u64) {
    (stats.allocations + stats.reallocations, stats.bytes_allocated)
}

/// What the counting allocator reports (a copy of `stats_alloc::Stats`'s fields used here, so
/// that this module builds without the feature).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub allocations: u64,
    pub reallocations: u64,
    /// Bytes of the allocations, plus what reallocations grew by (stats_alloc counts a grown
    /// reallocation's difference here).
    pub bytes_allocated: u64,
}

/// The process's counts, when the feature installed the counting allocator.
#[cfg(feature = "count-allocations")]
pub fn current() -> Option<HeapStats> {
    let s = HEAP.stats();
    Some(HeapStats {
        allocations: s.allocations as u64,
        reallocations: s.reallocations as u64,
        bytes_allocated: s.bytes_allocated as u64,
    })
}

/// The process's counts, when the feature installed the counting allocator.
#[cfg(not(feature = "count-allocations"))]
pub fn current() -> Option<HeapStats> {
    None
}

/// The two counters of `stats` in the Prometheus text exposition format.
pub fn exposition(stats: &HeapStats) -> String {
    let (allocations, bytes) = totals(stats);
    format!(
        "# HELP gateway_heap_allocations_total Heap allocations and reallocations (count-allocations build)\n\
         # TYPE gateway_heap_allocations_total counter\n\
         gateway_heap_allocations_total {allocations}\n\
         # HELP gateway_heap_allocated_bytes_total Heap bytes allocated (count-allocations build)\n\
         # TYPE gateway_heap_allocated_bytes_total counter\n\
         gateway_heap_allocated_bytes_total {bytes}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_both_counters() {
        let text = exposition(&HeapStats { allocations: 10, reallocations: 2, bytes_allocated: 4096 });
        assert!(text.contains("\ngateway_heap_allocations_total 12\n"), "{text}");
        assert!(text.contains("\ngateway_heap_allocated_bytes_total 4096\n"), "{text}");
        assert!(text.contains("# TYPE gateway_heap_allocated_bytes_total counter"), "{text}");
    }

    /// With the feature, the counters follow the process's allocations; without, there are none.
    #[test]
    fn counts_this_process_only_with_the_feature() {
        let before = current();
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        let after = current();
        drop(v);
        if cfg!(feature = "count-allocations") {
            let (b, a) = (before.unwrap_or_default(), after.unwrap_or_default());
            assert!(totals(&a).0 > totals(&b).0 && totals(&a).1 >= totals(&b).1 + (1 << 20), "{b:?} {a:?}");
        } else {
            assert_eq!((before, after), (None, None));
        }
    }
}
