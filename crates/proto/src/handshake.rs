//! The first exchange on every connection.
//!
//! The peer sends [`Hello`]; the server answers [`HelloReply`]. Nothing else may be sent
//! before the server's welcome, so a peer speaking another protocol (HTTP, TLS, an older
//! buildcat) is told what is wrong before anything else happens.

use serde::{Deserialize, Serialize};

/// Bytes that open every hello, so that a stray client is recognised at once.
pub const MAGIC: [u8; 8] = *b"BUILDCAT";

/// The version of the protocol spoken by this build. Bumped on any change to the encoding.
pub const PROTOCOL_VERSION: u32 = 9;

/// What the connecting side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Submits jobs, waits for them and asks about the farm.
    Client,
    /// Runs jobs.
    Worker,
}

/// The first frame a peer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// The protocol version the peer speaks.
    pub protocol: u32,
    /// Whether the peer is a client or a worker.
    pub role: Role,
    /// The peer's software version, for logs and error messages.
    pub software: String,
}

impl Hello {
    /// A hello for this build of buildcat.
    pub fn new(role: Role) -> Self {
        Hello {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            role,
            software: crate::SOFTWARE_VERSION.to_owned(),
        }
    }

    /// Checks a hello the server received; the error is what the server answers.
    pub fn check(&self) -> Result<(), HandshakeError> {
        if self.magic != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        if self.protocol != PROTOCOL_VERSION {
            return Err(HandshakeError::ProtocolMismatch {
                server: PROTOCOL_VERSION,
                server_software: crate::SOFTWARE_VERSION.to_owned(),
                peer: self.protocol,
                peer_software: self.software.clone(),
            });
        }
        Ok(())
    }
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The connection is accepted.
    Welcome(Welcome),
    /// The connection is refused and will be closed.
    Refused(HandshakeError),
}

/// What the server says about itself when it accepts a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the server speaks (equal to the peer's).
    pub protocol: u32,
    /// The server's software version.
    pub software: String,
    /// The largest frame the server accepts, in bytes.
    pub max_frame: u32,
}

/// Why a server refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The hello did not start with [`MAGIC`].
    #[error("the peer does not speak the buildcat protocol (bad magic bytes)")]
    BadMagic,
    /// The two sides speak different protocol versions.
    #[error(
        "protocol version mismatch: the server speaks version {server} (buildcat {server_software}) \
         but this program speaks version {peer} (buildcat {peer_software}); run the same buildcat \
         version on every host"
    )]
    ProtocolMismatch {
        /// The server's protocol version.
        server: u32,
        /// The server's software version.
        server_software: String,
        /// The peer's protocol version.
        peer: u32,
        /// The peer's software version.
        peer_software: String,
    },
    /// The server has reached its connection limit.
    #[error(
        "the server has too many connections ({limit}); try again later or raise --max-connections"
    )]
    TooManyConnections {
        /// The configured limit.
        limit: u32,
    },
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The server takes only TLS connections and this one is plain TCP.
    #[error(
        "the server requires TLS: pass --tls-ca (the server's certificate), --tls-cert and \
         --tls-key (this host's certificate and key, made with `buildcat client-keygen`)"
    )]
    TlsRequired,
    /// The server stands by for another one, which is active on the same storage: the peer
    /// should go to that one (issue 17).
    #[error(
        "this server is a standby; the active server is {active} (give every server's address \
         in --host, comma-separated, to follow a takeover)"
    )]
    Standby {
        /// Where the active server said clients reach it (`host:port`), or words saying it
        /// is not known yet.
        active: String,
    },
}
