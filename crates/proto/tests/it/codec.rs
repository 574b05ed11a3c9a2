//! Decoding robustness of [`FrameCodec`]: partial reads, limits, foreign protocols, garbage,
//! and encode/decode round trips. Everything runs on in-memory buffers.

use buildcat_proto::codec::{encode_frame, encode_value};
use buildcat_proto::{
    ClientFrame, CodecError, Completion, DEFAULT_MAX_FRAME, FarmInfo, FrameCodec, HandshakeError,
    Hello, HelloReply, JobEvent, JobOptions, JobQuery, JobRef, JobState, NewJob, NewTask, Outcome,
    PROTOCOL_VERSION, Reply, Request, RequestError, Requeue, Role, ServerFrame, Submitted, TaskRef,
    Welcome, WorkerRegistration,
};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

use crate::golden::{
    assignment, changes, failed_status, failure, finished_status, finished_task_status,
    frame_preview, hello_from, info_job, progress, render_job, render_lines, running_status,
    task_refs, task_status, wrong_state,
};
use crate::{JOB_A, JOB_B, TASK_A, frame};

/// What the server reads: client frames in, server frames out.
type ServerSide = FrameCodec<ClientFrame, ServerFrame>;
/// What a client or worker reads: the reverse.
type PeerSide = FrameCodec<ServerFrame, ClientFrame>;

fn server_side() -> ServerSide {
    FrameCodec::new(DEFAULT_MAX_FRAME)
}

fn peer_side() -> PeerSide {
    FrameCodec::new(DEFAULT_MAX_FRAME)
}

/// One frame of every request, with ids as a peer would number them.
fn client_frames() -> Vec<ClientFrame> {
    let requests = vec![
        Request::Submit(vec![render_job(b"\x0ashot.blend".to_vec()), info_job()]),
        Request::Wait(JobRef::Number(41)),
        Request::Job(JobRef::Id(JOB_B)),
        Request::Task(TaskRef::from(TASK_A)),
        Request::Info,
        Request::Register(WorkerRegistration {
            name: "render01.4242.1".to_owned(),
            host: "render01".to_owned(),
            root: "/var/lib/buildcat".to_owned(),
            queues: vec!["render".to_owned(), "default".to_owned()],
            kinds: vec!["buildcat.worker.info".to_owned()],
            pid: 4242,
            version: "0.6.0".to_owned(),
            running: vec![(TASK_A, 2)],
            tools: vec![buildcat_proto::ToolVersion {
                name: "blender".to_owned(),
                version: String::new(),
            }],
            gpus: vec![buildcat_proto::Gpu {
                index: 1,
                uuid: "GPU-9c1f".to_owned(),
                name: "NVIDIA H200".to_owned(),
                memory_mib: 143_771,
                driver: "550.54.15".to_owned(),
                vendor: buildcat_proto::GpuVendor::Nvidia,
            }],
        }),
        Request::Heartbeat,
        Request::Complete(Completion {
            task: TASK_A,
            attempt: 2,
            outcome: Outcome::Failed(failure()),
        }),
        Request::Log {
            task: TASK_A,
            attempt: 2,
            lines: render_lines(),
            stderr: vec![0, 1],
        },
        Request::Progress {
            task: TASK_A,
            attempt: 2,
            progress: progress(),
        },
        Request::Cancel(task_refs()),
        Request::Requeue(Requeue::Tasks {
            targets: task_refs(),
            all: false,
        }),
        Request::Requeue(Requeue::Failed {
            queue: None,
            user: Some("ana".to_owned()),
        }),
        Request::Pause(vec![JobRef::Number(41), JobRef::Id(JOB_A)]),
        Request::Resume(vec![JobRef::Number(41)]),
        Request::PauseQueue {
            queue: "render".to_owned(),
            paused: true,
        },
        Request::SetPriority {
            job: JobRef::Number(41),
            priority: -20,
        },
        Request::Delete(vec![JobRef::Id(JOB_B)]),
        Request::Jobs(JobQuery {
            queue: Some("render".to_owned()),
            state: Some(JobState::Failed),
            user: Some("ana@ws07".to_owned()),
            limit: 50,
        }),
        Request::Logs {
            task: TaskRef::job(JobRef::Number(42)),
            from: 0,
            follow: true,
        },
        Request::Watch(vec![JobRef::Number(41), JobRef::Id(JOB_B)]),
        Request::EnableWorker("render01.4242.1".to_owned()),
        Request::Preview(frame_preview()),
        Request::Previews {
            job: JobRef::Number(41),
            image: false,
        },
        Request::UpdateTools(vec![buildcat_proto::ToolVersion {
            name: "hython".to_owned(),
            version: "20.5.410".to_owned(),
        }]),
        Request::PauseWorker {
            name: "render01.4242.1".to_owned(),
            paused: false,
        },
    ];
    requests
        .into_iter()
        .zip(1..)
        .map(|(request, id)| ClientFrame { id, request })
        .collect()
}

/// One frame of every server frame, reply and request error.
fn server_frames() -> Vec<ServerFrame> {
    let replies = vec![
        Ok(Reply::Submitted(vec![Submitted {
            id: JOB_A,
            number: 41,
            tasks: 2,
        }])),
        Ok(Reply::Ended(finished_status())),
        Ok(Reply::Job(failed_status())),
        Ok(Reply::Task(task_status())),
        Ok(Reply::Task(finished_task_status())),
        Ok(Reply::Info(FarmInfo::default())),
        Ok(Reply::Registered {
            name: "render01.4242.1".to_owned(),
            heartbeat_ms: 5_000,
            reconnect_grace_ms: 60_000,
        }),
        Ok(Reply::Ack),
        Err(RequestError::UnknownJob(JobRef::Id(JOB_A))),
        Err(RequestError::UnknownTask {
            job: JobRef::Number(41),
            index: 9,
            tasks: 2,
        }),
        Err(RequestError::WhichTask {
            job: JobRef::Number(41),
            tasks: 2,
        }),
        Err(RequestError::WrongRole {
            request: "submit".to_owned(),
            role: "worker".to_owned(),
        }),
        Err(RequestError::Invalid("empty queue name".to_owned())),
        Err(RequestError::Storage("database is locked".to_owned())),
        Err(RequestError::ShuttingDown),
        Err(RequestError::StaleAttempt {
            task: TASK_A,
            attempt: 1,
        }),
        Ok(Reply::Changes(changes())),
        Ok(Reply::Jobs {
            jobs: vec![running_status().job, failed_status().job],
            more: false,
        }),
        Ok(Reply::Log(buildcat_proto::LogPage {
            dropped: Some(buildcat_proto::DroppedOutput {
                bytes: 1_200,
                lines: 10,
            }),
            offset: 1_200,
            lines: render_lines(),
            next: 1_286,
            more: false,
            stderr: vec![1],
        })),
        Err(wrong_state()),
        Err(RequestError::TooManyInFlight { limit: 256 }),
        Err(RequestError::UnknownWorker("render01".to_owned())),
        Ok(Reply::Previews(buildcat_proto::JobPreviews {
            job: JOB_A,
            number: 41,
            previews: Vec::new(),
            latest: None,
        })),
    ];
    let mut frames: Vec<ServerFrame> = replies
        .into_iter()
        .zip(1..)
        .map(|(reply, id)| ServerFrame::Reply { id, reply })
        .collect();
    frames.push(ServerFrame::Assign(assignment()));
    frames.push(ServerFrame::Closing(
        "the server is shutting down".to_owned(),
    ));
    frames.push(ServerFrame::Cancel {
        task: TASK_A,
        attempt: 2,
        reason: "timed out after 1h".to_owned(),
    });
    frames.extend(
        [
            JobEvent::Log {
                task: TASK_A,
                page: buildcat_proto::LogPage {
                    lines: render_lines(),
                    ..Default::default()
                },
            },
            JobEvent::Progress {
                task: TASK_A,
                progress: progress(),
            },
            JobEvent::Task {
                job: JOB_A,
                task: running_status().tasks[1].clone(),
            },
            JobEvent::Ended(finished_status()),
        ]
        .into_iter()
        .map(|event| ServerFrame::Event { id: 12, event }),
    );
    frames
}

/// A realistic first request whose body does not start with a zero byte.
fn submit() -> ClientFrame {
    ClientFrame {
        id: 7,
        request: Request::Submit(vec![render_job(b"\x0ashot.blend".to_vec())]),
    }
}

/// A simple xorshift64 generator: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// Regression: the codec once read body bytes as a length prefix once `LengthDelimitedCodec`
// had taken the real prefix off the buffer, refusing any frame that arrived in pieces.
#[test]
fn frame_split_into_single_bytes_decodes_once_complete() {
    let message = submit();
    let bytes = encode_frame(&message).unwrap();
    let mut codec = server_side();
    let mut buf = BytesMut::new();
    for (i, byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        let decoded = codec.decode(&mut buf).unwrap_or_else(|e| {
            panic!("byte {i} of {}: {e}", bytes.len());
        });
        if i + 1 < bytes.len() {
            assert_eq!(decoded, None, "decoded early, after byte {i}");
        } else {
            assert_eq!(decoded, Some(message.clone()));
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn frame_split_after_its_prefix_decodes_once_complete() {
    // The case a socket produces all the time: the prefix and part of the body in one read.
    let hello = hello_from(Role::Worker);
    let bytes = encode_frame(&hello).unwrap();
    let mut codec = FrameCodec::<Hello, HelloReply>::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::from(&bytes[..10]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&bytes[10..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(hello));
    assert!(buf.is_empty());
}

#[tokio::test]
async fn frame_larger_than_one_read_decodes_through_framed_read() {
    // FramedRead reads into an 8 KiB buffer first, so a 100 KB submit arrives in pieces.
    let message = ClientFrame {
        id: 7,
        request: Request::Submit(vec![render_job(vec![0xab; 100_000])]),
    };
    let bytes = encode_frame(&message).unwrap();
    let mut frames = FramedRead::new(&bytes[..], server_side());
    assert_eq!(frames.next().await.unwrap().unwrap(), message);
    assert!(frames.next().await.is_none());
}

#[test]
fn frame_split_before_its_prefix_is_complete_waits() {
    let message = submit();
    let bytes = encode_frame(&message).unwrap();
    let mut codec = server_side();
    let mut buf = BytesMut::new();
    for byte in &bytes[..3] {
        buf.extend_from_slice(&[*byte]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(&bytes[3..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(message));
    assert!(buf.is_empty());
}

#[test]
fn two_frames_in_one_buffer_decode_in_order() {
    let first = submit();
    let second = ClientFrame {
        id: 8,
        request: Request::Wait(JobRef::Id(JOB_A)),
    };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&encode_frame(&first).unwrap());
    buf.extend_from_slice(&encode_frame(&second).unwrap());
    let mut codec = server_side();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(first));
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(second));
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

/// Decodes a buffer holding only `prefix` and expects the length to be refused.
fn assert_refused_prefix(mut codec: ServerSide, prefix: u32) {
    let mut buf = BytesMut::from(&prefix.to_be_bytes()[..]);
    assert_eq!(buf.len(), 4, "only the prefix has arrived");
    let max = codec.max_frame();
    match codec.decode(&mut buf) {
        Err(CodecError::FrameTooLarge { len, max: limit }) => {
            assert_eq!(len, prefix as usize);
            assert_eq!(limit, max);
        }
        other => panic!("a {prefix}-byte frame over a {max}-byte limit gave {other:?}"),
    }
}

#[test]
fn length_prefix_of_u32_max_is_refused_before_the_body() {
    assert_refused_prefix(server_side(), u32::MAX);
}

#[test]
fn length_prefix_one_over_the_max_is_refused_before_the_body() {
    assert_refused_prefix(server_side(), DEFAULT_MAX_FRAME as u32 + 1);
    assert_refused_prefix(FrameCodec::new(64), 65);
}

#[test]
fn length_prefix_of_exactly_the_max_waits_for_the_body() {
    let mut buf = BytesMut::from(&64u32.to_be_bytes()[..]);
    assert_eq!(
        FrameCodec::<ClientFrame, ServerFrame>::new(64)
            .decode(&mut buf)
            .unwrap(),
        None
    );
    let mut buf = BytesMut::from(&(DEFAULT_MAX_FRAME as u32).to_be_bytes()[..]);
    assert_eq!(server_side().decode(&mut buf).unwrap(), None);
}

#[test]
fn http_request_is_refused() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: farm:2228\r\n\r\n"[..]);
    match server_side().decode(&mut buf) {
        // "GET " read as a big-endian length.
        Err(CodecError::FrameTooLarge { len, .. }) => assert_eq!(len, 0x4745_5420),
        other => panic!("an HTTP request gave {other:?}"),
    }
}

#[test]
fn tls_client_hello_is_refused() {
    // Record type handshake (0x16), TLS 1.0 record version, length 0x0200, ClientHello (1).
    let mut buf = BytesMut::from(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc][..]);
    match server_side().decode(&mut buf) {
        Err(CodecError::FrameTooLarge { len, .. }) => assert_eq!(len, 0x1603_0102),
        other => panic!("a TLS ClientHello gave {other:?}"),
    }
}

#[test]
fn trailing_bytes_after_a_message_are_refused() {
    let mut body = encode_value(&submit()).unwrap();
    let used = body.len();
    body.extend_from_slice(&[0x00, 0x2a]);
    let mut buf = BytesMut::from(&frame(&body)[..]);
    match server_side().decode(&mut buf) {
        Err(CodecError::TrailingBytes {
            used: got_used,
            trailing,
        }) => {
            assert_eq!(got_used, used);
            assert_eq!(trailing, 2);
        }
        other => panic!("trailing bytes gave {other:?}"),
    }
}

#[test]
fn unknown_request_variant_is_malformed() {
    // id 1, then variant 7: one past `Request::Complete`, the last variant.
    let mut buf = BytesMut::from(&frame(&[0x01, 0x07])[..]);
    let result = server_side().decode(&mut buf);
    assert!(
        matches!(result, Err(CodecError::Malformed(_))),
        "{result:?}"
    );
}

#[test]
fn unknown_role_variant_is_malformed() {
    let mut body = encode_value(&hello_from(Role::Client)).unwrap();
    body[9] = 2; // The role: one past `Role::Worker`.
    let mut buf = BytesMut::from(&frame(&body)[..]);
    let result = FrameCodec::<Hello, HelloReply>::new(DEFAULT_MAX_FRAME).decode(&mut buf);
    assert!(
        matches!(result, Err(CodecError::Malformed(_))),
        "{result:?}"
    );
}

#[test]
fn empty_frame_is_malformed() {
    let mut buf = BytesMut::from(&frame(&[])[..]);
    let result = server_side().decode(&mut buf);
    assert!(
        matches!(result, Err(CodecError::Malformed(_))),
        "{result:?}"
    );
}

/// Decodes `bytes`, one whole frame, as a `T`: an error or a message, never a wait.
fn decode_whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let result = FrameCodec::<T, ()>::new(DEFAULT_MAX_FRAME).decode(&mut buf);
    assert!(!matches!(result, Ok(None)), "a whole frame was not decoded");
}

/// Decodes `body` as one whole frame with every frame type; none may panic or wait.
fn decode_all_ways(body: &[u8]) {
    let bytes = frame(body);
    decode_whole::<ClientFrame>(&bytes);
    decode_whole::<ServerFrame>(&bytes);
    decode_whole::<Hello>(&bytes);
    decode_whole::<HelloReply>(&bytes);
}

#[test]
fn random_garbage_bodies_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..4_000 {
        let len = rng.below(96);
        let body = rng.bytes(len);
        decode_all_ways(&body);
    }
}

#[test]
fn mutated_valid_bodies_never_panic() {
    // Random bytes rarely get past the first variant index; corrupting real messages reaches
    // every field decoder.
    let mut bodies: Vec<Vec<u8>> = client_frames()
        .iter()
        .map(|f| encode_value(f).unwrap())
        .collect();
    bodies.extend(server_frames().iter().map(|f| encode_value(f).unwrap()));
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..4_000 {
        let mut body = bodies[rng.below(bodies.len())].clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(body.len());
            body[at] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            body.truncate(rng.below(body.len()));
        }
        decode_all_ways(&body);
    }
}

#[test]
fn huge_lengths_inside_a_small_frame_are_malformed() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // ClientFrame id 1, Register, name: a u64 length of 2^62, then three bytes.
        (
            "string",
            [&[0x01, 0x05, 0xfd][..], &(1u64 << 62).to_le_bytes(), b"abc"].concat(),
        ),
        // A u32 length just under 4 GiB.
        (
            "string u32",
            [
                &[0x01, 0x05, 0xfc][..],
                &0xffff_fff0u32.to_le_bytes(),
                b"abc",
            ]
            .concat(),
        ),
        // Submit: a vector of 2^62 jobs.
        (
            "job vector",
            [
                &[0x01, 0x00, 0xfd][..],
                &(1u64 << 62).to_le_bytes(),
                &[0x00],
            ]
            .concat(),
        ),
        // Submit one job: queue "q", kind "k", no name, submitter or runs, default
        // options (no timeout, one attempt, priority 0, no dependencies), then a vector of
        // 2^62 tasks.
        (
            "task vector",
            [
                &[0x01, 0x00, 0x01, 0x01, b'q', 0x01, b'k', 0x00, 0x00, 0x00][..],
                &[0x00, 0x01, 0x00, 0x00, 0xfd],
                &(1u64 << 62).to_le_bytes(),
                &[0x00],
            ]
            .concat(),
        ),
        // The same job with one task (no frames) whose args are 2^62 bytes.
        (
            "task args",
            [
                &[0x01, 0x00, 0x01, 0x01, b'q', 0x01, b'k', 0x00, 0x00, 0x00][..],
                &[0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xfd],
                &(1u64 << 62).to_le_bytes(),
                &[0x00],
            ]
            .concat(),
        ),
    ];
    for (what, body) in cases {
        assert!(body.len() < 32);
        let mut buf = BytesMut::from(&frame(&body)[..]);
        let result = server_side().decode(&mut buf);
        assert!(
            matches!(result, Err(CodecError::Malformed(_))),
            "{what}: {result:?}"
        );
    }
}

#[test]
fn decode_eof_with_half_a_prefix_is_truncated() {
    let bytes = encode_frame(&submit()).unwrap();
    let mut buf = BytesMut::from(&bytes[..2]);
    match server_side().decode_eof(&mut buf) {
        Err(CodecError::Truncated { buffered }) => assert_eq!(buffered, 2),
        other => panic!("half a prefix at end of stream gave {other:?}"),
    }
}

#[test]
fn decode_eof_with_half_a_frame_is_truncated() {
    let bytes = encode_frame(&submit()).unwrap();
    let half = bytes.len() / 2;
    let mut buf = BytesMut::from(&bytes[..half]);
    let result = server_side().decode_eof(&mut buf);
    assert!(
        matches!(result, Err(CodecError::Truncated { .. })),
        "{result:?}"
    );
}

#[test]
fn decode_eof_with_half_a_frame_counts_every_byte_received() {
    let bytes = encode_frame(&submit()).unwrap();
    let half = bytes.len() / 2;
    let mut buf = BytesMut::from(&bytes[..half]);
    match server_side().decode_eof(&mut buf) {
        Err(CodecError::Truncated { buffered }) => assert_eq!(buffered, half),
        other => panic!("half a frame at end of stream gave {other:?}"),
    }
}

#[test]
fn decode_eof_at_a_frame_boundary_is_the_end() {
    let message = submit();
    let mut buf = BytesMut::from(&encode_frame(&message).unwrap()[..]);
    let mut codec = server_side();
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(message));
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

/// Encodes every message with `encoder` into one buffer, checks the bytes against
/// [`encode_frame`], then decodes them all back in order with `decoder`.
fn round_trip<T, E, D>(messages: Vec<T>, mut encoder: E, mut decoder: D)
where
    T: serde::Serialize + Clone + PartialEq + std::fmt::Debug,
    E: Encoder<T, Error = CodecError>,
    D: Decoder<Item = T, Error = CodecError>,
{
    let mut buf = BytesMut::new();
    let mut expected = Vec::new();
    for message in &messages {
        encoder.encode(message.clone(), &mut buf).unwrap();
        expected.extend_from_slice(&encode_frame(message).unwrap());
    }
    assert_eq!(&buf[..], &expected[..], "Encoder and encode_frame disagree");
    for message in &messages {
        assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(message));
    }
    assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
}

/// A request's variant as its position in [`Request`]; the match is exhaustive, so a new
/// variant does not compile until it is listed here (and given a frame in
/// [`client_frames`]).
fn variant(request: &Request) -> usize {
    match request {
        Request::Submit(_) => 0,
        Request::Wait(_) => 1,
        Request::Job(_) => 2,
        Request::Task(_) => 3,
        Request::Info => 4,
        Request::Register(_) => 5,
        Request::Heartbeat => 6,
        Request::Complete(_) => 7,
        Request::Log { .. } => 8,
        Request::Progress { .. } => 9,
        Request::Cancel(_) => 10,
        Request::Requeue(_) => 11,
        Request::Pause(_) => 12,
        Request::Resume(_) => 13,
        Request::PauseQueue { .. } => 14,
        Request::SetPriority { .. } => 15,
        Request::Delete(_) => 16,
        Request::Jobs(_) => 17,
        Request::Logs { .. } => 18,
        Request::Watch(_) => 19,
        Request::EnableWorker(_) => 20,
        Request::Preview(_) => 21,
        Request::Previews { .. } => 22,
        Request::UpdateTools(_) => 23,
        Request::PauseWorker { .. } => 24,
    }
}

#[test]
fn every_client_frame_round_trips() {
    let frames = client_frames();
    let covered: std::collections::BTreeSet<usize> =
        frames.iter().map(|frame| variant(&frame.request)).collect();
    let all: std::collections::BTreeSet<usize> = (0..=24).collect();
    assert_eq!(covered, all, "one frame per Request variant at least");
    for frame in &frames {
        // Ids below 251 are one byte; the variant index follows.
        assert!(frame.id < 251);
        let body = encode_value(frame).unwrap();
        assert_eq!(usize::from(body[1]), variant(&frame.request), "{frame:?}");
    }
    round_trip(frames, peer_side(), server_side());
}

#[test]
fn every_server_frame_round_trips() {
    round_trip(server_frames(), server_side(), peer_side());
}

#[test]
fn every_handshake_frame_round_trips() {
    round_trip(
        vec![
            hello_from(Role::Client),
            hello_from(Role::Worker),
            Hello::new(Role::Worker),
        ],
        FrameCodec::<HelloReply, Hello>::new(DEFAULT_MAX_FRAME),
        FrameCodec::<Hello, HelloReply>::new(DEFAULT_MAX_FRAME),
    );
    round_trip(
        vec![
            HelloReply::Welcome(Welcome {
                protocol: PROTOCOL_VERSION,
                software: "0.6.0".to_owned(),
                max_frame: DEFAULT_MAX_FRAME as u32,
            }),
            HelloReply::Refused(HandshakeError::BadMagic),
            HelloReply::Refused(HandshakeError::ProtocolMismatch {
                server: 1,
                server_software: "0.6.0".to_owned(),
                peer: 2,
                peer_software: "0.7.0".to_owned(),
            }),
            HelloReply::Refused(HandshakeError::TooManyConnections { limit: 1024 }),
            HelloReply::Refused(HandshakeError::ShuttingDown),
        ],
        FrameCodec::<Hello, HelloReply>::new(DEFAULT_MAX_FRAME),
        FrameCodec::<HelloReply, Hello>::new(DEFAULT_MAX_FRAME),
    );
}

#[test]
fn encoding_over_the_max_is_refused_and_leaves_the_buffer_alone() {
    let mut codec = PeerSide::new(64);
    let mut buf = BytesMut::new();
    let heartbeat = ClientFrame {
        id: 1,
        request: Request::Heartbeat,
    };
    codec.encode(heartbeat.clone(), &mut buf).unwrap();
    let before = buf.clone();

    let big = ClientFrame {
        id: 2,
        request: Request::Submit(vec![NewJob {
            queue: "render".to_owned(),
            kind: "studio.blender.frame".to_owned(),
            name: String::new(),
            submitter: "ana@ws07".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            tasks: vec![NewTask {
                frames: None,
                args: vec![0x5a; 1000],
            }],
        }]),
    };
    let body_len = encode_value(&big).unwrap().len();
    match codec.encode(big, &mut buf) {
        Err(CodecError::FrameTooLarge { len, max }) => {
            assert_eq!(len, body_len);
            assert_eq!(max, 64);
        }
        other => panic!("a {body_len}-byte body over a 64-byte limit gave {other:?}"),
    }
    assert_eq!(buf, before, "the refused frame left bytes behind");

    // The codec is still usable, and the buffer still holds exactly the first frame.
    let mut decoder = FrameCodec::<ClientFrame, ServerFrame>::new(64);
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(heartbeat));
    assert!(buf.is_empty());
}

#[test]
fn encoding_exactly_the_max_is_accepted() {
    // Closing: variant byte, length byte, then the text; 1 + 1 + 62 = 64.
    let mut codec = ServerSide::new(64);
    let mut buf = BytesMut::new();
    codec
        .encode(ServerFrame::Closing("x".repeat(62)), &mut buf)
        .unwrap();
    assert_eq!(&buf[..4], &64u32.to_be_bytes());
    assert_eq!(buf.len(), 68);

    let mut buf = BytesMut::new();
    match codec.encode(ServerFrame::Closing("x".repeat(63)), &mut buf) {
        Err(CodecError::FrameTooLarge { len: 65, max: 64 }) => {}
        other => panic!("a 65-byte body over a 64-byte limit gave {other:?}"),
    }
    assert!(buf.is_empty());
}

/// Regression: a failure carrying hundreds of short output lines was refused, because
/// bincode counts 24 bytes of allocation per `String` against the decode limit.
#[test]
fn many_short_strings_decode() {
    let lines: Vec<String> = (0..2000).map(|i| format!("{i}")).collect();
    let failure = buildcat_proto::Failure {
        reason: "`hython` failed".to_owned(),
        exit_code: Some(3),
        output_tail: lines.clone(),
        gpu_fault: None,
    };
    let bytes = buildcat_proto::codec::encode_value(&failure).unwrap();
    let back: buildcat_proto::Failure = buildcat_proto::codec::decode_value(&bytes).unwrap();
    assert_eq!(back.output_tail, lines);
    let empty: Vec<String> = vec![String::new(); 5000];
    let bytes = buildcat_proto::codec::encode_value(&empty).unwrap();
    assert_eq!(
        buildcat_proto::codec::decode_value::<Vec<String>>(&bytes).unwrap(),
        empty
    );
}
