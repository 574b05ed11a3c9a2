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
//! length. A `JobId` is its UUID as a 16-byte vector: `10` then the bytes, big-endian; a
//! `TaskId` is its job's id then its index.
//!
//! The layout of one golden, `Hello` from a client of buildcat 0.6.0, read by hand:
//!
//! ```text
//! 00 00 00 10                  length prefix: 16 body bytes follow (big-endian u32)
//! 42 55 49 4c 44 43 41 54      magic "BUILDCAT": a [u8; 8] array, so no length prefix
//! 06                           protocol version 6 (varint)
//! 00                           role: variant 0 = Client (1 = Worker)
//! 05 30 2e 36 2e 30            software: length 5, then "0.6.0"
//! ```

use std::fmt::Debug;

use buildcat_proto::codec::{decode_value, encode_frame, encode_value};
use buildcat_proto::{
    Assignment, Attempt, AttemptOutcome, Change, Changed, ClientFrame, CommandResult, Completion,
    DEFAULT_MAX_FRAME, DEFAULT_PORT, Dependency, DroppedOutput, Failure, FarmInfo, FrameCodec,
    FramePreview, Gpu, GpuRequirement, GpuVendor, HandshakeError, Hello, HelloReply, JobEvent,
    JobOptions, JobPreviews, JobQuery, JobRef, JobState, JobStatus, JobSummary, LogPage, MAGIC,
    MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, NewJob, NewTask, Outcome, PROTOCOL_VERSION, PreviewFormat,
    PreviewInfo, QueueSummary, Reply, Request, RequestError, Requeue, Role, RunCommand,
    RunningTask, ServerFrame, Submitted, Task, TaskCounts, TaskProgress, TaskRef, TaskState,
    TaskStatus, TaskSummary, ToolVersion, Unserved, Welcome, WorkerActivity, WorkerRegistration,
    WorkerSummary,
};
use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::Decoder;

use crate::{JOB_A, JOB_B, T0, T1, TASK_A, TASK_B, frame, hex, unhex};

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
        stderr: vec![1],
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
/// travel inside `NewTask::args`, `Assignment::args` and `Outcome::Finished`.
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
        gpu_fault: None,
    }
}

/// A render's options: it runs after job [`JOB_A`] and task [`TASK_B`].
pub(crate) fn options() -> JobOptions {
    JobOptions {
        timeout_ms: Some(3_600_000),
        max_attempts: 3,
        priority: -5,
        after: vec![Dependency::Job(JOB_A), Dependency::Task(TASK_B)],
        gpus: GpuRequirement {
            count: 2,
            memory_mib: 24_576,
        },
    }
}

/// A render of frames 1-6 in two tasks of three frames.
pub(crate) fn render_job(args: Vec<u8>) -> NewJob {
    NewJob {
        queue: "render".to_owned(),
        kind: "studio.blender.frame".to_owned(),
        name: "shot.blend 1-6".to_owned(),
        submitter: "ana@ws07".to_owned(),
        runs: "shot.blend frames 1-6".to_owned(),
        options: options(),
        tasks: vec![
            NewTask {
                frames: Some("1-3".to_owned()),
                args: args.clone(),
            },
            NewTask {
                frames: Some("4-6".to_owned()),
                args,
            },
        ],
    }
}

/// A job of one task, as `Client::submit` makes it: no name, nothing to say it runs.
pub(crate) fn info_job() -> NewJob {
    NewJob {
        queue: "default".to_owned(),
        kind: "buildcat.worker.info".to_owned(),
        name: String::new(),
        submitter: "ana@ws07".to_owned(),
        runs: String::new(),
        options: JobOptions::default(),
        tasks: vec![NewTask {
            frames: None,
            args: Vec::new(),
        }],
    }
}

/// Job 42 ([`JOB_B`]): one `worker-info` task, finished.
pub(crate) fn finished_status() -> JobStatus {
    JobStatus {
        job: JobSummary {
            id: JOB_B,
            number: 42,
            name: "worker-info".to_owned(),
            queue: "default".to_owned(),
            kind: "buildcat.worker.info".to_owned(),
            submitter: "ana@ws07".to_owned(),
            runs: "worker-info".to_owned(),
            options: JobOptions::default(),
            state: JobState::Finished,
            paused: false,
            created_at: T0,
            ended_at: Some(T1),
            tasks: TaskCounts {
                total: 1,
                finished: 1,
                ..TaskCounts::default()
            },
        },
        tasks: vec![TaskSummary {
            index: 0,
            frames: None,
            state: TaskState::Finished,
            worker: Some("render01.4242.1".to_owned()),
            attempts: 1,
            started_at: Some(T0),
            ended_at: Some(T1),
            reason: None,
            progress: None,
        }],
    }
}

/// Job 41 ([`JOB_A`]) as its listing shows it, in `state` with these task counts.
fn render_summary(state: JobState, paused: bool, tasks: TaskCounts) -> JobSummary {
    JobSummary {
        id: JOB_A,
        number: 41,
        name: "shot.blend 1-6".to_owned(),
        queue: "render".to_owned(),
        kind: "studio.blender.frame".to_owned(),
        submitter: "ana@ws07".to_owned(),
        runs: "shot.blend frames 1-6".to_owned(),
        options: JobOptions {
            after: Vec::new(),
            ..options()
        },
        state,
        paused,
        created_at: T0,
        ended_at: state.is_terminal().then_some(T1),
        tasks,
    }
}

/// Job 41: task 0 finished, task 1 ([`TASK_A`]) failed on its second attempt.
pub(crate) fn failed_status() -> JobStatus {
    JobStatus {
        job: render_summary(
            JobState::Failed,
            false,
            TaskCounts {
                total: 2,
                finished: 1,
                failed: 1,
                ..TaskCounts::default()
            },
        ),
        tasks: vec![
            TaskSummary {
                index: 0,
                frames: Some("1-3".to_owned()),
                state: TaskState::Finished,
                worker: Some("render01.4242.1".to_owned()),
                attempts: 1,
                started_at: Some(T0),
                ended_at: Some(T1),
                reason: None,
                progress: None,
            },
            TaskSummary {
                index: 1,
                frames: Some("4-6".to_owned()),
                state: TaskState::Failed,
                worker: Some("render02.777.1".to_owned()),
                attempts: 2,
                started_at: Some(T0),
                ended_at: Some(T1),
                reason: Some(failure().reason),
                progress: None,
            },
        ],
    }
}

pub(crate) fn progress() -> TaskProgress {
    TaskProgress {
        done: 2,
        total: 3,
        outputs: vec![
            "shots/010/render/0004.exr".to_owned(),
            "shots/010/render/0005.exr".to_owned(),
        ],
        frame_percent: Some(45),
    }
}

/// Job 41 paused while its task 1 runs: the running task reports progress and finishes,
/// task 0 is held.
pub(crate) fn running_status() -> JobStatus {
    JobStatus {
        job: render_summary(
            JobState::Running,
            true,
            TaskCounts {
                total: 2,
                started: 1,
                paused: 1,
                ..TaskCounts::default()
            },
        ),
        tasks: vec![
            TaskSummary {
                index: 0,
                frames: Some("1-3".to_owned()),
                state: TaskState::Paused,
                worker: None,
                attempts: 0,
                started_at: None,
                ended_at: None,
                reason: None,
                progress: None,
            },
            TaskSummary {
                index: 1,
                frames: Some("4-6".to_owned()),
                state: TaskState::Started,
                worker: Some("render02.777.1".to_owned()),
                attempts: 1,
                started_at: Some(T1),
                ended_at: None,
                reason: None,
                progress: Some(progress()),
            },
        ],
    }
}

/// [`TASK_A`] (41.1) after its worker was lost and its second attempt failed.
pub(crate) fn task_status() -> TaskStatus {
    TaskStatus {
        id: TASK_A,
        number: 41,
        kind: "studio.blender.frame".to_owned(),
        frames: Some("4-6".to_owned()),
        state: TaskState::Failed,
        max_attempts: 3,
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

/// The only task of job 42, finished with a result.
pub(crate) fn finished_task_status() -> TaskStatus {
    TaskStatus {
        id: TASK_B,
        number: 42,
        kind: "buildcat.worker.info".to_owned(),
        frames: None,
        state: TaskState::Finished,
        max_attempts: 1,
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

pub(crate) fn render_lines() -> Vec<String> {
    vec![
        "Fra:12 Mem:1.2G | Rendering 3 / 64 samples".to_owned(),
        "Fra:12 Mem:1.2G | Rendering 4 / 64 samples".to_owned(),
    ]
}

pub(crate) fn wrong_state() -> RequestError {
    RequestError::WrongState {
        target: "job 41".to_owned(),
        state: "running".to_owned(),
        what: "only ended jobs can be deleted; cancel it first".to_owned(),
    }
}

/// Job 41's tasks: the whole job by number, one task by number, one by id.
pub(crate) fn task_refs() -> Vec<TaskRef> {
    vec![
        TaskRef::job(JobRef::Number(41)),
        TaskRef {
            job: JobRef::Number(41),
            index: Some(1),
        },
        TaskRef::from(TASK_B),
    ]
}

/// What a cancel of jobs 41 and 42 answers: 41's two tasks canceled, 42 refused.
pub(crate) fn changes() -> Vec<Change> {
    vec![
        Change {
            target: TaskRef::job(JobRef::Number(41)),
            result: Ok(Changed {
                job: JOB_A,
                number: 41,
                tasks: 2,
                state: JobState::Canceled,
            }),
        },
        Change {
            target: TaskRef::job(JobRef::Id(JOB_B)),
            result: Err(wrong_state()),
        },
    ]
}

/// Task 41.1 handed to a worker on its second attempt.
pub(crate) fn assignment() -> Assignment {
    Assignment {
        task: TASK_A,
        number: 41,
        name: "shot.blend 1-6".to_owned(),
        frames: Some("4-6".to_owned()),
        attempt: 2,
        queue: "render".to_owned(),
        kind: "studio.blender.frame".to_owned(),
        args: vec![
            0x0a, b's', b'h', b'o', b't', b'.', b'b', b'l', b'e', b'n', b'd',
        ],
        timeout_ms: Some(3_600_000),
    }
}

/// A preview of frame 7 saved by task 41.1's second attempt: a 512x288 JPEG of 4 bytes (a
/// bare start and end of image marker).
pub(crate) fn frame_preview() -> FramePreview {
    FramePreview {
        task: TASK_A,
        attempt: 2,
        frame: 7,
        width: 512,
        height: 288,
        format: PreviewFormat::Jpeg,
        image: vec![0xff, 0xd8, 0xff, 0xd9],
    }
}

#[test]
fn constants() {
    assert_eq!(MAGIC, *b"BUILDCAT");
    assert_eq!(PROTOCOL_VERSION, 9);
    assert_eq!(MAX_PREVIEW_BYTES, 256 * 1024);
    assert_eq!(MAX_PREVIEW_SIDE, 512);
    assert_eq!(DEFAULT_MAX_FRAME, 16 * 1024 * 1024);
    assert_eq!(DEFAULT_PORT, 2228);
}

#[test]
fn hello() {
    // Laid out field by field; see the module doc.
    check(
        &hello_from(Role::Client),
        "00000010 4255494c44434154 09 00 05 302e362e30",
    );
    check(
        &hello_from(Role::Worker),
        "00000010 4255494c44434154 09 01 05 302e362e30",
    );
}

/// The hello golden, built from its parts rather than copied from the encoder's output.
#[test]
fn hello_layout_from_parts() {
    let mut body = Vec::new();
    body.extend_from_slice(b"BUILDCAT");
    body.push(9); // protocol version, a varint below 251: one byte
    body.push(0); // Role::Client
    body.push(5); // software: length, then the bytes
    body.extend_from_slice(b"0.6.0");
    assert_eq!(body.len(), 16);
    assert_eq!(
        encode_frame(&hello_from(Role::Client)).unwrap(),
        frame(&body)
    );
    assert_eq!(
        unhex("00000010 4255494c44434154 09 00 05 302e362e30"),
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
        "0000000d 000905302e362e30fc00000001",
    );
    check(
        &HelloReply::Refused(HandshakeError::BadMagic),
        "00000002 0100",
    );
    check(
        &HelloReply::Refused(HandshakeError::ProtocolMismatch {
            server: 3,
            server_software: "0.6.0".to_owned(),
            peer: 4,
            peer_software: "0.7.0".to_owned(),
        }),
        "00000010 01010305302e362e300405302e372e30",
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
    check(
        &HelloReply::Refused(HandshakeError::Standby {
            active: "db1:2228".to_owned(),
        }),
        "0000000b 0105086462313a32323238",
    );
}

#[test]
fn unserved() {
    check_value(
        &Unserved {
            queue: "render".to_owned(),
            kind: "buildcat.blender.render".to_owned(),
            tasks: 3,
            gpus: GpuRequirement {
                count: 1,
                memory_mib: 0,
            },
        },
        "0672656e646572 17 6275696c646361742e626c656e6465722e72656e646572 03 0100",
    );
}

/// Task 41.1 as its bytes: the job's UUID (a 16-byte vector), then the index.
#[test]
fn task_id() {
    check_value(&TASK_A, "10 019000c79c007c4e8f00123456789abc 01");
}

#[test]
fn job_ref() {
    check(
        &JobRef::Id(JOB_A),
        "00000012 0010019000c79c007c4e8f00123456789abc",
    );
    check(&JobRef::Number(41), "00000002 0129");
    // A number of 300 takes three bytes: `fb` then 300 as a little-endian u16.
    check(&JobRef::Number(300), "00000004 01fb2c01");
}

#[test]
fn task_ref() {
    check(&TaskRef::job(JobRef::Number(41)), "00000003 012900");
    check(
        &TaskRef {
            job: JobRef::Number(41),
            index: Some(1),
        },
        "00000004 01290101",
    );
    check(
        &TaskRef::from(TASK_A),
        "00000014 0010019000c79c007c4e8f00123456789abc0101",
    );
}

#[test]
fn dependency() {
    check(
        &Dependency::Job(JOB_A),
        "00000012 0010019000c79c007c4e8f00123456789abc",
    );
    check(
        &Dependency::Task(TASK_B),
        "00000013 0110019000c7cc3970009a1122334455667700",
    );
}

#[test]
fn new_job() {
    check(
        &render_job(b"\x0ashot.blend".to_vec()),
        "0000009f \
         0672656e6465721473747564696f2e626c656e6465722e6672616d650e73686f \
         742e626c656e6420312d3608616e6140777330371573686f742e626c656e6420 \
         6672616d657320312d3601fc80ee36000309020010019000c79c007c4e8f0012 \
         3456789abc0110019000c7cc3970009a11223344556677 00 02fb0060 020103312d330b0a \
         73686f742e626c656e640103342d360b0a73686f742e626c656e64",
    );
    check(
        &info_job(),
        "00000031 \
         0764656661756c74146275696c646361742e776f726b65722e696e666f000861 \
         6e614077733037 0000010000 0000 010000",
    );
}

#[test]
fn request() {
    let request = |id, request| ClientFrame { id, request };
    check(
        &request(
            1,
            Request::Submit(vec![render_job(b"\x0ashot.blend".to_vec()), info_job()]),
        ),
        "000000d3 \
         0100020672656e6465721473747564696f2e626c656e6465722e6672616d650e \
         73686f742e626c656e6420312d3608616e6140777330371573686f742e626c65 \
         6e64206672616d657320312d3601fc80ee36000309020010019000c79c007c4e \
         8f00123456789abc0110019000c7cc3970009a11223344556677 00 02fb0060 020103312d \
         330b0a73686f742e626c656e640103342d360b0a73686f742e626c656e640764 \
         656661756c74146275696c646361742e776f726b65722e696e666f0008616e61 \
         4077733037 0000010000 0000 010000",
    );
    check(
        &request(2, Request::Wait(JobRef::Number(41))),
        "00000004 02010129",
    );
    check(
        &request(3, Request::Job(JobRef::Id(JOB_B))),
        "00000014 03020010019000c7cc3970009a11223344556677",
    );
    check(
        &request(
            4,
            Request::Task(TaskRef {
                job: JobRef::Number(41),
                index: Some(1),
            }),
        ),
        "00000006 040301290101",
    );
    // Without an index: the only task of job 42.
    check(
        &request(4, Request::Task(TaskRef::job(JOB_B))),
        "00000015 04030010019000c7cc3970009a1122334455667700",
    );
    check(&request(5, Request::Info), "00000002 0504");
    check(
        &request(
            6,
            Request::Register(WorkerRegistration {
                name: "render01.4242.1".to_owned(),
                host: "render01".to_owned(),
                root: "/var/lib/buildcat".to_owned(),
                queues: vec!["render".to_owned(), "default".to_owned()],
                kinds: vec!["buildcat.worker.info".to_owned()],
                pid: 4242,
                version: "0.6.0".to_owned(),
                running: vec![(TASK_A, 2)],
                tools: vec![ToolVersion {
                    name: "blender".to_owned(),
                    version: "3.4.1".to_owned(),
                }],
                gpus: vec![Gpu {
                    index: 1,
                    uuid: "GPU-9c1f".to_owned(),
                    name: "NVIDIA H200".to_owned(),
                    memory_mib: 143_771,
                    driver: "550.54.15".to_owned(),
                    vendor: GpuVendor::Nvidia,
                }],
            }),
        ),
        // tools: one, then "blender" (7 bytes) and "3.4.1" (5 bytes), 15 bytes in all;
        // gpus: one, index 1, "GPU-9c1f" (8), "NVIDIA H200" (11), 143,771 MiB (`fc` then a
        // little-endian u32), "550.54.15" (9), vendor Nvidia (variant 0): 39 bytes.
        "000000a6 \
         06050f72656e64657230312e343234322e310872656e6465723031112f766172 \
         2f6c69622f6275696c64636174020672656e6465720764656661756c74011462 \
         75696c646361742e776f726b65722e696e666ffb921005302e362e3001100190 \
         00c79c007c4e8f00123456789abc0102 \
         01 07626c656e646572 05332e342e31 \
         01 01 084750552d39633166 0b4e56494449412048323030 fc9b310200 \
         09 3535302e35342e3135 00",
    );
    // An id of 300 takes three bytes: `fb` then 300 as a little-endian u16.
    check(&request(300, Request::Heartbeat), "00000004 fb2c0106");
    check(
        &request(
            u64::MAX,
            Request::Complete(Completion {
                task: TASK_A,
                attempt: 2,
                outcome: Outcome::Finished(vec![0x02, b'o', b'k']),
            }),
        ),
        "00000022 \
         fdffffffffffffffff0710019000c79c007c4e8f00123456789abc0102000302 \
         6f6b",
    );
    check(
        &request(
            8,
            Request::Log {
                task: TASK_A,
                attempt: 2,
                lines: render_lines(),
                stderr: vec![1],
            },
        ),
        "0000006e \
         080810019000c79c007c4e8f00123456789abc0102022a4672613a3132204d65 \
         6d3a312e3247207c2052656e646572696e672033202f2036342073616d706c65 \
         732a4672613a3132204d656d3a312e3247207c2052656e646572696e67203420 \
         2f2036342073616d706c65730101",
    );
    check(
        &request(
            9,
            Request::Progress {
                task: TASK_A,
                attempt: 2,
                progress: progress(),
            },
        ),
        "0000004e \
         090910019000c79c007c4e8f00123456789abc01020203021973686f74732f30 \
         31302f72656e6465722f303030342e6578721973686f74732f3031302f72656e \
         6465722f303030352e657872 012d",
    );
    check(
        &request(10, Request::Cancel(task_refs())),
        "0000001e \
         0a0a03012900012901010010019000c7cc3970009a112233445566770100",
    );
    check(
        &request(
            11,
            Request::Requeue(Requeue::Tasks {
                targets: task_refs(),
                all: true,
            }),
        ),
        "00000020 \
         0b0b0003012900012901010010019000c7cc3970009a11223344556677010001",
    );
    check(
        &request(
            11,
            Request::Requeue(Requeue::Failed {
                queue: Some("render".to_owned()),
                user: Some("ana".to_owned()),
            }),
        ),
        "00000010 0b0b01010672656e6465720103616e61",
    );
    check(
        &request(
            12,
            Request::Pause(vec![JobRef::Number(41), JobRef::Id(JOB_B)]),
        ),
        "00000017 0c0c0201290010019000c7cc3970009a11223344556677",
    );
    check(
        &request(13, Request::Resume(vec![JobRef::Number(41)])),
        "00000005 0d0d010129",
    );
    check(
        &request(
            14,
            Request::PauseQueue {
                queue: "render".to_owned(),
                paused: true,
            },
        ),
        "0000000a 0e0e0672656e64657201",
    );
    check(
        &request(
            14,
            Request::PauseQueue {
                queue: "render".to_owned(),
                paused: false,
            },
        ),
        "0000000a 0e0e0672656e64657200",
    );
    // Priorities are zigzagged: -5 is 9, 10 is 20.
    check(
        &request(
            15,
            Request::SetPriority {
                job: JobRef::Number(41),
                priority: 10,
            },
        ),
        "00000005 0f0f012914",
    );
    check(
        &request(
            16,
            Request::Delete(vec![JobRef::Number(41), JobRef::Id(JOB_B)]),
        ),
        "00000017 10100201290010019000c7cc3970009a11223344556677",
    );
    check(
        &request(
            17,
            Request::Jobs(JobQuery {
                queue: Some("render".to_owned()),
                state: Some(JobState::Failed),
                user: Some("ana@ws07".to_owned()),
                limit: 50,
            }),
        ),
        "00000017 1111010672656e64657201040108616e61407773303732",
    );
    check(
        &request(
            18,
            Request::Logs {
                task: TaskRef {
                    job: JobRef::Number(41),
                    index: Some(1),
                },
                from: 1_200,
                follow: true,
            },
        ),
        "0000000a 121201290101fbb00401",
    );
    check(
        &request(
            19,
            Request::Watch(vec![JobRef::Number(41), JobRef::Id(JOB_B)]),
        ),
        "00000017 13130201290010019000c7cc3970009a11223344556677",
    );
    check(
        &request(20, Request::EnableWorker("render01.4242.1".to_owned())),
        "00000012 14140f72656e64657230312e343234322e31",
    );
    // Frame 7 of task 41.1's second attempt, a 512x288 JPEG (zigzagged frame `0e`, the
    // sides as `fb` + u16).
    check(
        &request(21, Request::Preview(frame_preview())),
        "00000022 1515 10019000c79c007c4e8f00123456789abc01 02 0e fb0002 fb2001 00 \
         04ffd8ffd9",
    );
    check(
        &request(
            22,
            Request::Previews {
                job: JobRef::Number(41),
                image: true,
            },
        ),
        "00000005 1616012901",
    );
    // One tool, "blender" (7 bytes) at "3.4.1" (5 bytes).
    check(
        &request(
            23,
            Request::UpdateTools(vec![ToolVersion {
                name: "blender".to_owned(),
                version: "3.4.1".to_owned(),
            }]),
        ),
        "00000011 1717 01 07626c656e646572 05332e342e31",
    );
    // A worker paused: its name, then `01` for paused (resume is `00`).
    check(
        &request(
            24,
            Request::PauseWorker {
                name: "render01.4242.1".to_owned(),
                paused: true,
            },
        ),
        "00000013 1818 0f72656e64657230312e343234322e31 01",
    );
}

#[test]
fn server_frame() {
    check(
        &ServerFrame::Reply {
            id: 1,
            reply: Ok(Reply::Ack),
        },
        "00000004 00010006",
    );
    check(
        &ServerFrame::Reply {
            id: 2,
            reply: Err(RequestError::UnknownJob(JobRef::Number(41))),
        },
        "00000006 000201000129",
    );
    check(
        &ServerFrame::Assign(assignment()),
        "00000057 \
         0110019000c79c007c4e8f00123456789abc01290e73686f742e626c656e6420 \
         312d360103342d36020672656e6465721473747564696f2e626c656e6465722e \
         6672616d650b0a73686f742e626c656e6401fc80ee3600",
    );
    check(
        &ServerFrame::Closing("the server is shutting down".to_owned()),
        "0000001d \
         021b74686520736572766572206973207368757474696e6720646f776e",
    );
    check(
        &ServerFrame::Cancel {
            task: TASK_A,
            attempt: 2,
            reason: "canceled by a user".to_owned(),
        },
        "00000027 \
         0310019000c79c007c4e8f00123456789abc01021263616e63656c6564206279 \
         20612075736572",
    );
    check(
        &ServerFrame::Event {
            id: 18,
            event: JobEvent::Log {
                task: TASK_A,
                page: log_page(),
            },
        },
        "0000007a \
         04120010019000c79c007c4e8f00123456789abc0101fbc01228fb7017022a46 \
         72613a3132204d656d3a312e3247207c2052656e646572696e672033202f2036 \
         342073616d706c65732a4672613a3132204d656d3a312e3247207c2052656e64 \
         6572696e672034202f2036342073616d706c6573fbc617010101",
    );
    check(
        &ServerFrame::Event {
            id: 19,
            event: JobEvent::Task {
                job: JOB_A,
                task: running_status().tasks[1].clone(),
            },
        },
        "00000072 \
         04130210019000c79c007c4e8f00123456789abc010103342d3601010e72656e \
         64657230322e3737372e310101fd39ccc700900100000000010203021973686f \
         74732f3031302f72656e6465722f303030342e6578721973686f74732f303130 \
         2f72656e6465722f303030352e657872 012d",
    );
}

#[test]
fn reply() {
    check(
        &Reply::Submitted(vec![
            Submitted {
                id: JOB_A,
                number: 41,
                tasks: 2,
            },
            Submitted {
                id: JOB_B,
                number: 42,
                tasks: 1,
            },
        ]),
        "00000028 \
         000210019000c79c007c4e8f00123456789abc290210019000c7cc3970009a11 \
         2233445566772a01",
    );
    check(
        &Reply::Ended(finished_status()),
        "000000a0 \
         0110019000c7cc3970009a112233445566772a0b776f726b65722d696e666f07 \
         64656661756c74146275696c646361742e776f726b65722e696e666f08616e61 \
         40777330370b776f726b65722d696e666f00010000 0000 0300fd009cc70090010000 \
         01fd39ccc70090010000010000010000000001000002010f72656e6465723031 \
         2e343234322e310101fd009cc7009001000001fd39ccc700900100000000",
    );
    check(
        &Reply::Job(failed_status()),
        "00000102 \
         0210019000c79c007c4e8f00123456789abc290e73686f742e626c656e642031 \
         2d360672656e6465721473747564696f2e626c656e6465722e6672616d650861 \
         6e6140777330371573686f742e626c656e64206672616d657320312d3601fc80 \
         ee3600030900 02fb0060 0400fd009cc7009001000001fd39ccc700900100000200000101 \
         00000002000103312d3302010f72656e64657230312e343234322e310101fd00 \
         9cc7009001000001fd39ccc700900100000000010103342d3603010e72656e64 \
         657230322e3737372e310201fd009cc7009001000001fd39ccc7009001000001 \
         1c626c656e64657220657869746564207769746820616e206572726f7200",
    );
    check(
        &Reply::Task(task_status()),
        "00000165 \
         0310019000c79c007c4e8f00123456789abc01291473747564696f2e626c656e \
         6465722e6672616d650103342d36030301fd39ccc7009001000002010f72656e \
         64657230312e343234322e31fd009cc7009001000001fd009cc7009001000001 \
         02020e72656e64657230322e3737372e31fd009cc7009001000001fd39ccc700 \
         9001000001011c626c656e64657220657869746564207769746820616e206572 \
         726f720102022a4672613a3132204d656d3a312e3247207c2052656e64657269 \
         6e672033202f2036342073616d706c6573214572726f723a204e6f7420667265 \
         6564206d656d6f727920626c6f636b733a2032 00 00011c626c656e646572206578 \
         69746564207769746820616e206572726f720102022a4672613a3132204d656d \
         3a312e3247207c2052656e646572696e672033202f2036342073616d706c6573 \
         214572726f723a204e6f74206672656564206d656d6f727920626c6f636b733a \
         2032 00 00",
    );
    check(
        &Reply::Task(finished_task_status()),
        "00000064 \
         0310019000c7cc3970009a11223344556677002a146275696c646361742e776f \
         726b65722e696e666f00020101fd39ccc7009001000001010f72656e64657230 \
         312e343234322e31fd009cc7009001000001fd39ccc700900100000100010302 \
         6f6b0000",
    );
    check(
        &Reply::Info(FarmInfo {
            queues: vec![QueueSummary {
                name: "render".to_owned(),
                jobs: 2,
                tasks: TaskCounts {
                    total: 258,
                    queued: 3,
                    started: 1,
                    finished: 250,
                    failed: 2,
                    canceled: 0,
                    deferred: 1,
                    paused: 1,
                },
                paused: true,
            }],
            workers: vec![WorkerSummary {
                name: "render01.4242.1".to_owned(),
                host: "render01".to_owned(),
                root: "/var/lib/buildcat".to_owned(),
                queues: vec!["render".to_owned()],
                activity: WorkerActivity::Busy,
                task: Some(RunningTask {
                    id: TASK_A,
                    number: 41,
                }),
                connected_at: T0,
                quarantine: None,
                tools: vec![ToolVersion {
                    name: "hython".to_owned(),
                    version: "20.5".to_owned(),
                }],
                gpus: Vec::new(),
                paused: true,
            }],
            unserved: vec![Unserved {
                queue: "render".to_owned(),
                kind: "buildcat.houdini.render".to_owned(),
                tasks: 4,
                gpus: GpuRequirement::NONE,
            }],
            truncated: false,
            output_bytes: 1 << 20,
        }),
        // The worker's tools follow its quarantine (`00`): one, "hython" (6 bytes) and
        // "20.5" (4 bytes), 13 bytes in all; then its GPUs (none, `00`) and `01`: paused.
        // The output kept comes last: 1 MiB as `fc` + u32.
        "000000a0 \
         04010672656e64657202fb02010301fa0200010101010f72656e64657230312e \
         343234322e310872656e6465723031112f7661722f6c69622f6275696c646361 \
         74010672656e646572010110019000c79c007c4e8f00123456789abc0129fd00 \
         9cc7009001000000 01 06687974686f6e 0432302e35 00 01 \
         010672656e646572176275696c646361742e686f7564696e \
         692e72656e646572 04 0000 00 fc00001000",
    );
    check(
        &Reply::Registered {
            name: "render01.4242.1".to_owned(),
            heartbeat_ms: 5_000,
            reconnect_grace_ms: 60_000,
        },
        "00000017 050f72656e64657230312e343234322e31fb8813fb60ea",
    );
    check(&Reply::Ack, "00000001 06");
    check(
        &Reply::Changes(changes()),
        "0000006e \
         07020129000010019000c79c007c4e8f00123456789abc2902050010019000c7 \
         cc3970009a11223344556677000108066a6f622034310772756e6e696e672f6f \
         6e6c7920656e646564206a6f62732063616e2062652064656c657465643b2063 \
         616e63656c206974206669727374",
    );
    // A paused job whose running task reports progress.
    check(
        &Reply::Jobs {
            jobs: vec![running_status().job, finished_status().job],
            more: true,
        },
        "000000f3 \
         080210019000c79c007c4e8f00123456789abc290e73686f742e626c656e6420 \
         312d360672656e6465721473747564696f2e626c656e6465722e6672616d6508 \
         616e6140777330371573686f742e626c656e64206672616d657320312d3601fc \
         80ee3600030900 02fb0060 0101fd009cc7009001000000020001000000000110019000c7 \
         cc3970009a112233445566772a0b776f726b65722d696e666f0764656661756c \
         74146275696c646361742e776f726b65722e696e666f08616e6140777330370b \
         776f726b65722d696e666f00010000 0000 0300fd009cc7009001000001fd39ccc700 \
         90010000010000010000000001",
    );
    // Job 41's previews: frame 7 of task 41.1 received at T1, with the newest image.
    check(
        &Reply::Previews(JobPreviews {
            job: JOB_A,
            number: 41,
            previews: vec![PreviewInfo {
                task: TASK_A,
                frame: 7,
                width: 512,
                height: 288,
                format: PreviewFormat::Png,
                bytes: 4,
                at: T1,
            }],
            latest: Some(vec![0xff, 0xd8, 0xff, 0xd9]),
        }),
        "0000003e \
         0a10019000c79c007c4e8f00123456789abc290110019000c79c007c4e8f0012 \
         3456789abc010efb0002fb20010104fd39ccc700900100000104ffd8ffd9",
    );
    check(
        &Reply::Log(log_page()),
        "00000066 \
         0901fbc01228fb7017022a4672613a3132204d656d3a312e3247207c2052656e \
         646572696e672033202f2036342073616d706c65732a4672613a3132204d656d \
         3a312e3247207c2052656e646572696e672034202f2036342073616d706c6573 \
         fbc617010101",
    );
}

#[test]
fn request_error() {
    check(
        &RequestError::UnknownJob(JobRef::Id(JOB_A)),
        "00000013 000010019000c79c007c4e8f00123456789abc",
    );
    check(
        &RequestError::UnknownJob(JobRef::Number(41)),
        "00000003 000129",
    );
    check(
        &RequestError::UnknownTask {
            job: JobRef::Number(41),
            index: 7,
            tasks: 2,
        },
        "00000005 0101290702",
    );
    check(
        &RequestError::WhichTask {
            job: JobRef::Number(41),
            tasks: 2,
        },
        "00000004 02012902",
    );
    check(
        &RequestError::WrongRole {
            request: "submit".to_owned(),
            role: "worker".to_owned(),
        },
        "0000000f 03067375626d697406776f726b6572",
    );
    check(
        &RequestError::Invalid("empty queue name".to_owned()),
        "00000012 0410656d707479207175657565206e616d65",
    );
    check(
        &RequestError::Storage("database is locked".to_owned()),
        "00000014 05126461746162617365206973206c6f636b6564",
    );
    check(&RequestError::ShuttingDown, "00000001 06");
    check(
        &RequestError::StaleAttempt {
            task: TASK_A,
            attempt: 1,
        },
        "00000014 0710019000c79c007c4e8f00123456789abc0101",
    );
    check(
        &wrong_state(),
        "00000040 \
         08066a6f622034310772756e6e696e672f6f6e6c7920656e646564206a6f6273 \
         2063616e2062652064656c657465643b2063616e63656c206974206669727374",
    );
    check(
        &RequestError::TooManyInFlight { limit: 256 },
        "00000004 09fb0001",
    );
    check(
        &RequestError::UnknownWorker("render01".to_owned()),
        "0000000a 0a0872656e6465723031",
    );
    // Variant 11, then the name and the holder, each a length and its bytes.
    check(
        &RequestError::NameTaken {
            name: "w1".to_owned(),
            holder: "pid 7".to_owned(),
        },
        "0000000a 0b027731 057069642037",
    );
}

/// The messages people read: each names the job or task as typed and says what to do.
#[test]
fn request_error_texts() {
    assert_eq!(
        RequestError::UnknownJob(JobRef::Number(41)).to_string(),
        "no job 41 (it may have been deleted, or removed after its retention period); \
         `buildcat jobs` lists the jobs"
    );
    assert_eq!(
        RequestError::UnknownTask {
            job: JobRef::Number(41),
            index: 7,
            tasks: 2,
        }
        .to_string(),
        "job 41 has no task 7: its tasks are 41.0 to 41.1"
    );
    assert_eq!(
        RequestError::WhichTask {
            job: JobRef::Number(41),
            tasks: 2,
        }
        .to_string(),
        "job 41 has 2 tasks; name one as 41.INDEX (`buildcat status 41` lists them)"
    );
    assert_eq!(
        wrong_state().to_string(),
        "job 41 is running; only ended jobs can be deleted; cancel it first"
    );
    assert_eq!(
        RequestError::StaleAttempt {
            task: TASK_A,
            attempt: 1,
        }
        .to_string(),
        "task 019000c7-9c00-7c4e-8f00-123456789abc.1 attempt 1 is no longer current; its \
         result was not recorded"
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
        "0000006f \
         011c626c656e64657220657869746564207769746820616e206572726f720102 \
         022a4672613a3132204d656d3a312e3247207c2052656e646572696e67203320 \
         2f2036342073616d706c6573214572726f723a204e6f74206672656564206d65 \
         6d6f727920626c6f636b733a2032 00",
    );
    check(&Outcome::Canceled, "00000001 02");
    check(&Outcome::Interrupted, "00000001 03");
    // Issue 11: a task that adds tasks to its job (the scene's own frame range).
    check(
        &Outcome::FinishedWithTasks {
            result: vec![0x02, b'o', b'k'],
            tasks: vec![NewTask {
                frames: Some("3-7:2".to_owned()),
                args: vec![0x01],
            }],
        },
        "0000000f 04 03026f6b 01 01 05332d373a32 0101",
    );
}

#[test]
fn job_state() {
    check(&JobState::Queued, "00000001 00");
    check(&JobState::Running, "00000001 01");
    check(&JobState::Paused, "00000001 02");
    check(&JobState::Finished, "00000001 03");
    check(&JobState::Failed, "00000001 04");
    check(&JobState::Canceled, "00000001 05");
}

#[test]
fn task_state() {
    check(&TaskState::Queued, "00000001 00");
    check(&TaskState::Started, "00000001 01");
    check(&TaskState::Finished, "00000001 02");
    check(&TaskState::Failed, "00000001 03");
    check(&TaskState::Canceled, "00000001 04");
    check(&TaskState::Deferred, "00000001 05");
    check(&TaskState::Paused, "00000001 06");
}

#[test]
fn attempt_outcome() {
    check(&AttemptOutcome::Finished, "00000001 00");
    check(&AttemptOutcome::Interrupted, "00000001 04");
    check(&WorkerActivity::Quarantined, "00000001 02");
    check(&WorkerActivity::Paused, "00000001 03");
    check(
        &AttemptOutcome::Failed(Failure::new("timed out after 1h")),
        "00000017 011274696d6564206f75742061667465722031680000 00",
    );
    check(&AttemptOutcome::WorkerLost, "00000001 02");
    check(&AttemptOutcome::Canceled, "00000001 03");
}

#[test]
fn preview_format() {
    check_value(&PreviewFormat::Jpeg, "00");
    check_value(&PreviewFormat::Png, "01");
}

#[test]
fn worker_activity() {
    check(&WorkerActivity::Idle, "00000001 00");
    check(&WorkerActivity::Busy, "00000001 01");
}

#[test]
fn requeue() {
    check(
        &Requeue::Tasks {
            targets: vec![TaskRef::job(JobRef::Number(41))],
            all: false,
        },
        "00000006 000101290000",
    );
    check(
        &Requeue::Failed {
            queue: None,
            user: None,
        },
        "00000003 010000",
    );
    check(
        &Requeue::Failed {
            queue: Some("render".to_owned()),
            user: Some("ana@ws07".to_owned()),
        },
        "00000013 01010672656e6465720108616e614077733037",
    );
}

#[test]
fn job_query() {
    check(&JobQuery::default(), "00000004 00000000");
    check(
        &JobQuery {
            queue: Some("render".to_owned()),
            state: Some(JobState::Queued),
            user: Some("ana".to_owned()),
            limit: 1_000,
        },
        "00000012 010672656e64657201000103616e61fbe803",
    );
}

#[test]
fn change() {
    let [done, refused] = changes().try_into().expect("two changes");
    check(
        &done,
        "00000018 0129000010019000c79c007c4e8f00123456789abc290205",
    );
    check(
        &refused,
        "00000054 \
         0010019000c7cc3970009a11223344556677000108066a6f622034310772756e \
         6e696e672f6f6e6c7920656e646564206a6f62732063616e2062652064656c65 \
         7465643b2063616e63656c206974206669727374",
    );
}

#[test]
fn job_event() {
    check(
        &JobEvent::Log {
            task: TASK_A,
            page: log_page(),
        },
        "00000078 \
         0010019000c79c007c4e8f00123456789abc0101fbc01228fb7017022a467261 \
         3a3132204d656d3a312e3247207c2052656e646572696e672033202f20363420 \
         73616d706c65732a4672613a3132204d656d3a312e3247207c2052656e646572 \
         696e672034202f2036342073616d706c6573fbc617010101",
    );
    check(
        &JobEvent::Progress {
            task: TASK_A,
            progress: progress(),
        },
        "0000004c \
         0110019000c79c007c4e8f00123456789abc010203021973686f74732f303130 \
         2f72656e6465722f303030342e6578721973686f74732f3031302f72656e6465 \
         722f303030352e657872 012d",
    );
    check(
        &JobEvent::Task {
            job: JOB_A,
            task: failed_status().tasks[1].clone(),
        },
        "0000005d \
         0210019000c79c007c4e8f00123456789abc010103342d3603010e72656e6465 \
         7230322e3737372e310201fd009cc7009001000001fd39ccc70090010000011c \
         626c656e64657220657869746564207769746820616e206572726f7200",
    );
    check(
        &JobEvent::Ended(finished_status()),
        "000000a0 \
         0310019000c7cc3970009a112233445566772a0b776f726b65722d696e666f07 \
         64656661756c74146275696c646361742e776f726b65722e696e666f08616e61 \
         40777330370b776f726b65722d696e666f00010000 0000 0300fd009cc70090010000 \
         01fd39ccc70090010000010000010000000001000002010f72656e6465723031 \
         2e343234322e310101fd009cc7009001000001fd39ccc700900100000000",
    );
}

#[test]
fn task_progress() {
    // done 2, total 3, two outputs, then `frame_percent` (protocol 8): `01` (Some) and 45.
    check(
        &progress(),
        "00000039 \
         0203021973686f74732f3031302f72656e6465722f303030342e657872197368 \
         6f74732f3031302f72656e6465722f303030352e657872 012d",
    );
    check(&TaskProgress::default(), "00000004 00000000");
}

#[test]
fn task_counts() {
    check(&TaskCounts::default(), "00000008 0000000000000000");
    check(&running_status().job.tasks, "00000008 0200010000000001");
}

#[test]
fn job_status() {
    // The record alone: the summary, then the tasks; a task's `progress` is its last field.
    check(
        &running_status(),
        "000000e9 \
         10019000c79c007c4e8f00123456789abc290e73686f742e626c656e6420312d \
         360672656e6465721473747564696f2e626c656e6465722e6672616d6508616e \
         6140777330371573686f742e626c656e64206672616d657320312d3601fc80ee \
         3600030900 02fb0060 0101fd009cc7009001000000020001000000000102000103312d33 \
         06000000000000010103342d3601010e72656e64657230322e3737372e310101 \
         fd39ccc700900100000000010203021973686f74732f3031302f72656e646572 \
         2f303030342e6578721973686f74732f3031302f72656e6465722f303030352e \
         657872 012d",
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
            jobs: vec![running_status().job],
            more: false,
        }),
    };
    let event = ServerFrame::Event {
        id: 12,
        event: JobEvent::Log {
            task: TASK_A,
            page: log_page(),
        },
    };
    for frame in [reply, event] {
        let encoded = encode_value(&frame).expect("encodes");
        let counted = buildcat_proto::encoded_len(&frame).expect("counts");
        assert_eq!(counted, encoded.len(), "{frame:?}");
    }
}
