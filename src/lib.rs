//! export-retry: a durable retry spool for telemetry exports on edge runtimes.
//!
//! The crate is the whole retry engine. Its core is pure Rust with no I/O and no
//! wasm-bindgen types ([`policy`], [`classify`], [`backoff`], [`record`], [`spool`],
//! [`log`], [`engine`]); `cargo test` checks it natively with an injected clock and
//! random source. On `wasm32` a thin wasm-bindgen layer (`bindings`) drives the
//! engine with the JavaScript host's `fetch`, storage adapter and wake-ups.
//!
//! ```
//! use export_retry::classify::Attempt;
//! use export_retry::engine::{Engine, ExportStep, Outcome};
//! use export_retry::policy::Policy;
//!
//! let mut engine = Engine::new(Policy::default(), 7);
//! let now = 1_700_000_000_000;
//! let mut job = engine.start_export(now);
//! let step = engine.on_export_attempt(&mut job, &Attempt::Status { status: 503, retry_after: None }, now, 0.5);
//! assert_eq!(step, ExportStep::RetryAfter { ms: 1_000 });
//! let step = engine.on_export_attempt(&mut job, &Attempt::NetworkError, now + 1_000, 0.5);
//! assert_eq!(step, ExportStep::Persist);
//! let id = engine.reserve(1024, now + 1_000).expect("room in the spool");
//! // ... the host writes the record under `id`, then:
//! assert_eq!(engine.on_spool_written(id, 1024, 1, now + 1_001), Outcome::Spooled);
//! assert_eq!(engine.stats().queued, 1);
//! ```

pub mod backoff;
pub mod classify;
pub mod engine;
pub mod log;
pub mod otlp_env;
pub mod policy;
pub mod record;
pub mod spool;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
pub use bindings::Exporter;
