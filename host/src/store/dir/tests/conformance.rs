//! The store-independent checks (`store::conformance`) run on the directory store, with an archive and a trash, and
//! without an archive (archiving denied by its capabilities) and without a grace period (drops delete at once).

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::crash::visible_copies;
use super::*;
use crate::segment::Tier;
use crate::store::conformance::{self, Harness, Place};
use crate::store::dir::CRASH_POINTS;

struct DirHarness {
    fx: Option<Fx>,
    archive: bool,
    grace: Duration,
}

impl DirHarness {
    fn fx(&self) -> &Fx {
        self.fx.as_ref().expect("fresh() first")
    }
}

#[async_trait]
impl Harness for DirHarness {
    async fn fresh(&mut self) {
        self.fx = Some(Fx::new());
    }

    async fn open(&self) -> Arc<dyn Store> {
        let mut cfg = self.fx().cfg();
        if !self.archive {
            cfg.archive_url = None;
        }
        cfg.trash_grace = self.grace;
        Arc::new(DirectoryStore::open(cfg).await.unwrap())
    }

    async fn write(&self, name: &str, content: &[u8]) {
        self.fx().write(name, content);
    }

    async fn change(&self, name: &str) {
        let mut f = File::options().append(true).open(self.fx().root.join(name)).unwrap();
        f.write_all(b"one more line\n").unwrap();
    }

    async fn census(&self) -> Vec<(String, Place, Vec<u8>)> {
        let (copies, temps) = visible_copies(&self.fx().root, &self.fx().archive);
        let _ = temps;
        copies
            .into_iter()
            .map(|(name, place, content)| {
                let place = match place {
                    "hot" => Place::Tier(Tier::Hot),
                    "compressed" => Place::Tier(Tier::Compressed),
                    "archived" => Place::Tier(Tier::Archived),
                    _ => Place::Trash,
                };
                (name, place, content)
            })
            .collect()
    }

    fn failure_points(&self) -> Vec<&'static str> {
        CRASH_POINTS.to_vec()
    }

    fn fail_at(&self, point: &'static str) -> Box<dyn std::any::Any + Send> {
        Box::new(crate::crashpoint::fail_under(&self.fx().root, point))
    }

    fn drops_to_trash(&self) -> bool {
        !self.grace.is_zero()
    }
}

#[tokio::test]
async fn the_directory_store_with_an_archive_and_a_trash_passes_the_store_conformance_checks() {
    let mut h = DirHarness {
        fx: None,
        archive: true,
        grace: Duration::from_secs(86_400),
    };
    conformance::run_all(&mut h).await;
}

#[tokio::test]
async fn the_directory_store_without_an_archive_or_a_grace_period_passes_the_store_conformance_checks() {
    let mut h = DirHarness {
        fx: None,
        archive: false,
        grace: Duration::ZERO,
    };
    conformance::run_all(&mut h).await;
}
