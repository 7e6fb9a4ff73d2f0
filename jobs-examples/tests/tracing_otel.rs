//! With feature `opentelemetry`: the enqueuing span's W3C trace context
//! travels in the job's metadata, and the job's span on the worker is its
//! child — also when the job went through its serialised form, as it does
//! between processes. Spans are read back from the SDK's in-memory exporter.

use std::time::Duration;

use jobs::prelude::*;
use jobs::telemetry::{TRACEPARENT, TRACESTATE};
use jobs::{Enqueue, JobQueue, QueueAdmin};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

struct Echo;

impl JobProcessor for Echo {
    async fn process(&self, _job: &Job) -> JobResult {
        JobResult::success(json!(null))
    }
}

/// Spans of this thread go to the returned exporter while the guard lives.
fn tracing_to_memory() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("jobs-test")));
    let guard = tracing::subscriber::set_default(subscriber);
    (exporter, provider, guard)
}

/// Runs the job `id` on a worker of `queue` until it is final.
async fn run(queue: impl JobQueue, id: JobId) {
    let worker = BackgroundJobWorker::builder()
        .queue(queue)
        .processor(Echo)
        .build()
        .unwrap();
    let running = tokio::spawn(worker.clone().run_owned());
    let done = tokio::time::timeout(Duration::from_secs(20), worker.wait_for(id))
        .await
        .expect("the job finishes")
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    worker.stop().await;
    running.await.unwrap().unwrap();
}

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} among {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| &*s.name).collect()
}

// Current-thread runtime: the worker's tasks run on this thread, under the
// subscriber set for it.
#[tokio::test(flavor = "current_thread")]
async fn the_job_span_is_a_child_of_the_enqueuing_span() {
    let (exporter, provider, _guard) = tracing_to_memory();
    let queue = MemoryJobQueue::new();
    let id = queue
        .enqueue(Job::new("traced", json!({})))
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    let stored = queue.get(id).await.unwrap().unwrap();
    let traceparent = stored.metadata[TRACEPARENT].as_str().unwrap().to_owned();
    assert!(traceparent.starts_with("00-"), "{traceparent}");

    run(queue, id).await;
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let request = span(&spans, "request");
    let job = span(&spans, "job");
    assert_eq!(job.parent_span_id, request.span_context.span_id());
    assert_eq!(job.span_context.trace_id(), request.span_context.trace_id());
    assert!(
        job.parent_span_is_remote,
        "the parent came from the metadata"
    );
    assert!(traceparent.contains(&request.span_context.span_id().to_string()));
}

#[tokio::test(flavor = "current_thread")]
async fn the_context_survives_the_jobs_serialised_form() {
    let (exporter, provider, _guard) = tracing_to_memory();
    // Enqueued in one place ("process A") ...
    let here = MemoryJobQueue::new();
    let id = async {
        let id = here
            .enqueue(Job::new("hop", json!({"n": 1})))
            .await
            .unwrap();
        tracing::info!("enqueued");
        id
    }
    .instrument(tracing::info_span!("producer"))
    .await;
    let sent = serde_json::to_string(&here.get(id).await.unwrap().unwrap()).unwrap();

    // ... run in another ("process B"), from the bytes, outside any span.
    let mut received: Job = serde_json::from_str(&sent).unwrap();
    received.status = JobStatus::Pending;
    let there = MemoryJobQueue::new();
    there.push(received).await.unwrap();
    run(there, id).await;

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let producer = span(&spans, "producer");
    let job = span(&spans, "job");
    assert_eq!(job.parent_span_id, producer.span_context.span_id());
    assert_eq!(
        job.span_context.trace_id(),
        producer.span_context.trace_id()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_span_no_context_and_a_context_set_by_hand_is_kept() {
    let (_exporter, _provider, _guard) = tracing_to_memory();
    let queue = MemoryJobQueue::new();
    let plain = queue.enqueue(Job::new("plain", json!({}))).await.unwrap();
    let plain = queue.get(plain).await.unwrap().unwrap();
    assert!(!plain.metadata.contains_key(TRACEPARENT));
    assert!(!plain.metadata.contains_key(TRACESTATE));

    let given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut job = Job::new("given", json!({}));
    job.metadata.insert(TRACEPARENT.into(), json!(given));
    let id = queue
        .enqueue(job)
        .instrument(tracing::info_span!("elsewhere"))
        .await
        .unwrap();
    let stored = queue.get(id).await.unwrap().unwrap();
    assert_eq!(stored.metadata[TRACEPARENT], json!(given));
}

/// Through Redis: enqueued on one connection, run by a worker on another
/// (as another process would), the job's span is still the child.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "current_thread")]
async fn the_context_crosses_redis() {
    let Some(url) = jobs_testkit::redis_url() else {
        return;
    };
    let (exporter, provider, _guard) = tracing_to_memory();
    let name = jobs_testkit::unique_name("otel");
    let producer = jobs::RedisJobQueue::connect(&url, &name).await.unwrap();
    let id = producer
        .enqueue(Job::new("across", json!({})))
        .instrument(tracing::info_span!("producer"))
        .await
        .unwrap();
    let consumer = jobs::RedisJobQueue::connect(&url, &name).await.unwrap();
    run(consumer, id).await;
    producer.purge().await.unwrap();

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let sent = span(&spans, "producer");
    let job = span(&spans, "job");
    assert_eq!(job.parent_span_id, sent.span_context.span_id());
    assert_eq!(job.span_context.trace_id(), sent.span_context.trace_id());
}

#[tokio::test(flavor = "current_thread")]
async fn a_recurring_jobs_next_run_starts_its_own_trace() {
    let (_exporter, _provider, _guard) = tracing_to_memory();
    let queue = MemoryJobQueue::new();
    let id = queue
        .enqueue(Job::new("tick", json!({})).every(Duration::from_secs(3600)))
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    let first = queue.get(id).await.unwrap().unwrap();
    assert!(first.metadata.contains_key(TRACEPARENT));
    run(queue.clone(), id).await;
    let next = queue.list(Some(JobStatus::Pending), 10).await.unwrap();
    assert_eq!(next.len(), 1, "the next run is waiting");
    assert_ne!(next[0].id, id);
    assert!(
        !next[0].metadata.contains_key(TRACEPARENT),
        "{:?}",
        next[0].metadata
    );
}
