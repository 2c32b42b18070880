//! `waygate plugins list`.

use crate::cli::{Global, PluginsCommand};
use crate::config;

pub fn run(g: &Global, cmd: PluginsCommand) -> Result<(), Box<dyn std::error::Error>> {
    match cmd {
        PluginsCommand::List => {
            let dir = super::data_dir(g);
            let cfg = config::load(config::resolve_path(g.config.as_deref(), &dir).as_deref())?;
            println!("{:<12} {:<8} description", "NAME", "ENABLED");
            for name in waygate_plugins::BUILTIN {
                let on = match name {
                    "demo" => cfg.plugins.demo.unwrap_or(true),
                    n => cfg.plugins.enabled.iter().any(|e| e == n),
                };
                let desc = match name {
                    "demo" => "echo, add, now, countdown, ask_name; a resource and a prompt",
                    _ => "the MCP conformance suite's fixture surface",
                };
                println!("{name:<12} {:<8} {desc}", if on { "yes" } else { "no" });
            }
            Ok(())
        }
    }
}
