//! Benchmarks of Ringkeeper. Today this crate holds the criterion micro-benchmarks of the engine
//! (`benches/engine.rs`: jute decode, tree apply). The load generator `ringkeeper bench` is
//! issue 3 and not written yet.
