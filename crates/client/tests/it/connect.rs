//! Connecting: addresses, the hello and its failures.

use std::time::Duration;

use buildcat_client::{Client, ClientError, ClientOptions};
use buildcat_proto::{FarmInfo, HandshakeError, Reply, Request};

use crate::fake::FakeServer;
use crate::within;

/// Options with a short handshake timeout, for the one test that waits for it to run out.
fn short_handshake() -> ClientOptions {
    ClientOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_welcomed_client_can_ask_the_server() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Info);
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    assert_eq!(client.addr(), addr);
    assert_eq!(client.server_version(), "0.6.0-fake");
    assert_eq!(within(client.info()).await.unwrap(), FarmInfo::default());
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_protocol_mismatch_names_both_versions() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let peer = server.accept().await;
        peer.refuse(HandshakeError::ProtocolMismatch {
            server: 7,
            server_software: "9.1.0".to_owned(),
            peer: 1,
            peer_software: "0.6.0".to_owned(),
        })
        .await;
    });
    let error = within(Client::connect(&addr)).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::HandshakeRefused {
                error: HandshakeError::ProtocolMismatch { server: 7, .. },
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with(&format!("the buildcat server at {addr} refused")));
    for words in ["version 7 (buildcat 9.1.0)", "version 1 (buildcat 0.6.0)"] {
        assert!(message.contains(words), "{message}");
    }
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once_with_a_hint() {
    let addr = {
        let server = FakeServer::bind().await;
        server.addr.clone()
    };
    // A long timeout: the refusal must come from the system, not from the timer.
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    let error = within(Client::connect_with(&addr, options))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "could not connect to the buildcat server at {addr}: connection refused \
             (is `buildcat server` running?)"
        )
    );
}

#[tokio::test]
async fn a_server_that_never_answers_the_hello_times_out() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move { server.accept().await.ignore_until_closed().await });
    let error = within(Client::connect_with(&addr, short_handshake()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::HandshakeTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the server at {addr} did not answer the buildcat handshake within 200ms \
             (is it a buildcat server?)"
        )
    );
    // The client hung up when it gave up.
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_server_speaking_another_protocol_is_named_as_such() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let peer = server.accept().await;
        peer.answer_raw(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let error = within(Client::connect(&addr)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NotBuildcat { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "the server at {addr} does not speak the buildcat protocol"
        )),
        "{error}"
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_server_that_hangs_up_during_the_hello_is_not_taken_for_buildcat() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut peer = server.accept().await;
        peer.hello().await;
    });
    let error = within(Client::connect(&addr)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NotBuildcat { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("without answering the hello"),
        "{error}"
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn an_address_without_a_port_is_refused_before_any_lookup() {
    let error = within(Client::connect("render-server")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidAddress { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "`render-server` is not a server address: expected host:port, such as \
         127.0.0.1:2228 or render-server:2228"
    );
}

#[tokio::test]
async fn dropping_the_last_clone_closes_the_connection() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        // Returns `None` only when the client closes its side.
        assert_eq!(session.recv().await, None);
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let clone = client.clone();
    drop(client);
    drop(clone);
    within(script).await.unwrap();
}
