//! RTSP as moonlight-common-c speaks it (`RtspConnection.c`, `RtspParser.c`): requests
//! parsed from the client, responses serialized for it.
//!
//! The client opens a TCP connection per request and reads the reply until the host
//! closes it, so a connection carries exactly one exchange. Its parser needs at least
//! one header in every reply and takes a header's value as everything after the
//! colon and one space. Parsing here is bounded: oversized or malformed input is an
//! error value, never a panic or an unbounded allocation.

use thiserror::Error;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest body accepted (an ANNOUNCE SDP is about 2 KB).
pub const MAX_BODY: usize = 64 * 1024;
/// Most headers accepted.
pub const MAX_HEADERS: usize = 64;

/// Why an RTSP request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtspError {
    /// The head or body is over its limit.
    #[error("RTSP request too large")]
    TooLarge,
    /// The request line is not `METHOD target RTSP/1.0`.
    #[error("malformed RTSP request line")]
    RequestLine,
    /// A header line without a colon, or with invalid text.
    #[error("malformed RTSP header")]
    Header,
    /// More headers than allowed.
    #[error("too many RTSP headers")]
    TooManyHeaders,
    /// `Content-length` is not a number.
    #[error("invalid Content-length")]
    ContentLength,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspRequest {
    /// `OPTIONS`, `DESCRIBE`, `SETUP`, `ANNOUNCE`, `PLAY`, ...
    pub method: String,
    /// The request target (never validated: clients send `rtsp://0.0.0.0:48010`).
    pub target: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RtspRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `CSeq`, echoed in the reply.
    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
    }

    /// Parses one request from the start of `buf`. `Ok(None)` means more bytes are
    /// needed; `Ok(Some((req, used)))` consumed `used` bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(RtspRequest, usize)>, RtspError> {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            return if buf.len() > MAX_HEAD {
                Err(RtspError::TooLarge)
            } else {
                Ok(None)
            };
        };
        if head_end > MAX_HEAD {
            return Err(RtspError::TooLarge);
        }
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| RtspError::Header)?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().ok_or(RtspError::RequestLine)?;
        let mut parts = request_line.split(' ');
        let method = parts
            .next()
            .filter(|m| !m.is_empty())
            .ok_or(RtspError::RequestLine)?;
        let target = parts
            .next()
            .filter(|t| !t.is_empty())
            .ok_or(RtspError::RequestLine)?;
        let version = parts.next().ok_or(RtspError::RequestLine)?;
        if version != "RTSP/1.0"
            || parts.next().is_some()
            || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(RtspError::RequestLine);
        }
        let mut headers = Vec::new();
        for line in lines {
            if headers.len() == MAX_HEADERS {
                return Err(RtspError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or(RtspError::Header)?;
            if name.is_empty() || name.contains(' ') {
                return Err(RtspError::Header);
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let body_len = match headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-length"))
        {
            Some((_, v)) => v.parse::<usize>().map_err(|_| RtspError::ContentLength)?,
            None => 0,
        };
        if body_len > MAX_BODY {
            return Err(RtspError::TooLarge);
        }
        let body_start = head_end + 4;
        if buf.len() < body_start + body_len {
            return Ok(None);
        }
        Ok(Some((
            RtspRequest {
                method: method.to_owned(),
                target: target.to_owned(),
                headers,
                body: buf[body_start..body_start + body_len].to_vec(),
            },
            body_start + body_len,
        )))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order; `CSeq` first.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RtspResponse {
    /// A response echoing `cseq` (a missing one is answered with 0: the client needs at
    /// least one header and never checks the value).
    pub fn new(status: u16, cseq: Option<&str>) -> Self {
        Self {
            status,
            headers: vec![("CSeq".to_owned(), cseq.unwrap_or("0").to_owned())],
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The reason phrase for the status.
    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "BAD REQUEST",
            403 => "FORBIDDEN",
            404 => "NOT FOUND",
            405 => "METHOD NOT ALLOWED",
            413 => "REQUEST ENTITY TOO LARGE",
            454 => "SESSION NOT FOUND",
            455 => "METHOD NOT VALID IN THIS STATE",
            _ => "ERROR",
        }
    }

    /// The wire form.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = format!("RTSP/1.0 {} {}\r\n", self.status, self.reason());
        for (n, v) in &self.headers {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ANNOUNCE: &[u8] = b"ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\nX-GS-ClientVersion: 14\r\nHost: 0.0.0.0\r\nSession: DEADBEEFCAFE\r\nContent-type: application/sdp\r\nContent-length: 13\r\n\r\nv=0\r\na=x:1 \r\n";

    #[test]
    fn parses_moonlight_requests_including_bodies_split_across_reads() {
        let (req, used) = RtspRequest::parse(ANNOUNCE).unwrap().unwrap();
        assert_eq!(used, ANNOUNCE.len());
        assert_eq!(req.method, "ANNOUNCE");
        assert_eq!(req.target, "streamid=control/13/0");
        assert_eq!(req.cseq(), Some("6"));
        assert_eq!(req.header("session"), Some("DEADBEEFCAFE"));
        assert_eq!(req.body, b"v=0\r\na=x:1 \r\n");
        for cut in 0..ANNOUNCE.len() - 2 {
            assert_eq!(
                RtspRequest::parse(&ANNOUNCE[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let opt = b"OPTIONS rtsp://0.0.0.0:48010 RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        assert_eq!(
            RtspRequest::parse(opt).unwrap().unwrap().0.target,
            "rtsp://0.0.0.0:48010"
        );
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [
            &b"OPTIONS rtsp://x HTTP/1.1\r\nCSeq: 1\r\n\r\n"[..],
            b"OPTIONS\r\nCSeq: 1\r\n\r\n",
            b"options x RTSP/1.0\r\n\r\n",
            b"OPTIONS x RTSP/1.0\r\nNoColon\r\n\r\n",
            b"OPTIONS x RTSP/1.0\r\nContent-length: many\r\n\r\n",
            b"OPTIONS x RTSP/1.0\r\nContent-length: 99999999\r\n\r\n",
            b"\xff\xfe x RTSP/1.0\r\n\r\n",
        ] {
            assert!(
                RtspRequest::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            RtspRequest::parse(&vec![b'A'; MAX_HEAD + 1]),
            Err(RtspError::TooLarge)
        );
    }

    #[test]
    fn responses_have_cseq_one_space_and_a_blank_line() {
        let r = RtspResponse::new(200, Some("3"))
            .header("Session", "DEADBEEFCAFE;timeout = 90")
            .header("Transport", "server_port=48000")
            .serialize();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\n\r\n"
        );
        let d = RtspResponse::new(200, None).body("a=x\n").serialize();
        assert!(
            String::from_utf8(d)
                .unwrap()
                .ends_with("CSeq: 0\r\nContent-Length: 4\r\n\r\na=x\n")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = RtspRequest::parse(&bytes);
        }

        #[test]
        fn request_like_text_never_panics(s in "[A-Z]{0,8} [ -~]{0,40} RTSP/1\\.0\r\n([A-Za-z-]{1,12}: [ -~]{0,20}\r\n){0,5}\r\n[ -~]{0,50}") {
            let _ = RtspRequest::parse(s.as_bytes());
        }
    }
}
