//! PipeWire nodes as `pw-dump` lists them, and which one is a given process's video:
//! how the gamescope backend finds *its* gamescope's node when several run.

use serde_json::Value;

/// A PipeWire node as `pw-dump` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PwNode {
    /// Object id.
    pub id: u32,
    /// `node.name`.
    pub name: String,
    /// `media.class`.
    pub media_class: String,
    /// The owning process: the node's `application.process.id`, else its client's
    /// (`application.process.id` or `pipewire.sec.pid`).
    pub pid: Option<u32>,
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .or_else(|| v.as_str()?.parse().ok())
}

/// The nodes in `pw-dump`'s JSON, with their owning process.
pub fn parse_pw_dump(json: &str) -> Vec<PwNode> {
    let Ok(Value::Array(objects)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let props = |o: &Value| o.pointer("/info/props").cloned().unwrap_or(Value::Null);
    let client_pid: std::collections::HashMap<u32, u32> = objects
        .iter()
        .filter(|o| o["type"] == "PipeWire:Interface:Client")
        .filter_map(|o| {
            let p = props(o);
            let pid =
                as_u32(&p["application.process.id"]).or_else(|| as_u32(&p["pipewire.sec.pid"]))?;
            Some((as_u32(&o["id"])?, pid))
        })
        .collect();
    objects
        .iter()
        .filter(|o| o["type"] == "PipeWire:Interface:Node")
        .filter_map(|o| {
            let p = props(o);
            Some(PwNode {
                id: as_u32(&o["id"])?,
                name: p["node.name"].as_str().unwrap_or("").to_owned(),
                media_class: p["media.class"].as_str().unwrap_or("").to_owned(),
                pid: as_u32(&p["application.process.id"])
                    .or_else(|| as_u32(&p["client.id"]).and_then(|c| client_pid.get(&c).copied())),
            })
        })
        .collect()
}

/// This gamescope's video node among `nodes`: a Video/Source owned by `pid`. Never a
/// node of another gamescope, whatever its name.
pub fn select_node(nodes: &[PwNode], pid: u32) -> Option<u32> {
    nodes
        .iter()
        .find(|n| n.media_class == "Video/Source" && n.pid == Some(pid))
        .map(|n| n.id)
}
