//! Shared helpers for the examples and integration tests of the `jobs`
//! workspace. Not published.
