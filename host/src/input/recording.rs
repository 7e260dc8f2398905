//! The recording input sink: every event as one JSON object per line, flushed at once,
//! so a test (or a person debugging a client) can see exactly what arrived and in what
//! order.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use punktfunk_core::gamestream::input::{InputEvent, MouseButton};
use serde_json::{Value, json};

use super::{Feedback, InputSink};

/// Writes events to a JSON-lines file.
#[derive(Debug)]
pub struct RecordingSink {
    file: File,
    seq: u64,
    start: Instant,
    pending: Vec<Feedback>,
}

impl RecordingSink {
    /// Appends to `path`, creating it.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the input recording {}", path.display()))?;
        Ok(Self {
            file,
            seq: 0,
            start: Instant::now(),
            pending: Vec::new(),
        })
    }
}

fn button_name(b: MouseButton) -> &'static str {
    match b {
        MouseButton::Left => "left",
        MouseButton::Middle => "middle",
        MouseButton::Right => "right",
        MouseButton::X1 => "x1",
        MouseButton::X2 => "x2",
    }
}

/// The JSON form of an event.
pub fn to_json(event: &InputEvent) -> Value {
    match event {
        InputEvent::Key {
            code,
            down,
            modifiers,
            flags,
        } => {
            json!({"kind": "key", "code": code, "down": down, "modifiers": modifiers, "flags": flags})
        }
        InputEvent::MouseMove { dx, dy } => json!({"kind": "mouse_move", "dx": dx, "dy": dy}),
        InputEvent::MousePosition {
            x,
            y,
            width,
            height,
        } => {
            json!({"kind": "mouse_position", "x": x, "y": y, "width": width, "height": height})
        }
        InputEvent::MouseButton { button, down } => {
            json!({"kind": "mouse_button", "button": button_name(*button), "down": down})
        }
        InputEvent::Scroll { amount } => json!({"kind": "scroll", "amount": amount}),
        InputEvent::HScroll { amount } => json!({"kind": "hscroll", "amount": amount}),
        InputEvent::Controller(c) => json!({
            "kind": "controller", "number": c.number, "active_mask": c.active_mask,
            "buttons": c.buttons, "left_trigger": c.left_trigger, "right_trigger": c.right_trigger,
            "left_x": c.left_x, "left_y": c.left_y, "right_x": c.right_x, "right_y": c.right_y,
        }),
        InputEvent::ControllerArrival {
            number,
            kind,
            capabilities,
            supported_buttons,
        } => json!({
            "kind": "controller_arrival", "number": number, "type": kind,
            "capabilities": capabilities, "supported_buttons": supported_buttons,
        }),
        InputEvent::Touch {
            event,
            rotation,
            pointer,
            x,
            y,
            pressure,
        } => json!({
            "kind": "touch", "event": event, "rotation": rotation, "pointer": pointer,
            "x": x, "y": y, "pressure": pressure,
        }),
        InputEvent::Pen {
            event,
            tool,
            buttons,
            x,
            y,
            pressure,
            rotation,
            tilt,
        } => json!({
            "kind": "pen", "event": event, "tool": tool, "buttons": buttons, "x": x, "y": y,
            "pressure": pressure, "rotation": rotation, "tilt": tilt,
        }),
        InputEvent::ControllerTouch {
            number,
            event,
            pointer,
            x,
            y,
            pressure,
        } => json!({
            "kind": "controller_touch", "number": number, "event": event, "pointer": pointer,
            "x": x, "y": y, "pressure": pressure,
        }),
        InputEvent::Motion {
            number,
            kind,
            x,
            y,
            z,
        } => {
            json!({"kind": "motion", "number": number, "type": kind, "x": x, "y": y, "z": z})
        }
        InputEvent::Battery {
            number,
            state,
            percent,
        } => {
            json!({"kind": "battery", "number": number, "state": state, "percent": percent})
        }
        InputEvent::Text(text) => json!({"kind": "text", "text": text}),
        InputEvent::HapticsEnabled => json!({"kind": "haptics_enabled"}),
    }
}

impl InputSink for RecordingSink {
    fn handle(&mut self, event: &InputEvent) -> Result<()> {
        self.seq += 1;
        let mut line = to_json(event);
        line["seq"] = json!(self.seq);
        line["t_ms"] = json!(self.start.elapsed().as_millis() as u64);
        let mut text = line.to_string();
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .context("writing the input recording")?;
        self.file.flush()?;
        Ok(())
    }

    fn poll_feedback(&mut self, out: &mut Vec<Feedback>) {
        out.append(&mut self.pending);
    }

    fn request_feedback(&mut self, feedback: Feedback) {
        self.pending.push(feedback);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_as_json_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/input.jsonl");
        let mut sink = RecordingSink::create(&path).unwrap();
        sink.handle(&InputEvent::Key {
            code: 0x41,
            down: true,
            modifiers: 1,
            flags: 0,
        })
        .unwrap();
        sink.handle(&InputEvent::MouseButton {
            button: MouseButton::Left,
            down: false,
        })
        .unwrap();
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (
                lines[0]["kind"].as_str(),
                lines[0]["code"].as_u64(),
                lines[0]["seq"].as_u64()
            ),
            (Some("key"), Some(0x41), Some(1))
        );
        assert_eq!(
            (lines[1]["button"].as_str(), lines[1]["down"].as_bool()),
            (Some("left"), Some(false))
        );
        let mut fb = Vec::new();
        sink.request_feedback(Feedback::Rumble {
            controller: 0,
            low: 1,
            high: 2,
        });
        sink.poll_feedback(&mut fb);
        assert_eq!(fb.len(), 1);
        sink.poll_feedback(&mut fb);
        assert_eq!(fb.len(), 1, "drained");
    }
}
