//! One GameStream stream's session logic, sans-IO: which addresses receive video and
//! audio (learned from the client's pings), when the client needs an IDR frame, the
//! client's input going out to be injected, rumble coming in to be sent, and when the
//! stream is over because the client went quiet or left.
//!
//! The shape is quinn-proto's and str0m's: the host feeds what happens in with
//! [`StreamSession::handle_ping`], [`StreamSession::handle_control`] and
//! [`StreamSession::handle_timeout`] (and rumble with [`StreamSession::handle_rumble`]),
//! each with the time it happened, and drains what to do with
//! [`StreamSession::poll_event`]; [`StreamSession::poll_timeout`] says when
//! to call `handle_timeout` next. Nothing here reads a clock or touches a socket, so
//! the tests run it in virtual time.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::control::ClientMessage;
use super::input::InputEvent;
use super::ping::{self, PingPayload};

/// The UDP channels the client pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The video port.
    Video,
    /// The audio port.
    Audio,
}

/// What a session is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// The payload the RTSP handshake gave the client for its pings.
    pub ping_payload: PingPayload,
    /// The launching client's address: pings from elsewhere never count, since the
    /// payload crosses the network in clear.
    pub client_ip: IpAddr,
    /// How long the client may stay silent (no video ping, no control traffic).
    pub timeout: Duration,
}

/// Why a stream ended. The texts are what the log, `status` and the reaper read
/// ([`Ended::is_client_timeout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// No video ping came within the timeout of the start.
    NoPing,
    /// The video pings stopped.
    StoppedPinging,
    /// The control stream never connected within the timeout.
    ControlNeverConnected,
    /// The control stream went silent.
    ControlSilent,
    /// The client closed the control stream.
    ControlClosed,
    /// The client sent a termination.
    ClientEnded,
    /// The host ended it (cancel, revoke, a failing thread), with its reason.
    Host(String),
}

impl Ended {
    /// Whether the client vanished rather than leaving: its app then ends too.
    pub fn is_client_timeout(&self) -> bool {
        matches!(
            self,
            Ended::NoPing
                | Ended::StoppedPinging
                | Ended::ControlNeverConnected
                | Ended::ControlSilent
        )
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::NoPing => "no ping from the client on the video port",
            Ended::StoppedPinging => "the client stopped pinging the video port",
            Ended::ControlNeverConnected => "the client never connected the control stream",
            Ended::ControlSilent => "the client went silent on the control stream",
            Ended::ControlClosed => "the client closed the control stream",
            Ended::ClientEnded => "the client ended the stream",
            Ended::Host(reason) => reason,
        })
    }
}

/// What the host should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The client receives `channel` at `addr` from now on.
    PeerLearned {
        /// Video or audio.
        channel: Channel,
        /// Where to send.
        addr: SocketAddr,
    },
    /// The next video frame must be an IDR frame.
    IdrWanted,
    /// The client's input, decoded from the control stream, in the order it came:
    /// inject it into the session's app.
    Input(InputEvent),
    /// Force feedback for one of the client's controllers: send it on the control
    /// stream.
    Rumble {
        /// The controller (0-15).
        controller: u16,
        /// Low-frequency motor strength.
        low: u16,
        /// High-frequency motor strength.
        high: u16,
    },
    /// The stream is over: send the termination and stop.
    Ended(Ended),
}

/// One stream's session state.
#[derive(Debug)]
pub struct StreamSession {
    params: SessionParams,
    started: Instant,
    video: Option<(SocketAddr, Instant)>,
    audio: Option<SocketAddr>,
    /// When the control stream connected, and when it was last heard.
    control: Option<Instant>,
    ended: Option<Ended>,
    events: VecDeque<Event>,
}

impl StreamSession {
    /// A session that starts at `now` and wants an IDR frame first (the client waits
    /// for one).
    pub fn new(now: Instant, params: SessionParams) -> Self {
        Self {
            params: SessionParams {
                client_ip: params.client_ip.to_canonical(),
                ..params
            },
            started: now,
            video: None,
            audio: None,
            control: None,
            ended: None,
            events: VecDeque::from([Event::IdrWanted]),
        }
    }

    /// Whether `datagram` from `from` is a ping of this session: its payload and its
    /// sender's address. A router uses this to pick the session a datagram is for.
    pub fn accepts(&self, from: SocketAddr, datagram: &[u8]) -> bool {
        from.ip().to_canonical() == self.params.client_ip
            && ping::parse(datagram).is_some_and(|p| p.matches(&self.params.ping_payload))
    }

    /// A datagram on `channel`'s port. Returns whether it was this session's ping;
    /// anything else is the caller's to count and drop.
    pub fn handle_ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        channel: Channel,
        datagram: &[u8],
    ) -> bool {
        if self.ended.is_some() || !self.accepts(from, datagram) {
            return false;
        }
        let known = match channel {
            Channel::Video => self.video.map(|(a, _)| a),
            Channel::Audio => self.audio,
        };
        if known != Some(from) {
            self.events.push_back(Event::PeerLearned {
                channel,
                addr: from,
            });
            // A (new) video receiver needs a fresh IDR to start decoding.
            if channel == Channel::Video {
                self.events.push_back(Event::IdrWanted);
            }
        }
        match channel {
            Channel::Video => self.video = Some((from, now)),
            Channel::Audio => self.audio = Some(from),
        }
        true
    }

    /// The control stream connected (with the right connect data).
    pub fn handle_control_connected(&mut self, now: Instant) {
        self.control = Some(now);
    }

    /// The control stream closed.
    pub fn handle_control_closed(&mut self) {
        self.end(Ended::ControlClosed);
    }

    /// A decrypted, parsed control message from the client.
    pub fn handle_control(&mut self, now: Instant, msg: &ClientMessage) {
        if self.ended.is_some() {
            return;
        }
        self.control = Some(now);
        match msg {
            ClientMessage::RequestIdr | ClientMessage::InvalidateRefs { .. }
                if !self.events.contains(&Event::IdrWanted) =>
            {
                self.events.push_back(Event::IdrWanted);
            }
            ClientMessage::Termination => self.end(Ended::ClientEnded),
            ClientMessage::Input(Some(event)) => self.events.push_back(Event::Input(event.clone())),
            _ => {}
        }
    }

    /// Force feedback for the client (a game writing to its virtual pad, a request
    /// of the host's). Returns whether it will be sent: not once the stream ended.
    pub fn handle_rumble(&mut self, controller: u16, low: u16, high: u16) -> bool {
        if self.ended.is_some() {
            return false;
        }
        self.events.push_back(Event::Rumble {
            controller,
            low,
            high,
        });
        true
    }

    /// Time passed: ends the stream when the client has been silent too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        let t = self.params.timeout;
        match self.video {
            None if now.saturating_duration_since(self.started) > t => {
                return self.end(Ended::NoPing);
            }
            Some((_, last)) if now.saturating_duration_since(last) > t => {
                return self.end(Ended::StoppedPinging);
            }
            _ => {}
        }
        match self.control {
            None if now.saturating_duration_since(self.started) > t => {
                self.end(Ended::ControlNeverConnected)
            }
            Some(last) if now.saturating_duration_since(last) > t => self.end(Ended::ControlSilent),
            _ => {}
        }
    }

    /// Ends the stream (the first reason wins).
    pub fn end(&mut self, why: Ended) {
        if self.ended.is_none() {
            self.ended = Some(why.clone());
            self.events.push_back(Event::Ended(why));
        }
    }

    /// The next thing to do; call after every `handle_*` until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next (`None` once ended): the earliest
    /// moment the client would count as silent.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        let t = self.params.timeout;
        let video = self.video.map_or(self.started, |(_, at)| at);
        let control = self.control.unwrap_or(self.started);
        // Just past the deadline: the checks are strict (`> timeout`).
        Some(video.min(control) + t + Duration::from_millis(1))
    }

    /// Where the client receives `channel`, once learned.
    pub fn peer(&self, channel: Channel) -> Option<SocketAddr> {
        match channel {
            Channel::Video => self.video.map(|(a, _)| a),
            Channel::Audio => self.audio,
        }
    }

    /// Why the stream ended, once it did.
    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// The ping payload this session answers to.
    pub fn ping_payload(&self) -> &PingPayload {
        &self.params.ping_payload
    }
}

#[cfg(test)]
mod tests;
