//! Images from one statically linked binary, built by the engine (no registry, no pull).

use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::{ENGINE_TIMEOUT, within};
use crate::error::DockerError;

/// How long the engine may take to build an image.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Name of the binary inside the image, at its root.
const ENTRYPOINT: &str = "app";

/// Builds image `tag` holding `binary` alone (`FROM scratch`, the binary at `/app` as the
/// entrypoint) through the engine's build API, and returns the image id.
///
/// The binary must be statically linked: there is nothing else in the image (no libc, no
/// shell). Nothing is pulled, so this works without a registry.
pub async fn build_image_from_binary(
    docker: &Docker,
    binary: &Path,
    tag: &str,
) -> Result<String, DockerError> {
    let context = build_context(binary)?;
    let options = BuildImageOptionsBuilder::new()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let build = async {
        let mut progress = docker.build_image(options, None, Some(bollard::body_full(context)));
        while let Some(step) = progress.next().await {
            let step = step.map_err(|e| DockerError::Build {
                image: tag.to_owned(),
                message: e.to_string(),
            })?;
            if let Some(message) = step.error {
                return Err(DockerError::Build {
                    image: tag.to_owned(),
                    message,
                });
            }
        }
        Ok(())
    };
    within(BUILD_TIMEOUT, "image build", build).await??;
    let image = within(ENGINE_TIMEOUT, "image inspect", docker.inspect_image(tag)).await??;
    image.id.ok_or_else(|| DockerError::Build {
        image: tag.to_owned(),
        message: "the engine reported no image id".to_owned(),
    })
}

/// The build context: a Dockerfile and the binary, as an in-memory tar archive.
fn build_context(binary: &Path) -> Result<Bytes, DockerError> {
    let file_error = |e: std::io::Error| DockerError::File {
        path: binary.display().to_string(),
        message: e.to_string(),
    };
    let contents = std::fs::read(binary).map_err(file_error)?;
    let dockerfile =
        format!("FROM scratch\nCOPY {ENTRYPOINT} /{ENTRYPOINT}\nENTRYPOINT [\"/{ENTRYPOINT}\"]\n");
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        (ENTRYPOINT, &contents[..], 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive
            .append_data(&mut header, name, data)
            .map_err(file_error)?;
    }
    archive.into_inner().map(Bytes::from).map_err(file_error)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn context_holds_the_dockerfile_and_the_executable_binary() {
        let dir = std::env::temp_dir().join(format!("tucano-context-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("bin");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let context = build_context(&binary).unwrap();
        let mut archive = tar::Archive::new(&context[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((name, mode, data));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "Dockerfile");
        assert!(String::from_utf8_lossy(&seen[0].2).contains("ENTRYPOINT [\"/app\"]"));
        assert_eq!((seen[1].0.as_str(), seen[1].1), ("app", 0o755));
        assert_eq!(seen[1].2, b"\x7fELF not really");
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let error = build_context(Path::new("/nonexistent/tucano-bin")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/tucano-bin"),
            "{error}"
        );
    }
}
