//! Smoke test: a processor-based worker runs a job to completion and one to failure.

use jobs::prelude::*;
use serde_json::json;

struct Echo;
impl JobProcessor for Echo {
    async fn process(&self, job: &Job) -> JobResult {
        if job.name == "fail" {
            return JobResult::failure(JobError::permanent("nope"));
        }
        JobResult::success(job.args.clone())
    }
}

#[tokio::test]
async fn smoke() {
    let worker = BackgroundJobWorker::builder()
        .processor(Echo)
        .build()
        .unwrap();
    let a = worker
        .submit_job(Job::new("echo", json!({"n": 1})))
        .await
        .unwrap();
    let b = worker
        .submit_job(Job::new("fail", json!({})))
        .await
        .unwrap();
    let run = tokio::spawn(worker.clone().run_owned());
    let a = worker.wait_for(a.id).await.unwrap();
    let b = worker.wait_for(b.id).await.unwrap();
    assert_eq!(a.status, JobStatus::Completed);
    assert_eq!(b.status, JobStatus::Failed);
    assert_eq!(a.result.unwrap().result, Some(json!({"n": 1})));
    let stats = worker.get_queue_stats().await.unwrap();
    assert_eq!(stats.worker_stats.jobs_processed, 1);
    assert_eq!(stats.worker_stats.jobs_failed, 1);
    worker.stop().await;
    run.await.unwrap().unwrap();
}
