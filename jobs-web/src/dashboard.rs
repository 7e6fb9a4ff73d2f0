//! [`Dashboard`]: which queue to show, and how the dashboard guards it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use jobs::{AnyQueue, JobQueue};

/// The environment variable [`Dashboard::basic_auth_from_env`] reads the
/// user name from.
pub const USER_VAR: &str = "JOBS_WEB_USER";
/// The environment variable [`Dashboard::basic_auth_from_env`] reads the
/// password from.
pub const PASSWORD_VAR: &str = "JOBS_WEB_PASSWORD";

/// What can go wrong setting a dashboard up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Only one of `JOBS_WEB_USER` and `JOBS_WEB_PASSWORD` is set.
    #[error("{set} is set but {unset} is not: set both to require a password, or neither")]
    HalfCredentials {
        /// The variable that is set.
        set: &'static str,
        /// The one missing.
        unset: &'static str,
    },
    /// A credential variable is set but empty, or not valid Unicode.
    #[error("{0} is set but empty or not valid UTF-8")]
    BadCredential(&'static str),
}

/// The user name and password every request must present.
#[derive(Clone)]
pub(crate) struct Credentials {
    /// `user:password`, as a browser joins them before encoding.
    pub(crate) joined: Arc<str>,
}

/// A dashboard over one queue: build it, then mount its
/// [`router`](Dashboard::router) in your axum app or [`serve`](crate::serve)
/// it.
///
/// ```
/// use jobs::MemoryJobQueue;
/// use jobs_web::Dashboard;
///
/// let queue = MemoryJobQueue::new();
/// let app: axum::Router = axum::Router::new().nest(
///     "/admin/jobs",
///     Dashboard::new(queue).title("Shop jobs").read_only(true).router(),
/// );
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) queue: AnyQueue,
    pub(crate) read_only: bool,
    pub(crate) auth: Option<Credentials>,
    pub(crate) title: Arc<str>,
    /// The per-dashboard secret every form carries and the CSRF cookie
    /// holds (hex).
    pub(crate) csrf: Arc<str>,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the password nor the form token.
        f.debug_struct("Dashboard")
            .field("backend", &self.queue.backend())
            .field("read_only", &self.read_only)
            .field("basic_auth", &self.auth.is_some())
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `queue`: any backend's queue, or an
    /// [`AnyQueue`] (used as it is). Actions are allowed, no password is
    /// asked: put your own auth in front, or see
    /// [`basic_auth`](Self::basic_auth) and [`read_only`](Self::read_only).
    ///
    /// # Panics
    ///
    /// If the operating system cannot give random bytes for the form token.
    pub fn new<Q: JobQueue>(queue: Q) -> Self {
        let queue = match (&queue as &dyn Any).downcast_ref::<AnyQueue>() {
            Some(any) => any.clone(),
            None => AnyQueue::new(queue),
        };
        Dashboard {
            queue,
            read_only: false,
            auth: None,
            title: Arc::from("Jobs"),
            csrf: Arc::from(random_token()),
        }
    }

    /// With `true`, the dashboard shows everything but changes nothing:
    /// no action buttons, and every `POST` is refused with 403.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Every request must carry HTTP basic credentials `user` and
    /// `password`; others get 401 and a `WWW-Authenticate` challenge.
    /// Basic auth sends the password in the clear: serve over TLS (or on
    /// loopback) when you use it.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let joined = format!("{}:{}", user.as_ref(), password.as_ref());
        self.auth = Some(Credentials {
            joined: Arc::from(joined),
        });
        self
    }

    /// [`basic_auth`](Self::basic_auth) with the credentials in the
    /// environment variables `JOBS_WEB_USER` and `JOBS_WEB_PASSWORD`; with
    /// neither set, no password is asked. One without the other, or one set
    /// but empty, is an error.
    ///
    /// ```
    /// # fn main() -> Result<(), jobs_web::Error> {
    /// let dashboard = jobs_web::Dashboard::new(jobs::MemoryJobQueue::new()).basic_auth_from_env()?;
    /// # drop(dashboard); Ok(()) }
    /// ```
    pub fn basic_auth_from_env(self) -> Result<Self, Error> {
        self.basic_auth_from(|var| std::env::var(var))
    }

    /// [`basic_auth_from_env`](Self::basic_auth_from_env) reading variables
    /// with `var`.
    fn basic_auth_from(
        self,
        var: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, Error> {
        let read = |name: &'static str| match var(name) {
            Ok(value) if value.is_empty() => Err(Error::BadCredential(name)),
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::BadCredential(name)),
        };
        match (read(USER_VAR)?, read(PASSWORD_VAR)?) {
            (Some(user), Some(password)) => Ok(self.basic_auth(user, password)),
            (None, None) => Ok(self),
            (Some(_), None) => Err(Error::HalfCredentials {
                set: USER_VAR,
                unset: PASSWORD_VAR,
            }),
            (None, Some(_)) => Err(Error::HalfCredentials {
                set: PASSWORD_VAR,
                unset: USER_VAR,
            }),
        }
    }

    /// The name shown in the header and the window title (default
    /// `"Jobs"`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Arc::from(title.into());
        self
    }

    /// The dashboard as an axum [`Router`](axum::Router), its state
    /// applied: `.nest("/admin/jobs", dashboard.router())` it into your
    /// app, `.merge` it, or serve it as it is.
    pub fn router(self) -> axum::Router {
        crate::app::router(self)
    }

    /// The queue shown.
    pub fn queue(&self) -> &AnyQueue {
        &self.queue
    }

    /// Whether the dashboard refuses every action.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// 32 random bytes from the operating system, in hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_dashboard() {
        let a = Dashboard::new(jobs::MemoryJobQueue::new());
        let b = Dashboard::new(jobs::MemoryJobQueue::new());
        assert_eq!(a.csrf.len(), 64);
        assert_ne!(a.csrf, b.csrf);
    }

    #[test]
    fn an_any_queue_is_not_wrapped_again() {
        let any = AnyQueue::new(jobs::MemoryJobQueue::new());
        assert_eq!(Dashboard::new(any).queue().backend(), "memory");
    }

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<String, std::env::VarError> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .ok_or(std::env::VarError::NotPresent)
        }
    }

    #[test]
    fn credentials_from_the_environment_come_in_pairs() {
        let d = || Dashboard::new(jobs::MemoryJobQueue::new());
        let both = d()
            .basic_auth_from(vars(&[(USER_VAR, "ops"), (PASSWORD_VAR, "s3cret")]))
            .unwrap();
        assert_eq!(both.auth.unwrap().joined.as_ref(), "ops:s3cret");
        assert!(d().basic_auth_from(vars(&[])).unwrap().auth.is_none());
        let half = d().basic_auth_from(vars(&[(USER_VAR, "ops")])).unwrap_err();
        assert_eq!(
            half,
            Error::HalfCredentials {
                set: USER_VAR,
                unset: PASSWORD_VAR
            }
        );
        assert!(
            half.to_string().contains("JOBS_WEB_PASSWORD is not"),
            "{half}"
        );
        let empty = d()
            .basic_auth_from(vars(&[(USER_VAR, "ops"), (PASSWORD_VAR, "")]))
            .unwrap_err();
        assert_eq!(empty, Error::BadCredential(PASSWORD_VAR));
    }

    #[test]
    fn debug_hides_secrets() {
        let d = Dashboard::new(jobs::MemoryJobQueue::new()).basic_auth("u", "hunter2");
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(&*d.csrf),
            "{shown}"
        );
    }
}
