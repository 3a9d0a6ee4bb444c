//! Fetching a checkpoint from the Hugging Face Hub (hf-hub), cache first.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The file name used when `--hf REPO` names no file.
const DEFAULT_FILE: &str = "model.safetensors";

/// Resolves `REPO[:FILE]` to a local path: the Hub cache (`$HF_HOME/hub`)
/// if the file is already there, else a download from `$HF_ENDPOINT`
/// (default huggingface.co). Offline, the error says so and suggests
/// `--weights`.
pub fn fetch(spec: &str) -> Result<PathBuf> {
    let (repo, file) = spec.split_once(':').unwrap_or((spec, DEFAULT_FILE));
    anyhow::ensure!(
        repo.split('/').count() == 2 && !file.is_empty(),
        "--hf {spec}: expected OWNER/NAME or OWNER/NAME:FILE"
    );
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("setting up the Hugging Face Hub client")?;
    api.model(repo.to_string()).get(file).with_context(|| {
        format!(
            "could not fetch {file} from the Hugging Face Hub repository {repo} (not in the local cache, and the download failed; \
             this machine may be offline — pass --weights PATH to use a local checkpoint)"
        )
    })
}
