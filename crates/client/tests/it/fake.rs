//! A fake buildcat server that does what the test script says, one connection at a time.

use buildcat_proto::{
    ClientFrame, FrameCodec, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION, Reply,
    RequestError, RequestId, Role, ServerFrame, Welcome, codec,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// A listener on a free loopback port.
pub struct FakeServer {
    /// Where the client connects.
    pub addr: String,
    /// Accepts the client's connections.
    listener: TcpListener,
}

/// An accepted connection before the handshake.
pub struct Peer {
    /// The socket, framed for the hello.
    framed: Framed<TcpStream, FrameCodec<Hello, HelloReply>>,
}

/// A welcomed connection.
pub struct Session {
    /// The socket, framed for requests and replies.
    framed: Framed<TcpStream, FrameCodec<ClientFrame, ServerFrame>>,
}

impl FakeServer {
    /// Binds 127.0.0.1 on a port the system picks.
    pub async fn bind() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        FakeServer { addr, listener }
    }

    /// A fake server on a listener already bound (e.g. again on the port of one that went
    /// away).
    pub fn from_listener(listener: TcpListener) -> FakeServer {
        let addr = listener.local_addr().unwrap().to_string();
        FakeServer { addr, listener }
    }

    /// Accepts the next connection.
    pub async fn accept(&self) -> Peer {
        let (stream, _) = self.listener.accept().await.unwrap();
        Peer {
            framed: Framed::new(stream, FrameCodec::new(buildcat_proto::DEFAULT_MAX_FRAME)),
        }
    }

    /// Accepts the next connection and welcomes it.
    pub async fn session(&self) -> Session {
        self.accept().await.welcome().await
    }
}

impl Peer {
    /// Reads the client's hello.
    pub async fn hello(&mut self) -> Hello {
        self.framed.next().await.unwrap().unwrap()
    }

    /// Reads the hello and welcomes the client.
    pub async fn welcome(self) -> Session {
        self.welcome_with_limit(buildcat_proto::DEFAULT_MAX_FRAME as u32)
            .await
    }

    /// Reads the hello and welcomes the client, announcing `max_frame`.
    pub async fn welcome_with_limit(mut self, max_frame: u32) -> Session {
        let hello = self.hello().await;
        hello.check().unwrap();
        assert_eq!(hello.role, Role::Client);
        let welcome = Welcome {
            protocol: PROTOCOL_VERSION,
            software: "0.6.0-fake".to_owned(),
            max_frame,
        };
        self.framed
            .send(HelloReply::Welcome(welcome))
            .await
            .unwrap();
        Session {
            framed: self.framed.map_codec(|codec| codec.retype()),
        }
    }

    /// Reads the hello and writes the welcome and `frame` in one write, so both reach the
    /// client together; returns once the client hangs up.
    pub async fn welcome_together_with(mut self, frame: ServerFrame) {
        self.hello().await;
        let welcome = HelloReply::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            software: "0.6.0-fake".to_owned(),
            max_frame: buildcat_proto::DEFAULT_MAX_FRAME as u32,
        });
        let mut bytes = codec::encode_frame(&welcome).unwrap();
        bytes.extend(codec::encode_frame(&frame).unwrap());
        self.framed.get_mut().write_all(&bytes).await.unwrap();
        let mut session = Session {
            framed: self.framed.map_codec(|codec| codec.retype()),
        };
        while session.recv().await.is_some() {}
    }

    /// Reads the hello and refuses the client.
    pub async fn refuse(mut self, error: HandshakeError) {
        self.hello().await;
        self.framed.send(HelloReply::Refused(error)).await.unwrap();
    }

    /// Reads the hello and answers with bytes that are not a buildcat frame.
    pub async fn answer_raw(mut self, bytes: &[u8]) {
        self.hello().await;
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads the hello, never answers it, and returns once the client hangs up.
    pub async fn ignore_until_closed(mut self) {
        self.hello().await;
        while let Some(Ok(_)) = self.framed.next().await {}
    }
}

impl Session {
    /// The next request, or `None` once the client has closed the connection.
    pub async fn recv(&mut self) -> Option<ClientFrame> {
        self.framed.next().await.map(Result::unwrap)
    }

    /// The next request, which must come.
    pub async fn request(&mut self) -> ClientFrame {
        self.recv().await.expect("the client closed the connection")
    }

    /// Answers the request with `id`.
    pub async fn reply(&mut self, id: RequestId, reply: Result<Reply, RequestError>) {
        self.send(ServerFrame::Reply { id, reply }).await;
    }

    /// Sends any frame.
    pub async fn send(&mut self, frame: ServerFrame) {
        self.framed.send(frame).await.unwrap();
    }
}
