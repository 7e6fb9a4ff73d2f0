//! Workflows and batches: jobs that wait for other jobs.
//!
//! A [`Workflow`] is a set of named steps, each a job, where a step runs
//! only once every step it depends on completed, and reads their results
//! ([`JobContext::output`](crate::JobContext::output), typed by the
//! producing job's return type). A [`Batch`] is a set of jobs with
//! callbacks: `on_success` (every job completed) and `on_complete` (every
//! job finished, whatever the outcome).
//!
//! Both are stored as ordinary jobs that carry a [`StepInfo`]. The backend
//! resolves dependencies inside the same atomic step (script, transaction,
//! lock) that finishes a job: a crash between "A finished" and "B enqueued"
//! cannot strand B, and two workers finishing B's last two dependencies at
//! once release B once.
//!
//! ```
//! use jobs::prelude::*;
//! use jobs::workflow::{Step, Workflow};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Rows { source: String, count: u64 }
//!
//! #[job]
//! async fn sync_source(source: String) -> Result<Rows, JobError> {
//!     Ok(Rows { source, count: 3 })
//! }
//!
//! #[job]
//! async fn build_report(sources: Vec<Step<Rows>>, cx: JobContext) -> Result<u64, JobError> {
//!     let mut total = 0;
//!     for source in &sources {
//!         total += cx.output(source)?.count; // typed: a `Rows`
//!     }
//!     Ok(total)
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
//! let worker = BackgroundJobWorker::builder().build()?;
//! let mut report = Workflow::new("report");
//! let sales = report.step("sales", sync_source::step("sales".into()), &[]);
//! let crm = report.step("crm", sync_source::step("crm".into()), &[]);
//! let total = report.step("report", build_report::step(vec![sales, crm]), &["sales", "crm"]);
//! report.enqueue(&worker).await?;
//!
//! let running = tokio::spawn(worker.clone().run_owned());
//! let done = worker.wait_for(total.id()).await?;
//! assert_eq!(done.status, JobStatus::Completed);
//! assert_eq!(done.result.unwrap().result, Some(serde_json::json!(6)));
//! worker.stop().await;
//! running.await.unwrap()?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::queue::{Enqueue, QueueAdmin};
use crate::result::{JobError, JobResult};

/// The longest step name, in bytes.
pub const MAX_STEP_NAME: usize = 128;

/// The step name a [`Batch`]'s `on_success` callback has.
pub const ON_SUCCESS: &str = "on_success";

/// The step name a [`Batch`]'s `on_complete` callback has.
pub const ON_COMPLETE: &str = "on_complete";

/// The id of a workflow or batch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(Uuid);

impl WorkflowId {
    /// A new random id.
    pub fn new() -> Self {
        WorkflowId(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for WorkflowId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for WorkflowId {
    fn from(id: Uuid) -> Self {
        WorkflowId(id)
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkflowId({})", self.0.hyphenated())
    }
}

impl FromStr for WorkflowId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(WorkflowId)
            .map_err(|e| Error::InvalidArgument(format!("invalid workflow id `{s}`: {e}")))
    }
}

/// Whether a set of steps is a workflow or a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowKind {
    /// Steps with dependencies ([`Workflow`]).
    #[default]
    Workflow,
    /// Jobs with callbacks ([`Batch`]).
    Batch,
}

impl WorkflowKind {
    /// `"workflow"` or `"batch"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Workflow => "workflow",
            WorkflowKind::Batch => "batch",
        }
    }
}

/// A step that another step waits for: its job id and step name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    /// The job of the step waited for.
    pub job: JobId,
    /// Its step name.
    pub step: String,
}

/// What a job that is a step of a workflow or batch carries: [`Job::step`].
///
/// Backends read it when the job is pushed: the job waits (as `Pending`,
/// not ready) until every job of `depends_on` finished, and the jobs of
/// `blocks` — steps of the same workflow still waiting for their
/// dependencies — wait for this one too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepInfo {
    /// The workflow or batch.
    pub workflow: WorkflowId,
    /// The workflow's name.
    pub workflow_name: String,
    /// Workflow or batch.
    #[serde(default)]
    pub kind: WorkflowKind,
    /// This step's name, unique within the workflow.
    pub name: String,
    /// The steps this one waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Whether the step runs once its dependencies finished whatever their
    /// outcome (`true`), or is cancelled as soon as one of them ends other
    /// than `Completed` (`false`, the default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_always: bool,
    /// Steps, already stored and still waiting for their dependencies, that
    /// wait for this job too (read when the job is pushed: adding to an
    /// open batch, fanning out at run time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<JobId>,
}

impl StepInfo {
    /// Whether the job waits for other jobs when it is pushed.
    pub fn has_dependencies(&self) -> bool {
        !self.depends_on.is_empty()
    }
}

/// The result a step's dependency left, as its dependant reads it
/// ([`JobContext::results`](crate::JobContext::results)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DependencyResult {
    /// The dependency's job.
    pub job: JobId,
    /// Its step name.
    pub step: String,
    /// How it ended: `Completed`, or — for a step that runs always —
    /// `Failed`, `Cancelled` or `Expired`.
    pub status: JobStatus,
    /// Its last attempt's result (`None` for a job cancelled or expired
    /// before it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
}

impl DependencyResult {
    /// A dependency's result.
    pub fn new(job: JobId, step: impl Into<String>, status: JobStatus) -> Self {
        DependencyResult {
            job,
            step: step.into(),
            status,
            result: None,
        }
    }

    /// Sets the result.
    pub fn with_result(mut self, result: Option<JobResult>) -> Self {
        self.result = result;
        self
    }

    /// The dependency's output value (`Null` for none), if it completed.
    pub fn output(&self) -> Option<&Value> {
        if self.status != JobStatus::Completed {
            return None;
        }
        Some(
            self.result
                .as_ref()
                .and_then(|r| r.result.as_ref())
                .unwrap_or(&Value::Null),
        )
    }
}

/// How the backend resolves a dependency when the job it waits for
/// finished: what a backend implementation calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The dependant still waits for other jobs.
    Waiting,
    /// Its last dependency finished: it becomes ready.
    Ready,
    /// A dependency did not complete and it does not run always: it becomes
    /// `Cancelled`, and its own dependants are resolved in turn.
    Cancel,
}

impl Resolution {
    /// What happens to a dependant that waited for `remaining + 1` jobs
    /// when one of them ends with `status`.
    pub fn of(status: JobStatus, run_always: bool, remaining: u64) -> Self {
        if status != JobStatus::Completed && !run_always {
            Resolution::Cancel
        } else if remaining == 0 {
            Resolution::Ready
        } else {
            Resolution::Waiting
        }
    }
}

/// The error a step cancelled by its dependency carries as `last_error`.
pub fn cancelled_by(dependency: &str, status: JobStatus) -> String {
    format!("dependency `{dependency}` ended {status}")
}

/// A typed handle on a step: its job id and name, and the type of its
/// output. Made by [`Workflow::step`]; put it in a later step's arguments
/// and read the output there with
/// [`JobContext::output`](crate::JobContext::output).
///
/// Serialised as `{"job": "<id>", "step": "<name>"}`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Step<T> {
    job: JobId,
    step: String,
    #[serde(skip)]
    output: PhantomData<fn() -> T>,
}

impl<T> Step<T> {
    /// A handle on step `name`, job `job`.
    pub fn new(job: JobId, name: impl Into<String>) -> Self {
        Step {
            job,
            step: name.into(),
            output: PhantomData,
        }
    }

    /// The step's job id.
    pub fn id(&self) -> JobId {
        self.job
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.step
    }
}

impl<T> Clone for Step<T> {
    fn clone(&self) -> Self {
        Step::new(self.job, self.step.clone())
    }
}

impl<T> fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("job", &self.job)
            .field("step", &self.step)
            .finish()
    }
}

impl<T> PartialEq for Step<T> {
    fn eq(&self, other: &Self) -> bool {
        self.job == other.job && self.step == other.step
    }
}

impl<T> Eq for Step<T> {}

/// A job whose output type is known: what the `step(..)` function that
/// `#[job]` generates returns (`Output` is the function's success type).
/// Add it to a [`Workflow`] with [`Workflow::step`].
pub struct TypedJob<T> {
    job: Job,
    output: PhantomData<fn() -> T>,
}

impl<T> TypedJob<T> {
    /// Wraps a job said to produce a `T`.
    pub fn new(job: Job) -> Self {
        TypedJob {
            job,
            output: PhantomData,
        }
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Changes the job (its priority, queue, ..) and keeps the output type.
    pub fn map(self, f: impl FnOnce(Job) -> Job) -> Self {
        TypedJob::new(f(self.job))
    }

    /// The job, without its output type.
    pub fn into_job(self) -> Job {
        self.job
    }
}

impl<T> fmt::Debug for TypedJob<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedJob").field(&self.job).finish()
    }
}

/// Anything [`Workflow::step`] takes: a [`TypedJob`] (its output typed), or
/// a plain [`Job`] (its output a JSON [`Value`]).
pub trait IntoStep {
    /// The step's output type.
    type Output;
    /// The job.
    fn into_job(self) -> Job;
}

impl<T> IntoStep for TypedJob<T> {
    type Output = T;
    fn into_job(self) -> Job {
        self.job
    }
}

impl IntoStep for Job {
    type Output = Value;
    fn into_job(self) -> Job {
        self
    }
}

struct PlannedStep {
    name: String,
    job: Job,
    after: Vec<String>,
    run_always: bool,
}

/// Steps with dependencies, enqueued together (all or none).
///
/// Dependencies are named, and may name steps added later; [`enqueue`]
/// refuses a workflow with a cycle, a dependency on a step it does not
/// have, two steps of one name, or a job that cannot be a step (a unique or
/// recurring job). See the [module docs](self).
///
/// [`enqueue`]: Workflow::enqueue
pub struct Workflow {
    id: WorkflowId,
    name: String,
    kind: WorkflowKind,
    steps: Vec<PlannedStep>,
    /// For [`Workflow::extend`]: steps stored already (name → job id) and
    /// the stored steps the new ones block.
    existing: HashMap<String, JobId>,
    blocks: Vec<JobId>,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "steps",
                &self.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Workflow {
    /// An empty workflow named `name` (a label shown by tools).
    pub fn new(name: impl Into<String>) -> Self {
        Workflow {
            id: WorkflowId::new(),
            name: name.into(),
            kind: WorkflowKind::Workflow,
            steps: Vec::new(),
            existing: HashMap::new(),
            blocks: Vec::new(),
        }
    }

    /// New steps for a workflow already stored — fanning out at run time:
    /// a running step adds steps, which may depend on the stored steps
    /// (by name) and on each other, and which the stored steps named with
    /// [`before`](Self::before) wait for too. The stored steps named must
    /// still be waiting for their dependencies (a step waiting for the
    /// running one is), or the enqueue is an `Err` and stores nothing.
    pub async fn extend<Q: QueueAdmin + ?Sized>(queue: &Q, id: WorkflowId) -> Result<Self> {
        let status = queue
            .workflow(id)
            .await?
            .ok_or_else(|| Error::InvalidArgument(format!("no workflow {id}")))?;
        Ok(Workflow {
            id,
            name: status.name,
            kind: status.kind,
            steps: Vec::new(),
            existing: status
                .steps
                .into_iter()
                .map(|s| (s.name, s.job_id))
                .collect(),
            blocks: Vec::new(),
        })
    }

    /// The workflow's id.
    pub fn id(&self) -> WorkflowId {
        self.id
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds step `name`: `job`, run once every step named in `after`
    /// completed. Returns a typed handle on it, to pass to a later step.
    pub fn step<J: IntoStep>(&mut self, name: &str, job: J, after: &[&str]) -> Step<J::Output> {
        let id = self.add(name, job.into_job(), after, false);
        Step::new(id, name)
    }

    /// Adds step `name`, run once every step named in `after` finished,
    /// whatever their outcome (it reads each one's status in
    /// [`JobContext::results`](crate::JobContext::results)).
    pub fn step_always<J: IntoStep>(
        &mut self,
        name: &str,
        job: J,
        after: &[&str],
    ) -> Step<J::Output> {
        let id = self.add(name, job.into_job(), after, true);
        Step::new(id, name)
    }

    /// For a workflow being [extended](Self::extend): the stored step
    /// `name` also waits for every step added here.
    pub fn before(&mut self, name: &str) -> Result<&mut Self> {
        let id = self.existing.get(name).copied().ok_or_else(|| {
            Error::InvalidArgument(format!("workflow `{}` has no step `{name}`", self.name))
        })?;
        if !self.blocks.contains(&id) {
            self.blocks.push(id);
        }
        Ok(self)
    }

    fn add(&mut self, name: &str, job: Job, after: &[&str], run_always: bool) -> JobId {
        let id = job.id;
        self.steps.push(PlannedStep {
            name: name.to_owned(),
            job,
            after: after.iter().map(|s| (*s).to_owned()).collect(),
            run_always,
        });
        id
    }

    /// The steps' jobs, each carrying its [`StepInfo`], in an order where
    /// every step comes after the steps it depends on; or an `Err` that
    /// names what is wrong.
    pub fn build(self) -> Result<Vec<Job>> {
        let invalid = |m: String| Error::InvalidArgument(format!("workflow `{}`: {m}", self.name));
        if self.steps.is_empty() {
            return Err(invalid("it has no steps".into()));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.name.is_empty() || step.name.len() > MAX_STEP_NAME {
                return Err(invalid(format!(
                    "step names are 1 to {MAX_STEP_NAME} bytes, got `{}`",
                    step.name
                )));
            }
            if index.insert(&step.name, i).is_some() || self.existing.contains_key(&step.name) {
                return Err(invalid(format!("two steps are named `{}`", step.name)));
            }
            if step.job.unique.is_some() {
                return Err(invalid(format!(
                    "step `{}` is a unique job; a step cannot be (a conflict would leave its dependants waiting)",
                    step.name
                )));
            }
            if step.job.every.is_some() {
                return Err(invalid(format!(
                    "step `{}` is a recurring job; a step cannot be",
                    step.name
                )));
            }
            if step.job.step.is_some() {
                return Err(invalid(format!(
                    "step `{}`'s job is a step of another workflow already",
                    step.name
                )));
            }
            step.job.validate()?;
        }
        for step in &self.steps {
            for dep in &step.after {
                if !index.contains_key(dep.as_str()) && !self.existing.contains_key(dep) {
                    return Err(invalid(format!(
                        "step `{}` depends on `{dep}`, which is not a step of it",
                        step.name
                    )));
                }
                if dep == &step.name {
                    return Err(invalid(format!("step `{dep}` depends on itself")));
                }
            }
        }
        // Kahn's algorithm: the order, or the steps left on a cycle.
        let n = self.steps.len();
        let mut indegree = vec![0usize; n];
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, step) in self.steps.iter().enumerate() {
            for dep in &step.after {
                if let Some(&d) = index.get(dep.as_str()) {
                    indegree[i] += 1;
                    dependants[d].push(i);
                }
            }
        }
        let mut order: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut next = 0;
        while next < order.len() {
            let i = order[next];
            next += 1;
            for &d in &dependants[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    order.push(d);
                }
            }
        }
        if order.len() < n {
            let mut on_cycle: Vec<&str> = (0..n)
                .filter(|&i| indegree[i] > 0)
                .map(|i| self.steps[i].name.as_str())
                .collect();
            on_cycle.sort_unstable();
            return Err(invalid(format!(
                "its dependencies make a cycle through {}",
                on_cycle
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let ids: HashMap<String, JobId> = self
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.job.id))
            .chain(self.existing.iter().map(|(k, v)| (k.clone(), *v)))
            .collect();
        drop(index);
        let mut slots: Vec<Option<PlannedStep>> = self.steps.into_iter().map(Some).collect();
        let mut jobs = Vec::with_capacity(n);
        for i in order {
            let step = slots[i].take().expect("each step once");
            let depends_on = step
                .after
                .iter()
                .map(|d| Dependency {
                    job: ids[d],
                    step: d.clone(),
                })
                .collect();
            let mut job = step.job;
            job.step = Some(Arc::new(StepInfo {
                workflow: self.id,
                workflow_name: self.name.clone(),
                kind: self.kind,
                name: step.name,
                depends_on,
                run_always: step.run_always,
                blocks: self.blocks.clone(),
            }));
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// Checks the workflow ([`build`](Self::build)) and pushes its steps, all
    /// or none. Returns its id.
    pub async fn enqueue<Q: Enqueue + ?Sized>(self, queue: &Q) -> Result<WorkflowId> {
        let id = self.id;
        queue.enqueue_many(self.build()?).await?;
        Ok(id)
    }
}

/// Jobs enqueued as one (all or none), with callbacks once they all
/// finished: [`on_success`](Self::on_success) if every one completed,
/// [`on_complete`](Self::on_complete) whatever the outcome — each enqueued
/// exactly once. See [`BatchStatus`] for its counts,
/// [`QueueAdmin::cancel_workflow`] to cancel it, and [`Batch::add_to`] to
/// add jobs while it is open.
///
/// ```
/// use jobs::prelude::*;
/// use jobs::workflow::Batch;
/// use serde_json::json;
///
/// # #[tokio::main] async fn main() -> Result<(), jobs::Error> {
/// let queue = MemoryJobQueue::new();
/// let mut batch = Batch::new("import");
/// for row in 0..3 {
///     batch.add(Job::new("import_row", json!({ "row": row })));
/// }
/// batch.on_success(Job::new("notify", json!({})));
/// let id = batch.enqueue(&queue).await?;
/// let status = queue.workflow(id).await?.unwrap();
/// assert_eq!((status.total, status.pending), (4, 4));
/// # Ok(()) }
/// ```
pub struct Batch {
    id: WorkflowId,
    name: String,
    jobs: Vec<Job>,
    on_success: Option<Job>,
    on_complete: Option<Job>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

/// A batch's status: what [`QueueAdmin::workflow`] says of a batch.
pub type BatchStatus = WorkflowStatus;

impl Batch {
    /// An empty batch named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Batch {
            id: WorkflowId::new(),
            name: name.into(),
            jobs: Vec::new(),
            on_success: None,
            on_complete: None,
        }
    }

    /// The batch's id.
    pub fn id(&self) -> WorkflowId {
        self.id
    }

    /// Adds a job.
    pub fn add(&mut self, job: Job) -> &mut Self {
        self.jobs.push(job);
        self
    }

    /// The job enqueued once every job of the batch completed (it is
    /// `Cancelled` as soon as one fails for good or is cancelled).
    pub fn on_success(&mut self, job: Job) -> &mut Self {
        self.on_success = Some(job);
        self
    }

    /// The job enqueued once every job of the batch finished, whatever the
    /// outcome.
    pub fn on_complete(&mut self, job: Job) -> &mut Self {
        self.on_complete = Some(job);
        self
    }

    /// The batch's jobs and callbacks, each carrying its [`StepInfo`].
    pub fn build(self) -> Result<Vec<Job>> {
        let mut workflow = Workflow::new(self.name);
        workflow.id = self.id;
        workflow.kind = WorkflowKind::Batch;
        if self.jobs.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "batch `{}` has no jobs",
                workflow.name
            )));
        }
        let names: Vec<String> = self.jobs.iter().map(|j| j.id.to_string()).collect();
        for job in self.jobs {
            let name = job.id.to_string();
            workflow.add(&name, job, &[], false);
        }
        let after: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Some(job) = self.on_success {
            workflow.add(ON_SUCCESS, job, &after, false);
        }
        if let Some(job) = self.on_complete {
            workflow.add(ON_COMPLETE, job, &after, true);
        }
        workflow.build()
    }

    /// Pushes the batch, all or none. Returns its id.
    pub async fn enqueue<Q: Enqueue + ?Sized>(self, queue: &Q) -> Result<WorkflowId> {
        let id = self.id;
        queue.enqueue_many(self.build()?).await?;
        Ok(id)
    }

    /// Adds `jobs` to the stored batch `id` while it is open — while its
    /// callbacks still wait, as they do while any of its jobs runs (so a
    /// job of the batch can add to it, as Sidekiq's `batch.jobs { }`
    /// does). The callbacks then wait for the new jobs too. Returns their
    /// ids; `Err` (and nothing stored) if the batch is unknown or its
    /// callbacks already ran.
    pub async fn add_to<Q: Enqueue + QueueAdmin + ?Sized>(
        queue: &Q,
        id: WorkflowId,
        jobs: Vec<Job>,
    ) -> Result<Vec<JobId>> {
        let mut more = Workflow::extend(queue, id).await?;
        if more.kind != WorkflowKind::Batch {
            return Err(Error::InvalidArgument(format!(
                "{id} is a workflow, not a batch"
            )));
        }
        for callback in [ON_SUCCESS, ON_COMPLETE] {
            if more.existing.contains_key(callback) {
                more.before(callback)?;
            }
        }
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        for job in jobs {
            let name = job.id.to_string();
            more.add(&name, job, &[], false);
        }
        queue.enqueue_many(more.build()?).await?;
        Ok(ids)
    }
}

/// One step of a stored workflow, as [`WorkflowStatus::steps`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowStep {
    /// The step's name.
    pub name: String,
    /// Its job.
    pub job_id: JobId,
    /// The job's name (its handler).
    pub job_name: String,
    /// Its status.
    pub status: JobStatus,
    /// The steps it waits for (as enqueued).
    pub depends_on: Vec<Dependency>,
    /// How many of its dependencies have not finished yet (0 once it is
    /// ready, running or finished).
    pub waiting_on: u64,
}

/// A stored workflow or batch: its counts and its steps
/// ([`QueueAdmin::workflow`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowStatus {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    pub name: String,
    /// Workflow or batch.
    pub kind: WorkflowKind,
    /// How many jobs it has had (callbacks included).
    pub total: u64,
    /// Of those, how many have not finished.
    pub pending: u64,
    /// How many completed.
    pub completed: u64,
    /// How many failed for good (or expired).
    pub failed: u64,
    /// How many were cancelled (by a user, or because a dependency failed).
    pub cancelled: u64,
    /// Its steps whose jobs are still kept, in the order enqueued (finished
    /// jobs go with the queue's retention).
    pub steps: Vec<WorkflowStep>,
}

impl WorkflowStatus {
    /// A status with no steps listed; counts from `total` and the finished.
    pub fn new(id: WorkflowId, name: impl Into<String>, kind: WorkflowKind) -> Self {
        WorkflowStatus {
            id,
            name: name.into(),
            kind,
            total: 0,
            pending: 0,
            completed: 0,
            failed: 0,
            cancelled: 0,
            steps: Vec::new(),
        }
    }

    /// Whether every job of it finished.
    pub fn is_finished(&self) -> bool {
        self.pending == 0
    }

    /// Counts one finished job with `status` (`Completed`, `Failed`,
    /// `Expired` — counted as failed — or `Cancelled`).
    pub fn count_finished(&mut self, status: JobStatus) {
        match status {
            JobStatus::Completed => self.completed += 1,
            JobStatus::Failed | JobStatus::Expired => self.failed += 1,
            JobStatus::Cancelled => self.cancelled += 1,
            _ => return,
        }
        self.pending = self.pending.saturating_sub(1);
    }

    /// Takes back the count of a finished job with `status` that is
    /// waiting again (a retry).
    pub fn count_retried(&mut self, status: JobStatus) {
        let count = match status {
            JobStatus::Completed => &mut self.completed,
            JobStatus::Failed | JobStatus::Expired => &mut self.failed,
            JobStatus::Cancelled => &mut self.cancelled,
            _ => return,
        };
        *count = count.saturating_sub(1);
        self.pending += 1;
    }

    /// A step by name.
    pub fn step(&self, name: &str) -> Option<&WorkflowStep> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl WorkflowStep {
    /// A step of `job`, which must carry its [`StepInfo`].
    pub fn of(job: &Job, waiting_on: u64) -> Option<Self> {
        let step = job.step.as_ref()?;
        Some(WorkflowStep {
            name: step.name.clone(),
            job_id: job.id,
            job_name: job.name.to_string(),
            status: job.status,
            depends_on: step.depends_on.clone(),
            waiting_on,
        })
    }
}

/// Reads a dependency's output as `T`: what
/// [`JobContext::output`](crate::JobContext::output) does.
pub(crate) fn output_of<T: DeserializeOwned>(
    results: &[DependencyResult],
    step: &Step<T>,
) -> std::result::Result<T, JobError> {
    let found = results.iter().find(|r| r.job == step.job).ok_or_else(|| {
        JobError::permanent(format!(
            "step `{}` is not a dependency of this job (or its result was not loaded)",
            step.step
        ))
    })?;
    let value = found.output().ok_or_else(|| {
        JobError::permanent(format!(
            "dependency `{}` ended {} and has no output",
            step.step, found.status
        ))
    })?;
    T::deserialize(value).map_err(|e| {
        JobError::permanent(format!(
            "the output of dependency `{}` does not fit the expected type: {e}",
            step.step
        ))
    })
}

/// Dependency results by step name, for tools.
pub fn results_by_step(results: &[DependencyResult]) -> BTreeMap<&str, &DependencyResult> {
    results.iter().map(|r| (r.step.as_str(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str) -> Job {
        Job::new(name.to_owned(), json!({}))
    }

    #[test]
    fn build_orders_steps_after_their_dependencies() {
        let mut wf = Workflow::new("w");
        wf.step("d", job("d"), &["b", "c"]);
        wf.step("b", job("b"), &["a"]);
        wf.step("c", job("c"), &["a"]);
        wf.step("a", job("a"), &[]);
        let jobs = wf.build().unwrap();
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.step.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let d = jobs[3].step.as_ref().unwrap();
        assert_eq!(
            d.depends_on
                .iter()
                .map(|d| d.step.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(d.depends_on[0].job, jobs[1].id);
    }

    #[test]
    fn cycles_unknown_steps_and_twins_are_errors() {
        let mut wf = Workflow::new("w");
        wf.step("a", job("a"), &["c"]);
        wf.step("b", job("b"), &["a"]);
        wf.step("c", job("c"), &["b"]);
        wf.step("d", job("d"), &[]);
        let e = wf.build().unwrap_err().to_string();
        assert!(e.contains("cycle through `a`, `b`, `c`"), "{e}");

        let mut wf = Workflow::new("w");
        wf.step("a", job("a"), &["nope"]);
        let e = wf.build().unwrap_err().to_string();
        assert!(e.contains("depends on `nope`, which is not a step"), "{e}");

        let mut wf = Workflow::new("w");
        wf.step("a", job("a"), &[]);
        wf.step("a", job("a"), &[]);
        assert!(
            wf.build()
                .unwrap_err()
                .to_string()
                .contains("two steps are named `a`")
        );

        let mut wf = Workflow::new("w");
        wf.step("a", job("a"), &["a"]);
        assert!(
            wf.build()
                .unwrap_err()
                .to_string()
                .contains("depends on itself")
        );

        let mut wf = Workflow::new("w");
        wf.step(
            "a",
            job("a").unique_for(std::time::Duration::from_secs(1)),
            &[],
        );
        assert!(wf.build().unwrap_err().to_string().contains("unique"));

        assert!(Workflow::new("w").build().is_err());
        assert!(Batch::new("b").build().is_err());
    }

    #[test]
    fn a_batch_is_jobs_with_callbacks_after_all_of_them() {
        let mut batch = Batch::new("b");
        batch.add(job("x")).add(job("y"));
        batch.on_success(job("ok")).on_complete(job("done"));
        let jobs = batch.build().unwrap();
        assert_eq!(jobs.len(), 4);
        let ok = jobs[2].step.as_ref().unwrap();
        assert_eq!(ok.name, ON_SUCCESS);
        assert_eq!(ok.kind, WorkflowKind::Batch);
        assert!(!ok.run_always);
        assert_eq!(ok.depends_on.len(), 2);
        let done = jobs[3].step.as_ref().unwrap();
        assert!(done.run_always);
    }

    #[test]
    fn a_step_handle_round_trips_and_reads_typed_output() {
        let step: Step<u32> = Step::new(JobId::new(), "count");
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(json["step"], "count");
        let back: Step<u32> = serde_json::from_value(json).unwrap();
        assert_eq!(back, step);
        let results = vec![
            DependencyResult::new(step.id(), "count", JobStatus::Completed)
                .with_result(Some(JobResult::success(json!(7)))),
        ];
        assert_eq!(output_of(&results, &step).unwrap(), 7);
        let wrong: Step<String> = Step::new(step.id(), "count");
        assert!(
            output_of(&results, &wrong)
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
        let missing: Step<u32> = Step::new(JobId::new(), "other");
        assert!(output_of(&results, &missing).is_err());
        let failed = vec![DependencyResult::new(step.id(), "count", JobStatus::Failed)];
        assert!(
            output_of(&failed, &step)
                .unwrap_err()
                .to_string()
                .contains("ended failed")
        );
    }

    #[test]
    fn resolution_follows_the_outcome_and_the_policy() {
        assert_eq!(
            Resolution::of(JobStatus::Completed, false, 1),
            Resolution::Waiting
        );
        assert_eq!(
            Resolution::of(JobStatus::Completed, false, 0),
            Resolution::Ready
        );
        assert_eq!(
            Resolution::of(JobStatus::Failed, false, 3),
            Resolution::Cancel
        );
        assert_eq!(
            Resolution::of(JobStatus::Failed, true, 0),
            Resolution::Ready
        );
        assert_eq!(
            Resolution::of(JobStatus::Cancelled, true, 2),
            Resolution::Waiting
        );
    }
}
