//! The display session's own PipeWire null sink: where the session's apps play, and
//! what the stream captures (its monitor).
//!
//! Why a sink per session: the app's sound must reach this session's client and no
//! other, at the client's channel count (stereo, 5.1 or 7.1), whatever else plays on
//! the box. The sink is created with the client's channel positions in Moonlight's
//! order ([`super::layout`]), and the app gets it as its default through
//! [`SessionSink::app_env`] (`PULSE_SINK` for PulseAudio clients, `PIPEWIRE_NODE` for
//! native ones). It also carries a high `priority.session`, so WirePlumber makes it
//! the default sink of the session's PipeWire: an app started by something that drops
//! the environment (a launcher like Steam) lands there too.
//!
//! Why the host creates it itself, from a thread of its own: a node belongs to the
//! PipeWire client that created it (`object.linger` off), so the sink disappears
//! when that connection closes, whether the session ends, the host stops, or the host
//! crashes. No process or node of the session is left behind, with nothing to clean
//! up at the next start.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pipewire as pw;

use super::layout;

/// How long the sink may take to appear in the registry.
const CREATE_WAIT: Duration = Duration::from_secs(3);

/// WirePlumber picks the default sink by `priority.session`; hardware sinks are
/// around 1000 to 1100, so the session's sink wins on a box that has both.
const PRIORITY: u32 = 2500;

/// A running session sink. Dropping it removes the sink.
#[derive(Debug)]
pub struct SessionSink {
    name: String,
    channels: u8,
    id: u32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The node name of session `id`'s sink.
pub fn sink_name(id: &str) -> String {
    format!("punktfunk.session-{id}")
}

/// The properties the null sink is created with.
pub fn sink_properties(id: &str, channels: u8) -> Vec<(&'static str, String)> {
    vec![
        ("factory.name", "support.null-audio-sink".into()),
        ("node.name", sink_name(id)),
        ("node.description", format!("punktfunk stream {id}")),
        ("media.class", "Audio/Sink".into()),
        ("audio.rate", "48000".into()),
        ("audio.channels", channels.to_string()),
        (
            "audio.position",
            layout::position_property(usize::from(channels)),
        ),
        ("priority.session", PRIORITY.to_string()),
        ("priority.driver", PRIORITY.to_string()),
        ("monitor.channel-volumes", "true".into()),
        ("object.linger", "false".into()),
    ]
}

impl SessionSink {
    /// Creates session `id`'s sink with `channels` channels on the PipeWire daemon in
    /// `runtime_dir` and waits until it exists.
    pub fn create(runtime_dir: &Path, id: &str, channels: u8) -> Result<Self, String> {
        let socket = runtime_dir.join("pipewire-0");
        let props = sink_properties(id, channels);
        let name = sink_name(id);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (stop, name) = (stop.clone(), name.clone());
            std::thread::Builder::new()
                .name("pf-sink".into())
                .spawn(move || run(&socket, &name, &props, &stop, &tx))
                .map_err(|e| format!("starting the sink's thread: {e}"))?
        };
        let mut sink = Self {
            name,
            channels,
            id: 0,
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(CREATE_WAIT + Duration::from_secs(1)) {
            Ok(Ok(node_id)) => {
                sink.id = node_id;
                tracing::info!(
                    sink = sink.name,
                    id = node_id,
                    channels,
                    positions = layout::position_property(usize::from(channels)),
                    "session audio sink created"
                );
                Ok(sink)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the PipeWire sink did not appear in time".into()),
        }
    }

    /// The sink of a session starting, if `channels` asks for one: a failure (no
    /// PipeWire for the session) is logged, and the session runs without its own
    /// sound (the stream then sends silence).
    pub fn for_session(runtime_dir: &Path, id: &str, channels: u8) -> Option<Self> {
        if channels == 0 {
            return None;
        }
        match Self::create(runtime_dir, id, channels) {
            Ok(sink) => Some(sink),
            Err(e) => {
                tracing::warn!(session = id, "the session gets no audio sink: {e}");
                None
            }
        }
    }

    /// What a stream captures to hear this sink: its monitor, on the PipeWire daemon
    /// in `runtime_dir`.
    pub fn capture_spec(&self, runtime_dir: &Path) -> super::AudioSpec {
        super::AudioSpec::PipeWire {
            node: crate::capture::NodeTarget::Name(self.name.clone()),
            runtime_dir: Some(runtime_dir.to_owned()),
        }
    }

    /// The sink's `node.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its channel count.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Its PipeWire object id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What the session's apps get so they play into it by default.
    pub fn app_env(&self) -> Vec<(String, String)> {
        vec![
            ("PULSE_SINK".into(), self.name.clone()),
            ("PIPEWIRE_NODE".into(), self.name.clone()),
        ]
    }
}

impl Drop for SessionSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        tracing::info!(sink = self.name, "session audio sink removed");
    }
}

/// The sink's thread: creates the node, reports its id, then keeps the connection
/// (and so the node) alive until told to stop.
fn run(
    socket: &Path,
    name: &str,
    props: &[(&'static str, String)],
    stop: &AtomicBool,
    report: &mpsc::Sender<Result<u32, String>>,
) {
    match create(socket, name, props) {
        Err(e) => {
            let _ = report.send(Err(e));
        }
        Ok(held) => {
            let _ = report.send(Ok(held.id));
            while !stop.load(Ordering::Acquire) {
                held.main_loop
                    .loop_()
                    .iterate(pw::loop_::Timeout::Finite(Duration::from_millis(50)));
                if held.removed.load(Ordering::Acquire)
                    && !held.removal_logged.swap(true, Ordering::AcqRel)
                {
                    tracing::warn!(
                        sink = name,
                        "the session's audio sink was removed from PipeWire"
                    );
                }
            }
            // Dropping `held` closes the connection: PipeWire destroys the node.
        }
    }
}

/// What keeps the sink alive. Fields drop in order: listeners and the node before
/// the connection, the loop last.
struct Held {
    id: u32,
    removed: Arc<AtomicBool>,
    removal_logged: AtomicBool,
    _registry_listener: pw::registry::Listener,
    _core_listener: pw::core::Listener,
    _node: pw::node::Node,
    _registry: pw::registry::RegistryRc,
    _core: pw::core::CoreRc,
    _context: pw::context::ContextRc,
    main_loop: pw::main_loop::MainLoopRc,
}

fn create(socket: &Path, name: &str, props: &[(&'static str, String)]) -> Result<Held, String> {
    pw::init();
    let main_loop = pw::main_loop::MainLoopRc::new(None)
        .map_err(|e| format!("creating a PipeWire loop: {e}"))?;
    let context = pw::context::ContextRc::new(&main_loop, None)
        .map_err(|e| format!("creating a PipeWire context: {e}"))?;
    let mut remote = pw::properties::PropertiesBox::new();
    remote.insert("remote.name", socket.to_string_lossy().as_ref());
    let core = context
        .connect_rc(Some(remote))
        .map_err(|e| format!("connecting to PipeWire at {}: {e}", socket.display()))?;
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let core_listener = {
        let failure = failure.clone();
        core.add_listener_local()
            .error(move |id, _, res, message| {
                let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                f.get_or_insert_with(|| {
                    format!("PipeWire refused the sink (object {id}): {message} ({res})")
                });
            })
            .register()
    };
    let found: Arc<std::sync::Mutex<Option<u32>>> = Arc::default();
    let removed = Arc::new(AtomicBool::new(false));
    let registry = core
        .get_registry_rc()
        .map_err(|e| format!("reading the PipeWire registry: {e}"))?;
    let registry_listener = {
        let (found, on_remove_found, removed) = (found.clone(), found.clone(), removed.clone());
        let name = name.to_owned();
        registry
            .add_listener_local()
            .global(move |global| {
                if global.type_ == pw::types::ObjectType::Node
                    && global.props.and_then(|p| p.get("node.name")) == Some(name.as_str())
                {
                    *found.lock().unwrap_or_else(|e| e.into_inner()) = Some(global.id);
                }
            })
            .global_remove(move |id| {
                if *on_remove_found.lock().unwrap_or_else(|e| e.into_inner()) == Some(id) {
                    removed.store(true, Ordering::Release);
                }
            })
            .register()
    };
    let mut node_props = pw::properties::PropertiesBox::new();
    for (k, v) in props {
        node_props.insert(*k, v.as_str());
    }
    let node: pw::node::Node = core
        .create_object("adapter", &node_props)
        .map_err(|e| format!("creating the null sink: {e}"))?;
    let deadline = Instant::now() + CREATE_WAIT;
    let id = loop {
        if let Some(id) = *found.lock().unwrap_or_else(|e| e.into_inner()) {
            break id;
        }
        if let Some(e) = failure.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(e);
        }
        if Instant::now() >= deadline {
            return Err(format!("the sink {name} never appeared in PipeWire"));
        }
        main_loop
            .loop_()
            .iterate(pw::loop_::Timeout::Finite(Duration::from_millis(50)));
    };
    Ok(Held {
        id,
        removed,
        removal_logged: AtomicBool::new(false),
        _registry_listener: registry_listener,
        _core_listener: core_listener,
        _node: node,
        _registry: registry,
        _core: core,
        _context: context,
        main_loop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_has_the_clients_channels_and_dies_with_the_host() {
        let props: std::collections::HashMap<_, _> =
            sink_properties("77-1", 6).into_iter().collect();
        assert_eq!(props["node.name"], "punktfunk.session-77-1");
        assert_eq!(props["factory.name"], "support.null-audio-sink");
        assert_eq!(props["media.class"], "Audio/Sink");
        assert_eq!(props["audio.channels"], "6");
        assert_eq!(props["audio.position"], "[ FL FR FC LFE RL RR ]");
        assert_eq!(
            props["object.linger"], "false",
            "the node goes with the host's connection"
        );
        let stereo: std::collections::HashMap<_, _> =
            sink_properties("1-2", 2).into_iter().collect();
        assert_eq!(stereo["audio.position"], "[ FL FR ]");
    }
}
