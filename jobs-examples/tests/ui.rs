//! Compile-time behaviour of `#[job]`, checked with trybuild: every misuse
//! under `tests/ui/fail/` (one file per rule) must fail with the error in its
//! `.stderr` snapshot, and every accepted form under `tests/ui/pass/` must
//! compile and run.
//!
//! The snapshots are rustc's exact output, so they are tied to its version
//! (they were made with rustc 1.95). Refresh them after an intended change
//! with:
//!
//! ```text
//! TRYBUILD=overwrite cargo test --test ui
//! ```
//!
//! and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
