//! Log template mining: turning free-text log messages into templates with `<*>` for the variable
//! parts, with one configuration for every kind of log (no per-system rules).
//!
//! [`header`] strips a raw line's timestamp/level/component prefix (OTLP bodies need not), [`tokens`]
//! splits and masks a message, [`miner`] groups messages into templates as they stream in.
//! The method and its measured accuracy are in docs/analytics.md.

pub mod enrich;
pub mod header;
pub mod miner;
pub mod tokens;

pub use enrich::TemplateEnricher;
pub use header::strip_header;
pub use miner::{Miner, MinerConfig, TemplateLabel};
pub use tokens::{Token, tokenize};
