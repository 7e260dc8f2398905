//! Which PipeWire node a `pipewire:<name or id>` source means.
//!
//! Kept apart from the PipeWire connection so the rules are unit-tested: only video
//! sources qualify; an id must name one; a name must name exactly one, because two
//! sessions may each run a node of the same name (two gamescopes), and streaming the
//! wrong one would show a user someone else's screen.

use crate::capture::NodeTarget;

use crate::pw_graph::Node;

/// Why no node was chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Nothing matches (yet: the caller may wait for the node to appear).
    #[error("no PipeWire video source {wanted}; video sources here: {available}")]
    Missing {
        /// What was asked for.
        wanted: String,
        /// The video sources there are.
        available: String,
    },
    /// A node matches, but it is not a video source.
    #[error("PipeWire node {0} is {1}, not a Video/Source")]
    NotVideo(String, String),
    /// Several video sources carry the name.
    #[error("{count} PipeWire video sources are named {name} ({ids}); name one by id")]
    Ambiguous {
        /// The name.
        name: String,
        /// How many.
        count: usize,
        /// Their ids.
        ids: String,
    },
}

impl SelectError {
    /// Whether waiting could help (the node may not exist yet).
    pub fn may_appear(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }
}

/// The node `target` names among `nodes`.
pub fn select_node<'a>(nodes: &'a [Node], target: &NodeTarget) -> Result<&'a Node, SelectError> {
    let missing = || {
        let mut available: Vec<String> = nodes
            .iter()
            .filter(|n| n.is_video_source())
            .map(Node::label)
            .collect();
        if available.is_empty() {
            available.push("none".into());
        }
        SelectError::Missing {
            wanted: match target {
                NodeTarget::Id(id) => format!("with id {id}"),
                NodeTarget::Name(name) => format!("named {name:?}"),
            },
            available: available.join(", "),
        }
    };
    match target {
        NodeTarget::Id(id) => {
            let node = nodes.iter().find(|n| n.id == *id).ok_or_else(missing)?;
            if !node.is_video_source() {
                return Err(SelectError::NotVideo(
                    node.label(),
                    node.media_class.clone(),
                ));
            }
            Ok(node)
        }
        NodeTarget::Name(name) => {
            let matching: Vec<&Node> = nodes
                .iter()
                .filter(|n| n.name == *name && n.is_video_source())
                .collect();
            match matching.as_slice() {
                [one] => Ok(one),
                [] => match nodes.iter().find(|n| n.name == *name) {
                    Some(other) => Err(SelectError::NotVideo(
                        other.label(),
                        other.media_class.clone(),
                    )),
                    None => Err(missing()),
                },
                many => Err(SelectError::Ambiguous {
                    name: name.clone(),
                    count: many.len(),
                    ids: many
                        .iter()
                        .map(|n| n.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pw_graph::VIDEO_SOURCE;

    fn node(id: u32, name: &str, class: &str) -> Node {
        Node {
            id,
            serial: Some(u64::from(id) + 1000),
            name: name.into(),
            media_class: class.into(),
            pid: None,
        }
    }

    fn nodes() -> Vec<Node> {
        vec![
            node(30, "alsa_output.pci", "Audio/Sink"),
            node(41, "gamescope", VIDEO_SOURCE),
            node(42, "gamescope", VIDEO_SOURCE),
            node(50, "pf-producer", VIDEO_SOURCE),
            node(51, "obs", "Stream/Input/Video"),
        ]
    }

    #[test]
    fn by_name_picks_the_one_video_source_of_that_name() {
        let n = nodes();
        let got = select_node(&n, &NodeTarget::Name("pf-producer".into())).unwrap();
        assert_eq!(got.id, 50);
    }

    #[test]
    fn by_id_picks_that_node_even_among_namesakes() {
        let n = nodes();
        assert_eq!(select_node(&n, &NodeTarget::Id(42)).unwrap().id, 42);
        assert_eq!(select_node(&n, &NodeTarget::Id(41)).unwrap().id, 41);
    }

    #[test]
    fn two_sources_of_one_name_are_never_guessed_between() {
        let n = nodes();
        let e = select_node(&n, &NodeTarget::Name("gamescope".into())).unwrap_err();
        assert_eq!(
            e,
            SelectError::Ambiguous {
                name: "gamescope".into(),
                count: 2,
                ids: "41, 42".into()
            }
        );
        assert!(!e.may_appear());
    }

    #[test]
    fn missing_nodes_list_what_there_is_and_may_still_appear() {
        let n = nodes();
        let e = select_node(&n, &NodeTarget::Name("nope".into())).unwrap_err();
        assert!(e.may_appear());
        let text = e.to_string();
        assert!(text.contains("\"nope\""), "{text}");
        assert!(text.contains("pf-producer (id 50)"), "{text}");
        assert!(
            !text.contains("alsa"),
            "only video sources are listed: {text}"
        );
        assert!(
            select_node(&n, &NodeTarget::Id(99))
                .unwrap_err()
                .may_appear()
        );
        let none = select_node(&[], &NodeTarget::Id(1))
            .unwrap_err()
            .to_string();
        assert!(none.ends_with("video sources here: none"), "{none}");
    }

    #[test]
    fn nodes_that_are_not_video_sources_are_refused() {
        let n = nodes();
        for target in [NodeTarget::Id(30), NodeTarget::Name("obs".into())] {
            let e = select_node(&n, &target).unwrap_err();
            assert!(matches!(e, SelectError::NotVideo(..)), "{e}");
            assert!(!e.may_appear());
        }
    }
}
