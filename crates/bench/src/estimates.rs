//! Criterion's estimates, read back from `<criterion dir>/<group>/<id>/<size>/new/estimates.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
    slope: Option<Estimate>,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// The criterion results of one run.
#[derive(Clone, Debug)]
pub struct Criterion {
    dir: Option<PathBuf>,
}

impl Criterion {
    /// Results under `dir` (criterion's output directory), or none at all.
    pub fn new(dir: Option<&Path>) -> Self {
        Self {
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// Whether any result exists.
    pub fn available(&self) -> bool {
        self.dir.as_ref().is_some_and(|d| d.is_dir())
    }

    /// Nanoseconds per iteration of `<group>/<id>/<size>`: criterion's slope estimate (linear
    /// regression over samples of increasing iteration counts) where it has one, else its mean.
    pub fn ns(&self, group: &str, id: &str, size: usize) -> Option<f64> {
        let path = self
            .dir
            .as_ref()?
            .join(group)
            .join(id)
            .join(size.to_string())
            .join("new")
            .join("estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let est: Estimates = serde_json::from_str(&text).ok()?;
        Some(est.slope.unwrap_or(est.mean).point_estimate)
    }
}
