//! Test hooks that stop a debug build dead at a named point of a durable operation.
//!
//! A crash test that SIGKILLs the host at a random moment almost never lands inside a
//! sub-millisecond window such as "the pairing is committed but the client has not
//! been answered". With `PUNKTFUNK_TEST_CRASH_AT=<point>` a debug build kills itself
//! (SIGKILL: no destructors, no flush, like a power cut for the process) exactly when
//! it reaches that point, so the interop test can check what survives each one.
//! Release builds never read the variable: the check compiles to nothing.

/// The environment variable that names the point to stop at.
pub const ENV: &str = "PUNKTFUNK_TEST_CRASH_AT";

/// A point in pairing where a crash decides what the client was told and what was
/// stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The PIN matched (phase 4), the client is about to be stored: nothing is
    /// committed and the client has no answer yet.
    BeforeCommit,
    /// The client is committed to the store, and phase 4's `paired=1` is not yet sent.
    AfterCommit,
    /// The client has read phase 4's `paired=1`: its phase-5 request (`pairchallenge`
    /// over TLS) arrived, before it is answered.
    AfterReply,
}

impl CrashPoint {
    /// The value of [`ENV`] that selects this point.
    pub fn name(self) -> &'static str {
        match self {
            Self::BeforeCommit => "before-commit",
            Self::AfterCommit => "after-commit",
            Self::AfterReply => "after-reply",
        }
    }
}

/// Stops the process here when a debug build was asked to (see the module docs).
pub fn reached(point: CrashPoint) {
    #[cfg(debug_assertions)]
    if std::env::var(ENV).is_ok_and(|v| v == point.name()) {
        // stderr is unbuffered: the test reads this line to know the hook, not some
        // other failure, ended the process.
        eprintln!("{ENV}: stopping at {} (SIGKILL)", point.name());
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        // SIGKILL cannot be caught; should it somehow return, still die without clean-up.
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_the_interop_test_passes() {
        let names: Vec<_> = [
            CrashPoint::BeforeCommit,
            CrashPoint::AfterCommit,
            CrashPoint::AfterReply,
        ]
        .map(CrashPoint::name)
        .into();
        assert_eq!(names, ["before-commit", "after-commit", "after-reply"]);
    }

    #[test]
    fn an_unselected_point_returns() {
        // The test process never sets ENV to a point name, so this must come back.
        if std::env::var_os(ENV).is_none() {
            reached(CrashPoint::AfterCommit);
        }
    }
}
