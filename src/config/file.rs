//! Reading the TOML config file. Unknown keys are refused (a typo must not silently fall
//! back to a default), and errors name the file, line and column.

use std::path::Path;

use super::{ConfigError, NodeConfig};

/// Largest config file accepted; a bigger one is surely not a config file.
const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

pub(super) fn read(path: &Path) -> Result<NodeConfig, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_CONFIG_FILE_LEN {
        return Err(ConfigError::Parse {
            path: path.to_owned(),
            message: format!("{len} bytes; a config file has at most {MAX_CONFIG_FILE_LEN}"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse(path, &text)
}

pub(super) fn parse(path: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
