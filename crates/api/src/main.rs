use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    raise_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(appeals_api::exit::OTHER);
        }
    };
    let outcome = runtime.block_on(appeals_api::run(appeals_api::config::Cli::parse()));
    // The server has finished its own shutdown; whatever task is still running
    // (a request abandoned at the deadline) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            let (code, message) = appeals_api::exit::report(&error);
            eprintln!("error: {message}");
            code
        }
    }
}

/// Every connection is a file descriptor, and the soft limit is often 1,024:
/// raise it to the hard limit, so that the server's own connection limits are
/// the ones that bind.
#[cfg(unix)]
fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(not(unix))]
fn raise_file_limit() {}

/// glibc's malloc gives threads that allocate at once arenas of their own, up to
/// eight per core, and memory freed in one arena is not reused by another. The
/// server's threads (the runtime's, and one per SQLite connection) then hold far
/// more memory than they use; two arenas keep the peak within bounds at the cost
/// of a little lock contention in malloc. Set before any thread is started.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable of the allocator; nothing else runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
