//! [`ChildProcess`]: the running test binary started again in "child"
//! mode, for tests that need several worker processes.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

/// The current test binary, run again with only the test `test_name`
/// (which acts as a child when it finds its environment variables set).
/// The child announces itself by printing `READY`; [`spawn`](Self::spawn)
/// returns once it has. Killed when dropped.
pub struct ChildProcess {
    child: Child,
    /// Its output, until handed to [`drain_output`](Self::drain_output).
    lines: Option<Lines<BufReader<ChildStdout>>>,
}

impl ChildProcess {
    /// Starts `test_name` of this test binary with `env` set, and waits for
    /// its `READY` line.
    pub fn spawn(test_name: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn the child process");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut process = ChildProcess {
            child,
            lines: Some(lines),
        };
        process.line_with("READY");
        process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of output containing `word`, from `word` on (libtest
    /// may print its own text before it on the same line). Panics if the
    /// child exits first.
    pub fn line_with(&mut self, word: &str) -> String {
        let lines = self.lines.as_mut().expect("output not drained");
        for line in lines {
            let line = line.expect("the child's output");
            if let Some(at) = line.find(word) {
                return line[at..].to_owned();
            }
        }
        panic!("the child process exited without printing {word}");
    }

    /// Keeps reading the child's output in the background, so that it never
    /// blocks on a full pipe.
    pub fn drain_output(&mut self) {
        if let Some(lines) = self.lines.take() {
            std::thread::spawn(move || for _ in lines {});
        }
    }

    /// Sends Ctrl-C (SIGINT): the child stops gracefully. Returns without
    /// waiting; see [`wait`](Self::wait).
    pub fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {}", self.pid());
    }

    /// Ctrl-C, then waits for the child to exit: a graceful stop.
    pub fn stop(mut self) -> ExitStatus {
        self.interrupt();
        self.wait()
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the child")
    }

    /// SIGKILL: the child dies at once, mid-job; waits for it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill the child");
        self.child.wait().expect("wait for the child");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side of a worker process: runs `worker`, announces `READY`
/// (what [`ChildProcess::spawn`] waits for), and stops it gracefully on
/// Ctrl-C (SIGINT, [`ChildProcess::interrupt`]), checking that its run
/// ended `Ok`.
pub async fn serve_until_interrupted(worker: jobs::BackgroundJobWorker) {
    let running = tokio::spawn(worker.clone().run_owned());
    println!("READY {}", std::process::id());
    tokio::signal::ctrl_c().await.unwrap();
    worker.stop().await;
    running.await.unwrap().unwrap();
}
