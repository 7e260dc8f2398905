//! Limits on request bodies: a size limit per route, and a deadline for the whole
//! body. A client that announces a body and then stalls gives up its connection when
//! the deadline passes, instead of holding it (and a buffer) for as long as it likes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Limited;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;

use super::apps::MAX_BOX_ART;
use super::error::ApiError;

/// Largest body of any route but box art (JSON requests are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a whole body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

/// A body that fails once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    after: Duration,
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(self.after).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The size limit of the route at `path`.
pub fn limit_for(path: &str) -> usize {
    if path.ends_with("/box-art") {
        MAX_BOX_ART + MAX_BODY
    } else {
        MAX_BODY
    }
}

/// Middleware: refuses a body announced over the route's limit at once (413), and
/// hands the handler a body that stops at the limit and at the deadline.
pub async fn limit_bodies(req: Request, next: Next) -> Response {
    let limit = limit_for(req.uri().path());
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this endpoint takes ({limit} bytes)"),
        )
        .into_response();
    }
    let (parts, body) = req.into_parts();
    let timed = Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(BODY_TIMEOUT)),
        after: BODY_TIMEOUT,
    };
    next.run(Request::from_parts(
        parts,
        Body::new(Limited::new(timed, limit)),
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[test]
    fn box_art_takes_images_and_everything_else_json() {
        assert_eq!(limit_for("/api/v1/apps/3/box-art"), MAX_BOX_ART + MAX_BODY);
        assert_eq!(limit_for("/api/v1/auth/login"), MAX_BODY);
    }

    /// A client that sends a few bytes of its body, then nothing.
    struct Stalled(bool);

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"user")))))
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_deadline() {
        let after = Duration::from_millis(200);
        let mut timed = Deadline {
            inner: Body::new(Stalled(false)),
            sleep: Box::pin(tokio::time::sleep(after)),
            after,
        };
        let first = std::future::poll_fn(|cx| Pin::new(&mut timed).poll_frame(cx)).await;
        assert!(first.unwrap().is_ok());
        let started = tokio::time::Instant::now();
        let second = std::future::poll_fn(|cx| Pin::new(&mut timed).poll_frame(cx)).await;
        assert!(second.unwrap().unwrap_err().is::<BodyTimeout>());
        assert!(started.elapsed() >= after - Duration::from_millis(150));
    }
}
