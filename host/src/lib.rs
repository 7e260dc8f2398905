//! punktfunk-host as a library: every service of the host, so that the `punktfunk-host`
//! binary stays a thin command line, and benches and integration tests can drive the
//! same code.

pub mod admin;
pub mod audio;
pub mod capture;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod control_socket;
pub mod crash_point;
pub mod discovery;
pub mod display;
pub mod doctor;
pub mod encode;
pub mod gamestream;
pub mod identity;
pub mod input;
pub mod lifecycle;
pub mod logbuf;
pub mod logging;
pub mod mgmt;
pub mod native;
pub mod net;
pub mod pairing;
pub mod pw_graph;
pub mod serve;
pub mod service_notify;
pub mod session;
pub mod settings;
pub mod shm;
pub mod source;
pub mod state;
pub mod store;
pub mod stream;
pub mod sysinfo;
pub mod tls;
