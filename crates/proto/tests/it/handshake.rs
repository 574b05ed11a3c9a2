//! The handshake: what a server accepts in a [`Hello`], what it answers, and switching the
//! codec to the message types once it is done.

use buildcat_proto::{
    ClientFrame, CodecError, DEFAULT_MAX_FRAME, FrameCodec, HandshakeError, Hello, HelloReply,
    MAGIC, PROTOCOL_VERSION, Request, Role, SOFTWARE_VERSION, ServerFrame, Welcome,
};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

#[test]
fn a_hello_from_this_build_passes() {
    for role in [Role::Client, Role::Worker] {
        let hello = Hello::new(role);
        assert_eq!(
            hello,
            Hello {
                magic: MAGIC,
                protocol: PROTOCOL_VERSION,
                role,
                software: SOFTWARE_VERSION.to_owned(),
            }
        );
        assert_eq!(hello.check(), Ok(()));
    }
}

#[test]
fn bad_magic_is_refused() {
    let hello = Hello {
        magic: *b"GET / HT",
        ..Hello::new(Role::Client)
    };
    assert_eq!(hello.check(), Err(HandshakeError::BadMagic));
    assert_eq!(
        HandshakeError::BadMagic.to_string(),
        "the peer does not speak the buildcat protocol (bad magic bytes)"
    );
}

#[test]
fn bad_magic_is_checked_before_the_version() {
    let hello = Hello {
        magic: [0; 8],
        protocol: PROTOCOL_VERSION + 1,
        ..Hello::new(Role::Worker)
    };
    assert_eq!(hello.check(), Err(HandshakeError::BadMagic));
}

#[test]
fn another_protocol_version_is_a_mismatch() {
    let hello = Hello {
        protocol: PROTOCOL_VERSION + 1,
        software: "9.9.9".to_owned(),
        ..Hello::new(Role::Worker)
    };
    let error = hello.check().unwrap_err();
    assert_eq!(
        error,
        HandshakeError::ProtocolMismatch {
            server: PROTOCOL_VERSION,
            server_software: SOFTWARE_VERSION.to_owned(),
            peer: PROTOCOL_VERSION + 1,
            peer_software: "9.9.9".to_owned(),
        }
    );
    let text = error.to_string();
    assert_eq!(
        text,
        format!(
            "protocol version mismatch: the server speaks version {PROTOCOL_VERSION} \
             (buildcat {SOFTWARE_VERSION}) but this program speaks version {} (buildcat 9.9.9); \
             run the same buildcat version on every host",
            PROTOCOL_VERSION + 1
        )
    );
    // Both versions and both software versions are named, whatever the wording.
    for part in [
        format!("version {PROTOCOL_VERSION}"),
        format!("version {}", PROTOCOL_VERSION + 1),
        format!("buildcat {SOFTWARE_VERSION}"),
        "buildcat 9.9.9".to_owned(),
    ] {
        assert!(text.contains(&part), "{text:?} does not name {part:?}");
    }
}

#[test]
fn a_peer_of_the_previous_version_is_told_both_versions() {
    // The usual case after an upgrade: a host still runs the build before the last bump.
    let previous = PROTOCOL_VERSION - 1;
    let hello = Hello {
        protocol: previous,
        software: "0.6.0".to_owned(),
        ..Hello::new(Role::Worker)
    };
    let error = hello.check().unwrap_err();
    assert_eq!(
        error,
        HandshakeError::ProtocolMismatch {
            server: PROTOCOL_VERSION,
            server_software: SOFTWARE_VERSION.to_owned(),
            peer: previous,
            peer_software: "0.6.0".to_owned(),
        }
    );
    // Each version is named on its own side, not swapped.
    let text = error.to_string();
    for part in [
        format!("the server speaks version {PROTOCOL_VERSION} (buildcat {SOFTWARE_VERSION})"),
        format!("this program speaks version {previous} (buildcat 0.6.0)"),
    ] {
        assert!(text.contains(&part), "{text:?} does not name {part:?}");
    }
}

#[test]
fn an_older_protocol_version_is_a_mismatch_too() {
    let hello = Hello {
        protocol: 0,
        ..Hello::new(Role::Client)
    };
    assert!(matches!(
        hello.check(),
        Err(HandshakeError::ProtocolMismatch { peer: 0, .. })
    ));
}

#[test]
fn refusal_texts() {
    assert_eq!(
        HandshakeError::TooManyConnections { limit: 1024 }.to_string(),
        "the server has too many connections (1024); try again later or raise --max-connections"
    );
    assert_eq!(
        HandshakeError::ShuttingDown.to_string(),
        "the server is shutting down"
    );
}

#[test]
fn retype_keeps_max_frame() {
    let codec = FrameCodec::<Hello, HelloReply>::new(1234);
    assert_eq!(codec.max_frame(), 1234);
    let mut codec = codec.retype::<ClientFrame, ServerFrame>();
    assert_eq!(codec.max_frame(), 1234);
    // And it is still enforced.
    let mut buf = BytesMut::from(&1235u32.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLarge {
            len: 1235,
            max: 1234
        })
    ));
}

#[test]
fn a_whole_handshake_then_a_request_on_one_buffer() {
    // The peer sends its hello and, without waiting, its first request.
    let mut peer = FrameCodec::<HelloReply, Hello>::new(DEFAULT_MAX_FRAME);
    let mut to_server = BytesMut::new();
    peer.encode(Hello::new(Role::Client), &mut to_server)
        .unwrap();
    let mut peer = peer.retype::<ServerFrame, ClientFrame>();
    let request = ClientFrame {
        id: 1,
        request: Request::Info,
    };
    peer.encode(request.clone(), &mut to_server).unwrap();

    // The server reads the hello, checks it and welcomes the peer...
    let mut server = FrameCodec::<Hello, HelloReply>::new(DEFAULT_MAX_FRAME);
    let hello = server.decode(&mut to_server).unwrap().unwrap();
    assert_eq!(hello.check(), Ok(()));
    let welcome = HelloReply::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        software: SOFTWARE_VERSION.to_owned(),
        max_frame: u32::try_from(server.max_frame()).unwrap(),
    });
    let mut to_peer = BytesMut::new();
    server.encode(welcome.clone(), &mut to_peer).unwrap();

    // ...then reads the request that was already buffered behind it.
    let mut server = server.retype::<ClientFrame, ServerFrame>();
    assert_eq!(server.decode(&mut to_server).unwrap(), Some(request));
    assert!(to_server.is_empty());

    let mut peer = peer.retype::<HelloReply, Hello>();
    assert_eq!(peer.decode(&mut to_peer).unwrap(), Some(welcome));
}
