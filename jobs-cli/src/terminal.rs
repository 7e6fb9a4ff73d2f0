//! Where the command writes and reads: [`Terminal`], the process's own
//! standard streams or buffers a test reads back.

use std::io::{self, BufRead, IsTerminal, Write};

/// The streams a command uses: results to `out`, errors and prompts to
/// `err`, confirmations read from `input`; and whether a person is there to
/// answer a prompt (`interactive`) and to see a progress bar.
///
/// ```
/// use jobs_cli::Terminal;
/// // A terminal that nobody answers: destructive commands need --yes.
/// let term = Terminal::new(Vec::new(), Vec::new(), std::io::empty());
/// assert!(!term.is_interactive());
/// ```
pub struct Terminal {
    pub(crate) out: Box<dyn Write>,
    pub(crate) err: Box<dyn Write>,
    input: Box<dyn BufRead>,
    interactive: bool,
    pub(crate) progress: bool,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("interactive", &self.interactive)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// The process's stdout, stderr and stdin. Prompts are possible when
    /// stdin is a terminal; progress bars are drawn when stderr is one.
    pub fn stdio() -> Self {
        Self {
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
            input: Box::new(io::stdin().lock()),
            interactive: io::stdin().is_terminal(),
            progress: io::stderr().is_terminal(),
        }
    }

    /// Streams of the caller's: not interactive (set it with
    /// [`interactive`](Self::interactive)), no progress bars.
    pub fn new(
        out: impl Write + 'static,
        err: impl Write + 'static,
        input: impl BufRead + 'static,
    ) -> Self {
        Self {
            out: Box::new(out),
            err: Box::new(err),
            input: Box::new(input),
            interactive: false,
            progress: false,
        }
    }

    /// Whether prompts are answered from `input`, as when it is a terminal.
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    /// Whether prompts can be answered.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Asks `question` on `err` with ` [y/N] ` and reads the answer: `true`
    /// for `y` or `yes` (any case), `false` for anything else or the end of
    /// the input.
    pub(crate) fn ask(&mut self, question: &str) -> io::Result<bool> {
        write!(self.err, "{question} [y/N] ")?;
        self.err.flush()?;
        let mut answer = String::new();
        self.input.read_line(&mut answer)?;
        let answer = answer.trim();
        Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
    }
}
