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
    /// The app waiting, named on the pages.
    app: String,
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
    /// `app` is the app waiting, named on the page the browser shows.
    pub async fn wait(
        self,
        state: &str,
        app: &str,
        timeout: Duration,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Redirect> {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            state: state.to_string(),
            app: app.to_string(),
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

/// The sign-in page's stylesheet, inlined: this page comes from the app, not the server, and
/// looks like the pages the user just went through.
const STYLESHEET: &str = include_str!("../../latchkeyd/assets/latchkey.css");

/// The server's brand mark: the very markup of its sign-in page.
const BRAND: &str = include_str!("../../latchkeyd/templates/brand.html");

/// What a page says: a heading, one paragraph (an alert when something went wrong) and what to
/// do next.
struct Page<'a> {
    status: StatusCode,
    title: &'a str,
    message: &'a str,
    alert: bool,
    next: &'a str,
}

fn page(p: Page<'_>) -> Response {
    let class = if p.alert {
        " class=\"alert\" role=\"alert\""
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title} · Latchkey</title>\
         <style>{STYLESHEET}</style></head><body><main class=\"card\" aria-labelledby=\"page-title\">\
         {BRAND}<h1 id=\"page-title\">{title}</h1><p{class}>{message}</p>\
         <p class=\"footnote\">{next}</p></main></body></html>",
        title = escape(p.title),
        message = escape(p.message),
        next = escape(p.next),
    );
    (
        p.status,
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
    let app = shared.app.as_str();
    if params.get("state").map(String::as_str) != Some(shared.state.as_str()) {
        return page(Page {
            status: StatusCode::BAD_REQUEST,
            title: "This is not the sign-in in progress",
            message: "This answer does not belong to the sign-in Latchkey started, so it was \
                      ignored.",
            alert: true,
            next: &format!("If you are signing in to {app}, finish in the tab it opened."),
        });
    }
    let Some(done) = shared.done.lock().expect("callback lock").take() else {
        return page(Page {
            status: StatusCode::GONE,
            title: "Already signed in",
            message: &format!("{app} already has this sign-in."),
            alert: false,
            next: "You can close this tab.",
        });
    };
    let iss = params.get("iss").cloned();
    let again = format!("Go back to {app} to try again. You can close this tab.");
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let message = format!("the server did not sign you in ({error}{description})");
        let _ = done.send(Err(Error::SignIn(message.clone())));
        return page(Page {
            status: StatusCode::OK,
            title: "Sign-in not completed",
            message: &format!("The server did not sign you in ({error}{description})."),
            alert: true,
            next: &again,
        });
    }
    match params.get("code").filter(|c| !c.is_empty()) {
        Some(code) => {
            let _ = done.send(Ok(Redirect {
                code: Secret::new(code.clone()),
                iss,
            }));
            page(Page {
                status: StatusCode::OK,
                title: "You are signed in",
                message: &format!("{app} now has your sign-in."),
                alert: false,
                next: "You can close this tab.",
            })
        }
        None => {
            let _ = done.send(Err(Error::SignIn(
                "the server answered without an authorization code".into(),
            )));
            page(Page {
                status: StatusCode::BAD_REQUEST,
                title: "Sign-in not completed",
                message: "The server answered without an authorization code.",
                alert: true,
                next: &again,
            })
        }
    }
}

async fn stray(State(shared): State<Arc<Shared>>) -> Response {
    page(Page {
        status: StatusCode::NOT_FOUND,
        title: "Nothing here",
        message: "This address only receives Latchkey's sign-in answer.",
        alert: true,
        next: &format!(
            "If you are signing in to {}, finish in the tab it opened.",
            shared.app
        ),
    })
}
