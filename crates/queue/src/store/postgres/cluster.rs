//! The queue's tests' policy over `buildcat-pgcluster`'s private cluster (one
//! implementation for the tests, the e2e harness and the bench): without PostgreSQL a test
//! is skipped saying why, or failed under `BUILDCAT_CI=1`, where a missing PostgreSQL is a
//! broken CI. The cluster runs with `fsync` off (tests need speed, not durability).

use buildcat_pgcluster::Options;

/// A running private cluster (stopped and removed on drop); everything but the skip policy
/// is `buildcat_pgcluster::Cluster`'s, reached through `Deref`.
#[derive(Debug)]
pub(crate) struct Cluster(buildcat_pgcluster::Cluster);

impl Cluster {
    /// Starts a cluster; without PostgreSQL, `None` after saying why (or a panic under
    /// `BUILDCAT_CI=1`).
    pub(crate) fn start_or_skip(test: &str) -> Option<Cluster> {
        match buildcat_pgcluster::Cluster::start(&Options::default()) {
            Ok(cluster) => Some(Cluster(cluster)),
            Err(why) if std::env::var("BUILDCAT_CI").is_ok_and(|v| v == "1") => {
                panic!("{test}: PostgreSQL is needed under BUILDCAT_CI=1: {why}")
            }
            Err(why) => {
                eprintln!("skipping {test}: {why}");
                None
            }
        }
    }
}

impl std::ops::Deref for Cluster {
    type Target = buildcat_pgcluster::Cluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
