//! Reconnecting after the connection is lost: a new connection for every clone, retries
//! with backoff while the server is away, and a clear end when retrying cannot help.

use std::time::Duration;

use buildcat_client::{Client, ClientError, ClientOptions, ErrorKind, Reconnect};
use buildcat_proto::{FarmInfo, HandshakeError, Reply, Request};

use crate::fake::FakeServer;
use crate::within;

/// Options that retry every few milliseconds and give up after `give_up_after`.
fn quick(give_up_after: Duration) -> ClientOptions {
    ClientOptions {
        reconnect: Reconnect {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            give_up_after,
        },
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_lost_connection_is_replaced_for_every_clone() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        // The first connection hangs up at once; the second answers.
        drop(server.session().await);
        let mut session = server.session().await;
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Info);
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
        // Returns `None` once the client hangs up: no third connection is opened.
        assert_eq!(session.recv().await, None);
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let clone = client.clone();
    let lost = within(client.info()).await.unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Connection);
    assert!(lost.is_transient(), "{lost:?}");
    assert!(client.is_closed());

    // Both clones reconnect at once; only one new connection is made.
    let (first, second) =
        within(async { tokio::join!(client.reconnect(), clone.reconnect()) }).await;
    first.unwrap();
    second.unwrap();
    assert!(!clone.is_closed());
    assert_eq!(within(clone.info()).await.unwrap(), FarmInfo::default());
    drop(client);
    drop(clone);
    within(script).await.unwrap();
}

#[tokio::test]
async fn reconnecting_waits_for_a_server_that_comes_back() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let (client, session) = within(async {
        tokio::join!(
            Client::connect_with(&addr, quick(Duration::from_secs(60))),
            server.session()
        )
    })
    .await;
    let client = client.unwrap();
    // The server goes away altogether: its port refuses connections.
    drop(session);
    drop(server);
    let error = within(client.info()).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");

    let reconnect = tokio::spawn({
        let client = client.clone();
        async move { client.reconnect().await }
    });
    // The server comes back on the same port; the client finds it by itself.
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|error| panic!("could not listen on {addr} again: {error}"));
    let server = FakeServer::from_listener(listener);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    within(reconnect).await.unwrap().unwrap();
    assert_eq!(within(client.info()).await.unwrap(), FarmInfo::default());
    within(script).await.unwrap();
}

#[tokio::test]
async fn reconnecting_gives_up_after_its_limit_with_the_last_reason() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let (client, session) = within(async {
        tokio::join!(
            Client::connect_with(&addr, quick(Duration::from_millis(200))),
            server.session()
        )
    })
    .await;
    let client = client.unwrap();
    drop(session);
    drop(server);
    within(client.info()).await.unwrap_err();
    let error = within(client.reconnect()).await.unwrap_err();
    assert!(matches!(error, ClientError::GaveUp { .. }), "{error:?}");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "gave up reconnecting to the buildcat server at {addr} after "
        )) && message.contains("connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refusal_that_retrying_cannot_fix_ends_reconnecting_at_once() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        drop(server.session().await);
        let peer = server.accept().await;
        peer.refuse(HandshakeError::ProtocolMismatch {
            server: 99,
            server_software: "9.0.0".to_owned(),
            peer: 1,
            peer_software: "0.6.0".to_owned(),
        })
        .await;
    });
    // A long limit: the error must come from the refusal, not from the limit.
    let client = within(Client::connect_with(&addr, quick(Duration::from_secs(600))))
        .await
        .unwrap();
    within(client.info()).await.unwrap_err();
    let error = within(client.reconnect()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake, "{error:?}");
    within(script).await.unwrap();
}
