//! The SQLite store: paired clients, apps, host settings. (Being written.)
