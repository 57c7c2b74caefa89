//! The command line, in the style of loaded-master's.

use loaded_proto::control::{Request, RequestError, DEFAULT_SOCKET_PATH};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: loadedctl [-s PATH] COMMAND

commands:
  status [--json]     servers, their state and traffic; drops; workers; the prober
  metrics             the counters in the Prometheus text format
  drain ADDR          send no new clients to the server ADDR (mapped clients stay)
  undrain ADDR        send new clients to ADDR again
  weight ADDR N       give the server ADDR the weight N (1 to 1000)

options:
  -s, --socket PATH   the master's control socket (default: /run/loaded/control.sock)
  -h, --help          this text
  -V, --version       the version
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Send { socket: PathBuf, request: Request },
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UsageError {
    /// An option lexopt could not read (unknown, or missing its value).
    Option(String),
    NoCommand,
    /// `--json` after a command other than status.
    JsonWithout(&'static str),
    /// A word that cannot be part of a request line (empty, or with blanks inside).
    BadWord(String),
    Request(RequestError),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Option(message) => f.write_str(message),
            UsageError::NoCommand => f.write_str("no command given"),
            UsageError::JsonWithout(command) => write!(f, "--json goes with status, not {command}"),
            UsageError::BadWord(word) => write!(f, "'{word}' is not a single word"),
            UsageError::Request(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for UsageError {}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let option_error = |e: lexopt::Error| UsageError::Option(e.to_string());
    let mut socket = PathBuf::from(DEFAULT_SOCKET_PATH);
    let mut json = false;
    let mut words: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(option_error)? {
        match arg {
            Short('s') | Long("socket") => socket = parser.value().map_err(option_error)?.into(),
            Long("json") => json = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Value(word) => {
                let word = word
                    .into_string()
                    .map_err(|word| UsageError::BadWord(word.to_string_lossy().into_owned()))?;
                if word.is_empty() || word.contains(char::is_whitespace) {
                    return Err(UsageError::BadWord(word));
                }
                words.push(word);
            }
            _ => return Err(option_error(arg.unexpected())),
        }
    }
    if words.is_empty() {
        return Err(UsageError::NoCommand);
    }
    let mut request = Request::parse(words.join(" ").as_bytes()).map_err(UsageError::Request)?;
    if json {
        request = match request {
            Request::Status | Request::StatusJson => Request::StatusJson,
            other => return Err(UsageError::JsonWithout(other.command())),
        };
    }
    Ok(Command::Send { socket, request })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn run(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn request(args: &[&str]) -> Request {
        match run(args) {
            Ok(Command::Send { request, .. }) => request,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn every_command_becomes_its_request() {
        let server: IpAddr = "198.19.0.2".parse().unwrap();
        assert_eq!(request(&["status"]), Request::Status);
        assert_eq!(request(&["status", "--json"]), Request::StatusJson);
        assert_eq!(request(&["--json", "status"]), Request::StatusJson);
        assert_eq!(request(&["metrics"]), Request::Metrics);
        assert_eq!(request(&["drain", "198.19.0.2"]), Request::Drain(server));
        assert_eq!(
            request(&["undrain", "198.19.0.2"]),
            Request::Undrain(server)
        );
        assert_eq!(
            request(&["weight", "198.19.0.2", "5"]),
            Request::Weight(server, 5)
        );
    }

    #[test]
    fn the_socket_defaults_and_can_be_given() {
        let socket = |args: &[&str]| match run(args) {
            Ok(Command::Send { socket, .. }) => socket,
            other => panic!("{other:?}"),
        };
        assert_eq!(socket(&["status"]), PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(
            socket(&["-s", "/tmp/c.sock", "status"]),
            PathBuf::from("/tmp/c.sock")
        );
        assert_eq!(
            socket(&["-s/tmp/c.sock", "status"]),
            PathBuf::from("/tmp/c.sock")
        );
        assert_eq!(socket(&["--socket=/x", "metrics"]), PathBuf::from("/x"));
        assert_eq!(socket(&["metrics", "--socket", "/y"]), PathBuf::from("/y"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["--help"]), Ok(Command::Help));
        assert_eq!(run(&["status", "-h"]), Ok(Command::Help));
        assert_eq!(run(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn bad_usage_is_refused_with_a_reason() {
        assert_eq!(run(&[]), Err(UsageError::NoCommand));
        assert_eq!(
            run(&["metrics", "--json"]),
            Err(UsageError::JsonWithout("metrics"))
        );
        assert!(matches!(run(&["-x", "status"]), Err(UsageError::Option(_))));
        assert!(matches!(run(&["status", "-s"]), Err(UsageError::Option(_))));
        assert_eq!(
            run(&["drain", "web1"]),
            Err(UsageError::Request(RequestError::BadAddress("web1".into())))
        );
        assert_eq!(
            run(&["weight", "198.19.0.2", "0"]),
            Err(UsageError::Request(RequestError::BadWeight("0".into())))
        );
        assert!(matches!(
            run(&["drain"]),
            Err(UsageError::Request(RequestError::MissingArgument { .. }))
        ));
        assert_eq!(
            run(&["stop"]),
            Err(UsageError::Request(RequestError::UnknownCommand(
                "stop".into()
            )))
        );
        assert_eq!(
            run(&["drain", "1.2.3.4 x"]),
            Err(UsageError::BadWord("1.2.3.4 x".into()))
        );
        assert_eq!(run(&["drain", ""]), Err(UsageError::BadWord(String::new())));
    }
}
