//! Everything that can go wrong between a program and the buildcat server.
//!
//! Each message is one lowercase line that names the address or job involved, so a program
//! can print it as is or chain it under its own context. A variant that wraps another error
//! puts that error's words in its own message and keeps the value in a field for code that
//! wants to inspect it, rather than also returning it from `source()`: a chain printer would
//! otherwise say the same thing twice.

use std::io;
use std::time::Duration;

use buildcat_proto::{CodecError, Failure, HandshakeError, RequestError};

/// Why a connection, a request or a job did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TLS files could not be used.
    #[error("tls: {0}")]
    TlsSetup(String),
    /// The TLS session with the server failed.
    #[error("tls with the buildcat server at {addr} failed: {reason}")]
    Tls {
        /// The server's address.
        addr: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// The address is not of the form `host:port`.
    #[error(
        "`{addr}` is not a server address: expected host:port, such as 127.0.0.1:2228 or \
         render-server:2228"
    )]
    InvalidAddress {
        /// The address given.
        addr: String,
    },
    /// The host name of the address could not be resolved.
    #[error("could not resolve the buildcat server address {addr}: {}", describe_io(.error))]
    Resolve {
        /// The address given.
        addr: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// No address of the server accepted a TCP connection.
    #[error(
        "could not connect to the buildcat server at {addr}: {} (is `buildcat server` running?)",
        describe_io(.error)
    )]
    Connect {
        /// The address given.
        addr: String,
        /// Why the last address tried refused (e.g. `ConnectionRefused`).
        error: io::Error,
    },
    /// Resolving and connecting took longer than the connect timeout.
    #[error(
        "timed out after {after:?} connecting to the buildcat server at {addr} (is the address \
         right and the port open?)"
    )]
    ConnectTimeout {
        /// The address given.
        addr: String,
        /// The connect timeout that ran out.
        after: Duration,
    },
    /// The server answered the hello with a refusal.
    #[error("the buildcat server at {addr} refused the connection: {error}")]
    HandshakeRefused {
        /// The address given.
        addr: String,
        /// Why the server refused, e.g. a protocol version mismatch naming both versions.
        error: HandshakeError,
    },
    /// The server accepted the TCP connection but did not answer the hello in time.
    #[error(
        "the server at {addr} did not answer the buildcat handshake within {after:?} (is it a \
         buildcat server?)"
    )]
    HandshakeTimeout {
        /// The address given.
        addr: String,
        /// The handshake timeout that ran out.
        after: Duration,
    },
    /// The server answered the hello with something that is not a buildcat reply.
    #[error("the server at {addr} does not speak the buildcat protocol: {reason}")]
    NotBuildcat {
        /// The address given.
        addr: String,
        /// What was wrong with its answer.
        reason: String,
    },
    /// The connection ended; every request in flight and every later one fails with this.
    #[error("the connection to the buildcat server at {addr} was lost: {reason}")]
    ConnectionLost {
        /// The address given.
        addr: String,
        /// How it ended: the server closed it, said why it closed it, or the bytes went wrong.
        reason: String,
    },
    /// The server could not serve the request; the connection stays open.
    #[error("the server refused the request: {0}")]
    RequestRefused(RequestError),
    /// The request was refused before it was sent, e.g. a job with an empty queue name.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server answered with a reply that does not fit the request.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// A task ended in failure after its last attempt.
    #[error("task {task} failed: {}", describe_failure(.failure.as_ref()))]
    JobFailed {
        /// The task as people name it, `42.3`.
        task: String,
        /// Why, as the server recorded it (exit code and output tail included).
        failure: Option<Failure>,
    },
    /// A task was canceled before it finished.
    #[error("task {task} was canceled")]
    JobCanceled {
        /// The task as people name it, `42.3`.
        task: String,
    },
    /// A request could not be encoded, e.g. a batch over the server's frame limit.
    #[error("could not encode the request: {0}")]
    Encode(CodecError),
    /// The server stayed out of reach for the whole of the reconnect policy's limit
    /// ([`Reconnect::give_up_after`](crate::Reconnect::give_up_after)).
    #[error(
        "gave up reconnecting to the buildcat server at {addr} after {after:?}: {last} (start \
         the server again, then run the command again)"
    )]
    GaveUp {
        /// The address given.
        addr: String,
        /// How long it kept trying.
        after: Duration,
        /// Why the last try failed.
        last: Box<ClientError>,
    },
    /// The events of a streaming request (`follow_logs`, `watch`) came faster than they
    /// were read and filled the caller's channel, so the stream was ended.
    #[error(
        "events came faster than they were read: the channel of {capacity} events filled and \
         the stream was ended (read events while waiting, or give a larger channel, then ask \
         again)"
    )]
    Lagged {
        /// The capacity of the channel that filled.
        capacity: usize,
    },
    /// A finished task's result is not a value of its task type's output type.
    #[error("could not decode the result of task {task} (kind {kind}): {error}")]
    Decode {
        /// The task as people name it, `42.3`.
        task: String,
        /// The task's kind, which names the output type expected.
        kind: String,
        /// What the decoder said.
        error: CodecError,
    },
}

/// What kind of error a [`ClientError`] is, for code that maps errors onto its own classes
/// (a language binding's exceptions, an HTTP status) in one `match` that does not change
/// when [`ClientError`] grows a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server could not be reached, or the connection to it was lost
    /// (`Resolve`, `Connect`, `ConnectTimeout`, `HandshakeTimeout`, `ConnectionLost`,
    /// `GaveUp`).
    Connection,
    /// TLS could not be set up or the TLS session failed (`TlsSetup`, `Tls`).
    Tls,
    /// The server refused the connection or is not a buildcat server (`HandshakeRefused`,
    /// `NotBuildcat`).
    Handshake,
    /// The server refused one request; the connection stays open (`RequestRefused`).
    Refused,
    /// The request or address was refused before anything was sent (`Invalid`,
    /// `InvalidAddress`).
    Invalid,
    /// The server broke the protocol (`Protocol`).
    Protocol,
    /// A value could not be encoded or a result decoded (`Encode`, `Decode`).
    Codec,
    /// The job failed after its last attempt (`JobFailed`).
    JobFailed,
    /// The job was canceled (`JobCanceled`).
    JobCanceled,
    /// A stream of events was read too slowly and ended (`Lagged`).
    Lagged,
}

impl ClientError {
    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Resolve { .. }
            | ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::HandshakeTimeout { .. }
            | ClientError::ConnectionLost { .. }
            | ClientError::GaveUp { .. } => ErrorKind::Connection,
            ClientError::TlsSetup(_) | ClientError::Tls { .. } => ErrorKind::Tls,
            ClientError::HandshakeRefused { .. } | ClientError::NotBuildcat { .. } => {
                ErrorKind::Handshake
            }
            ClientError::RequestRefused(_) => ErrorKind::Refused,
            ClientError::Invalid(_) | ClientError::InvalidAddress { .. } => ErrorKind::Invalid,
            ClientError::Protocol(_) => ErrorKind::Protocol,
            ClientError::Encode(_) | ClientError::Decode { .. } => ErrorKind::Codec,
            ClientError::JobFailed { .. } => ErrorKind::JobFailed,
            ClientError::JobCanceled { .. } => ErrorKind::JobCanceled,
            ClientError::Lagged { .. } => ErrorKind::Lagged,
        }
    }

    /// Whether a new connection may succeed where this one failed: the server was out of
    /// reach, the connection dropped, or the server was busy or stopping. A program watching
    /// jobs reconnects on these ([`Client::reconnect`](crate::Client::reconnect)) and gives
    /// up on anything else.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Resolve { .. }
            | ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::HandshakeTimeout { .. }
            | ClientError::ConnectionLost { .. } => true,
            ClientError::HandshakeRefused { error, .. } => matches!(
                error,
                HandshakeError::TooManyConnections { .. }
                    | HandshakeError::ShuttingDown
                    | HandshakeError::Standby { .. }
            ),
            _ => false,
        }
    }
}

/// An I/O error in the words of a one-line message: `connection refused`, not
/// `Connection refused (os error 111)`.
pub(crate) fn describe_io(error: &io::Error) -> String {
    use io::ErrorKind;

    let kind = error.kind();
    let has_plain_words = matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::AddrInUse
            | ErrorKind::AddrNotAvailable
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut
            | ErrorKind::UnexpectedEof
            | ErrorKind::PermissionDenied
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
    );
    // An OS error of a well-known kind reads the same on every platform by its kind's name;
    // anything else (a resolver message, a custom error) keeps its own words.
    if has_plain_words && error.get_ref().is_none() {
        return kind.to_string();
    }
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text.as_str(),
    };
    lowercase_first(text)
}

/// `Name or service not known` as `name or service not known`.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A failure's reason and exit code, or a note that none was recorded.
fn describe_failure(failure: Option<&Failure>) -> String {
    match failure {
        Some(failure) => failure.to_string(),
        None => "the server recorded no reason".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_their_kind() {
        let refused = io::Error::from_raw_os_error(111);
        if refused.kind() == io::ErrorKind::ConnectionRefused {
            assert_eq!(describe_io(&refused), "connection refused");
        }
        let simple = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(describe_io(&simple), "connection reset");
    }

    #[test]
    fn other_errors_keep_their_words_in_lowercase() {
        let resolver = io::Error::other("Name or service not known");
        assert_eq!(describe_io(&resolver), "name or service not known");
        let custom = io::Error::new(io::ErrorKind::ConnectionRefused, "Refused by policy");
        assert_eq!(describe_io(&custom), "refused by policy");
    }

    #[test]
    fn a_connect_timeout_names_the_time_and_a_hint() {
        let error = ClientError::ConnectTimeout {
            addr: "render-server:2228".to_owned(),
            after: Duration::from_secs(5),
        };
        assert_eq!(
            error.to_string(),
            "timed out after 5s connecting to the buildcat server at render-server:2228 (is the \
             address right and the port open?)"
        );
    }

    #[test]
    fn a_failure_without_reason_says_so() {
        let error = ClientError::JobFailed {
            task: "42.3".to_owned(),
            failure: None,
        };
        assert_eq!(
            error.to_string(),
            "task 42.3 failed: the server recorded no reason"
        );
    }
}
