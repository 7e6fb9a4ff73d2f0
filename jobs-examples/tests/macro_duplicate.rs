//! Two `#[job]` functions with one name in one program: the registry (and
//! so a worker using it) refuses to build, naming both definitions. A test
//! binary of its own, since every `#[job]` linked in is registered.

use jobs::prelude::*;

mod billing {
    use jobs::prelude::*;

    /// One `send_invoice`.
    #[job(name = "send_invoice")]
    pub(crate) async fn send(id: u64) {
        let _ = id;
    }
}

mod legacy {
    use jobs::prelude::*;

    /// Another, under the same name.
    #[job(name = "send_invoice", priority = "low")]
    pub(crate) async fn send_invoice(id: u64, copy: bool) {
        let _ = (id, copy);
    }
}

/// A job with a name of its own, unaffected.
#[job]
async fn unique() {}

#[test]
fn the_registry_names_both_definitions() {
    let error = Registry::new().unwrap_err();
    let message = error.to_string();
    let file = file!();
    let first = format!(
        "`macro_duplicate::billing::send` at {file}:{}",
        billing::send::registration().line
    );
    let second = format!(
        "`macro_duplicate::legacy::send_invoice` at {file}:{}",
        legacy::send_invoice::registration().line
    );
    assert!(
        message.starts_with("job name `send_invoice` is registered more than once: "),
        "{message}"
    );
    assert!(message.contains(&first), "{message}");
    assert!(message.contains(&second), "{message}");
    assert!(!message.contains("unique"), "{message}");
    // The lines are those of the two functions.
    assert_eq!(billing::send::registration().line, 12);
    assert_eq!(legacy::send_invoice::registration().line, 22);
    assert!(Registry::global().is_err());
}

#[test]
fn a_subset_without_the_duplicate_is_fine() {
    let registry =
        Registry::from_registrations([billing::send::registration(), unique::registration()])
            .unwrap();
    assert_eq!(registry.names(), ["send_invoice", "unique"]);
}

#[test]
fn a_worker_on_the_registry_refuses_to_build() {
    let error = BackgroundJobWorker::builder()
        .queue(MemoryJobQueue::new())
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("`send_invoice` is registered more than once"),
        "{message}"
    );
    assert!(message.contains("billing::send"), "{message}");
    assert!(message.contains("legacy::send_invoice"), "{message}");
}
