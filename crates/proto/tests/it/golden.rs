//! Golden bytes: the exact encoding of every frame and enum variant on the wire.
//!
//! These bytes *are* the protocol. Servers, workers and clients of the same
//! `PROTOCOL_VERSION` must agree on them byte for byte, whatever Rust types produce them.
//! If a golden test fails, you changed the wire format (a field added, removed, reordered or
//! retyped, a variant inserted, the bincode configuration changed): bump `PROTOCOL_VERSION`
//! and update the goldens deliberately, in the same change. Enums only grow at the end: a
//! variant's index is its position, so inserting one in the middle renumbers the rest.
//!
//! The encoding is a 4-byte big-endian length prefix, then bincode 2 "standard": little
//! endian, integers as varints (below 251 one byte; 251 = `fb` + u16, 252 = `fc` + u32,
//! 253 = `fd` + u64; signed integers zigzagged first), enum variants as their varint index,
//! strings and byte vectors as varint length + bytes, `Option` as `00` or `01` + value,
//! structs and tuples as their fields in order, fixed-size arrays as their elements with no
//! length. A `JobId` is its UUID as a 16-byte vector: `10` then the bytes, big-endian.
//!
//! The layout of one golden, `Hello` from a client of buildcat 0.6.0, read by hand:
//!
//! ```text
//! 00 00 00 10                  length prefix: 16 body bytes follow (big-endian u32)
//! 42 55 49 4c 44 43 41 54      magic "BUILDCAT": a [u8; 8] array, so no length prefix
//! 03                           protocol version 3 (varint)
//! 00                           role: variant 0 = Client (1 = Worker)
//! 05 30 2e 36 2e 30            software: length 5, then "0.6.0"
//! ```

use std::fmt::Debug;

use buildcat_proto::codec::{decode_value, encode_frame, encode_value};
use buildcat_proto::{
    Assignment, Attempt, AttemptOutcome, ClientFrame, CommandResult, Completion, DEFAULT_MAX_FRAME,
    DEFAULT_PORT, DroppedOutput, Failure, FarmInfo, FrameCodec, HandshakeError, Hello, HelloReply,
    JobChange, JobEvent, JobOptions, JobProgress, JobQuery, JobState, JobStatus, LogPage, MAGIC,
    NewJob, Outcome, PROTOCOL_VERSION, QueueSummary, Reply, Request, RequestError, RequeueTarget,
    Role, RunCommand, ServerFrame, Task, Welcome, WorkerActivity, WorkerRegistration,
    WorkerSummary,
};
use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::Decoder;

use crate::{JOB_A, JOB_B, T0, T1, frame, hex, unhex};

/// A page of output after a gap: 4,800 bytes (40 lines) dropped, then two 42-byte lines
/// from byte 6,000, more stored after them.
fn log_page() -> LogPage {
    LogPage {
        dropped: Some(DroppedOutput {
            bytes: 4_800,
            lines: 40,
        }),
        offset: 6_000,
        lines: render_lines(),
        next: 6_086,
        more: true,
    }
}

/// Encodes `value` as a frame, compares it with `expected_hex` (whitespace ignored), then
/// decodes the expected bytes back through [`FrameCodec`] and compares with `value`.
#[track_caller]
fn check<T>(value: &T, expected_hex: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let expected = unhex(expected_hex);
    let actual = encode_frame(value).expect("golden values encode");
    assert_eq!(
        hex(&actual),
        hex(&expected),
        "the encoding of {value:?} changed; see the module doc before updating it"
    );
    let mut buf = BytesMut::from(&expected[..]);
    let decoded = FrameCodec::<T, T>::new(DEFAULT_MAX_FRAME)
        .decode(&mut buf)
        .expect("golden bytes decode")
        .expect("golden bytes are a whole frame");
    assert_eq!(&decoded, value, "golden bytes decode to another value");
    assert!(buf.is_empty(), "decoding left {} bytes", buf.len());
}

/// Like [`check`] for a bare value with no frame around it, as task arguments and outputs
/// travel inside `NewJob::args`, `Assignment::args` and `Outcome::Finished`.
#[track_caller]
fn check_value<T>(value: &T, expected_hex: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let expected = unhex(expected_hex);
    let actual = encode_value(value).expect("golden values encode");
    assert_eq!(
        hex(&actual),
        hex(&expected),
        "the encoding of {value:?} changed; see the module doc before updating it"
    );
    let decoded: T = decode_value(&expected).expect("golden bytes decode");
    assert_eq!(&decoded, value, "golden bytes decode to another value");
}

pub(crate) fn hello_from(role: Role) -> Hello {
    Hello {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        role,
        software: "0.6.0".to_owned(),
    }
}

pub(crate) fn failure() -> Failure {
    Failure {
        reason: "blender exited with an error".to_owned(),
        exit_code: Some(1),
        output_tail: vec![
            "Fra:12 Mem:1.2G | Rendering 3 / 64 samples".to_owned(),
            "Error: Not freed memory blocks: 2".to_owned(),
        ],
    }
}

pub(crate) fn options() -> JobOptions {
    JobOptions {
        timeout_ms: Some(3_600_000),
        max_attempts: 3,
        priority: -5,
        after: vec![JOB_A],
    }
}

pub(crate) fn finished_status() -> JobStatus {
    JobStatus {
        id: JOB_B,
        queue: "render".to_owned(),
        kind: "buildcat.worker.info".to_owned(),
        state: JobState::Finished,
        options: JobOptions::default(),
        created_at: T0,
        ended_at: Some(T1),
        attempts: vec![Attempt {
            number: 1,
            worker: "render01.4242.1".to_owned(),
            started_at: T0,
            ended_at: Some(T1),
            outcome: Some(AttemptOutcome::Finished),
        }],
        result: Some(vec![0x02, b'o', b'k']),
        failure: None,
        progress: None,
    }
}

pub(crate) fn failed_status() -> JobStatus {
    JobStatus {
        id: JOB_A,
        queue: "render".to_owned(),
        kind: "studio.blender.frame".to_owned(),
        state: JobState::Failed,
        options: options(),
        created_at: T0,
        ended_at: Some(T1),
        attempts: vec![
            Attempt {
                number: 1,
                worker: "render01.4242.1".to_owned(),
                started_at: T0,
                ended_at: Some(T0),
                outcome: Some(AttemptOutcome::WorkerLost),
            },
            Attempt {
                number: 2,
                worker: "render02.777.1".to_owned(),
                started_at: T0,
                ended_at: Some(T1),
                outcome: Some(AttemptOutcome::Failed(failure())),
            },
        ],
        result: None,
        failure: Some(failure()),
        progress: None,
    }
}

pub(crate) fn progress() -> JobProgress {
    JobProgress {
        done: 12,
        total: 240,
        outputs: vec![
            "shots/010/render/0011.exr".to_owned(),
            "shots/010/render/0012.exr".to_owned(),
        ],
    }
}

/// A job on its second attempt that reports progress.
pub(crate) fn running_status() -> JobStatus {
    JobStatus {
        id: JOB_A,
        queue: "render".to_owned(),
        kind: "studio.blender.frame".to_owned(),
        state: JobState::Started,
        options: JobOptions::default(),
        created_at: T0,
        ended_at: None,
        attempts: vec![Attempt {
            number: 1,
            worker: "render02.777.1".to_owned(),
            started_at: T1,
            ended_at: None,
            outcome: None,
        }],
        result: None,
        failure: None,
        progress: Some(progress()),
    }
}

pub(crate) fn render_lines() -> Vec<String> {
    vec![
        "Fra:12 Mem:1.2G | Rendering 3 / 64 samples".to_owned(),
        "Fra:12 Mem:1.2G | Rendering 4 / 64 samples".to_owned(),
    ]
}

pub(crate) fn wrong_state() -> RequestError {
    RequestError::WrongState {
        job: JOB_B,
        state: JobState::Finished,
        what: "only queued, deferred or started jobs can be canceled".to_owned(),
    }
}

#[test]
fn constants() {
    assert_eq!(MAGIC, *b"BUILDCAT");
    assert_eq!(PROTOCOL_VERSION, 3);
    assert_eq!(DEFAULT_MAX_FRAME, 16 * 1024 * 1024);
    assert_eq!(DEFAULT_PORT, 2228);
}

#[test]
fn hello() {
    // Laid out field by field; see the module doc.
    check(
        &hello_from(Role::Client),
        "00000010 4255494c44434154 03 00 05 302e362e30",
    );
    check(
        &hello_from(Role::Worker),
        "00000010 4255494c44434154 03 01 05 302e362e30",
    );
}

/// The hello golden, built from its parts rather than copied from the encoder's output.
#[test]
fn hello_layout_from_parts() {
    let mut body = Vec::new();
    body.extend_from_slice(b"BUILDCAT");
    body.push(3); // protocol version, a varint below 251: one byte
    body.push(0); // Role::Client
    body.push(5); // software: length, then the bytes
    body.extend_from_slice(b"0.6.0");
    assert_eq!(body.len(), 16);
    assert_eq!(
        encode_frame(&hello_from(Role::Client)).unwrap(),
        frame(&body)
    );
    assert_eq!(
        unhex("00000010 4255494c44434154 03 00 05 302e362e30"),
        frame(&body)
    );
}

#[test]
fn hello_reply() {
    check(
        &HelloReply::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            software: "0.6.0".to_owned(),
            max_frame: 16 * 1024 * 1024,
        }),
        "0000000d 000305302e362e30fc00000001",
    );
    check(
        &HelloReply::Refused(HandshakeError::BadMagic),
        "00000002 0100",
    );
    check(
        &HelloReply::Refused(HandshakeError::ProtocolMismatch {
            server: 1,
            server_software: "0.6.0".to_owned(),
            peer: 2,
            peer_software: "0.7.0".to_owned(),
        }),
        "00000010 01010105302e362e300205302e372e30",
    );
    check(
        &HelloReply::Refused(HandshakeError::TooManyConnections { limit: 1024 }),
        "00000005 0102fb0004",
    );
    check(
        &HelloReply::Refused(HandshakeError::ShuttingDown),
        "00000002 0103",
    );
    check(
        &HelloReply::Refused(HandshakeError::TlsRequired),
        "00000002 0104",
    );
}

#[test]
fn unserved() {
    check_value(
        &buildcat_proto::Unserved {
            queue: "render".to_owned(),
            kind: "buildcat.blender.render".to_owned(),
            jobs: 3,
        },
        "0672656e646572 17 6275696c646361742e626c656e6465722e72656e646572 03",
    );
}

#[test]
fn request() {
    let request = |id, request| ClientFrame { id, request };
    check(
        &request(
            1,
            Request::Submit(vec![
                NewJob {
                    queue: "render".to_owned(),
                    kind: "studio.blender.frame".to_owned(),
                    args: vec![
                        0x0c, b's', b'h', b'o', b't', b'.', b'b', b'l', b'e', b'n', b'd', 0x18,
                    ],
                    options: options(),
                },
                NewJob {
                    queue: "default".to_owned(),
                    kind: "buildcat.worker.info".to_owned(),
                    args: Vec::new(),
                    options: JobOptions::default(),
                },
            ]),
        ),
        "00000068 \
         0100020672656e6465721473747564696f2e626c656e6465722e6672616d650c \
         0c73686f742e626c656e641801fc80ee360003090110019000c79c007c4e8f00 \
         123456789abc0764656661756c74146275696c646361742e776f726b65722e69 \
         6e666f0000010000",
    );
    check(
        &request(2, Request::Wait(JOB_A)),
        "00000013 020110019000c79c007c4e8f00123456789abc",
    );
    check(
        &request(3, Request::Job(JOB_B)),
        "00000013 030210019000c7cc3970009a11223344556677",
    );
    check(&request(4, Request::Info), "00000002 0403");
    check(
        &request(
            5,
            Request::Register(WorkerRegistration {
                name: "render01.4242.1".to_owned(),
                host: "render01".to_owned(),
                root: "/var/lib/buildcat".to_owned(),
                queues: vec!["render".to_owned(), "default".to_owned()],
                kinds: vec!["buildcat.worker.info".to_owned()],
                pid: 4242,
                version: "0.6.0".to_owned(),
                running: vec![(JOB_A, 2)],
            }),
        ),
        "0000006f \
         05040f72656e64657230312e343234322e310872656e6465723031112f766172 \
         2f6c69622f6275696c64636174020672656e6465720764656661756c74011462 \
         75696c646361742e776f726b65722e696e666ffb921005302e362e3001100190 \
         00c79c007c4e8f00123456789abc02",
    );
    // An id of 300 takes three bytes: `fb` then 300 as a little-endian u16.
    check(&request(300, Request::Heartbeat), "00000004 fb2c0105");
    check(
        &request(
            u64::MAX,
            Request::Complete(Completion {
                job: JOB_A,
                attempt: 2,
                outcome: Outcome::Finished(vec![0x02, b'o', b'k']),
            }),
        ),
        "00000021 \
         fdffffffffffffffff0610019000c79c007c4e8f00123456789abc020003026f \
         6b",
    );
    check(
        &request(
            7,
            Request::Log {
                job: JOB_A,
                attempt: 2,
                lines: render_lines(),
            },
        ),
        "0000006b \
         070710019000c79c007c4e8f00123456789abc02022a4672613a3132204d656d \
         3a312e3247207c2052656e646572696e672033202f2036342073616d706c6573 \
         2a4672613a3132204d656d3a312e3247207c2052656e646572696e672034202f \
         2036342073616d706c6573",
    );
    check(
        &request(
            8,
            Request::Progress {
                job: JOB_A,
                attempt: 2,
                progress: progress(),
            },
        ),
        "0000004b \
         080810019000c79c007c4e8f00123456789abc020cf0021973686f74732f3031 \
         302f72656e6465722f303031312e6578721973686f74732f3031302f72656e64 \
         65722f303031322e657872",
    );
    check(
        &request(9, Request::Cancel(vec![JOB_A, JOB_B])),
        "00000025 \
         09090210019000c79c007c4e8f00123456789abc10019000c7cc3970009a1122 \
         3344556677",
    );
    check(
        &request(
            10,
            Request::Requeue(RequeueTarget::Failed {
                queue: Some("render".to_owned()),
            }),
        ),
        "0000000b 0a0a01010672656e646572",
    );
    check(
        &request(
            11,
            Request::Jobs(JobQuery {
                queue: Some("render".to_owned()),
                state: Some(JobState::Failed),
                limit: 50,
            }),
        ),
        "0000000d 0b0b010672656e646572010332",
    );
    check(
        &request(
            12,
            Request::Logs {
                job: JOB_A,
                from: 1_200,
                follow: true,
            },
        ),
        "00000017 0c0c10019000c79c007c4e8f00123456789abcfbb00401",
    );
    check(
        &request(13, Request::Watch(vec![JOB_A, JOB_B])),
        "00000025 \
         0d0d0210019000c79c007c4e8f00123456789abc10019000c7cc3970009a1122 \
         3344556677",
    );
    check(
        &request(14, Request::EnableWorker("render01.4242.1".to_owned())),
        "00000012 0e0e0f72656e64657230312e343234322e31",
    );
}

#[test]
fn server_frame() {
    check(
        &ServerFrame::Reply {
            id: 1,
            reply: Ok(Reply::Ack),
        },
        "00000004 00010005",
    );
    check(
        &ServerFrame::Reply {
            id: 2,
            reply: Err(RequestError::UnknownJob(JOB_A)),
        },
        "00000015 0002010010019000c79c007c4e8f00123456789abc",
    );
    check(
        &ServerFrame::Assign(Assignment {
            job: JOB_A,
            attempt: 1,
            queue: "render".to_owned(),
            kind: "buildcat.worker.info".to_owned(),
            args: Vec::new(),
            timeout_ms: Some(3_600_000),
        }),
        "00000036 \
         0110019000c79c007c4e8f00123456789abc010672656e646572146275696c64 \
         6361742e776f726b65722e696e666f0001fc80ee3600",
    );
    check(
        &ServerFrame::Closing("the server is shutting down".to_owned()),
        "0000001d \
         021b74686520736572766572206973207368757474696e6720646f776e",
    );
    check(
        &ServerFrame::Cancel {
            job: JOB_A,
            attempt: 2,
            reason: "canceled by a user".to_owned(),
        },
        "00000026 \
         0310019000c79c007c4e8f00123456789abc021263616e63656c656420627920 \
         612075736572",
    );
    check(
        &ServerFrame::Event {
            id: 12,
            event: JobEvent::Log {
                job: JOB_A,
                page: log_page(),
            },
        },
        "00000077 \
         040c0010019000c79c007c4e8f00123456789abc01fbc01228fb7017022a4672 \
         613a3132204d656d3a312e3247207c2052656e646572696e672033202f203634 \
         2073616d706c65732a4672613a3132204d656d3a312e3247207c2052656e6465 \
         72696e672034202f2036342073616d706c6573fbc61701",
    );
}

#[test]
fn reply() {
    check(
        &Reply::Submitted(vec![JOB_A, JOB_B]),
        "00000024 \
         000210019000c79c007c4e8f00123456789abc10019000c7cc3970009a112233 \
         44556677",
    );
    check(
        &Reply::Ended(finished_status()),
        "00000074 \
         0110019000c7cc3970009a112233445566770672656e646572146275696c6463 \
         61742e776f726b65722e696e666f0200010000fd009cc7009001000001fd39cc \
         c7009001000001010f72656e64657230312e343234322e31fd009cc700900100 \
         0001fd39ccc7009001000001000103026f6b0000",
    );
    check(
        &Reply::Job(failed_status()),
        "00000185 \
         0210019000c79c007c4e8f00123456789abc0672656e6465721473747564696f \
         2e626c656e6465722e6672616d650301fc80ee360003090110019000c79c007c \
         4e8f00123456789abcfd009cc7009001000001fd39ccc7009001000002010f72 \
         656e64657230312e343234322e31fd009cc7009001000001fd009cc700900100 \
         000102020e72656e64657230322e3737372e31fd009cc7009001000001fd39cc \
         c7009001000001011c626c656e64657220657869746564207769746820616e20 \
         6572726f720102022a4672613a3132204d656d3a312e3247207c2052656e6465 \
         72696e672033202f2036342073616d706c6573214572726f723a204e6f742066 \
         72656564206d656d6f727920626c6f636b733a203200011c626c656e64657220 \
         657869746564207769746820616e206572726f720102022a4672613a3132204d \
         656d3a312e3247207c2052656e646572696e672033202f2036342073616d706c \
         6573214572726f723a204e6f74206672656564206d656d6f727920626c6f636b \
         733a203200",
    );
    check(
        &Reply::Info(FarmInfo {
            queues: vec![QueueSummary {
                name: "render".to_owned(),
                queued: 3,
                started: 1,
                finished: 250,
                failed: 2,
                canceled: 0,
                deferred: 1,
            }],
            workers: vec![WorkerSummary {
                name: "render01.4242.1".to_owned(),
                host: "render01".to_owned(),
                root: "/var/lib/buildcat".to_owned(),
                queues: vec!["render".to_owned()],
                activity: WorkerActivity::Busy,
                job: Some(JOB_A),
                connected_at: T0,
                quarantine: None,
            }],
            unserved: Vec::new(),
            truncated: false,
        }),
        "00000062 \
         03010672656e6465720301fa020001010f72656e64657230312e343234322e31 \
         0872656e6465723031112f7661722f6c69622f6275696c64636174010672656e \
         646572010110019000c79c007c4e8f00123456789abcfd009cc7009001000000 \
         0000",
    );
    check(
        &Reply::Registered {
            name: "render01.4242.1".to_owned(),
            heartbeat_ms: 5_000,
            reconnect_grace_ms: 60_000,
        },
        "00000017 040f72656e64657230312e343234322e31fb8813fb60ea",
    );
    check(&Reply::Ack, "00000001 05");
    check(
        &Reply::Changes(vec![
            JobChange {
                job: JOB_A,
                result: Ok(JobState::Canceled),
            },
            JobChange {
                job: JOB_B,
                result: Err(wrong_state()),
            },
        ]),
        "00000070 \
         060210019000c79c007c4e8f00123456789abc000410019000c7cc3970009a11 \
         223344556677010610019000c7cc3970009a1122334455667702356f6e6c7920 \
         7175657565642c206465666572726564206f722073746172746564206a6f6273 \
         2063616e2062652063616e63656c6564",
    );
    // A job that reports progress: `progress` is `01`, then done, total and the outputs.
    check(
        &Reply::Jobs {
            jobs: vec![running_status()],
            more: true,
        },
        "00000095 \
         070110019000c79c007c4e8f00123456789abc0672656e646572147374756469 \
         6f2e626c656e6465722e6672616d650100010000fd009cc70090010000000101 \
         0e72656e64657230322e3737372e31fd39ccc7009001000000000000010cf002 \
         1973686f74732f3031302f72656e6465722f303031312e6578721973686f7473 \
         2f3031302f72656e6465722f303031322e65787201",
    );
    check(
        &Reply::Log(log_page()),
        "00000064 \
         0801fbc01228fb7017022a4672613a3132204d656d3a312e3247207c2052656e \
         646572696e672033202f2036342073616d706c65732a4672613a3132204d656d \
         3a312e3247207c2052656e646572696e672034202f2036342073616d706c6573 \
         fbc61701",
    );
}

#[test]
fn request_error() {
    check(
        &RequestError::UnknownJob(JOB_A),
        "00000012 0010019000c79c007c4e8f00123456789abc",
    );
    check(
        &RequestError::WrongRole {
            request: "submit".to_owned(),
            role: "worker".to_owned(),
        },
        "0000000f 01067375626d697406776f726b6572",
    );
    check(
        &RequestError::Invalid("empty queue name".to_owned()),
        "00000012 0210656d707479207175657565206e616d65",
    );
    check(
        &RequestError::Storage("database is locked".to_owned()),
        "00000014 03126461746162617365206973206c6f636b6564",
    );
    check(&RequestError::ShuttingDown, "00000001 04");
    check(
        &RequestError::StaleAttempt {
            job: JOB_A,
            attempt: 1,
        },
        "00000013 0510019000c79c007c4e8f00123456789abc01",
    );
    check(
        &wrong_state(),
        "00000049 \
         0610019000c7cc3970009a1122334455667702356f6e6c79207175657565642c \
         206465666572726564206f722073746172746564206a6f62732063616e206265 \
         2063616e63656c6564",
    );
    check(
        &RequestError::TooManyInFlight { limit: 256 },
        "00000004 07fb0001",
    );
    check(
        &RequestError::UnknownWorker("render01".to_owned()),
        "0000000a 080872656e6465723031",
    );
}

#[test]
fn outcome() {
    check(
        &Outcome::Finished(vec![0x02, b'o', b'k']),
        "00000005 0003026f6b",
    );
    check(
        &Outcome::Failed(failure()),
        "0000006e \
         011c626c656e64657220657869746564207769746820616e206572726f720102 \
         022a4672613a3132204d656d3a312e3247207c2052656e646572696e67203320 \
         2f2036342073616d706c6573214572726f723a204e6f74206672656564206d65 \
         6d6f727920626c6f636b733a2032",
    );
    check(&Outcome::Canceled, "00000001 02");
    check(&Outcome::Interrupted, "00000001 03");
}

#[test]
fn job_state() {
    check(&JobState::Queued, "00000001 00");
    check(&JobState::Started, "00000001 01");
    check(&JobState::Finished, "00000001 02");
    check(&JobState::Failed, "00000001 03");
    check(&JobState::Canceled, "00000001 04");
    check(&JobState::Deferred, "00000001 05");
}

#[test]
fn attempt_outcome() {
    check(&AttemptOutcome::Finished, "00000001 00");
    check(&AttemptOutcome::Interrupted, "00000001 04");
    check(&WorkerActivity::Quarantined, "00000001 02");
    check(
        &AttemptOutcome::Failed(Failure::new("timed out after 1h")),
        "00000016 011274696d6564206f75742061667465722031680000",
    );
    check(&AttemptOutcome::WorkerLost, "00000001 02");
    check(&AttemptOutcome::Canceled, "00000001 03");
}

#[test]
fn worker_activity() {
    check(&WorkerActivity::Idle, "00000001 00");
    check(&WorkerActivity::Busy, "00000001 01");
}

#[test]
fn requeue_target() {
    check(
        &RequeueTarget::Jobs(vec![JOB_A]),
        "00000013 000110019000c79c007c4e8f00123456789abc",
    );
    check(&RequeueTarget::Failed { queue: None }, "00000002 0100");
    check(
        &RequeueTarget::Failed {
            queue: Some("render".to_owned()),
        },
        "00000009 01010672656e646572",
    );
}

#[test]
fn job_query() {
    check(&JobQuery::default(), "00000003 000000");
    check(
        &JobQuery {
            queue: Some("render".to_owned()),
            state: Some(JobState::Queued),
            limit: 1_000,
        },
        "0000000d 010672656e6465720100fbe803",
    );
}

#[test]
fn job_change() {
    check(
        &JobChange {
            job: JOB_A,
            result: Ok(JobState::Queued),
        },
        "00000013 10019000c79c007c4e8f00123456789abc0000",
    );
    check(
        &JobChange {
            job: JOB_B,
            result: Err(wrong_state()),
        },
        "0000005b \
         10019000c7cc3970009a11223344556677010610019000c7cc3970009a112233 \
         4455667702356f6e6c79207175657565642c206465666572726564206f722073 \
         746172746564206a6f62732063616e2062652063616e63656c6564",
    );
}

#[test]
fn job_event() {
    check(
        &JobEvent::Log {
            job: JOB_A,
            page: log_page(),
        },
        "00000075 \
         0010019000c79c007c4e8f00123456789abc01fbc01228fb7017022a4672613a \
         3132204d656d3a312e3247207c2052656e646572696e672033202f2036342073 \
         616d706c65732a4672613a3132204d656d3a312e3247207c2052656e64657269 \
         6e672034202f2036342073616d706c6573fbc61701",
    );
    check(
        &JobEvent::Progress {
            job: JOB_A,
            progress: progress(),
        },
        "00000049 \
         0110019000c79c007c4e8f00123456789abc0cf0021973686f74732f3031302f \
         72656e6465722f303031312e6578721973686f74732f3031302f72656e646572 \
         2f303031322e657872",
    );
    check(
        &JobEvent::Ended(finished_status()),
        "00000074 \
         0210019000c7cc3970009a112233445566770672656e646572146275696c6463 \
         61742e776f726b65722e696e666f0200010000fd009cc7009001000001fd39cc \
         c7009001000001010f72656e64657230312e343234322e31fd009cc700900100 \
         0001fd39ccc7009001000001000103026f6b0000",
    );
}

#[test]
fn job_progress() {
    check(
        &progress(),
        "00000037 \
         0cf0021973686f74732f3031302f72656e6465722f303031312e657872197368 \
         6f74732f3031302f72656e6465722f303031322e657872",
    );
    check(&JobProgress::default(), "00000003 000000");
}

#[test]
fn job_status() {
    // The record alone: `progress` is the last field.
    check(
        &running_status(),
        "00000092 \
         10019000c79c007c4e8f00123456789abc0672656e6465721473747564696f2e \
         626c656e6465722e6672616d650100010000fd009cc700900100000001010e72 \
         656e64657230322e3737372e31fd39ccc7009001000000000000010cf0021973 \
         686f74732f3031302f72656e6465722f303031312e6578721973686f74732f30 \
         31302f72656e6465722f303031322e657872",
    );
}

/// Task arguments and outputs are bare values (no frame) inside job messages.
#[test]
fn tasks() {
    assert_eq!(RunCommand::KIND, "buildcat.command.run");
    check_value(
        &RunCommand {
            program: "blender".to_owned(),
            args: vec![
                "-b".to_owned(),
                "shots/010/scene.blend".to_owned(),
                "-f".to_owned(),
                "12".to_owned(),
            ],
        },
        "07626c656e64657204022d621573686f74732f3031302f7363656e652e626c656e64022d66023132",
    );
    check_value(
        &RunCommand {
            program: "./tools/bake.sh".to_owned(),
            args: Vec::new(),
        },
        "0f2e2f746f6f6c732f62616b652e736800",
    );
    check_value(&CommandResult { exit_code: 0 }, "00");
}

/// `encoded_len`, which the server uses to keep replies within a frame, counts exactly the
/// bytes of the encoding.
#[test]
fn encoded_len_counts_the_bytes_of_the_encoding() {
    let reply = ServerFrame::Reply {
        id: 7,
        reply: Ok(Reply::Jobs {
            jobs: vec![running_status()],
            more: false,
        }),
    };
    let event = ServerFrame::Event {
        id: 12,
        event: JobEvent::Log {
            job: JOB_A,
            page: log_page(),
        },
    };
    for frame in [reply, event] {
        let encoded = encode_value(&frame).expect("encodes");
        let counted = buildcat_proto::encoded_len(&frame).expect("counts");
        assert_eq!(counted, encoded.len(), "{frame:?}");
    }
}
