//! The RFC 8252 loopback redirect: a one-shot HTTP listener on `127.0.0.1:0` (or `[::1]:0`).
//!
//! Only `GET /callback` with the expected `state` ends the wait. Anything else (another path,
//! another method, a wrong or missing state) gets an error page and the listener keeps waiting
//! for the real redirect, so a local process can neither abort nor hijack a sign-in. An
//! `error=` response counts only with the right state, and is shown to the user plainly.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{Error, Result, Secret};

/// What the authorization server sent back.
#[derive(Debug)]
pub struct Redirect {
    pub code: Secret<String>,
    /// RFC 9207 `iss`, when the server sends it.
    pub iss: Option<String>,
}

type Outcome = std::result::Result<Redirect, Error>;

struct Shared {
    state: String,
    done: Mutex<Option<oneshot::Sender<Outcome>>>,
}

pub struct Listener {
    listener: TcpListener,
    pub redirect_uri: String,
}

impl Listener {
    /// Binds an ephemeral port on IPv4 loopback, or IPv6 loopback if IPv4 is unavailable.
    pub async fn bind() -> Result<Self> {
        let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await;
        let listener = match v4 {
            Ok(l) => l,
            Err(_) => TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)))
                .await
                .map_err(|e| Error::SignIn(format!("cannot listen on a loopback port: {e}")))?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::SignIn(format!("cannot listen on a loopback port: {e}")))?;
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        Ok(Self {
            redirect_uri: format!("http://{host}:{}/callback", addr.port()),
            listener,
        })
    }

    /// Serves until the real redirect arrives, `timeout` passes or `cancel` fires; then closes.
    pub async fn wait(
        self,
        state: &str,
        timeout: Duration,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Redirect> {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            state: state.to_string(),
            done: Mutex::new(Some(tx)),
        });
        let app = Router::new()
            .route("/callback", get(callback))
            .fallback(stray)
            .method_not_allowed_fallback(stray)
            .with_state(shared);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        let server = tokio::spawn(async move { serve.await });
        let outcome = tokio::select! {
            received = rx => received.unwrap_or_else(|_| Err(Error::SignIn("the sign-in listener stopped".into()))),
            _ = tokio::time::sleep(timeout) => Err(Error::SignIn(format!(
                "sign-in timed out after {} s without an answer from the browser", timeout.as_secs()
            ))),
            _ = cancel => Err(Error::SignIn("sign-in cancelled".into())),
        };
        let _ = stop_tx.send(());
        // The success page is already sent; give the connection a moment to finish.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        outcome
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Latchkey</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>body{{font:16px system-ui,sans-serif;\
         max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}}@media(prefers-color-scheme:dark)\
         {{body{{background:#15181c;color:#e6e8eb}}}}</style></head><body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message),
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if params.get("state").map(String::as_str) != Some(shared.state.as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            "This is not the sign-in in progress",
            "This answer does not belong to the sign-in Latchkey started, so it was ignored. \
             If you are signing in, finish in the browser window Latchkey opened.",
        );
    }
    let Some(done) = shared.done.lock().expect("callback lock").take() else {
        return page(
            StatusCode::GONE,
            "Already done",
            "This sign-in is already complete. You can close this tab.",
        );
    };
    let iss = params.get("iss").cloned();
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let message = format!("the server did not sign you in ({error}{description})");
        let _ = done.send(Err(Error::SignIn(message.clone())));
        return page(StatusCode::OK, "Sign-in not completed", &message);
    }
    match params.get("code").filter(|c| !c.is_empty()) {
        Some(code) => {
            let _ = done.send(Ok(Redirect {
                code: Secret::new(code.clone()),
                iss,
            }));
            page(
                StatusCode::OK,
                "You are signed in",
                "Latchkey has your sign-in. You can close this tab and return to the app.",
            )
        }
        None => {
            let _ = done.send(Err(Error::SignIn(
                "the server answered without an authorization code".into(),
            )));
            page(
                StatusCode::BAD_REQUEST,
                "Sign-in not completed",
                "The server answered without an authorization code.",
            )
        }
    }
}

async fn stray() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Nothing here",
        "This address only receives Latchkey's sign-in answer.",
    )
}
