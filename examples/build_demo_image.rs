//! Builds `tucano-demo:latest`: the demo binary, statically linked, alone in a `FROM scratch`
//! image, through the engine's build API (no registry, nothing pulled).
//!
//! ```text
//! cargo run --example build_demo_image
//! docker run --rm -e PORT=8080 -p 8080:8080 tucano-demo:latest
//! ```

use std::path::Path;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let result = async {
        let docker = tucano_docker::connect().await?;
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
        tucano_docker::build_demo_image(&docker, workspace).await
    }
    .await;
    match result {
        Ok(id) => {
            println!("built {} ({id})", tucano_docker::DEMO_IMAGE);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("build_demo_image: {error}");
            ExitCode::FAILURE
        }
    }
}
