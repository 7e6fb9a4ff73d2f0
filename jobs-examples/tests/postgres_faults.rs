//! Placeholder.
#![allow(missing_docs)]

