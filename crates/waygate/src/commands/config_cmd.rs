//! `waygate config validate|show`.

use crate::cli::{ConfigCommand, Global};
use crate::config;

pub fn run(g: &Global, cmd: ConfigCommand) -> Result<(), Box<dyn std::error::Error>> {
    let dir = super::data_dir(g);
    match cmd {
        ConfigCommand::Validate { file } => {
            let path = file
                .or_else(|| config::resolve_path(g.config.as_deref(), &dir))
                .ok_or("no config file given and none in the data directory")?;
            config::load(Some(&path))?;
            println!("{}: ok", path.display());
            Ok(())
        }
        ConfigCommand::Show => {
            let path = config::resolve_path(g.config.as_deref(), &dir);
            let mut cfg = config::load(path.as_deref())?;
            if cfg.mcp.state_key.is_some() {
                cfg.mcp.state_key = Some("<redacted>".into());
            }
            println!(
                "# source: {}",
                path.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into())
            );
            println!("{cfg:#?}");
            Ok(())
        }
    }
}
