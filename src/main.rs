//! `cp-recon`: parses arguments, starts logging and the runtime, dispatches, and turns
//! the outcome into the exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use cp_recon::cli::{Cli, EXIT_FAILED, dispatch};

// mimalloc instead of the system allocator: the job allocates millions of small strings
// (ids, raw JSON), and glibc's free-list consolidation was a quarter of the matching
// core's time (BENCHMARKS.md). It builds with the C compiler cargo already needs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cp_recon::telemetry::init(cli.log_format, std::io::stderr) {
        eprintln!("cp-recon: cannot start logging: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cp-recon: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(dispatch(cli))
}
