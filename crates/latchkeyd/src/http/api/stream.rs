//! The live event stream (`GET /api/v1/me/events` as Server-Sent Events).
//!
//! Events are written by whichever replica handled the request, so the stream does not rely on
//! in-process notification: one poller per server reads new events from the database twice a
//! second (only while someone is listening) and fans them out to the open streams. Each poll
//! re-reads a few seconds back and drops ids already sent, so an event committed late by a
//! slower transaction or a replica with a slightly different clock is still delivered once.
//! For the same reason a new stream may begin with events from the seconds before it opened;
//! clients tell them apart by id.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use super::Caller;
use crate::clock::Millis;
use crate::server::AppState;
use crate::store::events::{self, Event};

const POLL: Duration = Duration::from_millis(500);
const OVERLAP_MS: Millis = 5_000;
const REMEMBERED: usize = 4_096;

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

impl EventHub {
    /// Polls for new events until `shutdown` turns true.
    pub async fn run(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let mut watermark = state.now();
        let mut sent: HashSet<String> = HashSet::new();
        let mut order: VecDeque<String> = VecDeque::new();
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if self.tx.receiver_count() == 0 {
                watermark = state.now();
                continue;
            }
            let found = match events::since(&state.db, watermark - OVERLAP_MS, 1_000).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: cannot read new events");
                    continue;
                }
            };
            for event in found {
                watermark = watermark.max(event.at);
                if !sent.insert(event.id.clone()) {
                    continue;
                }
                order.push_back(event.id.clone());
                if order.len() > REMEMBERED {
                    if let Some(old) = order.pop_front() {
                        sent.remove(&old);
                    }
                }
                let _ = self.tx.send(Arc::new(event));
            }
        }
    }
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
                        if event.kind == "session_revoked"
                            && event.session_id.as_deref() == Some(self.session_id.as_str())
                        {
                            self.done = true;
                        }
                        let data = serde_json::to_string(&*event).unwrap_or_default();
                        return Some(Ok(SseEvent::default().id(&event.id).event(&event.kind).data(data)));
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
        session_id: caller.claims.sid,
        expires: tokio::time::Instant::now() + Duration::from_millis(left_ms),
        done: false,
    };
    let stream = futures_util::stream::unfold(listener, |mut l| async move {
        let item = l.next().await?;
        Some((item, l))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
