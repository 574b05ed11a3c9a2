//! Frame previews (issue 12), end to end: a worker makes a small picture of each frame its
//! render task saves and sends it to the server, which serves the job's previews at
//! `GET /api/v1/jobs/{job}/previews` (newest first) and the newest image at
//! `.../previews/latest`. Real Blender renders PNG and OpenEXR frames; a stand-in Blender
//! "saves" a file of garbage, whose task still finishes, with a log line.
//!
//! Requests are a few lines of HTTP/1.1 over a loopback `TcpStream` (as in `http.rs`), read
//! as bytes since an answer may be an image.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Farm, PATIENCE, Proc, buildcat_command, describe, free_port, poll_until, poll_within,
    run_command, stderr, stdout, worker,
};
use crate::render::{make_scene, on_path, submitted, write_file};

/// How long one request may take: far longer than any answer needs on a loaded machine.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// The longest side of a preview, as the worker makes them.
const PREVIEW_SIDE: u32 = 512;

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    /// The status code.
    status: u16,
    /// The headers, names lowercased.
    headers: Vec<(String, String)>,
    /// The body, as bytes.
    body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; fails the test if it is not.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {} {:?} {}",
                self.status,
                self.headers,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// `GET path` from the HTTP API on `127.0.0.1:port`, read whole.
fn get(port: u16, path: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|error| panic!("could not connect to the HTTP API on {port}: {error}"));
    stream
        .set_read_timeout(Some(REQUEST_LIMIT))
        .expect("a timeout");
    let text =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(text.as_bytes())
        .expect("could not send the request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("could not read the answer");
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "a chunked answer to GET {path}: {headers:?}"
    );
    Answer {
        status,
        headers,
        body,
    }
}

/// A farm whose HTTP API listens on a free loopback port.
fn farm_with_http() -> (Farm, u16) {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    (Farm::start_with(&["--http", addr.as_str()]), http)
}

/// The job's previews once `condition` holds for the list (newest first).
fn wait_for_previews(
    http: u16,
    job: &str,
    what: &str,
    condition: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    poll_within(PATIENCE * 2, what, || {
        let answer = get(http, &format!("/api/v1/jobs/{job}/previews"));
        if answer.status != 200 {
            return Err(format!(
                "{} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let listed = answer.json();
        let previews = listed.as_array().cloned().unwrap_or_default();
        if condition(&previews) {
            Ok(previews)
        } else {
            Err(format!("previews so far: {listed}"))
        }
    })
}

/// The newest preview of `job`: checks its headers against `listed` (the newest listed),
/// decodes it, and checks its size; the decoded image.
#[track_caller]
fn latest_image(http: u16, job: &str, listed: &Value) -> image::DynamicImage {
    let answer = get(http, &format!("/api/v1/jobs/{job}/previews/latest"));
    assert_eq!(answer.status, 200, "{:?}", answer.headers);
    let format = listed["format"].as_str().unwrap_or_default();
    let expected_type = match format {
        "jpeg" => "image/jpeg",
        "png" => "image/png",
        other => panic!("a preview format of {other:?}: {listed}"),
    };
    assert_eq!(answer.header("content-type"), Some(expected_type));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        listed["bytes"].as_u64(),
        Some(answer.body.len() as u64),
        "{listed}"
    );
    let decoded = image::load_from_memory(&answer.body)
        .unwrap_or_else(|error| panic!("the preview does not decode: {error}"));
    assert_eq!(
        (u64::from(decoded.width()), u64::from(decoded.height())),
        (
            listed["width"].as_u64().unwrap_or_default(),
            listed["height"].as_u64().unwrap_or_default()
        ),
        "{listed}"
    );
    assert!(
        decoded.width().max(decoded.height()) <= PREVIEW_SIDE,
        "{}x{}",
        decoded.width(),
        decoded.height()
    );
    decoded
}

/// Blender's Python for a render at 1024x576: the scene is 64x48, and a preview is made at
/// most 512 pixels wide, so this one is shrunk.
const FULL_HD_HALF: &str = "import bpy; r = bpy.context.scene.render; r.resolution_x = 1024; \
                            r.resolution_y = 576";

/// Guards frame previews with the real Blender: a PNG render of 4 frames in 2 tasks lists
/// its previews newest first (the last frame's on top, from task .1) and serves the newest
/// as an image that decodes at 512x288; an OpenEXR render gets a preview too; a job with
/// none answers 404 with a JSON error, as an unknown job does.
#[test]
fn blender_frames_become_previews_on_the_jobs_page() {
    if !on_path("blender") {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but blender is not on PATH"
        );
        eprintln!("skipped: needs `blender` on PATH");
        return;
    }
    let (farm, http) = farm_with_http();
    let root = farm.make_dir("root");
    make_scene(&farm, &root);
    let mut render_worker = farm.worker_in(&root, &["--name", "b1"]);
    farm.wait_for_info("the worker idle", |info| {
        worker(info, "b1").is_some_and(|w| w["state"] == "idle")
    });

    let render = [
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "1-4",
        "--chunk",
        "2",
        "--output",
        "renders/png_####",
        "--format",
        "PNG",
        "--python-expr",
        FULL_HD_HALF,
        "--wait",
        "--json",
    ];
    let rendered = run_command(farm.client.command(&render), PATIENCE * 3);
    if !rendered.status.success() {
        render_worker.assert_running();
        panic!("{}\n{}", describe(&rendered), render_worker.logs());
    }
    let (job, tasks) = submitted(&rendered);
    assert_eq!(tasks, 2, "{}", describe(&rendered));
    // The last frame's preview is made after it was saved: it may come after the job ended.
    let previews = wait_for_previews(http, &job, "the preview of frame 4", |previews| {
        previews.first().is_some_and(|p| p["frame"] == 4)
    });
    let newest = &previews[0];
    assert_eq!(newest["task"], format!("{job}.1"), "{newest}");
    assert_eq!(
        (newest["width"].as_u64(), newest["height"].as_u64()),
        (Some(512), Some(288))
    );
    assert!(
        newest["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{newest}"
    );
    assert!(previews.len() <= 4, "at most 4 kept per job: {previews:?}");
    let frames: Vec<i64> = previews
        .iter()
        .filter_map(|p| p["frame"].as_i64())
        .collect();
    let mut sorted = frames.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(frames, sorted, "newest (highest frame) first: {previews:?}");
    latest_image(http, &job, newest);
    // The CLI saves the same picture.
    let saved = farm.path().join("newest.jpg");
    let shown = farm.ok(&["preview", &job, "-o", &saved.display().to_string()]);
    assert!(
        stdout(&shown).contains(&format!("frame 4 of task {job}.1 (512x288")),
        "{}",
        describe(&shown)
    );
    let picture = image::open(&saved).expect("the saved preview decodes");
    assert_eq!((picture.width(), picture.height()), (512, 288));

    // OpenEXR: float frames, tone-mapped into a picture.
    let exr = [
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "3",
        "--output",
        "renders/exr_####",
        "--format",
        "OPEN_EXR",
        "--wait",
        "--json",
    ];
    let rendered = run_command(farm.client.command(&exr), PATIENCE * 2);
    if !rendered.status.success() {
        render_worker.assert_running();
        panic!("{}\n{}", describe(&rendered), render_worker.logs());
    }
    assert!(
        root.join("renders/exr_0003.exr").is_file(),
        "{}",
        render_worker.logs()
    );
    let (exr_job, _) = submitted(&rendered);
    let previews = wait_for_previews(http, &exr_job, "the EXR frame's preview", |previews| {
        !previews.is_empty()
    });
    assert_eq!(previews[0]["frame"], 3, "{previews:?}");
    let picture = latest_image(http, &exr_job, &previews[0]);
    assert_eq!((picture.width(), picture.height()), (64, 48));

    // A job that saved no frame, and one that does not exist.
    let plain = farm.submit(&["--", "true"]);
    let none = get(http, &format!("/api/v1/jobs/{plain}/previews/latest"));
    assert_eq!(
        none.status,
        404,
        "{:?}",
        String::from_utf8_lossy(&none.body)
    );
    let error = none.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("no preview yet"), "{error}");
    assert_eq!(
        get(http, &format!("/api/v1/jobs/{plain}/previews")).json(),
        Value::Array(Vec::new())
    );
    for path in [
        "/api/v1/jobs/99999/previews",
        "/api/v1/jobs/99999/previews/latest",
    ] {
        let unknown = get(http, path);
        assert_eq!(unknown.status, 404, "{path}");
        assert!(
            unknown.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("no job 99999")),
            "{path}"
        );
    }
    render_worker.assert_running();
}

/// A stand-in for Blender that "saves" frame 1 as a file of garbage under the root written
/// into it (`@ROOT@`): it ends as a whole PNG does (the worker's check of the files written
/// looks no further), but no decoder can read it. Only shell built-ins, since the worker
/// runs it with no PATH.
const GARBAGE_BLENDER: &str = r#"#!/bin/sh
if [ "$1" = "--version" ]; then echo 'Blender 4.2.1 LTS'; exit 0; fi
printf 'this is no PNG at all\0\0\0\0IEND\256B`\202' > '@ROOT@/out/f_0001.png'
echo "Saved: '@ROOT@/out/f_0001.png'"
echo " Time: 00:00.10 (Saving: 00:00.01)"
"#;

/// Guards previews against unreadable frames: a task whose saved file is garbage finishes
/// all the same, the worker logs why there is no preview, and the job has none.
#[test]
fn a_frame_that_is_no_image_gets_no_preview_and_its_task_finishes() {
    let (farm, http) = farm_with_http();
    let tools = farm.make_dir("tools");
    let root = std::fs::canonicalize(farm.make_dir("root")).expect("canonical root");
    std::fs::create_dir_all(root.join("out")).expect("the output folder");
    write_file(&root.join("shot.blend"), b"scene");
    let blender = tools.join("blender");
    write_file(
        &blender,
        GARBAGE_BLENDER
            .replace("@ROOT@", &root.display().to_string())
            .as_bytes(),
    );
    std::fs::set_permissions(&blender, std::fs::Permissions::from_mode(0o755))
        .expect("could not make the fake blender executable");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["worker", "--port", &port, "--name", "fake"]);
    command
        .arg("--blender")
        .arg(&blender)
        .current_dir(&root)
        .env("PATH", "/nonexistent");
    let mut worker_process = Proc::spawn("worker fake", command, farm.path());
    farm.wait_for_info("worker fake idle", |info| {
        worker(info, "fake").is_some_and(|w| w["state"] == "idle")
    });
    let output = farm.run(&[
        "blender-render",
        "shot.blend",
        "--frames",
        "1",
        "--output",
        "out/f_####",
        "--wait",
        "--json",
    ]);
    if !output.status.success() {
        worker_process.assert_running();
        panic!("{}\n{}", describe(&output), worker_process.logs());
    }
    let (job, _) = submitted(&output);
    assert_eq!(farm.status(&job)["state"], "finished");
    poll_until(
        "the worker's line about the frame without a preview",
        || {
            let logs = worker_process.logs();
            if logs.contains("no preview of the frame") && logs.contains("f_0001.png") {
                Ok(())
            } else {
                Err(logs)
            }
        },
    );
    let listed = get(http, &format!("/api/v1/jobs/{job}/previews"));
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), Value::Array(Vec::new()));
    assert_eq!(
        get(http, &format!("/api/v1/jobs/{job}/previews/latest")).status,
        404
    );
    let none = farm.run(&["preview", &job]);
    assert!(
        !none.status.success()
            && stderr(&none).contains(&format!("job {job} ended (finished) without a preview")),
        "{}",
        describe(&none)
    );
    worker_process.assert_running();
}
