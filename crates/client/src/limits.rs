//! What a server accepts in a submission, checked before anything is encoded or sent: a
//! job past a limit gets a message that says which limit and what to change, rather than
//! a frame error from the encoder (a render of a million one-frame tasks is far over the
//! frame limit) or a refusal from the server after the request was built.
//!
//! The server checks the same limits itself (every client is untrusted), defined once in
//! `buildcat-proto`; checking them here only makes the message earlier and clearer.

use buildcat_proto::NewJob;

use crate::error::ClientError;

pub use buildcat_proto::{MAX_GPU_MEMORY_MIB, MAX_TASKS, MAX_TIMEOUT_MS};

/// Refuses, before anything is encoded or sent, a job the server would refuse.
pub(crate) fn check_job(job: &NewJob) -> Result<(), ClientError> {
    if job.queue.trim().is_empty() {
        return Err(ClientError::Invalid(
            "the queue name is empty; every job goes into a named queue, such as `default`"
                .to_owned(),
        ));
    }
    if job.kind.trim().is_empty() {
        return Err(ClientError::Invalid(format!(
            "a job for queue `{}` has an empty kind",
            job.queue
        )));
    }
    if job.tasks.is_empty() {
        return Err(ClientError::Invalid(format!(
            "job `{}` for queue `{}` has no tasks; add at least one",
            job.name, job.queue
        )));
    }
    if job.tasks.len() > MAX_TASKS {
        return Err(ClientError::Invalid(format!(
            "job `{}` has {} tasks, and a job may have at most {MAX_TASKS}; give each task \
             more frames (a larger chunk) or submit several jobs",
            job.name,
            job.tasks.len()
        )));
    }
    if let Some(timeout) = job.options.timeout_ms
        && timeout > MAX_TIMEOUT_MS
    {
        return Err(ClientError::Invalid(format!(
            "job `{}` has a timeout of {timeout} ms, and the longest a server takes is \
             {MAX_TIMEOUT_MS} ms ({} s, 365 days); give a shorter timeout, or none",
            job.name,
            MAX_TIMEOUT_MS / 1000
        )));
    }
    if job.options.gpus.memory_mib > MAX_GPU_MEMORY_MIB {
        return Err(ClientError::Invalid(format!(
            "job `{}` requires {} MiB of memory per GPU, and a server takes at most \
             {MAX_GPU_MEMORY_MIB} MiB",
            job.name, job.options.gpus.memory_mib
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use buildcat_proto::{JobOptions, NewTask};

    use super::*;

    fn job(tasks: usize, options: JobOptions) -> NewJob {
        NewJob {
            queue: "default".to_owned(),
            kind: "buildcat.test".to_owned(),
            name: "shot.blend 1-1000000".to_owned(),
            submitter: String::new(),
            runs: String::new(),
            options,
            tasks: vec![
                NewTask {
                    frames: None,
                    args: Vec::new(),
                };
                tasks
            ],
        }
    }

    fn refusal(job: &NewJob) -> String {
        match check_job(job) {
            Err(ClientError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Tester finding 9: a job of more tasks than a server takes is refused with the limit
    /// and what to change, not with a frame error from encoding it.
    #[test]
    fn too_many_tasks_are_refused_with_the_limit() {
        assert!(check_job(&job(MAX_TASKS, JobOptions::default())).is_ok());
        let message = refusal(&job(MAX_TASKS + 1, JobOptions::default()));
        assert!(message.contains("at most 10000"), "{message}");
        assert!(message.contains("larger chunk"), "{message}");
    }

    /// Tester finding 8: a timeout no server takes is refused with the largest one.
    #[test]
    fn an_absurd_timeout_or_gpu_memory_is_refused_with_the_largest_value() {
        let longest = JobOptions {
            timeout_ms: Some(MAX_TIMEOUT_MS),
            ..JobOptions::default()
        };
        assert!(check_job(&job(1, longest)).is_ok());
        let absurd = JobOptions {
            timeout_ms: Some(u64::MAX),
            ..JobOptions::default()
        };
        let message = refusal(&job(1, absurd));
        assert!(message.contains("31536000 s"), "{message}");
        let memory = JobOptions {
            gpus: buildcat_proto::GpuRequirement {
                count: 1,
                memory_mib: u64::MAX,
            },
            ..JobOptions::default()
        };
        assert!(refusal(&job(1, memory)).contains("at most 1073741824 MiB"));
    }
}
