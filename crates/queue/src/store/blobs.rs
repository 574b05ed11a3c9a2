//! A task's attempts and failure as both stores keep them: blobs in the protocol's
//! encoding, read in the layout of this version or of any past one.
//!
//! The encoding carries no field names, so a struct that gains a field reads differently.
//! `Failure` gained `gpu_fault` (protocol 7, issue 13): a blob stored before is one
//! `Option` short. Each blob is decoded in the newest layout first, then in the old one.
//! The two cannot be mistaken for each other, because a blob must be decoded to its last
//! byte: an old failure read as new runs out of bytes where `gpu_fault` would start, and an
//! old attempt list whose failed attempt is followed by another reads that attempt's number
//! (2 or more, one byte) where an `Option` tag (0 or 1) must be.

use buildcat_proto::codec::decode_value;
use buildcat_proto::{Attempt, AttemptOutcome, Failure, Timestamp};
use serde::Deserialize;

/// Decodes a task's stored failure; the error says what is wrong with it.
pub(crate) fn decode_failure(bytes: &[u8]) -> Result<Failure, String> {
    match decode_value::<Failure>(bytes) {
        Ok(failure) => Ok(failure),
        Err(newest) => decode_value::<FailureV6>(bytes)
            .map(Failure::from)
            .map_err(|_| format!("its failure cannot be decoded: {newest}")),
    }
}

/// Decodes a task's stored attempts; the error says what is wrong with them.
pub(crate) fn decode_attempts(bytes: &[u8]) -> Result<Vec<Attempt>, String> {
    match decode_value::<Vec<Attempt>>(bytes) {
        Ok(attempts) => Ok(attempts),
        Err(newest) => decode_value::<Vec<AttemptV6>>(bytes)
            .map(|attempts| attempts.into_iter().map(Attempt::from).collect())
            .map_err(|_| format!("its attempts cannot be decoded: {newest}")),
    }
}

/// `Failure` as stored up to protocol 6, before `gpu_fault`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct FailureV6 {
    /// One line saying what went wrong.
    reason: String,
    /// The exit code of the tool, when it ran one.
    exit_code: Option<i32>,
    /// The last lines the tool printed.
    output_tail: Vec<String>,
}

impl From<FailureV6> for Failure {
    fn from(old: FailureV6) -> Self {
        Failure {
            reason: old.reason,
            exit_code: old.exit_code,
            output_tail: old.output_tail,
            gpu_fault: None,
        }
    }
}

/// `AttemptOutcome` as stored up to protocol 6: its failure is a [`FailureV6`]. The
/// variants are in the same order, which decides their encoding.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
enum AttemptOutcomeV6 {
    /// The handler returned a result.
    Finished,
    /// The handler failed.
    Failed(FailureV6),
    /// The worker went away.
    WorkerLost,
    /// Canceled while running.
    Canceled,
    /// Stopped by its worker, which was shutting down.
    Interrupted,
}

impl From<AttemptOutcomeV6> for AttemptOutcome {
    fn from(old: AttemptOutcomeV6) -> Self {
        match old {
            AttemptOutcomeV6::Finished => AttemptOutcome::Finished,
            AttemptOutcomeV6::Failed(failure) => AttemptOutcome::Failed(failure.into()),
            AttemptOutcomeV6::WorkerLost => AttemptOutcome::WorkerLost,
            AttemptOutcomeV6::Canceled => AttemptOutcome::Canceled,
            AttemptOutcomeV6::Interrupted => AttemptOutcome::Interrupted,
        }
    }
}

/// `Attempt` as stored up to protocol 6: its outcome is an [`AttemptOutcomeV6`].
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct AttemptV6 {
    /// 1 for the first attempt.
    number: u32,
    /// The worker that ran it.
    worker: String,
    /// When the worker was given the task.
    started_at: Timestamp,
    /// When it ended, if it has.
    ended_at: Option<Timestamp>,
    /// How it ended, if it has.
    outcome: Option<AttemptOutcomeV6>,
}

impl From<AttemptV6> for Attempt {
    fn from(old: AttemptV6) -> Self {
        Attempt {
            number: old.number,
            worker: old.worker,
            started_at: old.started_at,
            ended_at: old.ended_at,
            outcome: old.outcome.map(AttemptOutcome::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildcat_proto::codec::encode_value;

    /// An old failure, as protocol 6 stored it.
    fn old_failure(reason: &str) -> FailureV6 {
        FailureV6 {
            reason: reason.to_owned(),
            exit_code: Some(1),
            output_tail: vec!["Error: out of licences".to_owned()],
        }
    }

    /// A failure stored before `gpu_fault` existed reads with none (issue 13).
    #[test]
    fn a_failure_of_the_old_layout_reads_without_a_gpu_fault() {
        // Pinned bytes of the old layout: reason "no", Some(1), one line "x".
        let pinned = [2, b'n', b'o', 1, 2, 1, 1, b'x'];
        let failure = decode_failure(&pinned).expect("the old layout decodes");
        assert_eq!(failure.reason, "no");
        assert_eq!(failure.exit_code, Some(1));
        assert_eq!(failure.output_tail, vec!["x".to_owned()]);
        assert_eq!(failure.gpu_fault, None);
        let encoded = encode_value(&old_failure("blender crashed")).expect("encodes");
        let failure = decode_failure(&encoded).expect("the old layout decodes");
        assert_eq!(failure.reason, "blender crashed");
        assert_eq!(failure.gpu_fault, None);
    }

    #[test]
    fn a_failure_of_the_new_layout_keeps_its_gpu_fault() {
        let mut failure = Failure::new("blender exited with code 1");
        failure.gpu_fault = Some("GPU 0 (NVIDIA H200): CUDA out of memory".to_owned());
        let encoded = encode_value(&failure).expect("encodes");
        assert_eq!(decode_failure(&encoded), Ok(failure));
    }

    /// Attempts stored before `gpu_fault` existed, failed ones among them, read as they
    /// were, whichever attempt failed.
    #[test]
    fn attempts_of_the_old_layout_read_as_they_were() {
        let attempt = |number, outcome| AttemptV6 {
            number,
            worker: "render01".to_owned(),
            started_at: Timestamp(1_700_000_000_000),
            ended_at: Some(Timestamp(1_700_000_001_000)),
            outcome,
        };
        let old = [
            attempt(1, Some(AttemptOutcomeV6::Failed(old_failure("first")))),
            attempt(2, Some(AttemptOutcomeV6::WorkerLost)),
            attempt(3, Some(AttemptOutcomeV6::Failed(old_failure("last")))),
            attempt(4, None),
        ];
        for count in 1..=old.len() {
            let encoded = encode_value(&&old[..count]).expect("encodes");
            let attempts = decode_attempts(&encoded).expect("the old layout decodes");
            assert_eq!(attempts.len(), count);
            if let Some(AttemptOutcome::Failed(failure)) = &attempts[0].outcome {
                assert_eq!(failure.reason, "first");
                assert_eq!(failure.gpu_fault, None);
            } else {
                panic!("the first attempt failed: {attempts:?}");
            }
        }
    }

    #[test]
    fn attempts_of_the_new_layout_read_as_written() {
        let mut failure = Failure::new("device lost");
        failure.gpu_fault = Some("GPU 1 (NVIDIA H200): device lost".to_owned());
        let attempts = vec![
            Attempt {
                number: 1,
                worker: "render01".to_owned(),
                started_at: Timestamp(1),
                ended_at: Some(Timestamp(2)),
                outcome: Some(AttemptOutcome::Failed(failure)),
            },
            Attempt {
                number: 2,
                worker: "render02".to_owned(),
                started_at: Timestamp(3),
                ended_at: None,
                outcome: None,
            },
        ];
        let encoded = encode_value(&attempts).expect("encodes");
        assert_eq!(decode_attempts(&encoded), Ok(attempts));
    }

    #[test]
    fn bytes_of_neither_layout_are_refused_with_the_newest_layouts_error() {
        let error = decode_failure(&[0xff; 3]).expect_err("not a failure");
        assert!(
            error.starts_with("its failure cannot be decoded"),
            "{error}"
        );
    }
}
