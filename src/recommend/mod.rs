//! Pure maths from usage to recommendations: no network, no async. A strategy reads a
//! container's usage summary and the policy and returns values with the reason for each.

mod strategy;

pub use strategy::{Policy, Recommendation, Report, Skip, recommend};
