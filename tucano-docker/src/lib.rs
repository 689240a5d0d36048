//! Docker for Tucano: [`DockerRuntime`], the [`Runtime`](tucano_core::Runtime) that runs
//! instances as containers through the engine's API; a connection to the engine that fails
//! clearly; and images built through the engine's build API from a statically linked binary,
//! with no registry involved.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tucano_docker::DockerError> {
//! let docker = tucano_docker::connect().await?;
//! let image = tucano_docker::build_image_from_binary(
//!     &docker,
//!     std::path::Path::new("target/static/x86_64-unknown-linux-gnu/release/tucano-demo"),
//!     "tucano-demo:latest",
//! )
//! .await?;
//! println!("built {image}");
//! # Ok(()) }
//! ```

/// The Docker engine API client this crate drives, re-exported so callers use the same one.
pub use bollard;

mod demo_image;
mod engine;
mod error;
mod image_builder;
mod runtime;
mod static_build;
pub mod testing;

pub use demo_image::{DEMO_IMAGE, build_demo_image, build_static_demo};
pub use engine::{ENGINE_TIMEOUT, connect, connect_unix};
pub use error::DockerError;
pub use image_builder::{BUILD_TIMEOUT, build_image_from_binary};
pub use runtime::{
    DockerRuntime, DockerRuntimeConfig, INSTANCE_LABEL, PORT_LABEL, SERVICE_LABEL, WORKER_LABEL,
    host_has_swap,
};
pub use static_build::{STATIC_TARGET, build_static};
