//! The OpenAPI 3 document at `/api/v1/openapi.json`, written by hand from [`ENDPOINTS`]; a
//! tidy test checks that every route the router serves is listed.

use axum::Json;
use serde_json::{Map, Value, json};

/// One endpoint as the document lists it.
struct Endpoint {
    /// `get`, `post` or `delete`.
    method: &'static str,
    /// The path as the router names it, `{param}` and all.
    path: &'static str,
    /// What it does, in a line.
    summary: &'static str,
    /// Its query parameters: name, type, what it means.
    query: &'static [(&'static str, &'static str, &'static str)],
    /// Whether it takes `{"priority": N}`.
    priority_body: bool,
    /// Whether it answers an image (JPEG or PNG) rather than JSON.
    image: bool,
}

/// Shorthand for an endpoint without a body.
const fn endpoint(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str, &'static str)],
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        query,
        priority_body: false,
        image: false,
    }
}

/// Every endpoint.
const ENDPOINTS: &[Endpoint] = &[
    endpoint(
        "get",
        "/api/v1/info",
        "The farm at a glance (as `buildcat info --json`)",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/jobs",
        "Jobs, newest first (as `buildcat jobs --json`)",
        &[
            ("queue", "string", "Only this queue"),
            (
                "state",
                "string",
                "Only jobs in this state (queued, running, paused, finished, failed, canceled)",
            ),
            (
                "user",
                "string",
                "Only jobs of this submitter: user or user@host",
            ),
            (
                "limit",
                "integer",
                "At most this many (50 unless given; the server caps it)",
            ),
        ],
    ),
    endpoint(
        "get",
        "/api/v1/jobs/{job}",
        "A job and its tasks (as `buildcat status JOB --json`)",
        &[],
    ),
    endpoint(
        "delete",
        "/api/v1/jobs/{job}",
        "Remove an ended job now, with its output",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/jobs/{job}/tasks/{index}",
        "One task with its attempts and result (as `buildcat status JOB.TASK --json`)",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/jobs/{job}/tasks/{index}/log",
        "One page of a task's output; ask again from `next` while `more`",
        &[(
            "from",
            "integer",
            "Where to start, in bytes of the output: 0 or a page's `next`",
        )],
    ),
    endpoint(
        "post",
        "/api/v1/jobs/{job}/cancel",
        "Cancel every task of a job that has not ended",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/jobs/{job}/tasks/{index}/cancel",
        "Cancel one task",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/jobs/{job}/requeue",
        "Put a job's failed and canceled tasks back in their queue",
        &[(
            "all",
            "boolean",
            "Finished tasks too (render again after a fix)",
        )],
    ),
    endpoint(
        "post",
        "/api/v1/jobs/{job}/pause",
        "Hold a job: its queued tasks do not start",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/jobs/{job}/resume",
        "Let a paused job's tasks start again",
        &[],
    ),
    Endpoint {
        method: "post",
        path: "/api/v1/jobs/{job}/priority",
        summary: "Change a job's priority (higher runs first in its queue)",
        query: &[],
        priority_body: true,
        image: false,
    },
    endpoint(
        "get",
        "/api/v1/jobs/{job}/previews",
        "The job's frame previews, newest first: task, frame, width, height, format, bytes, at",
        &[],
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/jobs/{job}/previews/latest",
        summary: "The newest frame preview's image (image/jpeg or image/png); 404 while the \
                  job has none",
        query: &[],
        priority_body: false,
        image: true,
    },
    endpoint(
        "post",
        "/api/v1/queues/{queue}/pause",
        "Hold every job of a queue",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/queues/{queue}/resume",
        "Let a held queue's jobs start again",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/workers",
        "The connected workers (as `info --json` lists them)",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/workers/{name}/enable",
        "Let a quarantined worker take work again",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/workers/{name}/pause",
        "Pause a worker: it finishes the task it runs and takes no new one until resumed (kept across its reconnects, not a server restart)",
        &[],
    ),
    endpoint(
        "post",
        "/api/v1/workers/{name}/resume",
        "Let a paused worker take work again",
        &[],
    ),
    endpoint("get", "/api/v1/openapi.json", "This document", &[]),
    endpoint(
        "get",
        "/api/v1/events",
        "Server-sent events: `ready`, then `changed` (the farm's generation) at most four times a second after anything changed; refetch what you show",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/jobs/{job}/events",
        "Server-sent events of one job: `task` (a task's view), `progress`, `ended` (the job's view), then `end`; `refused` with an error",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/jobs/{job}/tasks/{index}/log/events",
        "Server-sent events of a task's output as printed: `log` (a page), then `end` when the task ends",
        &[(
            "from",
            "integer",
            "Bytes into the output: 0, or a page's `next`",
        )],
    ),
    endpoint(
        "get",
        "/api/v1/throughput",
        "Tasks finished per minute over the last hour, oldest first: {\"minutes\": [{\"at\", \"finished\"}]}",
        &[],
    ),
    endpoint(
        "get",
        "/api/v1/login",
        "Whether the server needs a token and this request carries it: {\"required\", \"signed_in\"} (never 401)",
        &[],
    ),
    Endpoint {
        method: "post",
        path: "/api/v1/login",
        summary: "Trade the token for an HttpOnly, SameSite=Strict buildcat_token cookie (the web page's sign-in); 401 when it is wrong",
        query: &[],
        priority_body: false,
        image: false,
    },
    endpoint(
        "get",
        "/metrics",
        "Prometheus metrics (OpenMetrics text)",
        &[],
    ),
];

/// What each path parameter means.
fn path_parameter(name: &str) -> Value {
    let description = match name {
        "job" => "The job: its number (42) or its id (a UUID)",
        "index" => "The task's index in its job: the 3 of 42.3",
        "queue" => "The queue's name",
        _ => "The worker's name",
    };
    let schema = if name == "index" {
        json!({ "type": "integer", "minimum": 0 })
    } else {
        json!({ "type": "string" })
    };
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

/// The document.
fn build() -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let mut parameters: Vec<Value> = endpoint
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(path_parameter)
            .collect();
        parameters.extend(endpoint.query.iter().map(|(name, kind, description)| {
            json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": kind } })
        }));
        let mut operation = json!({
            "summary": endpoint.summary,
            "parameters": parameters,
            "responses": {
                "200": { "description": "Done; the same JSON as the CLI's --json" },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
                "409": { "$ref": "#/components/responses/Error" },
                "503": { "$ref": "#/components/responses/Error" },
            },
        });
        if endpoint.image {
            operation["responses"]["200"] = json!({
                "description": "The image, served with X-Content-Type-Options: nosniff",
                "content": {
                    "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
                    "image/png": { "schema": { "type": "string", "format": "binary" } },
                },
            });
        }
        if endpoint.priority_body {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["priority"],
                    "properties": { "priority": { "type": "integer", "format": "int32" } },
                } } },
            });
        }
        let item = paths
            .entry(endpoint.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[endpoint.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Buildcat HTTP API",
            "version": buildcat_proto::SOFTWARE_VERSION,
            "description": "The farm's jobs, tasks and workers, and the actions of the `buildcat` command, as JSON.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": {
                "description": "What went wrong and what to do",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string" } },
                } } },
            } },
        },
        "security": [ { "bearer": [] }, {} ],
    })
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(PATH, METHOD(...))` of the router, read from its source.
    fn routes() -> Vec<(String, String)> {
        let source = include_str!("api.rs");
        source
            .split(".route(")
            .skip(1)
            // rustfmt puts a long path on a line of its own; a mention in prose has none.
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .map(|rest| {
                let (path, after) = rest.split_once('"').expect("a quoted path");
                let method = after
                    .trim_start_matches([',', ' ', '\n'])
                    .split('(')
                    .next()
                    .expect("a method");
                (path.to_owned(), method.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_route_is_in_the_document() {
        let document = build();
        let routes = routes();
        assert!(routes.len() >= ENDPOINTS.len(), "routes found: {routes:?}");
        for (path, method) in &routes {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path} is served but not in the OpenAPI document"
            );
        }
        for endpoint in ENDPOINTS {
            assert!(
                routes
                    .iter()
                    .any(|(p, m)| p == endpoint.path && m == endpoint.method),
                "{} {} is documented but not served",
                endpoint.method,
                endpoint.path
            );
        }
    }
}
