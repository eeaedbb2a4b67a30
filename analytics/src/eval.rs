//! Evaluation harnesses on public labelled data: they run the same code as the daemon over files
//! in a known layout and print standard scores.

pub mod loghub;
pub mod nab;
