//! Process-wide logging through `tracing`: readable lines by default, JSON on request.
//!
//! Installed once by the binary (an embedding application installs its own subscriber,
//! or calls [`init`] itself). The filter comes from the validated config, so a bad filter
//! was already refused at start.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber. Logs go to stderr so stdout stays for the node's
/// status lines and the CLI's results.
pub fn init(config: &LogConfig) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|e| TelemetryError::Filter {
        filter: config.level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)
}
