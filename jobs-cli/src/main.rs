//! `jobs`: see the crate docs of `jobs_cli` (or `jobs --help`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit here with clap's code 2; --help and --version with 0.
    let cli = jobs_cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return jobs_cli::Exit::Error.into();
        }
    };
    runtime.block_on(jobs_cli::run(cli)).into()
}
