//! [`Registry`]: every `#[job]` function of the program, and the dispatcher
//! that routes jobs to them by name (and the rest to a fallback processor).
//!
//! The registration records `#[job]` generates ([`JobRegistration`],
//! [`DataNeed`], [`HandlerFn`]) are defined here and reach generated code
//! through `jobs::__private`.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::__private::Flow;
use crate::context::{DataMap, JobContext};
use crate::error::{Error, Result};
use crate::job::{Job, JobPriority};
use crate::processor::{DynProcessor, JobProcessor};
use crate::result::{JobError, JobResult};
use crate::schedule::{Schedule, ScheduleSpec};
use crate::scheduler::task::PeriodicTask;

/// The generated entry point of one `#[job]` function: deserialises the
/// arguments, injects context and shared state, calls the function and
/// turns its return into a [`JobResult`]. For generated code, which names
/// it as `jobs::__private::HandlerFn`; not exported from the crate root.
pub type HandlerFn = for<'a> fn(&'a Job, &'a JobContext) -> BoxFuture<'a, JobResult>;

/// A shared-state type a handler takes as `Data<T>`. For generated code
/// (`jobs::__private::DataNeed`); not exported from the crate root.
#[derive(Clone, Copy)]
pub struct DataNeed {
    /// `TypeId::of::<T>`.
    pub type_id: fn() -> TypeId,
    /// `std::any::type_name::<T>`.
    pub type_name: fn() -> &'static str,
}

/// What one `#[job]` function registers, built as a constant by the macro
/// and collected with `inventory`. Generated code names it as
/// `jobs::__private::JobRegistration`; it is not exported from the crate
/// root. Users meet it through `NAME::registration()` and [`Registry::get`],
/// without naming the type.
pub struct JobRegistration {
    /// The job's name (`name = ".."`, or the function's name).
    pub name: &'static str,
    /// Its default priority.
    pub priority: JobPriority,
    /// Its retries, if the attribute set them.
    pub max_retries: Option<u32>,
    /// Its timeout, if the attribute set one.
    pub timeout: Option<Duration>,
    /// Its named queue (`queue = ".."`), if the attribute set one.
    pub queue: Option<&'static str>,
    /// Its limits and uniqueness (`concurrency`, `rate_limit`, `key`,
    /// `unique`), applied to every job [`new_job`](Self::new_job) makes.
    pub flow: Flow,
    /// A periodic schedule, if the attribute declared one.
    pub schedule: Option<ScheduleSpec>,
    /// The shared-state types it takes.
    pub data: &'static [DataNeed],
    /// The generated entry point.
    pub handler: HandlerFn,
    /// The Rust path of the function.
    pub function: &'static str,
    /// Where it is defined.
    pub file: &'static str,
    /// The line it is defined on.
    pub line: u32,
}

impl JobRegistration {
    /// `file:line` of the definition.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// A job for this handler with the attribute's defaults applied: the
    /// ones `job(..)` makes, and a periodic job's template.
    pub fn new_job(&self, args: serde_json::Value) -> Job {
        let mut job = Job::new(self.name, args).priority(self.priority);
        if let Some(retries) = self.max_retries {
            job = job.max_retries(retries);
        }
        if let Some(timeout) = self.timeout {
            job = job.timeout(timeout);
        }
        if let Some(queue) = self.queue {
            job = job.queue(queue);
        }
        self.flow.apply(job)
    }
}

impl fmt::Debug for JobRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRegistration")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .field("flow", &self.flow)
            .field("schedule", &self.schedule)
            .field("function", &self.function)
            .field("location", &self.location())
            .finish()
    }
}

inventory::collect!(JobRegistration);

/// The typed arguments of one `#[job]` function: its generated `Args`,
/// tied to the job's name, so that code holding a [`Job`] can decode it as
/// the handler would ([`jobs::testing::enqueued`](crate::testing::enqueued)
/// and the `assert_enqueued!` family use it).
///
/// `#[job]` implements it on every `Args` it generates; there is no reason
/// to implement it by hand.
///
/// ```rust,standalone_crate
/// use jobs::prelude::*;
/// use jobs::JobArgs;
///
/// #[job(name = "welcome")]
/// async fn send_welcome(user_id: u64) {}
///
/// fn main() {
///     assert_eq!(<send_welcome::Args as JobArgs>::NAME, "welcome");
/// }
/// ```
pub trait JobArgs: serde::Serialize + serde::de::DeserializeOwned {
    /// The job's name (`Job::name` of the jobs these arguments belong to).
    const NAME: &'static str;
}

/// Every `#[job]` function linked into the program, by name: the generated
/// dispatcher. It is a [`JobProcessor`]: a job is routed by `job.name`, its
/// `args` deserialised into the function's parameters, and the function's
/// return turned into a [`JobResult`]. A name no handler has fails the job
/// permanently with `Unknown job type: NAME` — unless a fallback processor
/// is set with [`Registry::fallback`], which then gets the job.
///
/// A fallback is a whole processor to the worker: its
/// [`startup`](JobProcessor::startup) and
/// [`shutdown`](JobProcessor::shutdown) are called, its
/// [`check_data`](JobProcessor::check_data) is part of
/// [`Registry::check_data`], and its
/// [`periodic_tasks`](JobProcessor::periodic_tasks) are part of
/// [`Registry::periodic_tasks`].
///
/// A worker built without an explicit processor uses
/// [`Registry::global`].
#[derive(Clone)]
pub struct Registry {
    handlers: Arc<foldhash::HashMap<&'static str, &'static JobRegistration>>,
    fallback: Option<Arc<dyn DynProcessor>>,
}

impl Registry {
    /// Collects every registered `#[job]` function. Two functions with one
    /// name are an error naming both definitions.
    pub fn new() -> Result<Self> {
        Self::from_registrations(inventory::iter::<JobRegistration>())
    }

    /// The registry of every `#[job]` function, collected once per process.
    pub fn global() -> Result<Self> {
        static GLOBAL: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Registry::new().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Registry)
    }

    /// A registry of the given registrations only (for tests, or to run a
    /// subset of the program's jobs).
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = &'static JobRegistration>,
    ) -> Result<Self> {
        let mut handlers: foldhash::HashMap<&'static str, &'static JobRegistration> =
            foldhash::HashMap::default();
        let mut duplicates: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for registration in registrations {
            if let Some(first) = handlers.insert(registration.name, registration) {
                duplicates
                    .entry(registration.name)
                    .or_insert_with(|| vec![describe(first)])
                    .push(describe(registration));
            }
        }
        if duplicates.is_empty() {
            return Ok(Registry {
                handlers: Arc::new(handlers),
                fallback: None,
            });
        }
        let message = duplicates
            .iter()
            .map(|(name, places)| {
                format!(
                    "job name `{name}` is registered more than once: {}",
                    places.join(" and ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::Registry(message))
    }

    /// An empty registry (every job goes to the fallback, if any).
    pub fn empty() -> Self {
        Registry {
            handlers: Arc::default(),
            fallback: None,
        }
    }

    /// Sends jobs whose name no `#[job]` function has to `processor`, and
    /// makes its data needs and periodic tasks the registry's too (see
    /// [`check_data`](Registry::check_data) and
    /// [`periodic_tasks`](Registry::periodic_tasks)). Setting one again
    /// replaces the previous one.
    pub fn fallback(mut self, processor: impl JobProcessor) -> Self {
        self.fallback = Some(Arc::new(processor));
        self
    }

    /// The registration of a name.
    pub fn get(&self, name: &str) -> Option<&'static JobRegistration> {
        self.handlers.get(name).copied()
    }

    /// All registrations, by name.
    pub fn registrations(&self) -> impl Iterator<Item = &'static JobRegistration> + '_ {
        let mut all: Vec<_> = self.handlers.values().copied().collect();
        all.sort_by_key(|r| r.name);
        all.into_iter()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.registrations().map(|r| r.name).collect()
    }

    /// How many handlers there are.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Checks that every shared-state type a handler takes is in `data`,
    /// and that the [fallback](Registry::fallback) processor's own
    /// [`check_data`](JobProcessor::check_data) passes. The error names
    /// each missing type and the jobs that need it, followed by the
    /// fallback's error; a failing fallback alone gives its error as it is.
    pub fn check_data(&self, data: &DataMap) -> Result<()> {
        let own = self.check_handlers_data(data);
        let fallback = match &self.fallback {
            Some(fallback) => fallback.check_data(data),
            None => Ok(()),
        };
        match (own, fallback) {
            (Ok(()), fallback) => fallback,
            (Err(own), Ok(())) => Err(own),
            (Err(own), Err(fallback)) => Err(Error::MissingData(format!(
                "{own}; and the fallback processor: {fallback}"
            ))),
        }
    }

    /// The `Data<T>` parameters of the handlers that `data` lacks.
    fn check_handlers_data(&self, data: &DataMap) -> Result<()> {
        let mut missing: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
        for registration in self.registrations() {
            for need in registration.data {
                if !data.contains((need.type_id)()) {
                    missing
                        .entry((need.type_name)())
                        .or_default()
                        .push(registration.name);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let list = missing
            .iter()
            .map(|(ty, jobs)| format!("`{ty}` (needed by {})", quoted(jobs)))
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::MissingData(format!(
            "shared state not registered on the worker: {list}; add it with `.data(value)` on the worker builder"
        )))
    }

    /// A [`PeriodicTask`] for every `#[job]` function that declares a
    /// schedule (`cron = ".."` with an optional `timezone = ".."`, or
    /// `every = ".."`), named after the job, enqueueing
    /// the job with the attribute's defaults and no arguments, followed by the
    /// [fallback](Registry::fallback) processor's own
    /// [`periodic_tasks`](JobProcessor::periodic_tasks). A worker running
    /// this registry adds them to its scheduler.
    ///
    /// A schedule that does not parse is an error naming the job and where
    /// it is defined; so is a fallback task named like a `#[job]` function
    /// that declares a schedule (task names are unique in a scheduler). A
    /// failing fallback alone gives its error as it is; with errors of the
    /// registry's own, its error is appended to them.
    pub fn periodic_tasks(&self) -> Result<Vec<PeriodicTask>> {
        let mut tasks = Vec::new();
        let mut errors = Vec::new();
        for registration in self.registrations() {
            let Some(spec) = &registration.schedule else {
                continue;
            };
            match Schedule::from_spec(spec) {
                Ok(schedule) => tasks.push(PeriodicTask::new(
                    registration.name,
                    schedule,
                    registration.new_job(serde_json::Value::Null),
                )),
                Err(e) => errors.push(format!(
                    "the schedule of job `{}` ({}) is invalid: {e}",
                    registration.name,
                    describe(registration)
                )),
            }
        }
        let fallback = match &self.fallback {
            Some(fallback) => fallback.periodic_tasks(),
            None => Ok(Vec::new()),
        };
        let fallback_error = match fallback {
            Ok(theirs) => {
                for task in theirs {
                    match self.get(&task.name).filter(|r| r.schedule.is_some()) {
                        Some(registration) => errors.push(format!(
                            "the fallback processor declares a periodic task `{}`, but {} already declares a schedule of that name",
                            task.name,
                            describe(registration)
                        )),
                        None => tasks.push(task),
                    }
                }
                None
            }
            Err(e) => Some(e),
        };
        match (errors.is_empty(), fallback_error) {
            (true, None) => Ok(tasks),
            (true, Some(fallback)) => Err(fallback),
            (false, None) => Err(Error::Registry(errors.join("; "))),
            (false, Some(fallback)) => Err(Error::Registry(format!(
                "{}; and the fallback processor: {fallback}",
                errors.join("; ")
            ))),
        }
    }

    async fn dispatch(&self, job: &Job, cx: &JobContext) -> JobResult {
        match self.handlers.get(&*job.name) {
            Some(registration) => (registration.handler)(job, cx).await,
            None => match &self.fallback {
                Some(fallback) => fallback.process(job, cx).await,
                None => unknown_job(&job.name),
            },
        }
    }
}

/// The result for a job whose name no handler has.
///
/// "Unknown job type: NAME", capitalised unlike the crate's other messages,
/// on purpose: it is the seed guide's exact text, DESIGN.md names it, and
/// the tests of the seed's scenario check it (as does the testkit's
/// `Probe`, which mirrors it). Keep it as it is.
pub(crate) fn unknown_job(name: &str) -> JobResult {
    JobResult::failure(
        JobError::permanent(format!("Unknown job type: {name}")).with_type("UnknownJob"),
    )
}

fn describe(registration: &JobRegistration) -> String {
    format!("`{}` at {}", registration.function, registration.location())
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("jobs", &self.names())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl JobProcessor for Registry {
    async fn process(&self, job: &Job) -> JobResult {
        self.dispatch(job, &JobContext::detached(job)).await
    }

    async fn process_with(&self, job: &Job, cx: &JobContext) -> JobResult {
        self.dispatch(job, cx).await
    }

    async fn startup(&self) -> std::result::Result<(), JobError> {
        match &self.fallback {
            Some(fallback) => fallback.startup().await,
            None => Ok(()),
        }
    }

    async fn shutdown(&self) {
        if let Some(fallback) = &self.fallback {
            fallback.shutdown().await;
        }
    }

    fn check_data(&self, data: &DataMap) -> Result<()> {
        Registry::check_data(self, data)
    }

    fn periodic_tasks(&self) -> Result<Vec<PeriodicTask>> {
        Registry::periodic_tasks(self)
    }
}
