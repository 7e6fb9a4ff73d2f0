//! The queries of the admin API on a table of 100,000 jobs: each is served
//! by an index, not a scan of the table; and how a group of merged reserve
//! calls shares its statement's jobs (`JOBS_DATABASE_URL`).

use sqlx::{AssertSqlSafe, Row};

use super::{PostgresJobQueue, sql};
use crate::job::JobStatus;
use crate::queue::{JobFilter, QueueAdmin};

/// The plan PostgreSQL makes for `text` with these arguments.
async fn plan(queue: &PostgresJobQueue, text: &str, codes: &[&str], name: Option<&str>) -> String {
    let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN {text}")))
        .bind(codes)
        .bind(name)
        .bind(None::<String>)
        .bind(51_i64)
        .bind(0_i64)
        .bind(51_i64)
        .fetch_all(queue.pool())
        .await
        .unwrap();
    let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_jobs_reads_an_index_not_the_table() {
    let Some(url) = jobs_testkit::database_url() else {
        return;
    };
    let queue = PostgresJobQueue::builder(&url)
        .schema(jobs_testkit::unique_name("pgplan"))
        .connect()
        .await
        .unwrap();
    let jobs = format!("{}.jobs", sql::ident(queue.schema()));
    // 100,000 jobs of 20 names, in every status, one a second back.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO {jobs} (id, queue, name, priority, status, max_retries, run_at, seq,
                             created_at, record)
         SELECT id, 'default', name, 2, status, 3, now(), g, created_at,
                jsonb_build_object('id', id, 'name', name, 'created_at', created_at)
         FROM (SELECT gen_random_uuid() AS id, 'name' || (g % 20) AS name, g,
                      (ARRAY['P', 'C', 'C', 'C', 'F', 'T', 'X'])[1 + g % 7]::\"char\" AS status,
                      now() - make_interval(secs => g) AS created_at
               FROM generate_series(1, 100000) AS g) AS made;
         ANALYZE {jobs};"
    )))
    .execute(queue.pool())
    .await
    .unwrap();
    let shared = queue.shared();
    let all = ["P", "R", "C", "F", "T", "X", "E"];
    for (what, text, codes, name, index) in [
        (
            "a status",
            &shared.sql.find,
            &["C"][..],
            None,
            "jobs_created",
        ),
        (
            "a status and a name",
            &shared.sql.find_by_name,
            &["C"][..],
            Some("name7"),
            "jobs_by_name",
        ),
        (
            "no filter",
            &shared.sql.find,
            &all[..],
            None,
            "jobs_created",
        ),
        (
            "a name",
            &shared.sql.find_by_name,
            &all[..],
            Some("name7"),
            "jobs_by_name",
        ),
    ] {
        let plan = plan(&queue, text, codes, name).await;
        assert!(plan.contains(index), "{what}: not by {index}:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{what}: a scan:\n{plan}");
    }
    let page = queue
        .find_jobs(&JobFilter::new().status(JobStatus::Failed).name("name4"))
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 50);
    assert!(page.more);
    let created: Vec<_> = page.jobs.iter().map(|j| j.created_at).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    queue.drop_schema().await.unwrap();
}

/// A group of reserve requests gets, per request in order, at most what it
/// asked for, in the order the jobs became ready; requests join a group only with
/// the same takes and lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_group_hands_out_the_jobs_in_order() {
    use std::time::Duration;

    use super::batch::ReserveRequest;
    use crate::Enqueue;
    use crate::flow::QueueLimits;
    use crate::job::Job;
    use crate::queue::Take;

    let Some(url) = jobs_testkit::database_url() else {
        return;
    };
    let queue = PostgresJobQueue::builder(&url)
        .schema(jobs_testkit::unique_name("pggroup"))
        .connect()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = Job::new("ok", serde_json::json!({ "n": n }));
        ids.push(queue.enqueue(job).await.unwrap());
    }
    let lease = Duration::from_secs(30);
    let take = |max| [Take::new(crate::DEFAULT_QUEUE, max)];
    let group: Vec<ReserveRequest> = [2, 2, 4]
        .into_iter()
        .map(|max| ReserveRequest::new(&take(max), lease).0)
        .collect();
    assert!(group[0].joins(&group[2]), "the maxima may differ");
    let limited = [Take::new(crate::DEFAULT_QUEUE, 2).limits(QueueLimits::new().concurrency(9))];
    assert!(!group[0].joins(&ReserveRequest::new(&limited, lease).0));
    assert!(!group[0].joins(&ReserveRequest::new(&take(2), lease * 2).0));
    let two = [Take::new(crate::DEFAULT_QUEUE, 2), Take::new("other", 2)];
    assert!(!group[0].joins(&ReserveRequest::new(&two, lease).0));

    let got = queue.shared().reserve_group(&group).await.unwrap();
    let per: Vec<Vec<_>> = got
        .iter()
        .map(|mine| mine.iter().map(|r| r.job.id).collect())
        .collect();
    assert_eq!(per, [ids[0..2].to_vec(), ids[2..4].to_vec(), vec![ids[4]]]);
    queue.drop_schema().await.unwrap();
}
