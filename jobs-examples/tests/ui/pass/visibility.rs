//! Generated items are as visible as the function, documented, and raise
//! no lint of their own.
#![deny(dead_code, unused, missing_docs, unreachable_pub)]

/// Public modules, so that `unreachable_pub` has nothing to say about user code.
pub mod outer {
    /// The jobs.
    pub mod inner {
        use jobs::prelude::*;

        /// Public.
        #[job]
        pub async fn public(n: u32) {
            let _ = n;
        }

        #[job]
        pub(crate) async fn crate_wide(n: u32) {
            let _ = n;
        }

        #[job]
        pub(super) async fn parent_only(n: u32) {
            let _ = n;
        }

        #[job]
        pub(in crate::outer) async fn in_path(n: u32) {
            let _ = n;
        }

        #[job]
        async fn private(n: u32) {
            let _ = n;
        }

        /// Uses the private job's items.
        pub fn use_private() -> Job {
            private::job(1)
        }
    }

    /// Uses the restricted jobs' items.
    pub fn use_restricted() -> (jobs::Job, jobs::Job, u32) {
        let args = inner::parent_only::Args { n: 3 };
        (inner::parent_only::job(1), inner::in_path::job(2), args.n)
    }
}

/// A public job of a library crate: its module is public too.
pub mod api {
    use jobs::prelude::*;

    /// Documented, as `missing_docs` asks; the generated items are too.
    #[job]
    pub async fn documented(n: u32) {
        let _ = n;
    }
}

fn main() {
    let _ = outer::inner::public::job(1);
    let _ = outer::inner::crate_wide::job(1);
    let _ = outer::inner::crate_wide::Args { n: 1 }.n;
    let _ = outer::use_restricted();
    let _ = outer::inner::use_private();
    let _ = api::documented::NAME;
}
