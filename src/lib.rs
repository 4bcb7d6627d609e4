//! gridwatch: grid-mapping and incident heatmaps for urban grid governance (网格化管理).
//!
//! Layers, top to bottom (see ARCHITECTURE.md): `http` (axum, wire formats) → `workflow`
//! (use cases) → `storage` (SQL, PostGIS) and `spatial` (pure geometry) → `domain` (types).

pub mod access;
pub mod analysis;
pub mod backup;
pub mod bench;
pub mod bench_dispatch;
pub mod bench_hotspots;
pub mod bench_import;
pub mod bench_scale;
pub mod bench_tiles;
pub mod coverage;
pub mod demo;
pub mod domain;
pub mod http;
pub mod media;
pub mod server;
pub mod sketch;
pub mod spatial;
pub mod storage;
pub mod tiles;
pub mod workflow;

/// The process's allocator: the system's, counting the bytes held, so that benchmarks measure
/// memory exactly (`bench scale`) and the fuzz tests can bound it. The count costs one atomic
/// add per allocation.
#[global_allocator]
pub static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);
