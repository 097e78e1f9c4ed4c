//! The control plane as spar-control runs it with `--source files`, in process: spar-control's
//! own library ([`spar_control::world::Loader`] for the files, [`spar_control::node::Mesh`]
//! for the per-node snapshots), so the benchmark measures the code that serves proxies.

pub use spar_control::node::{Mesh, snapshot};
pub use spar_control::world::{Loader, World};

use crate::mesh::File;

/// Loads and analyzes every file, refusing the whole set on any error, as the file source
/// does on each change (`loader` re-parses only the files whose text changed).
pub fn load(loader: &mut Loader, files: &[File]) -> anyhow::Result<World> {
    loader
        .load_texts(
            files
                .iter()
                .map(|f| (f.name.clone(), f.text.clone()))
                .collect(),
        )
        .map_err(|e| anyhow::anyhow!(e))
}
