//! The one request line a client sends, and its parser.
//!
//! A request is a line of at most [`MAX_REQUEST_LEN`] bytes (without its newline) of
//! words separated by blanks. A stream-socket server reads it with a [`RequestReader`],
//! which never holds more than the limit, however much a client sends.

use std::fmt;
use std::net::IpAddr;

/// Longest request line, without its newline. Every valid request is far shorter; the
/// limit only bounds what a misbehaving client can make the master hold.
pub const MAX_REQUEST_LEN: usize = 512;

/// The weights a server may have, as in the config's `weight=` (`config` checks the same).
pub const WEIGHT_MIN: u32 = 1;
pub const WEIGHT_MAX: u32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `status`: the listing for people.
    Status,
    /// `status json`: the same as one JSON document.
    StatusJson,
    /// `metrics`: the counters in the Prometheus text format.
    Metrics,
    /// `drain ADDR`: no new clients for the server; mapped ones stay.
    Drain(IpAddr),
    /// `undrain ADDR`: new clients again.
    Undrain(IpAddr),
    /// `weight ADDR N`: a new weight for the server.
    Weight(IpAddr, u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// More than MAX_REQUEST_LEN bytes before the newline.
    TooLong,
    NotUtf8,
    Empty,
    UnknownCommand(String),
    /// The command needs an argument that is not there.
    MissingArgument {
        command: &'static str,
        argument: &'static str,
    },
    /// A word after the command's last argument.
    UnexpectedWord {
        command: &'static str,
        word: String,
    },
    BadAddress(String),
    BadWeight(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLong => {
                write!(f, "request longer than {MAX_REQUEST_LEN} bytes")
            }
            RequestError::NotUtf8 => f.write_str("request is not UTF-8 text"),
            RequestError::Empty => {
                f.write_str("empty request (commands: status, metrics, drain, undrain, weight)")
            }
            RequestError::UnknownCommand(word) => write!(
                f,
                "unknown command '{word}' (commands: status, metrics, drain, undrain, weight)"
            ),
            RequestError::MissingArgument { command, argument } => {
                write!(f, "{command} needs {argument}")
            }
            RequestError::UnexpectedWord { command, word } => {
                write!(f, "unexpected '{word}' after {command}")
            }
            RequestError::BadAddress(word) => {
                write!(f, "'{word}' is not an IPv4 or IPv6 address")
            }
            RequestError::BadWeight(word) => write!(
                f,
                "weight must be a whole number from {WEIGHT_MIN} to {WEIGHT_MAX}, not '{word}'"
            ),
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// Parses one line; a trailing newline (`\n` or `\r\n`) is allowed.
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_REQUEST_LEN {
            return Err(RequestError::TooLong);
        }
        let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
        let mut words = text.split_ascii_whitespace();
        let command = words.next().ok_or(RequestError::Empty)?;
        let request = match command {
            "status" => match words.next() {
                None => return Ok(Request::Status),
                Some("json") => Request::StatusJson,
                Some(word) => return Err(unexpected("status", word)),
            },
            "metrics" => Request::Metrics,
            "drain" => Request::Drain(address("drain", words.next())?),
            "undrain" => Request::Undrain(address("undrain", words.next())?),
            "weight" => {
                let server = address("weight", words.next())?;
                let word = words.next().ok_or(RequestError::MissingArgument {
                    command: "weight",
                    argument: "a weight",
                })?;
                Request::Weight(server, weight(word)?)
            }
            other => return Err(RequestError::UnknownCommand(other.to_owned())),
        };
        match words.next() {
            None => Ok(request),
            Some(word) => Err(unexpected(request.command(), word)),
        }
    }

    /// The command word.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status | Request::StatusJson => "status",
            Request::Metrics => "metrics",
            Request::Drain(_) => "drain",
            Request::Undrain(_) => "undrain",
            Request::Weight(..) => "weight",
        }
    }
}

/// The request line as sent, without its newline: `parse` reads it back.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Status | Request::Metrics => f.write_str(self.command()),
            Request::StatusJson => f.write_str("status json"),
            Request::Drain(server) | Request::Undrain(server) => {
                write!(f, "{} {server}", self.command())
            }
            Request::Weight(server, weight) => write!(f, "weight {server} {weight}"),
        }
    }
}

fn unexpected(command: &'static str, word: &str) -> RequestError {
    RequestError::UnexpectedWord {
        command,
        word: word.to_owned(),
    }
}

fn address(command: &'static str, word: Option<&str>) -> Result<IpAddr, RequestError> {
    let word = word.ok_or(RequestError::MissingArgument {
        command,
        argument: "a server address",
    })?;
    word.parse()
        .map_err(|_| RequestError::BadAddress(word.to_owned()))
}

fn weight(word: &str) -> Result<u32, RequestError> {
    word.parse::<u32>()
        .ok()
        .filter(|n| (WEIGHT_MIN..=WEIGHT_MAX).contains(n))
        .ok_or_else(|| RequestError::BadWeight(word.to_owned()))
}

/// Collects a request line from a stream as it arrives, e.g. from a non-blocking socket
/// in the master's poll loop, holding at most MAX_REQUEST_LEN + 1 bytes.
#[derive(Debug, Default)]
pub struct RequestReader {
    line: Vec<u8>,
}

impl RequestReader {
    /// Takes the bytes just read: the request once its line is complete (or too long),
    /// `None` while more may come. Bytes after the newline are ignored: one request per
    /// connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Result<Request, RequestError>> {
        let room = MAX_REQUEST_LEN + 1 - self.line.len();
        let newline = bytes.iter().position(|b| *b == b'\n');
        let take = newline.unwrap_or(bytes.len());
        if take > room {
            return Some(Err(RequestError::TooLong));
        }
        self.line.extend_from_slice(&bytes[..take]);
        newline.map(|_| Request::parse(&self.line))
    }

    /// The client closed its side without a newline: what it sent is the request.
    pub fn finish(self) -> Result<Request, RequestError> {
        Request::parse(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, RequestError> {
        Request::parse(text.as_bytes())
    }

    #[test]
    fn every_command_parses_and_prints_back() {
        let server: IpAddr = "198.19.0.2".parse().unwrap();
        let server6: IpAddr = "fd00:19::2".parse().unwrap();
        let cases = [
            ("status", Request::Status),
            ("status json", Request::StatusJson),
            ("metrics", Request::Metrics),
            ("drain 198.19.0.2", Request::Drain(server)),
            ("undrain fd00:19::2", Request::Undrain(server6)),
            ("weight 198.19.0.2 1000", Request::Weight(server, 1000)),
        ];
        for (text, request) in cases {
            assert_eq!(parse(text), Ok(request), "{text}");
            assert_eq!(request.to_string(), text);
            assert_eq!(parse(&format!("{text}\n")), Ok(request));
            assert_eq!(parse(&format!("  {text} \r\n")), Ok(request));
        }
    }

    #[test]
    fn bad_requests_get_typed_errors() {
        let cases = [
            ("", RequestError::Empty),
            ("   \n", RequestError::Empty),
            ("stats", RequestError::UnknownCommand("stats".into())),
            ("STATUS", RequestError::UnknownCommand("STATUS".into())),
            (
                "status xml",
                RequestError::UnexpectedWord {
                    command: "status",
                    word: "xml".into(),
                },
            ),
            (
                "metrics now",
                RequestError::UnexpectedWord {
                    command: "metrics",
                    word: "now".into(),
                },
            ),
            (
                "drain",
                RequestError::MissingArgument {
                    command: "drain",
                    argument: "a server address",
                },
            ),
            ("undrain web1", RequestError::BadAddress("web1".into())),
            (
                "drain 198.19.0.2 198.19.0.3",
                RequestError::UnexpectedWord {
                    command: "drain",
                    word: "198.19.0.3".into(),
                },
            ),
            (
                "weight 198.19.0.2",
                RequestError::MissingArgument {
                    command: "weight",
                    argument: "a weight",
                },
            ),
            ("weight 198.19.0.2 0", RequestError::BadWeight("0".into())),
            (
                "weight 198.19.0.2 1001",
                RequestError::BadWeight("1001".into()),
            ),
            ("weight 198.19.0.2 -1", RequestError::BadWeight("-1".into())),
        ];
        for (text, error) in cases {
            assert_eq!(parse(text), Err(error), "{text:?}");
        }
        assert_eq!(Request::parse(b"drain \xff"), Err(RequestError::NotUtf8));
    }

    #[test]
    fn the_length_limit_is_512_bytes_without_the_newline() {
        let longest = format!("status{}", " ".repeat(MAX_REQUEST_LEN - 6));
        assert_eq!(parse(&longest), Ok(Request::Status));
        assert_eq!(parse(&format!("{longest}\r\n")), Ok(Request::Status));
        assert_eq!(parse(&format!("{longest} ")), Err(RequestError::TooLong));
    }

    #[test]
    fn the_reader_assembles_a_line_from_pieces() {
        let mut reader = RequestReader::default();
        assert_eq!(reader.feed(b"wei"), None);
        assert_eq!(reader.feed(b"ght 198.19.0.2"), None);
        assert_eq!(
            reader.feed(b" 7\nignored"),
            Some(Ok(Request::Weight("198.19.0.2".parse().unwrap(), 7)))
        );
        let mut reader = RequestReader::default();
        assert_eq!(reader.feed(b"metrics"), None);
        assert_eq!(reader.finish(), Ok(Request::Metrics));
    }

    #[test]
    fn the_reader_stops_a_flood_at_the_limit() {
        let mut reader = RequestReader::default();
        let chunk = [b'x'; 100];
        let mut verdict = None;
        for _ in 0..100 {
            verdict = reader.feed(&chunk);
            if verdict.is_some() {
                break;
            }
            assert!(reader.line.len() <= MAX_REQUEST_LEN + 1);
        }
        assert_eq!(verdict, Some(Err(RequestError::TooLong)));
        let mut reader = RequestReader::default();
        let exact = format!("metrics{}\n", " ".repeat(MAX_REQUEST_LEN - 7));
        assert_eq!(reader.feed(exact.as_bytes()), Some(Ok(Request::Metrics)));
        let mut reader = RequestReader::default();
        let over = format!("metrics{}\n", " ".repeat(MAX_REQUEST_LEN - 6));
        assert_eq!(
            reader.feed(over.as_bytes()),
            Some(Err(RequestError::TooLong))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_a_request_or_an_error_and_requests_read_back(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..700),
            split in 0usize..700,
        ) {
            let parsed = Request::parse(&bytes);
            if let Ok(request) = parsed {
                proptest::prop_assert_eq!(Request::parse(request.to_string().as_bytes()), Ok(request));
            }
            // The reader agrees with the parser on a line sent in two pieces.
            if !bytes.contains(&b'\n') {
                let mut reader = RequestReader::default();
                let (first, second) = bytes.split_at(split.min(bytes.len()));
                let fed = reader.feed(first).or_else(|| reader.feed(second));
                let result = match fed {
                    Some(result) => result,
                    None => reader.finish(),
                };
                proptest::prop_assert_eq!(result, parsed);
            }
        }
    }
}
