//! The span each job runs in. In a test binary of its own: a subscriber
//! set for one thread (`set_default`) misses spans whose callsite another
//! test's thread registered first, with no subscriber, in the same process.

use std::sync::Arc;
use std::time::Duration;

use jobs::prelude::*;
use jobs_examples::probe::Probe;
use jobs_examples::suite::Running;
use parking_lot::Mutex;
use serde_json::json;

/// Records the fields of `job` spans.
#[derive(Clone, Default)]
struct SpanFields(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanFields {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "job" {
            struct Visit(String);
            impl tracing::field::Visit for Visit {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!("{}={:?} ", field.name(), value));
                }
            }
            let mut visit = Visit(String::new());
            attrs.record(&mut visit);
            self.0.lock().push(visit.0.trim_end().to_owned());
        }
    }
}

#[tokio::test]
async fn each_job_runs_in_a_span_with_its_id_name_and_attempt() {
    use tracing_subscriber::layer::SubscriberExt;
    let fields = SpanFields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let worker = BackgroundJobWorker::builder()
        .processor(Probe::new())
        .build()
        .unwrap();
    let job = worker
        .submit_job(
            Job::new("flaky", json!({"succeed_on": 2}))
                .backoff(jobs::Backoff::fixed(Duration::from_millis(1))),
        )
        .await
        .unwrap();
    let running = Running::start(worker.clone());
    worker.wait_for(job.id).await.unwrap();
    running.stop().await;
    let seen = fields.0.lock().clone();
    assert_eq!(
        seen,
        [
            format!("id={} name=flaky attempt=1", job.id),
            format!("id={} name=flaky attempt=2", job.id),
        ]
    );
}
