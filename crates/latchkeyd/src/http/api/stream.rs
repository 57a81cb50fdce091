//! The live event stream (`GET /api/v1/me/events` as Server-Sent Events).
//!
//! Events are written by whichever replica handled the request, so the stream does not rely on
//! in-process notification: one poller per server reads new events from the database twice a
//! second (only while someone is listening) and fans them out to the open streams; a
//! revocation committed by this replica makes it read at once. It reads
//! forward from an `(at, id)` cursor a page at a time, so no burst of events, however large,
//! can hold back the ones after it; events that belong to no account (a stranger's failed
//! sign-ins) are not read at all, since no stream shows them. Each poll also looks a few
//! seconds back for events committed late (a slower transaction, a replica with a slightly
//! different clock) and drops ids already sent, so those are delivered once too. For the same
//! reason a new stream may begin with events from the seconds before it opened; clients tell
//! them apart by id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use super::Caller;
use crate::clock::Millis;
use crate::server::AppState;
use crate::store::events::{self, Event, EventKind};

const POLL: Duration = Duration::from_millis(500);
const OVERLAP_MS: Millis = 5_000;
const PAGE: i64 = 500;
/// Pages read forward per poll; what is left waits for the next poll, half a second later.
const PAGES_PER_POLL: usize = 20;

/// Fans events out to the open streams.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

/// Where the poller has read up to, and what it sent in the last few seconds.
struct Cursor {
    at: Millis,
    id: String,
    /// Ids sent, with their times: kept while a late-commit look-back could read them again.
    sent: HashMap<String, Millis>,
}

impl Cursor {
    fn starting(now: Millis) -> Self {
        Self {
            at: now,
            id: String::new(),
            sent: HashMap::new(),
        }
    }

    /// Was it new? Remembers it either way.
    fn first_sight(&mut self, event: &Event) -> bool {
        self.sent
            .insert(event.id.clone(), event.at.millis())
            .is_none()
    }

    fn advance(&mut self, event: &Event) {
        if (event.at.millis(), event.id.as_str()) > (self.at, self.id.as_str()) {
            self.at = event.at.millis();
            self.id = event.id.clone();
        }
    }

    fn forget_before(&mut self, at: Millis) {
        self.sent.retain(|_, t| *t >= at);
    }
}

impl EventHub {
    /// Polls for new events until `shutdown` turns true.
    pub async fn run(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let mut cursor = Cursor::starting(state.now());
        let mut tick = tokio::time::interval(POLL);
        let mut revocations = state.db.revocations();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // A revocation committed here is shown at once, not at the next tick: the
                // device it signs out may be watching.
                _ = revocations.recv() => {}
                _ = shutdown.changed() => return,
            }
            if self.tx.receiver_count() == 0 {
                cursor = Cursor::starting(state.now());
                continue;
            }
            if let Err(e) = self.poll(&state, &mut cursor).await {
                tracing::warn!(error = %e, "event stream: cannot read new events");
            }
        }
    }

    async fn poll(&self, state: &AppState, cursor: &mut Cursor) -> crate::store::Result<()> {
        // Late commits: a look back over the last few seconds before the cursor.
        let back = cursor.at - OVERLAP_MS;
        for event in
            events::for_streams_after(&state.db, (back, ""), Some(&cursor_key(cursor)), PAGE * 4)
                .await?
        {
            if cursor.first_sight(&event) {
                let _ = self.tx.send(Arc::new(event));
            }
        }
        // New events, forward from the cursor.
        for _ in 0..PAGES_PER_POLL {
            let page =
                events::for_streams_after(&state.db, (cursor.at, cursor.id.as_str()), None, PAGE)
                    .await?;
            let full = page.len() as i64 == PAGE;
            for event in page {
                cursor.advance(&event);
                if cursor.first_sight(&event) {
                    let _ = self.tx.send(Arc::new(event));
                }
            }
            if !full {
                break;
            }
        }
        cursor.forget_before(cursor.at - OVERLAP_MS);
        Ok(())
    }
}

fn cursor_key(cursor: &Cursor) -> (Millis, String) {
    (cursor.at, cursor.id.clone())
}

struct Listener {
    rx: broadcast::Receiver<Arc<Event>>,
    shutdown: watch::Receiver<bool>,
    user_id: String,
    session_id: String,
    expires: tokio::time::Instant,
    done: bool,
}

fn named(kind: &str, data: String) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().event(kind).data(data))
}

impl Listener {
    async fn next(&mut self) -> Option<Result<SseEvent, Infallible>> {
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.expires) => {
                    // The client reconnects with a fresh access token; a stream must not
                    // outlive the token that opened it.
                    self.done = true;
                    return Some(named("token_expired", "{}".into()));
                }
                _ = self.shutdown.changed() => return None,
                received = self.rx.recv() => match received {
                    Ok(event) if event.user_id.as_deref() == Some(self.user_id.as_str()) => {
                        if event.kind == EventKind::SessionRevoked
                            && event.session_id.as_deref() == Some(self.session_id.as_str())
                        {
                            self.done = true;
                        }
                        let data = serde_json::to_string(&*event).unwrap_or_default();
                        return Some(Ok(SseEvent::default().id(&event.id).event(event.kind.as_str()).data(data)));
                    }
                    Ok(_) => continue,
                    // Too slow to keep up: tell the client to reload instead of missing events.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(named("resync", "{}".into()));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// The stream for one caller.
pub fn live(
    state: &AppState,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let left_ms = (caller.claims.exp * 1000 - state.now()).max(0) as u64;
    let listener = Listener {
        rx: state.events.tx.subscribe(),
        shutdown: state.shutdown.subscribe(),
        user_id: caller.user.id,
        session_id: caller.session_id,
        expires: tokio::time::Instant::now() + Duration::from_millis(left_ms),
        done: false,
    };
    let stream = futures_util::stream::unfold(listener, |mut l| async move {
        let item = l.next().await?;
        Some((item, l))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
