//! The queries, from the `.sql` files beside this module, with the schema,
//! the notification channel and the shared fragments substituted once per
//! queue.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

/// The columns every query that returns whole jobs selects (see
/// `super::row::decode`).
const COLUMNS: &str = "id, status::text AS status, attempts, max_retries, token, scheduled_at, \
     started_at, completed_at, result::text AS result, last_error, progress::text AS progress, \
     errors::text AS errors, record::text AS record";

/// A job's `errors` with room for one more within 25 (`MAX_ATTEMPT_ERRORS`):
/// the oldest dropped when full (`finish.sql`, `recover.sql`, on row `j`).
const KEEP_ERRORS: &str = "CASE WHEN jsonb_array_length(coalesce(j.errors, '[]'::jsonb)) >= 25 \
     THEN j.errors - 0 ELSE coalesce(j.errors, '[]'::jsonb) END";

/// The migrations, in order: (version, name, SQL). Forward only; a version
/// once released is never edited.
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("sql/migrations/0001_init.sql")),
    (2, "unique", include_str!("sql/migrations/0002_unique.sql")),
    (
        3,
        "concurrency",
        include_str!("sql/migrations/0003_concurrency.sql"),
    ),
    (
        4,
        "queue_concurrency",
        include_str!("sql/migrations/0004_queue_concurrency.sql"),
    ),
    (5, "rates", include_str!("sql/migrations/0005_rates.sql")),
    (
        6,
        "last_run",
        include_str!("sql/migrations/0006_last_run.sql"),
    ),
    (7, "admin", include_str!("sql/migrations/0007_admin.sql")),
    (
        8,
        "workflows",
        include_str!("sql/migrations/0008_workflows.sql"),
    ),
];

/// The queries of one queue (one schema).
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) enqueue: Arc<str>,
    pub(super) reserve: Arc<str>,
    pub(super) finish: Arc<str>,
    pub(super) heartbeat: Arc<str>,
    pub(super) progress: Arc<str>,
    pub(super) release: Arc<str>,
    pub(super) recover: Arc<str>,
    pub(super) cancel: Arc<str>,
    pub(super) retry: Arc<str>,
    pub(super) counts: Arc<str>,
    pub(super) queues: Arc<str>,
    pub(super) pause: Arc<str>,
    pub(super) resume: Arc<str>,
    pub(super) get: Arc<str>,
    pub(super) list: Arc<str>,
    pub(super) purge: Arc<str>,
    pub(super) prune: Arc<str>,
    pub(super) unique_lock: Arc<str>,
    pub(super) unique_holders: Arc<str>,
    pub(super) unhold: Arc<str>,
    pub(super) queue_slots: Arc<str>,
    pub(super) queue_rates: Arc<str>,
    pub(super) last_run_load: Arc<str>,
    pub(super) last_run_save: Arc<str>,
    pub(super) find: Arc<str>,
    pub(super) find_by_name: Arc<str>,
    pub(super) delete: Arc<str>,
    pub(super) purge_status: Arc<str>,
    pub(super) throughput: Arc<str>,
    pub(super) report_worker: Arc<str>,
    pub(super) remove_worker: Arc<str>,
    pub(super) workers: Arc<str>,
    pub(super) workflow: Arc<str>,
    pub(super) dependency_results: Arc<str>,
}

/// `name` as a quoted SQL identifier.
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The events fragment for the rows of `source`, of `kind` (an SQL
/// expression), with `progress` (an SQL expression, `NULL::jsonb` if none).
fn events(source: &str, kind: &str, progress: &str) -> String {
    include_str!("sql/events.sql")
        .replace("{source}", source)
        .replace("{kind}", kind)
        .replace("{progress}", progress)
}

/// The `freed` CTE for the rows of `source` (`free_slots.sql`).
fn free_slots(source: &str) -> String {
    include_str!("sql/free_slots.sql")
        .lines()
        .filter(|line| !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{source}", source)
}

/// The event kind of a finish outcome code (`finish.sql`).
const FINISH_KIND: &str = "CASE code WHEN 'C' THEN 'completed' WHEN 'T' THEN 'retrying' \
     WHEN 'F' THEN 'failed' WHEN 'X' THEN 'cancelled' WHEN 'E' THEN 'expired' \
     ELSE 'snoozed' END";

/// The event kind of a recovered job's new status (`recover.sql`).
const RECOVER_KIND: &str = "CASE status WHEN 'F' THEN 'failed' ELSE 'retrying' END";

impl Sql {
    pub(super) fn new(schema: &str, channel: &str) -> Self {
        let lock_prefix = literal(&format!("jobs unique {schema} "));
        let schema = ident(schema);
        let channel = literal(channel);
        let fill = |text: &str| {
            text.replace("{free_slots_of_done}", &free_slots("done"))
                .replace("{free_slots_of_released}", &free_slots("released"))
                .replace("{free_slots_of_recovered}", &free_slots("recovered"))
                .replace("{free_slots_of_cancelled}", &free_slots("cancelled"))
                .replace(
                    "{events_of_taken}",
                    &events("taken", "'started'", "NULL::jsonb"),
                )
                .replace(
                    "{events_of_done}",
                    &events("done", FINISH_KIND, "NULL::jsonb"),
                )
                .replace(
                    "{events_of_noted}",
                    &events("noted", "'progress'", "progress"),
                )
                .replace(
                    "{events_of_released}",
                    &events("released", "'released'", "NULL::jsonb"),
                )
                .replace(
                    "{events_of_recovered}",
                    &events("recovered", RECOVER_KIND, "NULL::jsonb"),
                )
                .replace(
                    "{events_of_cancelled}",
                    &events("cancelled", "'cancelled'", "NULL::jsonb"),
                )
                .replace("{keep_errors}", KEEP_ERRORS)
                .replace("{columns}", COLUMNS)
                .replace("{schema}", &schema)
                .replace("{channel}", &channel)
                .replace("{lock_prefix}", &lock_prefix)
        };
        let fill_arc = |text: &str| -> Arc<str> { fill(text).into() };
        Sql {
            enqueue: fill_arc(include_str!("sql/enqueue.sql")),
            reserve: fill_arc(include_str!("sql/reserve.sql")),
            finish: fill_arc(include_str!("sql/finish.sql")),
            heartbeat: fill_arc(include_str!("sql/heartbeat.sql")),
            progress: fill_arc(include_str!("sql/progress.sql")),
            release: fill_arc(include_str!("sql/release.sql")),
            recover: fill_arc(include_str!("sql/recover.sql")),
            cancel: fill_arc(include_str!("sql/cancel.sql")),
            retry: fill_arc(include_str!("sql/retry.sql")),
            counts: fill_arc(include_str!("sql/counts.sql")),
            queues: fill_arc(include_str!("sql/queues.sql")),
            pause: fill_arc(include_str!("sql/pause.sql")),
            resume: fill_arc(include_str!("sql/resume.sql")),
            get: fill_arc(include_str!("sql/get.sql")),
            list: fill_arc(include_str!("sql/list.sql")),
            purge: fill_arc(include_str!("sql/purge.sql")),
            prune: fill_arc(include_str!("sql/prune.sql")),
            unique_lock: fill_arc(include_str!("sql/unique_lock.sql")),
            unique_holders: fill_arc(include_str!("sql/unique_holders.sql")),
            unhold: fill_arc(include_str!("sql/unhold.sql")),
            queue_slots: fill_arc(include_str!("sql/queue_slots.sql")),
            queue_rates: fill_arc(include_str!("sql/queue_rates.sql")),
            last_run_load: fill_arc(include_str!("sql/last_run_load.sql")),
            last_run_save: fill_arc(include_str!("sql/last_run_save.sql")),
            find: fill_arc(
                &include_str!("sql/find.sql").replace("{name_filter}", "$2::text IS NULL"),
            ),
            find_by_name: fill_arc(
                &include_str!("sql/find.sql").replace("{name_filter}", "j.name = $2::text"),
            ),
            delete: fill_arc(include_str!("sql/delete.sql")),
            purge_status: fill_arc(include_str!("sql/purge_status.sql")),
            throughput: fill_arc(include_str!("sql/throughput.sql")),
            report_worker: fill_arc(include_str!("sql/report_worker.sql")),
            remove_worker: fill_arc("DELETE FROM {schema}.workers WHERE id = $1"),
            workers: fill_arc(include_str!("sql/workers.sql")),
            workflow: fill_arc(include_str!("sql/workflow.sql")),
            dependency_results: fill_arc(include_str!("sql/dependency_results.sql")),
        }
    }
}

/// A migration's SQL for `schema` (and its channel, `<schema>_jobs`, for
/// the triggers that notify).
pub(super) fn migration(text: &str, schema: &str) -> String {
    text.replace("{schema}", &ident(schema))
        .replace("{channel}", &literal(&format!("{schema}_jobs")))
}

/// A query of [`Sql`], for `sqlx::query` (the text is ours: the schema and
/// channel in it were checked and quoted).
pub(super) fn safe(text: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(text.clone())
}
