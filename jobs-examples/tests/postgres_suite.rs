//! The queue behaviour suite against a real PostgreSQL (`JOBS_DATABASE_URL`).
//!
//! Each case gets its own schema, so the cases run in parallel on one
//! database; the schema is dropped when the case passes. Without
//! `JOBS_DATABASE_URL` every case prints that it skipped and passes,
//! unless `JOBS_REQUIRE_POSTGRES` is set.
//!
//! The cases are listed one by one (each drops its schema after it
//! passes); `every_case_is_listed` fails if the suite has a case that is
//! not.
#![cfg(feature = "postgres")]

use jobs::PostgresJobQueue;

/// A fresh queue in a schema of its own, or `None` (skip) without a database.
async fn queue() -> Option<PostgresJobQueue> {
    let url = jobs_examples::database_url()?;
    let schema = jobs_examples::unique_name("pg");
    let queue = PostgresJobQueue::builder(&url)
        .schema(schema)
        .connect()
        .await
        .unwrap();
    Some(queue)
}

/// One `#[tokio::test]` per case named, each on a fresh queue whose schema
/// is dropped afterwards (a failed case panics first and leaves it for
/// inspection).
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(queue) = queue().await else { return };
                jobs_testkit::suite::cases::$case(queue.clone()).await;
                queue.drop_schema().await.unwrap();
            }
        )*

        /// The cases listed here.
        const LISTED: &[&str] = &[$(stringify!($case)),*];
    };
}

/// No case of the suite is left out of the list below.
#[test]
fn every_case_is_listed() {
    let mut listed = LISTED.to_vec();
    let mut all = jobs_testkit::suite::CASES.to_vec();
    listed.sort_unstable();
    all.sort_unstable();
    assert_eq!(listed, all);
}

cases! {
    priority_order_and_fifo,
    worker_runs_in_priority_order,
    delayed_job_does_not_start_early,
    retries_with_growing_backoff,
    permanent_error_is_not_retried,
    timeout_fails_the_attempt,
    panic_fails_only_that_job,
    cancel_pending_job,
    cancel_running_job,
    retry_failed_job,
    expired_job_does_not_run,
    graceful_stop_hands_back_abandoned_jobs,
    stop_mid_backlog_leaves_nothing_running,
    stats_are_exact,
    unknown_job_name_fails,
    bad_input_is_an_error,
    lease_fencing,
    release_returns_job_to_the_front,
    get_list_counts_and_purge,
    duplicate_id_is_rejected,
    idempotent_enqueue_finds_the_first_job,
    too_deep_payload_is_refused_at_enqueue,
    enqueue_many_keeps_order,
    push_wakes_idle_worker,
    named_queues_route_and_are_served_in_take_order,
    scheduled_job_comes_due_into_its_queue,
    paused_queue_gives_nothing_until_resumed,
    progress_is_recorded_and_sent,
    events_are_sent_for_state_changes,
    wait_for_returns_final_job,
    unique_job_conflicts_and_releases_when_done,
    unique_period_expires,
    unique_in_push_many_per_job,
    unique_states_include_completed,
    job_concurrency_limit_holds_and_keeps_place,
    concurrency_by_key_limits_each_key_separately,
    snooze_reschedules_without_counting_attempt,
    queue_concurrency_limit_holds,
    rate_limit_holds_within_window_and_releases,
    queue_rate_limit_holds,
    cancel_held_job_removes_it,
    nothing_lost_under_limits,
    recurring_job_runs_repeatedly,
    find_jobs_filters_and_pages,
    delete_removes_waiting_and_finished_not_running,
    purge_status_removes_only_that_status,
    throughput_counts_processed_and_failed,
    workers_lists_running_worker_and_forgets_stopped,
    attempt_errors_are_kept,
    batch_callbacks_fire_once,
    failed_batch_job_cancels_on_success,
    chain_passes_results,
    diamond_runs_the_join_once,
    failure_cancels_dependants_unless_they_run_always,
    cancel_workflow_cancels_its_steps,
    a_running_step_fans_out,
    adding_to_a_batch_while_open,
    bad_workflows_store_nothing,
    a_worker_runs_a_dag,
}
