//! A connection to a PipeWire daemon that keeps track of the graph's nodes: where the
//! video capture ([`crate::capture::pipewire`]) and the sound capture
//! ([`crate::audio::pipewire`]) both start.
//!
//! Each capture keeps its own state behind one mutex (what its stream callbacks
//! fill in); the connection's callbacks reach the part they need through
//! [`Watcher`]: the node list, whether the registry's first round is in, and the
//! capture's end when the daemon goes away or the captured node is removed.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipewire as pw;
use pw::spa::pod::Value;

/// `media.class` of a node that publishes pictures.
pub const VIDEO_SOURCE: &str = "Video/Source";
/// `media.class` of a sink (its sound is captured from its monitor).
pub const AUDIO_SINK: &str = "Audio/Sink";
/// `media.class` of a sound source (a microphone, a virtual source).
pub const AUDIO_SOURCE: &str = "Audio/Source";

/// A node as the registry announced it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// Object id.
    pub id: u32,
    /// `object.serial` (unique for the daemon's lifetime; ids are reused).
    pub serial: Option<u64>,
    /// `node.name`.
    pub name: String,
    /// `media.class`.
    pub media_class: String,
    /// `application.process.id`, where the node's client announced it.
    pub pid: Option<u32>,
}

impl Node {
    /// Whether the node publishes pictures.
    pub fn is_video_source(&self) -> bool {
        self.media_class == VIDEO_SOURCE
    }

    /// Whether it is a sound sink.
    pub fn is_audio_sink(&self) -> bool {
        self.media_class == AUDIO_SINK
    }

    /// Whether it is a sound sink or source.
    pub fn is_audio(&self) -> bool {
        self.is_audio_sink() || self.media_class == AUDIO_SOURCE
    }

    /// `name (id N)`, as errors and the log name it.
    pub fn label(&self) -> String {
        format!("{} (id {})", self.name, self.id)
    }
}

/// What the connection's callbacks know of the graph.
#[derive(Debug, Default)]
pub struct Graph {
    /// The nodes there are.
    pub nodes: Vec<Node>,
    /// The registry's first round is in (the daemon answered our sync).
    pub synced: bool,
    /// The node being captured: its removal ends the capture.
    pub target: Option<Node>,
}

/// A capture's state as the connection's callbacks see it.
pub trait Watcher: 'static {
    /// The graph part of the state.
    fn graph(&mut self) -> &mut Graph;
    /// Ends the capture with `reason` (the daemon or the node is gone).
    fn end(&mut self, reason: String);
    /// An error on an object other than the connection (the stream's own node, say).
    fn object_error(&mut self, id: u32, res: i32, message: &str) {
        tracing::debug!(id, res, "PipeWire error: {message}");
    }
    /// Why the capture can no longer start, if it cannot.
    fn stopped(&self) -> Option<String>;
}

/// What a [`Connection::wait_for`] picker says of the nodes there are now.
#[derive(Debug)]
pub enum Pick<T> {
    /// This is the one.
    Found(T),
    /// Not there (yet); the text says why, if the wait runs out.
    Missing(String),
    /// It can never be found (the name is taken by another kind of node, say).
    Fail(String),
}

/// Locks a capture's state; a panic elsewhere must not take the capture down too.
pub fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A PipeWire parameter (a format, a buffer request) as bytes for a stream.
pub fn pod_bytes(value: Value) -> Result<Vec<u8>, String> {
    Ok(
        pw::spa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &value)
            .map_err(|e| format!("building a PipeWire parameter: {e:?}"))?
            .0
            .into_inner(),
    )
}

/// A connection to a daemon, its registry, and the listeners that keep a capture's
/// [`Graph`] up to date. Fields drop in order: listeners before what they listen to,
/// the loop last; a capture's stream (made on [`Connection::core`]) is declared
/// before its connection so that it goes first.
pub struct Connection {
    _registry_listener: pw::registry::Listener,
    _core_listener: pw::core::Listener,
    _registry: pw::registry::RegistryRc,
    core: pw::core::CoreRc,
    _context: pw::context::ContextRc,
    main_loop: pw::main_loop::MainLoopRc,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

impl Connection {
    /// Connects to the daemon in `runtime_dir` (else the environment's) and starts
    /// filling `state`'s graph.
    pub fn open<S: Watcher>(
        runtime_dir: Option<&Path>,
        state: &Arc<Mutex<S>>,
    ) -> Result<Self, String> {
        pw::init();
        let main_loop = pw::main_loop::MainLoopRc::new(None)
            .map_err(|e| format!("creating a PipeWire loop: {e}"))?;
        let context = pw::context::ContextRc::new(&main_loop, None)
            .map_err(|e| format!("creating a PipeWire context: {e}"))?;
        let mut props = pw::properties::PropertiesBox::new();
        if let Some(dir) = runtime_dir {
            props.insert(
                "remote.name",
                dir.join("pipewire-0").to_string_lossy().as_ref(),
            );
        }
        let core = context.connect_rc(Some(props)).map_err(|e| {
            let place = runtime_dir.map_or_else(
                || "this user's".to_owned(),
                |d| format!("the one in {}", d.display()),
            );
            format!("connecting to the PipeWire daemon ({place}): {e}")
        })?;
        let core_listener = {
            let on_done = state.clone();
            let on_error = state.clone();
            core.add_listener_local()
                .done(move |id, _seq| {
                    if id == pw::core::PW_ID_CORE {
                        lock(&on_done).graph().synced = true;
                    }
                })
                .error(move |id, _seq, res, message| {
                    let mut st = lock(&on_error);
                    if id == pw::core::PW_ID_CORE {
                        st.end(format!(
                            "lost the connection to PipeWire ({message}, {res})"
                        ));
                    } else {
                        st.object_error(id, res, message);
                    }
                })
                .register()
        };
        let registry = core
            .get_registry_rc()
            .map_err(|e| format!("reading the PipeWire registry: {e}"))?;
        let registry_listener = {
            let on_global = state.clone();
            let on_remove = state.clone();
            registry
                .add_listener_local()
                .global(move |global| {
                    if global.type_ != pw::types::ObjectType::Node {
                        return;
                    }
                    let get = |k: &str| global.props.and_then(|p| p.get(k));
                    lock(&on_global).graph().nodes.push(Node {
                        id: global.id,
                        serial: get("object.serial").and_then(|s| s.parse().ok()),
                        name: get("node.name").unwrap_or_default().to_owned(),
                        media_class: get("media.class").unwrap_or_default().to_owned(),
                        pid: get("application.process.id").and_then(|s| s.parse().ok()),
                    });
                })
                .global_remove(move |id| {
                    let mut st = lock(&on_remove);
                    let graph = st.graph();
                    graph.nodes.retain(|n| n.id != id);
                    if let Some(t) = graph.target.as_ref().filter(|t| t.id == id) {
                        let reason = format!("PipeWire node {} was removed", t.label());
                        st.end(reason);
                    }
                })
                .register()
        };
        core.sync(0)
            .map_err(|e| format!("syncing with PipeWire: {e}"))?;
        Ok(Self {
            _registry_listener: registry_listener,
            _core_listener: core_listener,
            _registry: registry,
            core,
            _context: context,
            main_loop,
        })
    }

    /// The core, to make a stream on.
    pub fn core(&self) -> &pw::core::CoreRc {
        &self.core
    }

    /// Runs the loop's callbacks for at most `timeout`.
    pub fn iterate(&self, timeout: Duration) {
        self.main_loop
            .loop_()
            .iterate(pw::loop_::Timeout::Finite(timeout));
    }

    /// Runs the loop until `pick` finds its node among those there are, for at most
    /// `wait`; the node found becomes the graph's target (its removal ends the
    /// capture).
    pub fn wait_for<S: Watcher>(
        &self,
        state: &Arc<Mutex<S>>,
        wait: Duration,
        mut pick: impl FnMut(&[Node]) -> Pick<Node>,
    ) -> Result<Node, String> {
        let deadline = Instant::now() + wait;
        loop {
            {
                let mut st = lock(state);
                if let Some(reason) = st.stopped() {
                    return Err(reason);
                }
                let graph = st.graph();
                if graph.synced {
                    match pick(&graph.nodes) {
                        Pick::Found(node) => {
                            graph.target = Some(node.clone());
                            return Ok(node);
                        }
                        Pick::Fail(why) => return Err(why),
                        Pick::Missing(why) if Instant::now() >= deadline => return Err(why),
                        Pick::Missing(_) => {}
                    }
                } else if Instant::now() >= deadline {
                    return Err("the PipeWire daemon did not answer".into());
                }
            }
            self.iterate(Duration::from_millis(50));
        }
    }
}
