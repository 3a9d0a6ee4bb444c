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
    let (repo, file) = parse(spec)?;
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

/// Splits `OWNER/NAME[:FILE]` and checks both parts: two non-empty path
/// segments for the repository, and a relative file path inside it — no
/// absolute path, no `..`, no empty segment — so that a spec cannot make the
/// cache read or write outside the repository's own folder.
fn parse(spec: &str) -> Result<(&str, &str)> {
    let (repo, file) = spec.split_once(':').unwrap_or((spec, DEFAULT_FILE));
    let usable = |segment: &str| !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('\\');
    anyhow::ensure!(
        repo.split('/').count() == 2 && repo.split('/').all(usable),
        "--hf {spec}: expected OWNER/NAME or OWNER/NAME:FILE"
    );
    anyhow::ensure!(
        !file.starts_with('/') && file.split('/').all(usable),
        "--hf {spec}: FILE must be a relative path inside the repository (no leading /, no `..`, no empty or `.` segment)"
    );
    Ok((repo, file))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn hf_specs_name_a_file_inside_the_repository() {
        assert_eq!(parse("owner/name").unwrap(), ("owner/name", "model.safetensors"));
        assert_eq!(parse("owner/name:sub/dir/vgg.safetensors").unwrap(), ("owner/name", "sub/dir/vgg.safetensors"));
        for bad in [
            "owner/name:/etc/passwd",
            "owner/name:../../secret",
            "owner/name:weights/../../x",
            "owner/name:./x",
            "owner/name:a//b",
            "owner/name:",
            "owner/name:a\\..\\b",
            "owner:file",
            "../name:file",
            "owner/name/extra:file",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
