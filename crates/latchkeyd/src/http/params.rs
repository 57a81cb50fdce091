//! Request parameters the OAuth way: form-encoded, each at most once (RFC 6749 §3.1, §3.2).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::error::OAuthError;

/// Holds passwords, codes and tokens in the clear, so its `Debug` shows names only.
#[derive(Default)]
pub struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParamError {
    Repeated(String),
    /// No OAuth parameter, form field or query value holds a control character (PostgreSQL
    /// refuses NUL in text; the others would only reach logs and pages).
    Control(String),
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Repeated(name) => write!(f, "the parameter {name} is repeated"),
            ParamError::Control(name) => {
                write!(f, "the parameter {name} contains a control character")
            }
        }
    }
}

/// Does `text` hold a control character (C0, DEL or C1)?
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// The first name or value of a form-encoded string that holds a control character, if any,
/// named with its control characters removed.
pub fn control_in(input: &[u8]) -> Option<String> {
    form_urlencoded::parse(input)
        .find(|(k, v)| has_control(k) || has_control(v))
        .map(|(k, _)| k.chars().filter(|c| !c.is_control()).collect())
}

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, ParamError> {
        if let Some(name) = control_in(input) {
            return Err(ParamError::Control(name));
        }
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(input) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ParamError::Repeated(k.into_owned()));
            }
        }
        Ok(Self(map))
    }

    /// A parameter, with an empty value treated as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is missing")))
    }
}

/// A form-encoded POST body; any problem becomes an `invalid_request` JSON error.
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            OAuthError::invalid_request(format!("the request body cannot be read: {e}"))
        })?;
        Params::parse(&body)
            .map(OAuthForm)
            .map_err(|e| OAuthError::invalid_request(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert_eq!(
            Params::parse(b"a=1&b=2&a=3").unwrap_err(),
            ParamError::Repeated("a".into())
        );
        assert_eq!(
            Params::parse(b"a=x%00y").unwrap_err(),
            ParamError::Control("a".into())
        );
        assert_eq!(
            Params::parse(b"b%00c=1").unwrap_err(),
            ParamError::Control("bc".into())
        );
        assert_eq!(
            Params::parse(b"a=%0d%0aSet-Cookie").unwrap_err(),
            ParamError::Control("a".into())
        );
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert!(!format!("{p:?}").contains('1'), "values never print");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }
}
