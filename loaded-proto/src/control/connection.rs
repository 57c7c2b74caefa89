//! One client connection on the master's side, driven by readiness events from its poll
//! loop: collect the request line, answer it once, write the reply (over several writable
//! events if the socket buffer fills), close. Nothing here blocks.

use super::reply::{ControlError, Reply};
use super::request::{Request, RequestReader};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A client gets this long from connecting to the end of its reply; then it is dropped,
/// so a client that connects and sends nothing holds no slot for long.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// What the poll loop does next with the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Wait for the socket to become readable.
    WantRead,
    /// Wait for the socket to become writable: part of the reply is still to go.
    WantWrite,
    /// Finished (or the client is gone): deregister and drop the connection.
    Done,
}

pub struct ControlConnection {
    stream: UnixStream,
    reader: RequestReader,
    /// The encoded reply and how much of it is written, once answered.
    reply: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

impl ControlConnection {
    /// Takes a freshly accepted stream and makes it non-blocking.
    pub fn new(stream: UnixStream, now: Instant) -> io::Result<ControlConnection> {
        stream.set_nonblocking(true)?;
        Ok(ControlConnection {
            stream,
            reader: RequestReader::default(),
            reply: None,
            deadline: now + CONNECTION_DEADLINE,
        })
    }

    /// For registering with the poll loop.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// When the connection is dropped if it is not finished.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn is_past_deadline(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// The socket is readable: reads what is there and, once the request is complete,
    /// calls `answer` (once per connection) and starts writing its reply. A request that
    /// does not parse is answered with an `error:` reply without calling `answer`.
    pub fn on_readable(
        &mut self,
        answer: impl FnOnce(Request) -> Result<String, ControlError>,
    ) -> Progress {
        if self.reply.is_some() {
            return self.on_writable();
        }
        let mut buffer = [0u8; 512];
        let request = loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => break std::mem::take(&mut self.reader).finish(),
                Ok(n) => {
                    if let Some(request) = self.reader.feed(&buffer[..n]) {
                        break request;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::WantRead,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Done,
            }
        };
        let reply = match request {
            Ok(request) => match answer(request) {
                Ok(body) => Reply::Ok(body),
                Err(error) => Reply::from(error),
            },
            Err(error) => Reply::from(ControlError::from(error)),
        };
        self.reply = Some((reply.encode(), 0));
        self.on_writable()
    }

    /// The socket is writable: writes more of the reply.
    pub fn on_writable(&mut self) -> Progress {
        let Some((reply, written)) = &mut self.reply else {
            return Progress::WantRead;
        };
        while *written < reply.len() {
            match self.stream.write(&reply[*written..]) {
                Ok(0) => return Progress::Done,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::WantWrite,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Done,
            }
        }
        Progress::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;

    fn pair() -> (ControlConnection, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        (
            ControlConnection::new(server, Instant::now()).unwrap(),
            client,
        )
    }

    fn read_all(client: &mut UnixStream) -> String {
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn a_request_in_pieces_is_answered_once() {
        let (mut connection, mut client) = pair();
        let mut calls = 0;
        assert_eq!(
            connection.on_readable(|_| unreachable!()),
            Progress::WantRead
        );
        client.write_all(b"status ").unwrap();
        assert_eq!(
            connection.on_readable(|_| unreachable!()),
            Progress::WantRead
        );
        client.write_all(b"json\n").unwrap();
        let progress = connection.on_readable(|request| {
            calls += 1;
            assert_eq!(request, Request::StatusJson);
            Ok("{}\n".into())
        });
        assert_eq!((progress, calls), (Progress::Done, 1));
        drop(connection);
        assert_eq!(read_all(&mut client), "ok\n{}\n");
    }

    #[test]
    fn a_bad_request_is_refused_without_asking() {
        let (mut connection, mut client) = pair();
        client.write_all(b"drain web1\n").unwrap();
        assert_eq!(connection.on_readable(|_| unreachable!()), Progress::Done);
        drop(connection);
        assert_eq!(
            read_all(&mut client),
            "error: 'web1' is not an IPv4 or IPv6 address\n"
        );
    }

    #[test]
    fn the_answers_error_becomes_the_reply() {
        let (mut connection, mut client) = pair();
        client.write_all(b"undrain 198.19.0.9").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let progress = connection.on_readable(|request| {
            let Request::Undrain(server) = request else {
                panic!("{request:?}")
            };
            Err(ControlError::NoSuchServer(server))
        });
        assert_eq!(progress, Progress::Done);
        drop(connection);
        assert_eq!(read_all(&mut client), "error: no such server 198.19.0.9\n");
    }

    #[test]
    fn a_flood_is_cut_off_at_the_limit() {
        let (mut connection, mut client) = pair();
        client.set_nonblocking(true).unwrap();
        let flood = vec![b'x'; 4096];
        let _ = client.write(&flood);
        assert_eq!(connection.on_readable(|_| unreachable!()), Progress::Done);
        drop(connection);
        client.set_nonblocking(false).unwrap();
        let mut reply = Vec::new();
        // The master closed with data unread: the client may see a reset after the reply.
        let _ = client.read_to_end(&mut reply);
        assert_eq!(reply, b"error: request longer than 512 bytes\n");
    }

    #[test]
    fn a_long_reply_goes_out_over_several_writable_events() {
        let (mut connection, mut client) = pair();
        client.write_all(b"metrics\n").unwrap();
        let body = "loaded_x_total 1\n".repeat(200_000);
        let expected_len = 3 + body.len();
        let mut progress = connection.on_readable(|_| Ok(body));
        assert_eq!(
            progress,
            Progress::WantWrite,
            "3.4 MB fits no socket buffer"
        );
        let mut received = Vec::new();
        let mut buffer = vec![0; 1 << 16];
        while progress == Progress::WantWrite {
            let n = client.read(&mut buffer).unwrap();
            received.extend_from_slice(&buffer[..n]);
            progress = connection.on_writable();
        }
        assert_eq!(progress, Progress::Done);
        drop(connection);
        received.extend(read_all(&mut client).into_bytes());
        assert_eq!(received.len(), expected_len);
        assert!(received.starts_with(b"ok\nloaded_x_total 1\n"));
    }

    #[test]
    fn the_deadline_is_counted_from_the_connection() {
        let (server, _client) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let connection = ControlConnection::new(server, start).unwrap();
        assert!(!connection.is_past_deadline(start + CONNECTION_DEADLINE / 2));
        assert!(connection.is_past_deadline(start + CONNECTION_DEADLINE));
    }
}
