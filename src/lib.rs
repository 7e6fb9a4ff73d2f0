//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
//!
//! [`suite`] is the queue behaviour suite: written once, generic over the
//! queue, and run against every backend with [`queue_behaviour_suite!`].

pub mod probe;
pub mod suite;

// The README's examples compile as doc tests of this crate.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
