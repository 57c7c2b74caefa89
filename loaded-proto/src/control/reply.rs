//! The reply: a first line `ok` or `error: MESSAGE`, then the body, then the server
//! closes the connection. So `echo status | socat - UNIX-CONNECT:PATH` works too.

use super::request::RequestError;
use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; the body (status, metrics, or a confirmation line), possibly empty.
    Ok(String),
    /// Refused; one line saying why.
    Error(String),
}

/// Why the master refuses a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    BadRequest(RequestError),
    /// The address is no server of the current config.
    NoSuchServer(IpAddr),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::BadRequest(error) => error.fmt(f),
            ControlError::NoSuchServer(server) => {
                write!(f, "no such server {server}")
            }
        }
    }
}

impl std::error::Error for ControlError {}

impl From<RequestError> for ControlError {
    fn from(error: RequestError) -> Self {
        ControlError::BadRequest(error)
    }
}

impl From<ControlError> for Reply {
    fn from(error: ControlError) -> Self {
        Reply::Error(error.to_string())
    }
}

/// What came back was not a reply: the peer is not loaded's control socket, or it closed
/// before answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MalformedReply {
    /// Nothing at all.
    Empty,
    /// A first line that is neither `ok` nor `error: ...`.
    BadFirstLine(String),
    NotUtf8,
}

impl fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedReply::Empty => {
                f.write_str("the daemon closed the connection without a reply")
            }
            MalformedReply::BadFirstLine(line) => {
                write!(
                    f,
                    "unexpected reply '{line}' (is this loaded's control socket?)"
                )
            }
            MalformedReply::NotUtf8 => f.write_str("the reply is not UTF-8 text"),
        }
    }
}

impl std::error::Error for MalformedReply {}

/// Longest first line quoted back in a MalformedReply.
const QUOTED_LEN: usize = 80;

impl Reply {
    /// The bytes to send: the status line, then the body, ending in a newline unless empty.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        match self {
            Reply::Ok(body) => {
                out.push_str("ok\n");
                out.push_str(body);
                if !body.is_empty() && !body.ends_with('\n') {
                    out.push('\n');
                }
            }
            Reply::Error(message) => {
                // One line, whatever the message holds.
                let message: String = message
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                out.push_str("error: ");
                out.push_str(&message);
                out.push('\n');
            }
        }
        out.into_bytes()
    }

    /// Reads back what `encode` made: everything the server sent before it closed.
    pub fn parse(bytes: &[u8]) -> Result<Reply, MalformedReply> {
        if bytes.is_empty() {
            return Err(MalformedReply::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| MalformedReply::NotUtf8)?;
        let (first, body) = text.split_once('\n').unwrap_or((text, ""));
        if first == "ok" {
            return Ok(Reply::Ok(body.to_owned()));
        }
        if let Some(message) = first.strip_prefix("error: ") {
            return Ok(Reply::Error(message.to_owned()));
        }
        let quoted: String = first.chars().take(QUOTED_LEN).collect();
        Err(MalformedReply::BadFirstLine(
            quoted.escape_debug().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_encodings() {
        assert_eq!(Reply::Ok(String::new()).encode(), b"ok\n");
        assert_eq!(Reply::Ok("a\nb".into()).encode(), b"ok\na\nb\n");
        assert_eq!(Reply::Ok("a\n".into()).encode(), b"ok\na\n");
        let error = Reply::from(ControlError::NoSuchServer("198.19.0.9".parse().unwrap()));
        assert_eq!(error.encode(), b"error: no such server 198.19.0.9\n");
        let request = ControlError::from(RequestError::UnknownCommand("x".into()));
        assert!(Reply::from(request)
            .encode()
            .starts_with(b"error: unknown command 'x'"));
        assert_eq!(
            Reply::Error("two\nlines".into()).encode(),
            b"error: two lines\n"
        );
    }

    #[test]
    fn replies_read_back() {
        for reply in [
            Reply::Ok(String::new()),
            Reply::Ok("line one\nline two\n".into()),
            Reply::Error("no such server".into()),
        ] {
            assert_eq!(Reply::parse(&reply.encode()), Ok(reply.clone()));
        }
        assert_eq!(Reply::parse(b"ok"), Ok(Reply::Ok(String::new())));
    }

    #[test]
    fn anything_else_is_malformed() {
        assert_eq!(Reply::parse(b""), Err(MalformedReply::Empty));
        assert_eq!(Reply::parse(b"\xff\n"), Err(MalformedReply::NotUtf8));
        assert_eq!(
            Reply::parse(b"HTTP/1.1 400 Bad Request\r\n"),
            Err(MalformedReply::BadFirstLine(
                "HTTP/1.1 400 Bad Request\\r".into()
            ))
        );
        assert!(matches!(
            Reply::parse(&[b'x'; 1000]),
            Err(MalformedReply::BadFirstLine(line)) if line.len() == QUOTED_LEN
        ));
    }
}
