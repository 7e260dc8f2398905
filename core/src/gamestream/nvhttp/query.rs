//! Query strings of nvhttp requests.
//!
//! Clients send `uniqueid=..&uuid=..&name=value...`, all values hex or decimal, but a
//! parser of network input must take anything: percent-escapes are decoded, empty
//! pairs (moonlight-python sends `&&corever=1`) are skipped, and limits on the number
//! and size of parameters turn floods into errors instead of allocations.

use thiserror::Error;

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;
/// Longest value accepted. A `clientcert` is about 2 KB of hex; leave room for larger
/// keys.
pub const MAX_VALUE: usize = 16 * 1024;
/// Longest parameter name accepted.
pub const MAX_NAME: usize = 64;

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// Too many parameters.
    #[error("too many query parameters (limit {MAX_PARAMS})")]
    TooMany,
    /// A name or value over its size limit.
    #[error("query parameter `{0}` is too long")]
    TooLong(String),
    /// A malformed percent-escape or invalid UTF-8.
    #[error("malformed query string")]
    Malformed,
    /// A parameter the request needs is absent.
    #[error("missing required parameter `{0}`")]
    Missing(&'static str),
    /// A parameter whose value does not parse.
    #[error("invalid value for parameter `{0}`")]
    Invalid(&'static str),
}

/// A parsed query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    params: Vec<(String, String)>,
}

fn percent_decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or(QueryError::Malformed)?;
                let text = std::str::from_utf8(hex).map_err(|_| QueryError::Malformed)?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| QueryError::Malformed)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::Malformed)
}

impl Query {
    /// Parses the part of a request target after `?` (or the whole target; anything up
    /// to and including the first `?` is ignored).
    pub fn parse(target: &str) -> Result<Self, QueryError> {
        let query = match target.find('?') {
            Some(i) => &target[i + 1..],
            None if target.starts_with('/') => "",
            None => target,
        };
        let mut params = Vec::new();
        for pair in query.split('&') {
            if pair.is_empty() {
                continue;
            }
            if params.len() == MAX_PARAMS {
                return Err(QueryError::TooMany);
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name.len() > MAX_NAME * 3 || value.len() > MAX_VALUE * 3 {
                return Err(QueryError::TooLong(name.chars().take(MAX_NAME).collect()));
            }
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            if name.len() > MAX_NAME || value.len() > MAX_VALUE {
                return Err(QueryError::TooLong(name.chars().take(MAX_NAME).collect()));
            }
            params.push((name, value));
        }
        Ok(Self { params })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, which must be present.
    pub fn require(&self, name: &'static str) -> Result<&str, QueryError> {
        self.get(name).ok_or(QueryError::Missing(name))
    }

    /// `name` parsed as `T`, if present.
    pub fn parse_opt<T: std::str::FromStr>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, QueryError> {
        self.get(name)
            .map(|v| v.trim().parse().map_err(|_| QueryError::Invalid(name)))
            .transpose()
    }

    /// `name` parsed as `T`; must be present.
    pub fn parse_req<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, QueryError> {
        self.parse_opt(name)?.ok_or(QueryError::Missing(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_moonlight_launch_query() {
        let q = Query::parse(
            "/launch?uniqueid=0123456789ABCDEF&uuid=ab&appid=1&mode=1280x720x60&rikeyid=-653923824&&corever=1",
        )
        .unwrap();
        assert_eq!(q.get("appid"), Some("1"));
        assert_eq!(q.parse_req::<i32>("rikeyid").unwrap(), -653_923_824);
        assert_eq!(q.get("corever"), Some("1"));
        assert_eq!(q.require("rikey"), Err(QueryError::Missing("rikey")));
        assert_eq!(q.parse_req::<u32>("mode"), Err(QueryError::Invalid("mode")));
    }

    #[test]
    fn escapes_and_limits() {
        assert_eq!(Query::parse("a=b%20c+d").unwrap().get("a"), Some("b c d"));
        assert_eq!(Query::parse("a=%zz"), Err(QueryError::Malformed));
        assert_eq!(Query::parse("a=%2"), Err(QueryError::Malformed));
        assert_eq!(
            Query::parse("a=%ff"),
            Err(QueryError::Malformed),
            "not UTF-8"
        );
        let many = (0..=MAX_PARAMS)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(Query::parse(&many), Err(QueryError::TooMany));
        let long = format!("clientcert={}", "a".repeat(MAX_VALUE + 1));
        assert!(matches!(Query::parse(&long), Err(QueryError::TooLong(_))));
        assert_eq!(Query::parse("/serverinfo").unwrap(), Query::default());
    }

    proptest! {
        #[test]
        fn arbitrary_targets_never_panic(s in ".{0,400}") {
            let _ = Query::parse(&s);
        }

        #[test]
        fn arbitrary_bytes_as_lossy_text_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Query::parse(&String::from_utf8_lossy(&b));
        }
    }
}
