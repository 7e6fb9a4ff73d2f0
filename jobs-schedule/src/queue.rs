//! Queue names (`"mailers"`, `"reports.daily"`): what `Job::queue` and the
//! `#[job(queue = "..")]` attribute accept.

use crate::error::{Error, ErrorKind};

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = 128;

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME`] bytes of ASCII letters,
/// digits, `_`, `-`, `.` and `:`.
///
/// ```
/// assert!(jobs_schedule::check_queue_name("mailers").is_ok());
/// assert!(jobs_schedule::check_queue_name("reports:daily-1.v2").is_ok());
/// assert_eq!(
///     jobs_schedule::check_queue_name("").unwrap_err().to_string(),
///     "invalid queue name: it is empty"
/// );
/// assert_eq!(
///     jobs_schedule::check_queue_name("mail ers").unwrap_err().to_string(),
///     "invalid queue name `mail ers`: it holds ' '; use ASCII letters, digits, `_`, `-`, `.` and `:`"
/// );
/// ```
pub fn check_queue_name(name: &str) -> Result<(), Error> {
    let err = |message: String| Err(Error::new(ErrorKind::QueueName, name, message));
    if name.is_empty() {
        return err("it is empty".into());
    }
    if name.len() > MAX_QUEUE_NAME {
        return err(format!(
            "it is {} bytes long; the most is {MAX_QUEUE_NAME}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return err(format!(
            "it holds {bad:?}; use ASCII letters, digits, `_`, `-`, `.` and `:`"
        ));
    }
    Ok(())
}

/// The name as an error message shows it: a long one cut after 32
/// characters.
pub(crate) fn shown(name: &str) -> String {
    match name.char_indices().nth(32) {
        Some((i, _)) => format!("{}..", &name[..i]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_queue_name("default").is_ok());
        assert!(check_queue_name(&"q".repeat(MAX_QUEUE_NAME)).is_ok());
        let long = check_queue_name(&"q".repeat(MAX_QUEUE_NAME + 1)).unwrap_err();
        assert_eq!(
            long.to_string(),
            format!(
                "invalid queue name `{}..`: it is 129 bytes long; the most is 128",
                "q".repeat(32)
            )
        );
        assert_eq!(long.input().len(), MAX_QUEUE_NAME + 1);
        for bad in ["a b", "a{b}", "é", "a/b", "\n"] {
            assert!(check_queue_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
