//! A private PostgreSQL cluster for the store figures (`buildcat-pgcluster`'s, the one
//! implementation the tests use too). Unlike the tests' cluster it keeps `fsync` on: the
//! figures are of durable commits. Without PostgreSQL the figures are skipped.

use anyhow::anyhow;
use buildcat_pgcluster::Options;

/// A running private cluster, stopped and removed on drop.
pub struct Cluster(buildcat_pgcluster::Cluster);

impl Cluster {
    /// Starts a cluster; `Ok(None)` when PostgreSQL is not installed (the figures are
    /// skipped with a line saying so), `Err` when it is but would not start.
    pub fn start() -> anyhow::Result<Option<Cluster>> {
        if buildcat_pgcluster::server_programs().is_err() {
            return Ok(None);
        }
        let options = Options {
            fsync: true,
            tls: None,
        };
        buildcat_pgcluster::Cluster::start(&options)
            .map(|cluster| Some(Cluster(cluster)))
            .map_err(|why| anyhow!("starting PostgreSQL for the store figures: {why}"))
    }

    /// The URL of its `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        self.0.url("postgres")
    }
}
